"""What a contributor and a merger are told about records a quarantine holds back.

The trial: the clean rows of a quarantined batch, submitted again, read "285 of its records are held back
(...): a merge leaves them out", with no word on whether or how they could come back; merged anyway, they
made a version holding exactly the records of the one before, with no warning. And a merge of an unrelated
contribution said "60 held back in the dataset, none of them from wine#3", as if the dataset had lost
records it never held in that version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv


@pytest.fixture
def cli(wine_ward: Ward, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DATAWARD_WARD", str(wine_ward.folder))
    from dataward.cli import output

    monkeypatch.setattr(output.console, "_width", 250)  # whatever width an earlier test of the process set
    monkeypatch.setattr(output.err_console, "_width", 250)
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    return CliRunner()


def _accept_flagged(ward: Ward, ref: str) -> None:
    """A reviewer accepts whatever the gate flagged in ``ref`` (nobody reviews their own contribution)."""
    pending = [item["id"] for item in ward.review_list(contribution=ref)]
    if pending:
        ward.create_principal("rita")
        ward.grant("rita", "reviewer", "dataset:wine")
        ward.as_key(ward.issue_key("rita")["key"]).review_decide(pending, "accept", reason="looked at them")


def test_resubmitted_quarantined_records_say_they_never_come_back_and_the_merge_warns(
    wine_ward: Ward, cli: CliRunner, tmp_path: Path
) -> None:
    ward = wine_ward
    ward.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")  # rollback wine@v3
    # The batch's rows again, from another source: every one is a record of wine#1.
    batch = write_csv(tmp_path / "again.csv", wine_rows(0, 60))
    sent = cli.invoke(app, ["contribute", "wine", str(batch), "--source", "https://vendor.example/clean.csv"])
    text = " ".join(sent.stdout.split())
    assert "60 of its records are held back (60 in quarantined contribution wine#1)" in text, text
    # Why, and what can be done: nothing brings them back; withdraw what cannot add anything.
    assert "a quarantine is never lifted: no contribution sent after it brings its records back" in text
    assert "an independent contribution (another side and another source) vouches only for a copy it merged" in text
    assert "nothing of it can reach a version" in text and "dataward withdraw wine#3" in text

    _accept_flagged(ward, "wine#3")  # reviewed, approved: a merge is allowed
    before = ward.versions("wine")[-1]
    merged = cli.invoke(app, ["merge", "wine#3", "--json"])
    assert merged.exit_code == 0, merged.output
    info = json.loads(merged.stdout)
    assert info["records"] == before["records"] and info["same_records_as"] == before["ref"]
    assert info["warning"].startswith(
        f"wine#3 added nothing: every one of the 60 records it adds is held back (60 added by a quarantined "
        f"contribution) and it removes none, so {info['ref']} holds the same records as {before['ref']}."
    )
    assert "warning: wine#3 added nothing" in " ".join(merged.stderr.split())


def test_a_merge_of_records_already_in_the_version_notes_it(wine_ward: Ward, cli: CliRunner, tmp_path: Path) -> None:
    """Allowed (one more contribution holds them), not warned about, but said: it is not new data."""
    ward = wine_ward
    again = ward.contribute("wine", write_csv(tmp_path / "again.csv", wine_rows(0, 60)), source="mirror")
    assert again["held_back"] == 0
    shown = cli.invoke(app, ["merge", again["ref"]])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "note: wine@v3 holds the same 80 records as wine@v2: every record wine#3 adds was in it already" in text
    assert "warning" not in shown.output


def test_a_merge_line_says_whose_records_stay_held_back(wine_ward: Ward, cli: CliRunner, tmp_path: Path) -> None:
    ward = wine_ward
    ward.quarantine_contribution("wine#1", reason="poisoned")
    clean = ward.contribute("wine", write_csv(tmp_path / "clean.csv", wine_rows(100, 110)), source="s")
    shown = cli.invoke(app, ["merge", clean["ref"]])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "held back in the dataset" not in text
    assert (
        "(30 records; besides, 60 records of other contributions to wine stay held back (quarantined, rejected "
        "in review or awaiting it))" in text
    ), text
