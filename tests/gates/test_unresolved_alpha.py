"""What a gate could not check says so (``gate.unresolved_alpha``, the report's ``limits``).

A conformal p-value is at least ``1 / (n + 1)`` for ``n`` trusted records, so against a few hundred of them no
single record can reach the policy's per-record alpha (``0.01 / 3``): five flipped labels among a hundred
breast-cancer records ranked first and passed with "no detector found evidence", flagged by nothing. The
report now says which detectors could not flag single records and names the rows at the lowest p-value
when more sit there than chance puts there.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from dataward.gates import scan
from dataward.gates.base import DetectorResult
from dataward.gates.gate import unresolved_alpha
from dataward.gates.report import GateReport

FLIPS = 5


@cache
def _frame() -> tuple[pd.DataFrame, dict]:
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"})
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["label"] = frame["label"].map({0: "malignant", 1: "benign"})
    frame = frame.sample(frac=1, random_state=1).reset_index(drop=True)
    schema = {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in frame.columns if c != "label"]}
    return frame, schema


@cache
def _judged(n_trusted: int) -> tuple[GateReport, np.ndarray]:
    """The gate on 100 records with five labels flipped, against the first ``n_trusted`` records."""
    frame, schema = _frame()
    batch = frame.iloc[469:569].copy()
    flipped = np.random.default_rng(5).choice(len(batch), FLIPS, replace=False)
    column = batch.columns.get_loc("label")
    batch.iloc[flipped, column] = batch.iloc[flipped]["label"].map({"malignant": "benign", "benign": "malignant"})
    return scan(frame.iloc[:n_trusted], batch, schema), flipped


def _limit(report: GateReport, detector: str) -> str | None:
    return next((text for text in report.limits if text.startswith(f"{detector} ")), None)


def test_a_small_baseline_says_which_records_it_could_not_flag_and_names_the_likeliest() -> None:
    report, flipped = _judged(250)
    assert not report.records.flagged[flipped].any()  # nothing can reach alpha against 250 records
    limit = _limit(report, "label_consistency")
    assert limit is not None, report.limits
    assert "calibrated on 250 trusted records" in limit and "299 or more" in limit
    named = {int(row) for row in limit.split("rows ")[1].split(", ")}
    rows = {int(report.records.rows[i]) for i in flipped}
    assert len(named & rows) >= 4 and len(named) <= 6, (named, rows)
    assert report.to_dict()["limits"] == report.limits
    assert "Not checked" in report.to_html() and "299 or more" in report.to_html()


def test_a_baseline_large_enough_to_flag_has_no_such_limit() -> None:
    report, flipped = _judged(469)
    assert _limit(report, "label_consistency") is None
    assert report.records.flagged_at_alpha[flipped].sum() >= FLIPS - 1


def test_a_limit_names_no_rows_when_none_stand_out() -> None:
    """Without flips the lowest p-value holds no more records than chance: the limit names none."""
    frame, schema = _frame()
    report = scan(frame.iloc[:250], frame.iloc[469:569], schema)
    limit = _limit(report, "label_consistency")
    assert limit is not None and "rows" not in limit


@pytest.mark.parametrize(("detector", "names_rows"), [("label_consistency", True), ("outliers", False)])
def test_only_poisoning_evidence_names_rows(detector: str, names_rows: bool) -> None:
    """Twenty of 800 records at the floor of 152 trusted records, where 5.2 are expected. ``outliers``
    reads records unlike the baseline, and its p-values (a minimum over views) reach their floor more
    often than chance on clean new records (16 of 799 in the demo's clean first import): no suspects, so
    its limit names no rows; ``label_consistency``'s does."""
    n_cal, n = 152, 800
    p = np.full(n, 0.5)
    p[:20] = 1.0 / (n_cal + 1)
    result = DetectorResult(detector, "1", p, np.zeros(n, bool), n_calibration=n_cal, alpha=0.01 / 3)
    (limit,) = unresolved_alpha({detector: result}, np.arange(1, n + 1))
    assert "calibrated on 152 trusted records" in limit
    assert ("rows 1, 2, 3" in limit) is names_rows, limit


def test_a_pile_flagged_together_is_said_so_beside_the_limit_and_in_the_reason() -> None:
    """A new user's first import against 150 trusted records: the reason said "83 of 600 records flagged at
    alpha=0.00333" while the limit beside it said that no single record could reach that alpha. The flags were
    the pile at the lowest p-value (``calibration.resolution_flags``): both sentences now say so."""
    from dataward.domain.schema import Schema
    from dataward.gates.base import GateContext
    from dataward.gates.detectors.label_consistency import LabelConsistency

    n_cal, level = 150, 1 / 151
    p = np.full(600, 0.5)
    p[:107] = level
    flagged = np.zeros(600, dtype=bool)
    flagged[:83] = True
    result = DetectorResult("label_consistency", "8", p, flagged, n_calibration=n_cal, alpha=0.01 / 3, p_value=1e-8)
    (limit,) = unresolved_alpha({"label_consistency": result}, np.arange(2, 602))
    assert "cannot flag a single record at alpha=0.00333" in limit
    assert "107 records are at its lowest p-value" in limit and "83 of them were flagged together" in limit

    detector = LabelConsistency()
    detector.context = GateContext(Schema.parse("label", ["x:numeric"]), ("a", "b"), 0.01 / 3)
    summary = {
        "count_test": {"threshold": level, "count": 83, "expected": 600 * level},
        "flagged_count_p": 5e-9,
        "mild_test": {"fisher_p": 0.27},
        "frame": None,
        "capture": None,
    }
    said = detector._reason(summary, 600, flagged, 1e-8, False, n_cal)
    assert "flagged at alpha" not in said
    assert said.startswith("83 of 600 records flagged together as more than clean records pile at the lowest p-value")
    assert "against 150 trusted records no single record can reach alpha=0.00333" in said
    resolved = detector._reason(summary, 600, flagged, 1e-8, False, 600)
    assert resolved.startswith("83 of 600 records flagged at alpha=0.00333, where 2.0 are expected")
