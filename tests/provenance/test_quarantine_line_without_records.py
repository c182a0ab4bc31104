"""A listed quarantine whose line names no id list of the records it added (a format-3 line without
``held``): after a restore from before the contribution, the ward cannot hold those records back, and
verify must say so rather than pass saying the list keeps the quarantine in force."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dataward.access import removals
from dataward.service import removal_list
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.provenance.restore_drill import REASON, SOURCE, quarantined_after_the_backup


def _without_the_id_list(type, time, subject, payload):  # type: ignore[no-untyped-def]
    """``removed_by`` as a line that names no id list: contributions only, no ``held`` (nor ``held_in``)."""
    found = removals.removed_by(type, time, subject, payload)
    return dataclasses.replace(found, held=(), held_in=()) if found is not None else None


def test_a_listed_quarantine_without_its_id_list_is_reported_not_taken_as_held(
    wine_ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def quarantine(admin: Ward) -> None:
        with monkeypatch.context() as patched:
            patched.setattr(removal_list, "removed_by", _without_the_id_list)
            admin.quarantine_contribution("wine#3", reason=REASON)

    folder = quarantined_after_the_backup(wine_ward, tmp_path, wine_rows(100, 130), quarantine=quarantine)
    ward = Ward.open(folder)
    again = ward.contribute("wine", write_csv(tmp_path / "again.csv", wine_rows(100, 130)), source=SOURCE)
    # Nothing names the records, so nothing holds them back; verify says so.
    assert again["held_back"] == 0
    problems = ward.verify().problems
    assert [p.kind for p in problems] == ["unheld_quarantine"], problems
    assert "the list names no id list of its records" in problems[0].detail
