"""A model trained on data quarantined after the backup is marked affected and not released after the restore."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.models.conftest import Models
from tests.security.test_restore_removals import back_up, move_checkpoints_aside, restore

REASON = "the debian mirror was compromised"


def test_a_model_trained_on_data_quarantined_after_the_backup_is_not_released(models: Models, tmp_path: Path) -> None:
    """man-clf@v1 was trained on man@v1 (man#1's records), gated and approved. man#1 is quarantined, then
    the catalog restored from before that. The list holds the quarantine and the loader and promotions
    refuse man@v1, but the release reads "affected" from the catalog alone (``models.affected_by``)."""
    models.as_("rita").model_gate("man-clf@v1")
    models.as_("ann").approve_model("man-clf@v1", reason="gate passed, metrics checked")
    folder = models.ward.folder
    models.ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.quarantine_contribution("man#1", reason=REASON)
    with pytest.raises(PolicyViolation, match="must never reach training"):
        admin.as_key(models.keys["pat"]).release_model("man-clf@v1", reason="release")  # before the restore
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")

    ward = Ward.open(folder)
    with pytest.raises(PolicyViolation, match="quarantined contribution man#1"):
        ward.read_version("man", "training")  # the list holds the quarantine: the data read is refused
    affected = ward.model("man-clf@v1")["affected"]
    with pytest.raises(PolicyViolation, match="must never reach training"):
        ward.as_key(models.keys["pat"]).release_model("man-clf@v1", reason="release after the restore")
    assert affected, "the model trained on quarantined data is not shown affected"


def test_a_quarantine_undone_in_the_catalog_does_not_let_the_model_be_released(models: Models, tmp_path: Path) -> None:
    """A catalog writer (no ward key) sets the quarantined man#1 back to merged in the catalog and moves
    ``removals.jsonl`` aside for the length of the release: "affected" was read from the catalog as it
    stands (``guard.barred_records`` without the ledger), so the release of man-clf@v1, trained on man#1,
    was signed. The quarantine is the signed ledger's: the release refuses, the listing shows it affected."""
    models.as_("rita").model_gate("man-clf@v1")
    models.as_("ann").approve_model("man-clf@v1", reason="gate passed, metrics checked")
    models.ward.quarantine_contribution("man#1", reason=REASON)
    folder = models.ward.folder
    db = sqlite3.connect(folder / "catalog.sqlite", isolation_level=None)
    db.execute("UPDATE contributions SET status = 'merged' WHERE number = 1 AND status = 'quarantined'")
    db.close()
    (folder / "removals.jsonl").rename(tmp_path / "removals.jsonl")
    admin = Ward.open(folder)  # a new process: it never read the list moved aside
    pat = admin.as_key(models.keys["pat"])
    with pytest.raises(PolicyViolation, match=r"cannot be released: .*man@v1: cannot tell .*status is 'merged'"):
        pat.release_model("man-clf@v1", reason="ship it")
    assert not admin.ledger(types=["model.released"])
    (row,) = [m for m in admin.models("man-clf") if m["ref"] == "man-clf@v1"]
    assert row["affected"] and "status is 'merged'" in row["affected"][0]
