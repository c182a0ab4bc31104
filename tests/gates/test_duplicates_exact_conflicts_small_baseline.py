"""Exact conflicts are flagged and queued on a baseline of a few hundred trusted records that holds none
itself, with a reason in words (issue: 20 exact copies of trusted records under the flipped label gave
``exact_conflicts: 20, flagged: 0`` and the reason "0 of 20 records flagged ... (p=2e-48)").

The rule's false-positive rate is the trusted records' own rate of such conflicts (0 here); the
p-values are unchanged: the conformal ``(1 + conflicts) / (N + 1)`` stays above alpha below 1 / alpha
trusted records, which is why the flag is a rule of its own."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dataward.gates import scan
from tests.gates.conftest import FOUR_COLUMN_SCHEMA, four_column_cancer

SCHEMA = FOUR_COLUMN_SCHEMA
FLIP = {"malignant": "benign", "benign": "malignant"}


_cancer = four_column_cancer


def _policy() -> dict:
    return {"seed": 0, "detectors": ["duplicates", "label_consistency", "outliers"]}


def test_copies_of_trusted_records_under_the_other_label_are_flagged_and_queued() -> None:
    data = _cancer()
    baseline, validation = data.iloc[:250], data.iloc[450:]
    copies = baseline.iloc[:20].copy()
    copies["label"] = copies["label"].map(FLIP)
    batch = pd.concat([data.iloc[250:330], copies], ignore_index=True)
    report = scan(baseline, batch, SCHEMA, validation, _policy())
    result = report.results["duplicates"]
    assert 1.0 / (len(baseline) + 1) > result.alpha  # the floored p-value alone could flag none
    assert result.summary["exact_conflicts"] == 20
    conflicts = np.arange(len(batch)) >= 80
    assert np.asarray(result.flagged)[conflicts].all()
    assert not np.asarray(result.flagged)[~conflicts].any()
    assert np.asarray(report.records.flagged)[conflicts].all()
    reason = next(r for r in report.reasons if r.startswith("duplicates:"))
    assert "20 records are exact copies of trusted records' inputs under another label" in reason
    assert "each flagged as an exact conflict" in reason
    assert all(
        "exact copy of a record in the baseline" in f["reason"]
        for f in report.findings
        if f["detector"] == "duplicates"
    )


def test_pairs_inside_the_batch_with_two_labels_are_flagged_and_the_reason_says_so() -> None:
    data = _cancer()
    baseline, validation = data.iloc[:250], data.iloc[450:]
    fresh = data.iloc[250:350].reset_index(drop=True)
    twins = fresh.iloc[:15].copy()
    twins["label"] = twins["label"].map(FLIP)
    batch = pd.concat([fresh, twins], ignore_index=True)
    report = scan(baseline, batch, SCHEMA, validation, _policy())
    result = report.results["duplicates"]
    pairs = np.zeros(len(batch), dtype=bool)
    pairs[:15] = pairs[100:] = True
    assert (np.asarray(result.flagged) == pairs).all()
    reason = next(r for r in report.reasons if r.startswith("duplicates:") and "exact inputs" in r)
    assert "30 records share their exact inputs with another record of this batch under another label" in reason


def test_a_baseline_that_conflicts_more_often_than_alpha_flags_no_conflict_by_rule() -> None:
    """Where trusted data itself holds exact conflicts more often than alpha, a conflict is ordinary there:
    the rule would flag clean records above alpha, so it does not apply and the reason says why."""
    data = _cancer()
    baseline = data.iloc[:250].copy()
    twins = baseline.iloc[:3].copy()
    twins["label"] = twins["label"].map(FLIP)
    baseline = pd.concat([baseline, twins], ignore_index=True)  # 6 of 253 trusted records conflict
    copies = data.iloc[100:101].copy()
    copies["label"] = copies["label"].map(FLIP)
    batch = pd.concat([data.iloc[250:330], copies], ignore_index=True)
    report = scan(baseline, batch, SCHEMA, data.iloc[450:], _policy())
    result = report.results["duplicates"]
    assert result.summary["exact_conflicts"] == 1
    assert not np.asarray(result.flagged)[-1]
    assert result.reason is not None and "not flagged" in result.reason
