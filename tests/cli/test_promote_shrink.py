"""Promoting a version that would take most of the training data away is refused unless it is meant.

The trial: `quarantine dw_KEY` of a bot that had sent every contribution of `digits` made the rollback
version `digits@v4` with 0 records; `promote digits@v4` put it in training without a word, and `export
digits@training` gave 0 rows. A version with no record, or one leaving out most of the training version's
records, is now refused (`policy_violation`, recorded as every refusal is) unless `--accept-shrink` with a
reason says it is meant; the promotion event then records what was accepted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_ward, write_csv


@pytest.fixture
def ward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    """``wine@v1`` (20 records from source a), then ``wine@v2`` (+60 from source b) in training."""
    from dataward.cli import output

    opened = wine_ward(tmp_path / "ward", NO_APPROVALS_POLICY)
    for source, rows in (("a", wine_rows(0, 20)), ("b", wine_rows(20, 80))):
        sent = opened.contribute("wine", write_csv(tmp_path / f"{source}.csv", rows), source=source)
        opened.promote(merge_reviewed(opened, sent["ref"])["ref"])
    monkeypatch.setenv("DATAWARD_WARD", str(opened.folder))
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    monkeypatch.setattr(output.console, "_width", 250)
    monkeypatch.setattr(output.err_console, "_width", 250)
    return opened


def _promote(*args: str) -> tuple[int, dict]:
    shown = CliRunner().invoke(app, ["promote", *args, "--json"])
    return shown.exit_code, json.loads(shown.stdout)


def _training(ward: Ward) -> str:
    return next(v["ref"] for v in ward.versions("wine") if v["stage"] == "training")


def test_a_rollback_leaving_out_most_of_training_needs_to_be_meant(ward: Ward) -> None:
    ward.quarantine_contribution("wine#2", reason="source b was poisoned")  # wine@v3: the 20 records of a
    code, refused = _promote("wine@v3")
    assert (code, refused["error"]) == (6, "policy_violation")
    assert refused["message"] == (
        "refusing to promote wine@v3: wine@v3 leaves out 60 of the 80 records of wine@v2 (75%), the training "
        "version it would retire; it holds 20"
    )
    assert "--accept-shrink --reason" in refused["hint"]
    assert refused["details"] == {"records": 20, "training": "wine@v2", "training_records": 80, "kept": 20}
    assert _training(ward) == "wine@v2"
    # Recorded as every refusal is.
    denied = ward.ledger(limit=1)[0]
    assert denied["type"] == "access.denied" and "wine@v3 leaves out 60 of the 80" in denied["payload"]["reason"]

    code, unsaid = _promote("wine@v3", "--accept-shrink")
    assert (code, unsaid["error"]) == (2, "bad_input") and "needs a reason" in unsaid["message"]
    code, done = _promote("wine@v3", "--accept-shrink", "--reason", "source b is out, on purpose")
    assert code == 0 and done["stage"] == "training"
    assert done["accepted_shrink"] == {"records": 20, "training": "wine@v2", "training_records": 80, "kept": 20}
    promoted = ward.ledger(limit=1, types=["version.promoted"])[0]
    assert promoted["payload"]["accepted_shrink"] == done["accepted_shrink"]


def test_an_empty_version_is_never_promoted_by_mistake(ward: Ward) -> None:
    ward.quarantine_by("source:a", reason="both sources were one scraper")
    ward.quarantine_by("source:b", reason="both sources were one scraper")
    empty = ward.versions("wine")[-1]
    assert empty["records"] == 0
    code, refused = _promote(empty["ref"])
    assert code == 6 and refused["message"] == (
        f"refusing to promote {empty['ref']}: {empty['ref']} holds no record: training would read an empty "
        "dataset in place of the 80 records of wine@v2"
    )
    assert _training(ward) == "wine@v2"
    shown = CliRunner().invoke(app, ["promote", empty["ref"], "--accept-shrink", "--reason", "nothing is left"])
    assert shown.exit_code == 0, shown.output
    assert "note: training now reads 0 records (of the 80 records of wine@v2, it keeps 0)" in " ".join(
        shown.stdout.split()
    )


def test_a_version_keeping_most_of_training_is_promoted_as_before(ward: Ward, tmp_path: Path) -> None:
    removes = [r for r in ward.read_version("wine", "v2")[1].column("record_id").to_pylist()][:30]
    less = ward.contribute("wine", write_csv(tmp_path / "c.csv", wine_rows(80, 90)), source="c", removes=removes)
    merge_reviewed(ward, less["ref"])  # wine@v3: 60 records, 50 of wine@v2's
    code, done = _promote("wine@v3")
    assert code == 0 and done["stage"] == "training" and "accepted_shrink" not in done
