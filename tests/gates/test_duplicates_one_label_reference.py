"""The duplicates detector against a trusted reference that holds one label only.

No trusted record then has a neighbour of another label, so every near-conflict calibration score was
-inf, and each record of another label near the reference read as beyond all of them: a clean batch was
blocked (p=1e-81) with no record flagged, no exact conflict and the reason "0 of 100 records flagged
where 1.0 are expected". Near conflicts are left out there; exact conflicts still count."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dataward.domain.schema import Schema
from dataward.gates import scan

SCHEMA = Schema.parse("label", ["x:numeric", "y:numeric"])
ONLY = {"detectors": ["duplicates"]}


def _frame(n: int, seed: int, label: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "label": [label] * n})


def test_a_batch_of_a_label_the_one_label_reference_lacks_is_not_blocked_for_near_conflicts() -> None:
    trusted = _frame(300, 0, "a")
    batch = pd.concat([_frame(50, 1, "a"), _frame(50, 2, "b")], ignore_index=True)
    report = scan(trusted, batch, SCHEMA, policy=ONLY)
    duplicates = report.to_dict()["detectors"]["duplicates"]
    # Label 'b' is one no trusted record carries: its records wait for a reviewer (``new_labels``), which
    # is the only reason; nothing here is a near conflict.
    assert report.verdict == "review", report.reasons
    assert len(report.reasons) == 1 and "label no trusted record has" in report.reasons[0], report.reasons
    assert duplicates["flagged"] == 0 and duplicates["p_value"] == 1.0


def test_an_exact_conflict_with_a_one_label_reference_still_counts() -> None:
    trusted = _frame(300, 0, "a")
    batch = pd.concat([_frame(50, 1, "a"), trusted.iloc[:5].assign(label="b")], ignore_index=True)
    report = scan(trusted, batch, SCHEMA, policy=ONLY)
    flagged = report.results["duplicates"].flagged
    assert flagged[50:].all() and not flagged[:50].any()
    assert report.to_dict()["detectors"]["duplicates"]["summary"]["exact_conflicts"] == 5
