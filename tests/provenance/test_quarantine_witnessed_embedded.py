"""A quarantine the witness holds stays in force for embedded readers after the list was deleted.

Played as an insider who can write the ward folder plays it: the scraper's batch is quarantined, then
the catalog is put back from a backup taken before it, the newer kept checkpoints are moved aside and
``removals.jsonl`` is deleted too. Nothing left in the folder remembers the quarantine; the witness
(outside the folder, set before the backup, so the restored ledger names it) still holds its line. The
paths that feed training on the folder itself (``dataward.load`` / ``dataward.stream``, ``dataward train
load``, ``dataward export``) read the witness's copies as a server does, and keep the records out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dataward
from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.security.attacks import json_cli
from tests.security.test_restore_removals import LIST, back_up, move_checkpoints_aside, restore

REFUSED = r"quarantined contribution wine#1 \(by event #\d+ at [^)]*list of removals"


def _list_and_catalog_rolled_back(ward: Ward, tmp_path: Path) -> Path:
    """The witness set, then the attack: backup, quarantine wine#1, restore, checkpoints aside and the
    list deleted. Returns the ward's folder, closed."""
    folder = ward.folder
    ward.set_witness(str(tmp_path / "witness"))
    ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.quarantine_contribution("wine#1", reason="the scraper's batch was poisoned")
    admin.close()
    assert list((tmp_path / "witness").rglob("removals/*.jsonl"))
    # With the list in place, a new process finds nothing in the witness that the list lacks.
    assert Ward.open(folder).take_witnessed_removals() == 0
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    (folder / LIST).unlink()
    return folder


def test_the_loader_and_the_stream_hold_back_what_the_witness_holds(wine_ward: Ward, tmp_path: Path) -> None:
    folder = _list_and_catalog_rolled_back(wine_ward, tmp_path)
    assert Ward.open(folder).take_witnessed_removals() == 1  # what a server says on start
    with pytest.raises(PolicyViolation, match=REFUSED):
        dataward.load("wine@training", ward=Ward.open(folder))
    with pytest.raises(PolicyViolation, match=REFUSED):
        dataward.stream("wine@training", ward=Ward.open(folder))
    # The same records sent again are held back from a merge, as the list would have held them.
    again = Ward.open(folder).contribute(
        "wine", write_csv(tmp_path / "again.csv", wine_rows(0, 60)), source="s3://mirror/a.csv"
    )
    assert again["held_back"] == 60
    # Whatever the stage asked for: wine@v1 holds nothing but wine#1's records.
    with pytest.raises(PolicyViolation, match=REFUSED):
        dataward.load("wine@v1", stage=None, ward=Ward.open(folder))


def test_the_command_line_refuses_what_the_witness_holds(wine_ward: Ward, tmp_path: Path) -> None:
    folder = _list_and_catalog_rolled_back(wine_ward, tmp_path)
    code, answer = json_cli(folder, "export", "wine@training", "-o", str(tmp_path / "train.parquet"))
    assert code == 6 and answer["error"] == "policy_violation", answer
    assert "list of removals" in answer["message"] and "wine#1" in answer["message"]
    assert not (tmp_path / "train.parquet").exists()
    code, started = json_cli(folder, "train", "start", "wine-clf")
    assert code == 0, started
    code, answer = json_cli(folder, "train", "load", started["run"], "wine@training", "-o", str(tmp_path / "t.jsonl"))
    assert code == 6 and "wine#1" in answer["message"], answer
    assert not (tmp_path / "t.jsonl").exists()
    # The contribution's status says what the witness holds, with the event.
    code, listed = json_cli(folder, "contributions", "wine")
    assert code == 0
    first = next(c for c in listed if c["ref"] == "wine#1")
    assert first["status"] == "quarantined" and "catalog says merged" in first["quarantine_listed"]["note"]
