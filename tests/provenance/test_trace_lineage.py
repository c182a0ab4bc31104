"""``trace`` through transformations: from a record in a transformed version back to the bot key and
source that brought its ancestors in, and forward from a source record to what was made of it."""

from __future__ import annotations

import pytest

from dataward.domain.errors import NotFound
from dataward.domain.schema import RECORD_ID
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed


def _dedup(ward: Ward) -> tuple[dict, str, str]:
    """Dedup wine@v2 on rounded alcohol; returns the result, a surviving record and one merged into it."""
    with ward.transform("dedup", inputs="wine@v2", params={"key": "alcohol"}) as t:
        groups: dict[float, list[dict]] = {}
        for r in t.read().to_pylist():
            groups.setdefault(round(r["alcohol"]), []).append(r)
        kept = [g[0] for g in groups.values()]
        t.write(kept, parents=[[r[RECORD_ID] for r in g] for g in groups.values()])
    merged = next(g for g in groups.values() if len(g) > 1)
    assert t.result is not None
    return t.result, merged[0][RECORD_ID], merged[1][RECORD_ID]


def test_trace_backward_through_a_dedup_to_the_bot_key_and_source(wine_ward: Ward) -> None:
    result, survivor, dropped = _dedup(wine_ward)
    merge_reviewed(wine_ward, result["ref"])
    trace = wine_ward.trace(survivor)
    (step,) = [s for s in trace["derived_from"] if s["record"] == survivor]
    assert step["name"] == "dedup" and dropped in step["parents"] and step["inputs"] == ["wine@v2"]
    assert step["code"]["kind"] == "git" and step["by"] == "admin"
    origin = next(o for o in trace["origins"] if o["record"] == dropped)
    (adder,) = origin["contributions"]
    assert adder["ref"] in ("wine#1", "wine#2") and adder["source"]["raw_hash"].startswith("b3:")
    if adder["ref"] == "wine#1":
        assert adder["submitted_by"] == "scraper" and adder["key"].startswith("dw_")
        assert adder["source"]["uri"] == "https://scrape.example/wine-a"
    # Forward: the dropped record lives on only through the survivor, which v3 holds.
    forward = wine_ward.trace(dropped)
    (made,) = forward["derived"]
    assert made["record"] == survivor and "wine@v3" in [v["ref"] for v in made["versions"]]
    assert "wine@v3" not in [v["ref"] for v in forward["versions"]]
    # The dedup's output contribution says which step it is.
    assert wine_ward.trace(result["ref"])["contributions"][0]["transformation"]["name"] == "dedup"


def test_trace_a_relabelled_record_to_the_original_and_its_bot(wine_ward: Ward) -> None:
    scraped = wine_ward.trace("principal:scraper")
    assert [c["ref"] for c in scraped["contributions"]] == ["wine#1"]
    assert [v["ref"] for v in scraped["versions"]] == ["wine@v1", "wine@v2"]
    _, v1 = wine_ward.read_version("wine", "v1")
    original = v1.to_pylist()[0]
    new = "3" if str(original["cultivar"]) != "3" else "1"
    result = wine_ward.relabel("wine", {original[RECORD_ID]: new}, reason="annotator disagreement")
    relabelled = next(s for s in wine_ward.trace(original[RECORD_ID])["derived"])["record"]
    trace = wine_ward.trace(relabelled)
    (step,) = trace["derived_from"]
    assert step["kind"] == "relabel" and step["parents"] == [original[RECORD_ID]]
    assert step["note"]["label"]["to"] == new and step["note"]["why"] == "annotator disagreement"
    (origin,) = trace["origins"]
    assert origin["contributions"][0]["submitted_by"] == "scraper"
    assert trace["contributions"][0]["ref"] == result["ref"]
    by_source = wine_ward.trace("source:https://scrape.example/wine-a")
    assert [c["ref"] for c in by_source["contributions"]] == ["wine#1"]
    with pytest.raises(NotFound):
        wine_ward.trace("source:https://nowhere.example")
