"""Red-team findings on the quarantine kept on the ward's list of removals (redteam45)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests import helpers
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.security.test_restore_removals import back_up, move_checkpoints_aside, restore

REASON = "the batch was poisoned"


def test_a_backup_from_before_the_contribution_does_not_serve_its_quarantined_records(
    wine_ward: Ward, tmp_path: Path
) -> None:
    """Back up the catalog, then a poisoned batch arrives (wine#3), is merged and quarantined. Restore the
    backup: the catalog never held wine#3. The list still holds wine#3 quarantined, but only by its id: the
    same records contributed again are not held back, reach training, and verify passes with a warning
    that says "the list keeps it taken away"."""
    folder = wine_ward.folder
    wine_ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    poison = write_csv(tmp_path / "poison.csv", wine_rows(100, 130))
    admin.contribute("wine", poison, source="https://scrape.example/wine-c")
    merge_reviewed(admin, "wine#3")
    admin.quarantine_contribution("wine#3", reason=REASON)
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")

    helpers._REVIEWERS.pop(str(folder), None)  # its reviewer was made after the backup
    ward = Ward.open(folder)
    again = ward.contribute("wine", poison, source="https://scrape.example/wine-c")
    # The quarantine holds its records out of every version: the same records must be held back.
    held_back = again["held_back"]
    info = merge_reviewed(ward, again["id"])
    ward.promote(f"wine@v{info['number']}")
    served = None
    with contextlib.suppress(PolicyViolation):
        _, served = ward.read_version("wine", "training")
    report = ward.verify()
    # What a defender needs: the records held back and the training read refused, or at least verify failing.
    assert (held_back, served is None, report.ok) == (30, True, False), (
        held_back,
        None if served is None else len(served),
        report.ok,
        report.warnings,
    )
