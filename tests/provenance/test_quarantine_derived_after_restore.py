"""Records a transformation made from a quarantined contribution's records stay barred after a restore.

The attacker's aim: the poisoned batch is quarantined, but records a step made from it (an augmentation
into another dataset: new ids, added by the step, not by the batch) reach training once the catalog is
put back from a backup that predates the quarantine. While the catalog holds the quarantine they are
barred by their lineage (``guard._made_from_quarantined``); after the restore the ward's list of
removals still names the batch and the id list of what it added, and the lineage of the steps the
restored catalog holds is followed from there, whichever order the attacker chose:

* batch, step, backup, quarantine: the restored catalog holds both (the batch's row says merged);
* batch, backup, step made again after the restore: the catalog holds the batch;
* copy of the batch's records and a step made from the copy, backup, then the batch (same records, same
  side) and its quarantine: the restored catalog never held the batch, only the step;
* copy, backup, batch and quarantine, then the step made after the restore: the catalog held neither.

A step the restored catalog never held (taken after the backup and not made again) left no derived
record in it: its output contribution and versions are gone with the catalog (docs/operations.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dataward
from dataward.domain.errors import PolicyViolation
from dataward.domain.schema import RECORD_ID, Schema
from dataward.service.ward import Ward
from tests.helpers import (
    EMPTY_SAFETENSORS,
    NO_APPROVALS_POLICY,
    merge_reviewed,
    wine_rows,
    wine_schema_specs,
    write_csv,
)
from tests.provenance.restore_drill import REASON, SOURCE, quarantined_after_the_backup
from tests.security.test_restore_removals import back_up, move_checkpoints_aside, restore

POISON = (100, 130)
BARRED = "made by a transformation from a quarantined contribution's records"


def _dataset(ward: Ward, name: str) -> None:
    label, specs = wine_schema_specs()
    ward.create_dataset(name, Schema.parse(label, specs))
    ward.set_policy(name, NO_APPROVALS_POLICY)


def _ids(ward: Ward, ref: str) -> set[str]:
    name, version = ref.split("@")
    return set(ward.read_version(name, version)[1].column(RECORD_ID).to_pylist())


def _augment(ward: Ward, source: str, *, promote: bool = True) -> str:
    """Augment the poisoned records of ``source`` (those not in ``wine@v2``) into ``wine_aug`` (new ids,
    each made from one of them) and merge the result (and promote it); returns its version ref."""
    trusted = _ids(ward, "wine@v2")
    with ward.transform("augment", inputs=source, output="wine_aug", params={"alcohol": 0.01}) as t:
        rows = [r for r in t.read().to_pylist() if r[RECORD_ID] not in trusted]
        t.write([{**r, "alcohol": r["alcohol"] + 0.01} for r in rows], parents=[r[RECORD_ID] for r in rows])
    assert t.result is not None and len(rows) == POISON[1] - POISON[0]
    ref = f"wine_aug@v{merge_reviewed(ward, t.result['ref'])['number']}"
    if promote:
        ward.promote(ref)
    return ref


def _train(ward: Ward, ref: str, tmp_path: Path) -> None:
    ward.grant("admin", "contributor", "model:aug-clf")
    artifact = tmp_path / "weights.safetensors"
    artifact.write_bytes(EMPTY_SAFETENSORS)
    with dataward.training_run(ref, model="aug-clf", ward=ward) as run:
        run.load(stage=None)
        run.log_artifact(artifact)


def _copy_in_mirror(ward: Ward, tmp_path: Path) -> None:
    """The side that later sends the batch to wine sends the same records to ``mirror`` first."""
    _dataset(ward, "mirror")
    first = ward.contribute("mirror", write_csv(tmp_path / "copy.csv", wine_rows(*POISON)), source=SOURCE)
    merge_reviewed(ward, first["id"])


def _still_barred(folder: Path, ref: str, *, trained: bool = True) -> None:
    """What the attacker wanted served after the restore is not: the derived version is not loaded for
    training, and neither served as the training version nor promoted to it; the model trained on it
    (``trained``) is affected."""
    ward = Ward.open(folder)
    name, version = ref.split("@")
    with pytest.raises(PolicyViolation, match=BARRED):
        ward.load_version(name, version, stage=None)
    if trained:
        with pytest.raises(PolicyViolation, match=BARRED):
            ward.read_version(name, "training")
        assert any(BARRED in why for why in ward.model("aug-clf@v1")["affected"])
    else:
        with pytest.raises(PolicyViolation, match=BARRED):
            ward.promote(ref)


def _barred_before_the_restore(admin: Ward, ref: str) -> None:
    admin.quarantine_contribution("wine#3", reason=REASON)
    with pytest.raises(PolicyViolation, match=BARRED):  # control: what the catalog path does
        admin.load_version(*ref.split("@"), stage=None)


def test_batch_then_step_then_backup(wine_ward: Ward, tmp_path: Path) -> None:
    """The restored catalog holds the batch (merged) and the step: the list's quarantine follows it."""
    ward = wine_ward
    _dataset(ward, "wine_aug")
    ward.contribute("wine", write_csv(tmp_path / "poison.csv", wine_rows(*POISON)), source=SOURCE)
    merge_reviewed(ward, "wine#3")
    ref = _augment(ward, "wine@v3")
    _train(ward, ref, tmp_path)
    folder = ward.folder
    ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    _barred_before_the_restore(admin, ref)
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    _still_barred(folder, ref)


def test_batch_then_backup_then_the_step_made_again(wine_ward: Ward, tmp_path: Path) -> None:
    """The step was made after the backup, so the restore lost it; the attacker makes it again."""
    ward = wine_ward
    _dataset(ward, "wine_aug")
    ward.contribute("wine", write_csv(tmp_path / "poison.csv", wine_rows(*POISON)), source=SOURCE)
    merge_reviewed(ward, "wine#3")
    folder = ward.folder
    ward.close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    _barred_before_the_restore(admin, _augment(admin, "wine@v3", promote=False))
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    _still_barred(folder, _augment(Ward.open(folder), "wine@v3", promote=False), trained=False)


def test_copy_and_step_before_the_backup_then_the_batch(wine_ward: Ward, tmp_path: Path) -> None:
    """The restored catalog never held the batch, but holds the step made from the copy of its records."""
    ward = wine_ward
    _dataset(ward, "wine_aug")
    _copy_in_mirror(ward, tmp_path)
    ref = _augment(ward, "mirror@v1")
    _train(ward, ref, tmp_path)
    folder = quarantined_after_the_backup(
        ward, tmp_path, wine_rows(*POISON), quarantine=lambda admin: _barred_before_the_restore(admin, ref)
    )
    _still_barred(folder, ref)


def test_copy_before_the_backup_and_the_step_made_after_the_restore(wine_ward: Ward, tmp_path: Path) -> None:
    """The restored catalog held neither the batch nor the step: the step is made from the copy after it."""
    ward = wine_ward
    _dataset(ward, "wine_aug")
    _copy_in_mirror(ward, tmp_path)
    folder = quarantined_after_the_backup(ward, tmp_path, wine_rows(*POISON))
    _still_barred(folder, _augment(Ward.open(folder), "mirror@v1", promote=False), trained=False)
