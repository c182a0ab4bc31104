"""A version merged before the backup that holds a listed-quarantined contribution's records (sent first
to another dataset, by the same side) stays refused for training after the restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.provenance.restore_drill import REASON, SOURCE, quarantined_after_the_backup


def test_a_copy_merged_before_the_backup_stays_refused_after_the_restore(wine_ward: Ward, tmp_path: Path) -> None:
    """The same side sends the same 30 records to ``mirror`` (merged, in training), then, after the
    backup, to ``wine`` (wine#3), which is quarantined. ``mirror@training`` is refused: the quarantine
    holds the records out of every version and the copy, from the same side, does not vouch for them.
    The catalog is restored from before wine#3; the list still holds wine#3, its dataset and the id list
    of what it added, so mirror stays refused (a copy in another dataset cannot be told independent)."""
    label, specs = wine_schema_specs()
    wine_ward.create_dataset("mirror", Schema.parse(label, specs))
    wine_ward.set_policy("mirror", NO_APPROVALS_POLICY)
    first = wine_ward.contribute("mirror", write_csv(tmp_path / "copy.csv", wine_rows(100, 130)), source=SOURCE)
    merge_reviewed(wine_ward, first["id"])
    wine_ward.promote("mirror@v1")

    def quarantine(admin: Ward) -> None:
        admin.quarantine_contribution("wine#3", reason=REASON)
        with pytest.raises(PolicyViolation, match="quarantined contribution wine#3"):
            admin.read_version("mirror", "training")  # control: refused before the restore

    folder = quarantined_after_the_backup(wine_ward, tmp_path, wine_rows(100, 130), quarantine=quarantine)
    with pytest.raises(PolicyViolation, match="must never reach training"):
        Ward.open(folder).read_version("mirror", "training")
