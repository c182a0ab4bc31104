"""The verdict's reasons label each statistic with its own test and say in words what it measures
(issue: "lowers clean-validation accuracy ... (drop 0.033 > tolerance 0.02, p=3.3e-19)" printed the
log-loss test's p beside the accuracy drop, whose own test gave 0.0625; "clean_validation: statistic
0.00833 (p=1.5e-05)" and "drift: statistic 0.671 (p=2e-07)" said nothing in words)."""

from __future__ import annotations

import re

import numpy as np

from dataward.gates import scan
from dataward.gates.base import DetectorResult, Finding
from dataward.gates.gate import verdict
from dataward.gates.policy import GatePolicy
from tests.gates.conftest import FOUR_COLUMN_SCHEMA, four_column_cancer

SCHEMA = FOUR_COLUMN_SCHEMA


_cancer = four_column_cancer


def test_clean_validation_names_the_test_of_each_p_value_and_says_what_its_statistic_is() -> None:
    data = _cancer()
    baseline, validation = data.iloc[:300], data.iloc[420:]
    batch = data.iloc[300:420].copy()
    flip = batch.index[batch["label"] == "malignant"][:30]
    batch.loc[flip, "label"] = "benign"
    report = scan(baseline, batch, SCHEMA, validation, {"seed": 0, "detectors": ["clean_validation", "drift"]})
    said = [r for r in report.reasons if r.startswith("clean_validation:")]
    assert said, report.reasons
    for reason in said:
        assert not re.search(r"statistic [0-9.]", reason), reason
        # Every p-value next to an accuracy drop is named by its test.
        assert not re.search(r"tolerance [0-9.]+, p=", reason), reason
        if "drop" in reason and "tolerance" in reason:
            assert "McNemar p=" in reason and "log-loss Wilcoxon p=" in reason, reason
    summary = report.results["clean_validation"].summary["overall"]
    worded = report.results["clean_validation"].reason
    assert worded is not None and f"McNemar p={summary['p_accuracy']:.2g}" in worded


def test_a_bare_statistic_is_not_printed_above_the_worded_findings_of_the_same_detector() -> None:
    n = 50
    drift = DetectorResult(
        "drift",
        "1",
        np.ones(n),
        np.zeros(n, bool),
        statistic=0.671,
        p_value=2e-7,
        contribution_findings=[Finding("drift", 1.0, "the batch differs from the baseline (mean_radius +12%)")],
    )
    verdict_, reasons, _ = verdict({"drift": drift}, np.zeros(n, bool), GatePolicy())
    assert verdict_ == "review"
    assert reasons == ["drift: the batch differs from the baseline (mean_radius +12%)"]
    # With nothing worded, the statistic is still said rather than nothing.
    alone = DetectorResult("drift", "1", np.ones(n), np.zeros(n, bool), statistic=0.671, p_value=2e-7)
    assert verdict({"drift": alone}, np.zeros(n, bool), GatePolicy())[1] == ["drift: statistic 0.671 (p=2e-07)"]
