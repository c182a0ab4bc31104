"""A quarantine of a contribution that a restored catalog never held still holds its records back."""

from __future__ import annotations

from pathlib import Path

from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.provenance.restore_drill import SOURCE, quarantined_after_the_backup


def test_a_backup_from_before_the_contribution_does_not_serve_its_quarantined_records(
    wine_ward: Ward, tmp_path: Path
) -> None:
    """Back up the catalog, then a poisoned batch arrives (wine#3), is merged and quarantined. Restore the
    backup: the catalog never held wine#3. The list holds wine#3 quarantined with the id list of what it
    added: the same records contributed again are held back, the training version serves none of them,
    and verify says in a warning that nothing can be recorded again."""
    ward = Ward.open(quarantined_after_the_backup(wine_ward, tmp_path, wine_rows(100, 130)))
    poison = write_csv(tmp_path / "again.csv", wine_rows(100, 130))
    again = ward.contribute("wine", poison, source=SOURCE)
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
    rows = wine_rows(0, 10) + wine_rows(100, 130)
    ward = Ward.open(quarantined_after_the_backup(wine_ward, tmp_path, rows))
    _, served = ward.read_version("wine", "training")
    assert len(served) == 80
