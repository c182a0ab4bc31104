"""A quarantine listed before the list kept the id lists (a format-3 line with no ``held``): after a
restore from before the contribution, its records are not held back, and verify passes saying the list
keeps them taken away."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dataward.access import removals
from dataward.service import removal_list
from dataward.service.ward import Ward
from tests import helpers
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.security.test_restore_removals import back_up, move_checkpoints_aside, restore

REASON = "the batch was poisoned"


def _as_before_the_fix(type, time, subject, payload):  # type: ignore[no-untyped-def]
    """``removed_by`` as a ward before c21a17d wrote its lines: format 3, contributions, no ``held``."""
    found = removals.removed_by(type, time, subject, payload)
    return dataclasses.replace(found, held=()) if found is not None else None


def test_an_old_listed_quarantine_is_not_reported_as_holding_records_it_cannot_hold(
    wine_ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = wine_ward.folder
    wine_ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    poison = write_csv(tmp_path / "poison.csv", wine_rows(100, 130))
    admin.contribute("wine", poison, source="https://scrape.example/wine-c")
    merge_reviewed(admin, "wine#3")
    with monkeypatch.context() as m:
        m.setattr(removal_list, "removed_by", _as_before_the_fix)
        admin.quarantine_contribution("wine#3", reason=REASON)
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")

    helpers._REVIEWERS.pop(str(folder), None)
    ward = Ward.open(folder)
    again = ward.contribute("wine", poison, source="https://scrape.example/wine-c")
    report = ward.verify()
    # Either the records are held back (as for a new line), or verify must not pass saying that the
    # list keeps the quarantine taken away: nothing holds the 30 records out of training.
    assert again["held_back"] == 30 or not report.ok, report.warnings
