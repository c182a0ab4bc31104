"""A quarantine of a contribution that a restored catalog never held still holds its records back."""

from __future__ import annotations

from pathlib import Path

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
    assert again["held_back"] == 30
    assert again["held_back_by"] == [{"why": "quarantined", "contribution": None, "same_dataset": False, "records": 30}]
    info = merge_reviewed(ward, again["id"])
    assert info["records"] == 80 and info["held_back_of_contribution"] == 30
    ward.promote(f"wine@v{info['number']}")
    _, served = ward.read_version("wine", "training")
    assert len(served) == 80  # wine@v2's 80 records: none of the 30 held back
    # verify passes: nothing can be recorded again, and it says the list keeps the records held back.
    report = ward.verify()
    assert report.ok, report.problems
    assert any("nothing to record again" in w and "list keeps it taken away" in w for w in report.warnings)


def test_trusted_records_the_quarantined_batch_repeated_stay_in_training(wine_ward: Ward, tmp_path: Path) -> None:
    """The poisoned batch (sent after the backup) repeated ten records wine#1 had brought in long before.
    After the restore the list bars the batch's own records, not those ten: wine#1, of the same dataset
    and older than the batch, vouches for them, so the training version is still served."""
    folder = wine_ward.folder
    wine_ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.contribute(
        "wine", write_csv(tmp_path / "mixed.csv", wine_rows(0, 10) + wine_rows(100, 130)), source="https://x.example/c"
    )
    merge_reviewed(admin, "wine#3")
    admin.quarantine_contribution("wine#3", reason=REASON)
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    ward = Ward.open(folder)
    _, served = ward.read_version("wine", "training")
    assert len(served) == 80
