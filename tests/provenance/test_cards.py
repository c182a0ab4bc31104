"""``card``: Croissant JSON-LD that mlcroissant loads back, and a Markdown card with sources, licences,
contributors, gate history, transformations and open quarantines."""

from __future__ import annotations

import json
from pathlib import Path

import mlcroissant as mlc
import pytest

from dataward.domain.errors import NotFound
from dataward.domain.schema import RECORD_ID
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.provenance.conftest import augment_scraped


def test_card_of_a_transformed_version(wine_ward: Ward, tmp_path: Path) -> None:
    with wine_ward.transform("filter", inputs="wine@v2", params={"min_alcohol": 12}) as t:
        kept = [r for r in t.read().to_pylist() if r["alcohol"] >= 12]
        t.write(kept, parents=[[r[RECORD_ID]] for r in kept])
    assert t.result is not None
    merge_reviewed(wine_ward, t.result["ref"])
    made = wine_ward.card("wine@v3")
    croissant = made["croissant"]
    assert croissant["name"] == "wine" and croissant["version"] == "3.0.0"
    text = json.dumps(croissant)
    assert "https://scrape.example/wine-a" in text and "transform filter" in text
    assert "verdict" in text  # the gate history, as known limitations
    path = tmp_path / "croissant.json"
    path.write_text(json.dumps(croissant))
    loaded = mlc.Dataset(jsonld=path)  # mlcroissant's own loader and validator
    assert loaded.metadata.name == "wine"
    assert [f.name for f in loaded.metadata.record_sets[0].fields][-1] == "cultivar"
    md = made["markdown"]
    assert md.startswith("# wine@v3") and "| scraper | 1 |" in md and "## Open quarantines" in md
    assert "s3://vendor/wine-b.csv" in md and "filter" in md


def test_card_needs_trace(wine_ward: Ward) -> None:
    wine_ward.create_principal("eve")
    eve = wine_ward.as_key(wine_ward.issue_key("eve")["key"])
    with pytest.raises(NotFound, match="no dataset named 'wine'"):  # a dataset eve may not see
        eve.card("wine@v2")


def test_markdown_card_names_licences_gate_history_and_open_quarantines(wine_ward: Ward, tmp_path: Path) -> None:
    c = wine_ward.contribute(
        "wine", write_csv(tmp_path / "c.csv", wine_rows(80, 100)), source="s3://vendor/wine-c.csv", licence="CC-BY-4.0"
    )
    merge_reviewed(wine_ward, c["ref"])
    wine_ward.quarantine_contribution("wine#1", reason="the scraper's key leaked")
    md = wine_ward.card("wine@v4")["markdown"]
    sources = md.split("## Sources and licences")[1].split("## Contributors")[0]
    assert "s3://vendor/wine-c.csv" in sources and "CC-BY-4.0" in sources
    history = md.split("## Contributions and gate history")[1].split("## Transformations")[0]
    row = next(line for line in history.splitlines() if line.startswith(f"| {c['ref']} |"))
    assert c["gate"]["verdict"] in row and "flagged" in row
    quarantines = md.split("## Open quarantines")[1]
    assert "wine#1 (quarantined contribution)" in quarantines and "none" not in quarantines


def test_the_card_of_a_version_the_loader_refuses_says_so(wine_ward: Ward) -> None:
    """Every contribution of wine_aug@v1 is merged and none of its dataset is quarantined, but its records
    were made from wine#1's: the card names them among the open quarantines and the known limitations."""
    augment_scraped(wine_ward)
    assert wine_ward.card("wine_aug@v1")["markdown"].split("## Open quarantines")[1].strip() == "none"
    wine_ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    made = wine_ward.card("wine_aug@v1")
    quarantines = made["markdown"].split("## Open quarantines")[1]
    line = "barred from training: 20 record(s) made by a transformation from a quarantined contribution's records"
    assert line in quarantines and "none" not in quarantines
    assert any(line in limit for limit in made["croissant"]["rai:dataLimitations"])
