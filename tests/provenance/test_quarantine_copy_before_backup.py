"""A version merged before the backup that holds a listed-quarantined contribution's records (sent
first to another dataset, by the same side) is served for training again after the restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests import helpers
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.security.test_restore_removals import back_up, move_checkpoints_aside, restore

REASON = "the batch was poisoned"


def test_a_copy_merged_before_the_backup_stays_refused_after_the_restore(wine_ward: Ward, tmp_path: Path) -> None:
    """The same side sends the same 30 records to ``mirror`` (merged, in training), then, after the
    backup, to ``wine`` (wine#3), which is quarantined. ``mirror@training`` is refused: the quarantine
    holds the records out of every version and the copy, from the same side, does not vouch for them.
    The catalog is restored from before wine#3: the list still holds wine#3 and the id list of what it
    added, but the training read seeds only from catalog rows, so mirror serves the 30 records again."""
    label, specs = wine_schema_specs()
    wine_ward.create_dataset("mirror", Schema.parse(label, specs))
    wine_ward.set_policy("mirror", NO_APPROVALS_POLICY)
    poison = write_csv(tmp_path / "poison.csv", wine_rows(100, 130))
    first = wine_ward.contribute("mirror", poison, source="https://scrape.example/wine-c")
    merge_reviewed(wine_ward, first["id"])
    wine_ward.promote("mirror@v1")
    folder = wine_ward.folder
    wine_ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    admin.contribute("wine", poison, source="https://scrape.example/wine-c")
    merge_reviewed(admin, "wine#3")
    admin.quarantine_contribution("wine#3", reason=REASON)
    with pytest.raises(PolicyViolation, match="quarantined contribution wine#3"):
        admin.read_version("mirror", "training")  # control: refused before the restore
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")

    helpers._REVIEWERS.pop(str(folder), None)
    ward = Ward.open(folder)
    with pytest.raises(PolicyViolation, match="must never reach training"):
        ward.read_version("mirror", "training")
