"""Least privilege on reads: a contributor (a scraper bot) submits data; it may see its own contributions
but not the dataset's records, on any path - the review queue's `review show`, the gate report and its
HTML page quote trusted records only to those who may read them (`dataset.export`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.cli.gate_commands import write_gate_html
from dataward.domain.errors import AccessDenied
from dataward.domain.schema import Schema
from dataward.gates.html import render_html
from dataward.service.ward import Ward
from tests.helpers import wine_rows, wine_schema_specs, write_csv


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """ds with a clean validation set; the scraper bot's first import holds a conflicting copy of a
    trusted record (flagged, with trusted neighbours as evidence); crawler is another contributor bot,
    bob a reader."""
    root = tmp_path_factory.mktemp("reads")
    admin, _ = Ward.init(root / "ward")
    label, specs = wine_schema_specs()
    admin.create_dataset("ds", Schema.parse(label, specs))
    admin.create_dataset("ds-val", Schema.parse(label, specs), validation_for="ds")
    admin.set_policy("ds", "gate:\n  detectors: [duplicates]\n  alpha: 0.2\n  flag_fdr: null\n")
    trusted = wine_rows(100, 178, shuffled=True)
    admin.merge(admin.contribute("ds-val", write_csv(root / "v.csv", trusted), source="curated")["ref"])
    admin.create_principal("alice")
    admin.create_principal("bob")
    for bot in ("scraper", "crawler"):
        admin.create_principal(bot, kind="service", owner="alice")
        admin.grant(bot, "contributor", "dataset:ds")
    admin.grant("bob", "reader", "dataset:ds")
    wards = {name: admin.as_key(admin.issue_key(name)["key"]) for name in ("scraper", "crawler", "bob")}
    batch = wine_rows(0, 30, shuffled=True)
    batch.append({**trusted[0], "cultivar": (int(trusted[0]["cultivar"]) + 1) % 3})
    html = root / "scraper-report.html"
    submitted = wards["scraper"].contribute("ds", write_csv(root / "a.csv", batch), source="a")
    write_gate_html(wards["scraper"], submitted["ref"], html)  # what `contribute --html` does for the scraper
    item = admin.review_list("ds")[0]
    assert "exact copy" in item["reason"]
    return {"admin": admin, **wards, "ref": submitted["ref"], "item": item["id"], "html": html}


def test_review_show_needs_the_right_to_read_records(team: dict) -> None:
    with pytest.raises(AccessDenied, match=r"dataset\.export"):
        team["crawler"].review_show(team["item"])
    denial = team["admin"].ledger(types=["access.denied"], limit=1)[0]
    assert denial["actor_name"] == "crawler" and "may not see the records" in denial["payload"]["reason"]


def test_a_contributor_sees_its_own_record_but_no_trusted_neighbours(team: dict) -> None:
    mine = team["scraper"].review_show(team["item"])
    assert mine["record"]["record_id"] == mine["record_id"]
    assert mine["neighbours"] == []
    full = team["bob"].review_show(team["item"])
    assert full["record"] == mine["record"] and full["neighbours"]
    # A table's neighbours come with their values, to compare with the flagged record's (withheld alike).
    values = full["neighbours"][0]["values"]
    assert set(values) <= set(mine["record"]) and all(isinstance(v, float | int) for v in values.values())


def test_gate_report_and_html_quote_trusted_records_only_to_readers(team: dict) -> None:
    full = team["bob"].review_show(team["item"])
    trusted_id = full["neighbours"][0]["record_id"]
    for who in ("scraper", "crawler"):
        evidence = team[who].gate_report(team["ref"])["extras"]["evidence"]
        assert evidence and all("neighbours" not in ev for ev in evidence.values())
    report = team["bob"].gate_report(team["ref"])
    assert any(ev["neighbours"] for ev in report["extras"]["evidence"].values())
    assert trusted_id[:16] in render_html(report, title="for a reader")
    html = Path(team["html"]).read_text("utf-8")  # written for the scraper when it submitted
    assert "nearest baseline label" not in html and trusted_id[:12] not in html


def test_reading_versions_is_refused_to_contributors_on_every_path(team: dict, tmp_path: Path) -> None:
    # The clean validation set is read under its dataset's rights: the same refusal.
    for attempt in (
        lambda: team["crawler"].dataset("ds-val").version().to_pandas(),
        lambda: team["crawler"].export("ds-val@latest", tmp_path / "v.parquet"),
        lambda: team["scraper"].read_version("ds-val"),
    ):
        with pytest.raises(AccessDenied, match=r"dataset\.export"):
            attempt()
    assert len(team["bob"].dataset("ds-val").version().to_pandas()) == 78
