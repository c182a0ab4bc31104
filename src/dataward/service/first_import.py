"""What a gate trusts before a dataset has a ``training`` version: the first import.

Judged only against itself (self-reference), a heavily poisoned first batch passes: its calibration
folds are poisoned alike. So by default (policy ``first_import: validation``) the first batches are
judged against the dataset's clean validation set, which its owner curates: one stratified half
stands in as the trusted baseline, the other half stays held out for the clean-validation detector
(a set too small to halve is the baseline whole, and clean-validation impact is not measured). With
neither a training version nor a validation set the gate refuses to run, naming the fix; self-reference
mode is an explicit, recorded opt-in of the dataset policy (``first_import: self-reference``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, select

from dataward.access import FirstImport
from dataward.catalog.tables import datasets, versions
from dataward.domain.errors import PolicyViolation
from dataward.service import rows
from dataward.service.identity import dataset_policy

SPLIT_MIN = 100
"""A validation set at least this large is halved (baseline / held out); a smaller one is all baseline."""

FEW_TRUSTED = 1000
"""Below this many trusted records a first import's note says that a small backdoor can pass unseen: the
trigger and backdoor tests compare the batch with the trusted records, and a few hundred of them leave
those tests little power (a new user's first import of 220 lines, 20 of them backdoored, passed the
trigger test against 93 trusted lines and was blocked against 184)."""


def _power_note(ref: str) -> str:
    """What a first import judged against few trusted records cannot promise, and the command that
    measures it for the contribution ``ref`` (``DATASET#N``)."""
    dataset = ref.rsplit("#", 1)[0]
    return (
        f"; with so few trusted records a small backdoor can pass unseen: `dataward gate selftest {dataset} "
        f"--contribution {ref}` plants known poisons in a copy of this batch and reports the smallest the gate finds"
    )


def _has_records(conn: Connection, dataset_id: str | None) -> bool:
    if dataset_id is None:
        return False
    latest = rows.latest_version(conn, dataset_id)
    return latest is not None and latest.record_count > 0


def first_import_refusal(conn: Connection, ds: Any) -> PolicyViolation | None:
    """The error refusing to gate an addition to ``ds``, or None when the gate has something to trust:
    a training version, a clean validation set with records, or the policy's self-reference opt-in."""
    training = conn.execute(
        select(versions.c.id).where(versions.c.dataset_id == ds.id, versions.c.stage == "training")
    ).first()
    if training is not None or dataset_policy(ds).first_import is FirstImport.SELF_REFERENCE:
        return None
    val_id = conn.execute(
        select(datasets.c.id).where(datasets.c.validation_for == ds.name, datasets.c.role == "validation")
    ).scalar()
    if _has_records(conn, val_id):
        return None
    return PolicyViolation(
        f"{ds.name!r} has no training version and no clean validation set: the gate has nothing trusted to "
        "judge its first import against (judged only against itself, a poisoned first batch passes)",
        hint=f"create and fill a clean validation set (dataward dataset create {ds.name}-val ... "
        f"--validation-for {ds.name}, then contribute and merge its records), or have an owner opt in with "
        "`first_import: self-reference` in the dataset policy",
    )


def stratified_halves(labels: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two halves with every label split evenly (a label's odd record goes to the first)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels, dtype=object)
    first, second = [], []
    for label in sorted(set(labels)):
        idx = rng.permutation(np.flatnonzero(y == label))
        cut = (len(idx) + 1) // 2
        first.append(idx[:cut])
        second.append(idx[cut:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def validation_skip_reason(trusted: dict[str, Any]) -> str | None:
    """Why the clean-validation detectors do not run when a first import is judged against the whole of a
    small validation set (``trusted`` as :func:`trusted_for_first_import` describes it), for the report's
    skipped lines: a set was given, so "none was given" would be false. None in every other case."""
    if trusted.get("kind") != "validation-set" or trusted.get("held_out"):
        return None
    return (
        f"the clean validation set has {trusted['records']} records, fewer than {SPLIT_MIN} to halve: all of it "
        "is the first import's baseline, and none is held out to measure on"
    )


def trusted_for_first_import(
    validation: pa.Table | None, label: str, seed: int = 0, ref: str = "DATASET#N"
) -> tuple[pa.Table | None, pa.Table | None, dict[str, Any]]:
    """``(baseline, held_out_validation, trusted)`` for a gate run with no training version.

    ``trusted`` describes what the run trusts, for the report and the ledger. Without a validation set
    this is self-reference mode: call it only after :func:`first_import_refusal` found nothing to refuse.
    """
    if validation is not None and validation.num_rows > 0:
        if validation.num_rows < SPLIT_MIN:
            return (
                validation,
                None,
                {
                    "kind": "validation-set",
                    "records": validation.num_rows,
                    "held_out": 0,
                    "note": f"first import: judged against the whole clean validation set ({validation.num_rows} "
                    f"records, fewer than {SPLIT_MIN} to halve), so clean-validation impact is not measured"
                    + _power_note(ref),
                },
            )
        base_idx, held_idx = stratified_halves(validation.column(label).to_pylist(), seed)
        baseline, held = validation.take(pa.array(base_idx)), validation.take(pa.array(held_idx))
        return (
            baseline,
            held,
            {
                "kind": "validation-set",
                "records": baseline.num_rows,
                "held_out": held.num_rows,
                "note": f"first import: judged against one stratified half of the clean validation set "
                f"({baseline.num_rows} records); the other half ({held.num_rows}) is held out to measure "
                "the batch's effect on accuracy" + (_power_note(ref) if baseline.num_rows < FEW_TRUSTED else ""),
            },
        )
    return (
        None,
        None,
        {
            "kind": "self-reference",
            "records": 0,
            "held_out": 0,
            "note": "first import in self-reference mode (opted in by the dataset policy): the batch is judged "
            "only against itself, so a heavily poisoned batch can pass; curate it by hand",
        },
    )
