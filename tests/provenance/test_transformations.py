"""Transformations: recorded with code identity, parameters, inputs and record lineage; their output
is an ordinary gated contribution; bad inputs, unreadable inputs and foreign parents are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from dataward.catalog.tables import ledger_events
from dataward.domain.errors import AccessDenied, InputError, NotFound
from dataward.domain.schema import RECORD_ID
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, write_csv


def _dedup_by_rounding(table: list[dict]) -> tuple[list[dict], list[list[str]]]:
    """Keep one record per rounded alcohol value; each kept record's parents are the ones it stands for."""
    groups: dict[float, list[dict]] = {}
    for r in table:
        groups.setdefault(round(r["alcohol"]), []).append(r)
    kept = [g[0] for g in groups.values()]
    return kept, [[r[RECORD_ID] for r in g] for g in groups.values()]


def test_dedup_is_recorded_with_code_params_inputs_and_lineage(wine_ward: Ward) -> None:
    with wine_ward.transform("dedup", inputs="wine@v2", params={"key": "alcohol", "round": 0}) as t:
        rows = t.read().to_pylist()
        kept, parents = _dedup_by_rounding(rows)
        t.write(kept, parents=parents)
    result = t.result
    assert result is not None
    info = result["transformation"]
    assert info["name"] == "dedup" and info["params"] == {"key": "alcohol", "round": 0}
    assert [i["ref"] for i in info["inputs"]] == ["wine@v2"]
    # The test file lives in this repository: the commit and dirty flag are recorded with the file hash.
    assert info["code"]["kind"] == "git" and len(info["code"]["commit"]) == 40
    assert info["code"]["path"].endswith("test_transformations.py") and info["code"]["file_hash"].startswith("b3:")
    assert isinstance(info["code"]["dirty"], bool)
    # The output is a gated contribution that removes what the dedup dropped.
    assert result["status"] == "gated" and result["removed"] == len(rows) - len(kept) and result["added"] == 0
    assert result["source_uri"] == "transformation:dedup"
    assert info["lineage_pairs"] == len(rows)
    version = merge_reviewed(wine_ward, result["ref"])
    assert version["records"] == len(kept)
    with wine_ward.db.reading() as conn:
        event = conn.execute(select(ledger_events).where(ledger_events.c.type == "transformation.recorded")).one()
    payload = json.loads(event.payload)
    assert payload["lineage_object"] == info["lineage_object"] and payload["inputs"][0]["ref"] == "wine@v2"
    assert wine_ward.verify().ok
    assert [x["name"] for x in wine_ward.transformations("wine")] == ["dedup"]


def test_relabel_records_who_changed_which_label_from_what_and_why(wine_ward: Ward) -> None:
    _, table = wine_ward.read_version("wine", "v2")
    first = table.to_pylist()[0]
    old = first["cultivar"]
    new = "2" if str(old) != "2" else "1"
    result = wine_ward.relabel("wine", {first[RECORD_ID]: new}, reason="vendor correction ticket 12")
    info = result["transformation"]
    assert info["kind"] == "relabel" and result["removed"] == 1 and result["added"] == 1
    with wine_ward.db.reading() as conn:
        from dataward.catalog.tables import transformations

        row = conn.execute(select(transformations)).one()
    (link,) = wine_ward.lineage(row)
    assert link["parent_id"] == first[RECORD_ID]
    assert link["note"]["label"]["from"] == old and link["note"]["label"]["to"] == new
    assert link["note"]["why"] == "vendor correction ticket 12"
    assert info["by"] == "admin"


def test_unknown_input_version_is_refused(wine_ward: Ward) -> None:
    with pytest.raises(NotFound), wine_ward.transform("dedup", inputs="wine@v9"):
        pass
    with pytest.raises(NotFound), wine_ward.transform("dedup", inputs="nosuch@v1"):
        pass


def test_input_the_caller_may_not_read_is_refused(wine_ward: Ward) -> None:
    # A contributor may submit but not read records: it may not transform what it cannot read.
    wine_ward.create_principal("bob")
    wine_ward.grant("bob", "contributor", "dataset:wine")
    bob = wine_ward.as_key(wine_ward.issue_key("bob")["key"])
    with pytest.raises(AccessDenied), bob.transform("dedup", inputs="wine@v1"):
        pass
    denied = wine_ward.ledger(types=["access.denied"])
    assert denied and denied[0]["payload"]["action"] == "dataset.export"


def test_parents_outside_the_input_version_are_refused(wine_ward: Ward) -> None:
    # v1 does not hold the records v2 added: naming one of them as a parent is refused, nothing recorded.
    _, v1 = wine_ward.read_version("wine", "v1")
    _, v2 = wine_ward.read_version("wine", "v2")
    late = next(r for r in v2.to_pylist() if r[RECORD_ID] not in set(v1.column(RECORD_ID).to_pylist()))
    before = wine_ward.ledger_head()["seq"]
    with pytest.raises(InputError, match="not in the input"), wine_ward.transform("filter", inputs="wine@v1") as t:
        rows = t.read().to_pylist()
        t.write(rows[:5], parents=[[r[RECORD_ID]] for r in rows[:4]] + [[late[RECORD_ID]]])
    with pytest.raises(InputError, match="not a record id"), wine_ward.transform("filter", inputs="wine@v1") as t:
        t.write(rows[:1], parents=[["nope"]])
    assert wine_ward.ledger_head()["seq"] == before


def test_a_failed_step_records_nothing(wine_ward: Ward) -> None:
    before = wine_ward.ledger_head()["seq"]
    with pytest.raises(RuntimeError), wine_ward.transform("dedup", inputs="wine@v2") as t:
        t.write(t.read().to_pylist()[:3], parents=None)
        raise RuntimeError("step crashed")
    assert t.result is None and wine_ward.ledger_head()["seq"] == before


@pytest.mark.parametrize("source", ["transformation:dedup", "Transformation:dedup"])
def test_an_ordinary_contribution_may_not_claim_a_transformation_source(
    wine_ward: Ward, tmp_path: Path, source: str
) -> None:
    """The scheme names a recorded step's output: a contributor claiming it passed its own file off as
    derived from records already in the ward, and the attestation left its raw file out."""
    wine_ward.create_principal("bot", kind="service", owner="admin")
    wine_ward.grant("bot", "contributor", "dataset:wine")
    bot = wine_ward.as_key(wine_ward.issue_key("bot")["key"])
    before = wine_ward.ledger_head()["seq"]
    with pytest.raises(InputError, match="is reserved"):
        bot.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 100)), source=source)
    assert wine_ward.ledger_head()["seq"] == before
    # A recorded step's output still declares it.
    rows = wine_ward.read_version("wine", "v2")[1].to_pylist()[:-3]
    made = wine_ward.record_transformation("filter", inputs="wine@v2", data=rows, parents=[r[RECORD_ID] for r in rows])
    assert made["source_uri"] == "transformation:filter"


def test_a_label_change_is_a_label_or_a_label_and_why(wine_ward: Ward) -> None:
    """A JSON change is a list where Python has a tuple: one of another length, or whose second item is
    no text, is refused as input, not read past its end (a job's internal error over HTTP)."""
    _, table = wine_ward.read_version("wine", "v2")
    first = table.to_pylist()[0]
    for change in ([["2"]], ["2"], ["2", 3], ["2", "why", "more"]):
        with pytest.raises(InputError, match="a label, or a label and why"):
            wine_ward.relabel("wine", {first[RECORD_ID]: change}, reason="r")
