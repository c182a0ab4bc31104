"""``quarantine`` by cause: everything a leaked key (and the keys minted through it), a principal or a
source touched, across datasets, with one rollback version per affected dataset; all or nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dataward.domain.errors import AccessDenied, IntegrityViolation, NotFound
from dataward.domain.schema import RECORD_ID, Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


def test_a_leaked_key_is_contained_with_one_rollback_per_dataset(wine_ward: Ward, tmp_path: Path) -> None:
    ward = wine_ward
    bot_key = ward.contribution("wine#1")["key"]
    scraper = ward.as_key(ward.issue_key("scraper")["key"])  # a second key, not minted from the first
    scraper.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 100)), source="https://scrape.example/c")
    merge_reviewed(ward, "wine#3")
    _, before = ward.read_version("wine", "latest")
    result = ward.quarantine_by(bot_key, reason="key leaked in a public repository")
    (wine,) = result["datasets"]
    assert wine["quarantined"] == ["wine#1"] and wine["rollback_version"]["ref"] == "wine@v4"
    assert [v["ref"] for v in wine["affected_versions"]] == ["wine@v1", "wine@v2", "wine@v3"]
    _, after = ward.read_version("wine", "v4")
    assert after.num_rows == before.num_rows - 60
    # The other key's contribution stays; the rollback is a candidate for promotion.
    assert ward.contribution("wine#3")["status"] == "merged"
    assert ward.contribution("wine#1")["status"] == "quarantined"
    again = ward.quarantine_by(bot_key, reason="again")
    assert (
        again["datasets"][0]["already_quarantined"] == ["wine#1"] and again["datasets"][0]["rollback_version"] is None
    )
    assert ward.verify().ok


def test_a_principal_across_two_datasets_gets_one_rollback_each(wine_ward: Ward, tmp_path: Path) -> None:
    ward = wine_ward
    label, specs = wine_schema_specs()
    ward.create_dataset("wine2", Schema.parse(label, specs))
    ward.set_policy("wine2", NO_APPROVALS_POLICY)
    ward.grant("scraper", "contributor", "dataset:wine2")
    scraper = ward.as_key(ward.issue_key("scraper")["key"])
    scraper.contribute("wine2", write_csv(tmp_path / "d.csv", wine_rows(0, 30)), source="https://scrape.example/d")
    merge_reviewed(ward, "wine2#1")
    scraper.contribute("wine2", write_csv(tmp_path / "e.csv", wine_rows(30, 50)), source="https://scrape.example/e")
    merge_reviewed(ward, "wine2#2")
    result = ward.quarantine_by("principal:scraper", reason="bot compromised")
    by_name = {d["dataset"]: d for d in result["datasets"]}
    assert by_name["wine2"]["quarantined"] == ["wine2#1", "wine2#2"]
    assert by_name["wine2"]["rollback_version"]["records"] == 0
    assert by_name["wine"]["rollback_version"]["ref"] == "wine@v3"
    assert [v["number"] for v in ward.versions("wine2")] == [1, 2, 3]
    assert ward.verify().ok


def test_by_source_and_refusals(wine_ward: Ward) -> None:
    ward = wine_ward
    with pytest.raises(NotFound):
        ward.quarantine_by("source:https://nowhere.example", reason="x")
    ward.create_principal("carol")
    ward.grant("carol", "owner", "dataset:wine")
    carol = ward.as_key(ward.issue_key("carol")["key"])
    result = carol.quarantine_by("source:s3://vendor/wine-b.csv", reason="vendor recalled the file")
    (wine,) = result["datasets"]
    assert wine["quarantined"] == ["wine#2"] and wine["rollback_version"]["records_removed"] == 20
    ward.create_principal("dave")
    dave = ward.as_key(ward.issue_key("dave")["key"])
    head = ward.ledger_head()["seq"]
    with pytest.raises(AccessDenied):
        dave.quarantine_by("principal:scraper", reason="x")
    assert ward.ledger(limit=1)[0]["type"] == "access.denied" and ward.ledger_head()["seq"] == head + 1
    _, v = ward.read_version("wine", "v3")
    assert RECORD_ID in v.column_names


@pytest.mark.parametrize("cause", ["key", "principal", "source"])
def test_a_contribution_hidden_from_its_cause_in_the_catalog_is_not_left_behind(
    wine_ward: Ward, tmp_path: Path, cause: str
) -> None:
    """A leaked key submitted wine#3 (merged) and wine#4 (waiting); whoever holds it and the catalog edits
    wine#4's row to name another key, submitter and source. Quarantining the cause would take wine#3 out
    and leave wine#4 to be merged later: the containment refuses instead of missing it."""
    ward = wine_ward
    leaked = ward.issue_key("scraper")["key"]
    bot = ward.as_key(leaked)
    uri = "https://scrape.example/leak"
    bot.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 100)), source=uri)
    merge_reviewed(ward, "wine#3")
    fourth = bot.contribute("wine", write_csv(tmp_path / "d.csv", wine_rows(100, 120)), source=uri)
    other = "(SELECT {0} FROM contributions WHERE number = 2)"
    db = sqlite3.connect(ward.folder / "catalog.sqlite", isolation_level=None)
    db.execute(
        f"UPDATE contributions SET key_id = {other.format('key_id')}, submitted_by = {other.format('submitted_by')}, "
        f"submitter_owner = NULL, source_id = {other.format('source_id')} WHERE id = ?",
        (fourth["id"],),
    )
    db.close()
    ref = {"key": leaked.rsplit("_", 1)[0], "principal": "principal:scraper", "source": f"source:{uri}"}[cause]
    with pytest.raises(IntegrityViolation, match="signed ledger"):
        ward.quarantine_by(ref, reason="key leaked")
    assert not ward.ledger(types=["contribution.quarantined"])


def test_resubmitted_quarantined_records_are_said_to_be_held_back(
    wine_ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dataward.cli.app import app

    ward = wine_ward
    ward.quarantine_by("source:https://scrape.example/wine-a", reason="poisoned scrape")
    fresh = ward.contribute("wine", write_csv(tmp_path / "fresh.csv", wine_rows(100, 110)), source="s3://vendor/c")
    assert fresh["held_back"] == 0
    monkeypatch.setenv("DATAWARD_WARD", str(ward.folder))
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    runner = CliRunner()
    # The same records again, from another source: ids are content hashes, so they stay held back.
    again = write_csv(tmp_path / "again.csv", wine_rows(0, 60))
    submitted = runner.invoke(app, ["contribute", "wine", str(again), "--source", "https://mirror.example"])
    assert "60 of its records are held back" in " ".join(submitted.stdout.split()), submitted.stdout
    ref = ward.contributions("wine")[-1]["ref"]
    assert ward.contribution(ref)["added"] == 60
    # With wine#1 held out, no trusted record is of class 0: its 59 records here are flagged
    # (``gates.new_labels``), but the quarantine holds every one of them back already, so none waits for a
    # reviewer (a trial's reviewer worked through these 59 before a merge that could add nothing): each
    # is closed without review, naming the quarantine.
    assert ward.review_list(contribution=ref) == []
    closed = ward.review_list(contribution=ref, status="rejected")
    assert len(closed) == 59
    assert all("held back: the record is in quarantined contribution wine#" in i["decision_reason"] for i in closed)
    merged = runner.invoke(app, ["merge", ref, "--json"])
    assert merged.exit_code == 0, merged.stdout
    assert json.loads(merged.stdout)["held_back_of_contribution"] == 60


def test_an_admin_is_answered_precisely_before_any_dataset_exists(tmp_path: Path) -> None:
    """The quarantine right on the ward is a right somewhere even while the ward holds no dataset: the
    admin is told what is missing, not refused."""
    opened, key = Ward.init(tmp_path / "bare")
    opened.db.dispose()
    admin = Ward.open(tmp_path / "bare", key=key)
    with pytest.raises(NotFound, match="no principal 'nosuch'"):
        admin.quarantine_by("principal:nosuch", reason="x")
    admin.create_principal("ivan")
    ivan = admin.as_key(admin.issue_key("ivan")["key"])
    with pytest.raises(AccessDenied, match="'ivan' may not quarantine on any dataset"):
        ivan.quarantine_by("principal:nosuch", reason="x")
