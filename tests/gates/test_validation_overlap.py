"""A clean validation set that shares records with the contribution: said in the report, and the shared
records left out of the clean-validation check (docs/gates.md, "The clean validation set")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_digits

from dataward.gates import scan

ONLY = {"detectors": ["clean_validation"]}


@pytest.fixture(scope="module")
def digits_sides():
    """Baseline (497), contribution (700) and validation (600) records of the digits, disjoint."""
    data = load_digits()
    cols = [f"p{i}" for i in range(data.data.shape[1])]
    frame = pd.DataFrame(data.data, columns=cols)
    frame["label"] = data.target
    perm = np.random.default_rng(0).permutation(len(frame))
    schema = {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in cols]}
    sides = (perm[:497], perm[497:1197], perm[1197:])
    baseline, contribution, validation = (frame.iloc[rows].reset_index(drop=True) for rows in sides)
    return baseline, contribution, validation, schema


def with_validation_records(contribution: pd.DataFrame, validation: pd.DataFrame, count: int) -> pd.DataFrame:
    """The contribution with ``count`` validation records appended (as a batch copied from it would be)."""
    return pd.concat([contribution, validation.iloc[:count]], ignore_index=True)


def overlap_findings(report) -> list[dict]:
    return [
        f
        for f in report.to_dict()["detectors"]["clean_validation"]["contribution_findings"]
        if "validation" in f["evidence"].get("kind", "")
    ]


def test_a_disjoint_validation_set_says_nothing(digits_sides) -> None:
    baseline, contribution, validation, schema = digits_sides
    report = scan(baseline, contribution, schema, validation, policy=ONLY)
    assert report.verdict == "pass", report.reasons
    assert overlap_findings(report) == []
    assert report.to_dict()["detectors"]["clean_validation"]["summary"]["overall"]["records"] == 600


def test_shared_records_are_named_reviewed_and_left_out_of_the_check(digits_sides) -> None:
    baseline, contribution, validation, schema = digits_sides
    batch = with_validation_records(contribution, validation, 12)
    report = scan(baseline, batch, schema, validation, policy=ONLY)
    # Overlap is a difference, not evidence of poisoning: review, never a block on its own.
    assert report.verdict == "review", report.reasons
    (finding,) = overlap_findings(report)
    assert finding["evidence"]["validation_records"] == 600
    assert finding["evidence"]["overlapping"] == 12
    assert finding["evidence"]["measured_on"] == 588
    assert "12 of 600" in finding["reason"] and "left out" in finding["reason"]
    assert any("12 of 600" in reason for reason in report.reasons)
    summary = report.to_dict()["detectors"]["clean_validation"]["summary"]
    assert summary["overall"]["records"] == 588


def test_a_copy_with_another_label_is_not_the_same_record(digits_sides) -> None:
    """A validation record relabelled in the batch is a conflict the check measures, not an overlap."""
    baseline, contribution, validation, schema = digits_sides
    relabelled = validation.iloc[:12].assign(label=(validation["label"].iloc[:12] + 1) % 10)
    batch = pd.concat([contribution, relabelled], ignore_index=True)
    report = scan(baseline, batch, schema, validation, policy=ONLY)
    assert overlap_findings(report) == []
    assert report.to_dict()["detectors"]["clean_validation"]["summary"]["overall"]["records"] == 600


def test_a_validation_set_wholly_inside_the_batch_is_said_and_reviewed(digits_sides) -> None:
    baseline, contribution, validation, schema = digits_sides
    small = validation.iloc[:40]
    batch = with_validation_records(contribution, small, 40)
    report = scan(baseline, batch, schema, small, policy=ONLY)
    assert report.verdict == "review", report.reasons
    assert any("40 of 40" in reason for reason in report.reasons)
    skipped = report.to_dict()["detectors"]["clean_validation"]["summary"]["skipped"]
    assert "also in the contribution" in skipped


def test_a_partitioned_scan_finds_the_same_overlap(digits_sides) -> None:
    baseline, contribution, validation, schema = digits_sides
    batch = pa.Table.from_pandas(with_validation_records(contribution, validation, 12))
    one_shot = scan(baseline, batch, schema, validation, policy=ONLY)
    parted = scan(baseline, batch, schema, validation, policy=ONLY, engine="local", partition_rows=97)
    assert parted.verdict == one_shot.verdict == "review"
    assert overlap_findings(parted) == overlap_findings(one_shot)
    assert parted.to_dict()["detectors"]["clean_validation"]["summary"]["overall"]["records"] == 588
