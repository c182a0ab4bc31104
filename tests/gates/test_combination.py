"""How per-detector evidence becomes a record score, and what each mode can and cannot judge."""

from __future__ import annotations

import numpy as np
from scipy import stats

from dataward.gates import scan
from dataward.gates.base import DetectorResult
from dataward.gates.gate import combine_records


def _results(p_values: np.ndarray) -> dict[str, DetectorResult]:
    return {
        f"d{j}": DetectorResult(f"d{j}", "1", p_values[j], p_values[j] <= 0.01 / p_values.shape[0])
        for j in range(p_values.shape[0])
    }


def test_consistent_evidence_outranks_one_uniform_minimum() -> None:
    # Record 0: three detectors each see something; record 1: one small p-value, the rest see nothing
    # (what the smallest of seven uniform p-values of a clean record looks like).
    p = np.array([[0.02, 0.005, 1.0], [0.02, 1.0, 1.0], [0.02, 1.0, 1.0], [0.5, 1.0, 1.0], [0.5, 1.0, 1.0]])
    score, flagged = combine_records(_results(p), 3)
    assert score[0] > score[1] > score[2]
    assert score[2] == 0.0 and np.all((score >= 0) & (score <= 1))
    assert flagged.tolist() == [False, False, False]


def test_one_overwhelming_detector_is_not_diluted() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(7, 500))
    p[0, 0] = 1e-9  # one detector is certain about record 0
    score, _ = combine_records(_results(p), 500)
    assert int(np.argmax(score)) == 0 and score[0] > 0.999


def test_combined_score_is_calibrated_only_for_independent_detectors() -> None:
    # Fisher's law: with m independent uniform p-values, -2 sum log p is chi-square with 2m degrees of
    # freedom, so 1 - score is itself uniform. Detectors that share features are not independent, and
    # then the score ranks records but is no p-value (the flags carry the false-positive guarantee).
    rng = np.random.default_rng(1)
    n = 20_000
    independent = 1.0 - combine_records(_results(rng.uniform(size=(7, n))), n)[0]
    for level in (0.001, 0.01, 0.1, 0.5):
        assert abs(float(np.mean(independent <= level)) - level) <= 4 * np.sqrt(level * (1 - level) / n)
    assert stats.kstest(independent, "uniform").pvalue > 1e-3
    # Seven detectors that see the same thing in each record: far more small combined p-values than the level.
    same = 1.0 - combine_records(_results(np.tile(rng.uniform(size=n), (7, 1))), n)[0]
    assert float(np.mean(same <= 0.01)) > 0.1


def test_self_reference_skips_triggers_and_says_why(text_sets) -> None:
    _, contribution, schema = text_sets
    report = scan(None, contribution, schema, policy={"detectors": ["label_consistency", "triggers", "drift"]})
    detectors = report.to_dict()["detectors"]
    assert report.mode == "self-reference" and report.verdict == "pass"
    assert "trusted baseline" in detectors["triggers"]["summary"]["skipped"]
    assert detectors["triggers"]["p_value"] is None
    assert detectors["label_consistency"]["p_value"] is not None


def test_drift_names_the_class_that_moved_for_review_without_flagging_it(cancer) -> None:
    baseline, contribution, schema = cancer
    cols = [c for c in contribution.columns if c != "label"]
    std = baseline[cols].std()
    moved = contribution.copy()
    benign = (moved["label"] == 1).to_numpy()
    moved.loc[benign, cols] = moved.loc[benign, cols] + 0.8 * std
    report = scan(baseline, moved, schema, policy={"detectors": ["drift"]})
    drift = report.results["drift"]
    # A class that moved is a population-level finding for review: never a block, never a flag.
    assert report.verdict == "review"
    assert not drift.flagged.any() and not report.records.flagged.any()
    assert drift.summary["tests"]["baseline"]["class_shift"]["1"] < 1e-3
    (finding,) = drift.contribution_findings
    assert "'1'" in finding.reason and "column 'f0'" in finding.reason
    assert any(reason.startswith("drift: the batch differs") for reason in report.reasons)
    clean = scan(baseline, contribution, schema, policy={"detectors": ["drift"]}).results["drift"]
    assert not clean.flagged.any()
