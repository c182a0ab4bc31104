"""How per-detector evidence becomes a record score, and what each mode can and cannot judge."""

from __future__ import annotations

import numpy as np
from scipy import stats

from dataward.gates import scan
from dataward.gates.base import DetectorResult
from dataward.gates.gate import OTHER_WEIGHT, combine_records, leading_detectors, weighted_fisher_sf
from dataward.gates.policy import GatePolicy


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


def test_the_weighted_sum_is_read_against_its_exact_law() -> None:
    rng = np.random.default_rng(2)
    n = 400_000
    for full, weighted in ((1, 6), (3, 4), (6, 1)):
        draws = rng.chisquare(2, (full, n)).sum(axis=0) + OTHER_WEIGHT * rng.chisquare(2, (weighted, n)).sum(axis=0)
        for t in (2.0, 10.0, 20.0, 30.0):
            expected = float(np.mean(draws > t))
            se = np.sqrt(expected * (1 - expected) / n)
            assert abs(float(weighted_fisher_sf(np.array([t]), full, weighted, OTHER_WEIGHT)[0]) - expected) <= 4 * se
    # With one kind of term only it is the chi-square law, scaled.
    t = np.array([0.0, 3.0, 40.0])
    assert np.allclose(weighted_fisher_sf(t, 4, 0, OTHER_WEIGHT), stats.chi2.sf(t, 8))
    assert np.allclose(weighted_fisher_sf(t, 0, 3, OTHER_WEIGHT), stats.chi2.sf(t / OTHER_WEIGHT, 6))
    # Far in the tail it stays positive and ordered (no cancellation between the expansion's terms).
    tail = weighted_fisher_sf(np.array([100.0, 400.0, 1000.0]), 2, 5, OTHER_WEIGHT)
    assert np.all(tail > 0) and tail[0] > tail[1] > tail[2]


def test_with_leading_detectors_the_score_is_still_calibrated_on_independent_detectors() -> None:
    rng = np.random.default_rng(3)
    n = 100_000
    results = _results(rng.uniform(size=(7, n)))
    for leading in ({"d0"}, {"d0", "d3", "d5"}):
        p = 1.0 - combine_records(results, n, leading)[0]
        for level in (0.001, 0.01, 0.1, 0.5):
            assert abs(float(np.mean(p <= level)) - level) <= 4 * np.sqrt(level * (1 - level) / n)


def test_the_detectors_that_found_something_in_the_batch_lead_the_ranking() -> None:
    # Record 0: the detector whose batch-level test fired sees it clearly; record 1: three detectors that
    # found nothing in the batch each find it mildly odd (what clean records near a class boundary look like).
    p = np.ones((4, 3))
    p[0, 0] = 0.01
    p[1:, 1] = 0.1
    results = _results(p)
    plain, flagged_plain = combine_records(results, 3)
    led, flagged_led = combine_records(results, 3, {"d0"})
    assert plain[1] > plain[0]  # Fisher adds up the three mild ones
    assert led[0] > led[1]  # led by the batch's evidence, the clear one comes first
    assert np.array_equal(flagged_plain, flagged_led)  # the weights move no flag
    # Every detector leading, or none, is plain Fisher.
    assert np.allclose(combine_records(results, 3, {"d0", "d1", "d2", "d3"})[0], plain)
    assert np.allclose(combine_records(results, 3, set())[0], plain)
    assert np.allclose(combine_records(results, 3, {"no_such_detector"})[0], plain)


def test_the_leading_detectors_are_those_the_verdict_names() -> None:
    policy = GatePolicy()
    ones = np.ones(3)

    def result(name: str, p_value: float, block: bool = False) -> DetectorResult:
        reason = "a label-inconsistent cluster" if block else None
        return DetectorResult(
            name, "1", ones, np.zeros(3, dtype=bool), p_value=p_value, block=block, block_reason=reason
        )

    results = {
        "blocks": result("blocks", 0.5, block=True),
        "small": result("small", 0.001),  # 0.001 x 4 detectors < review_p
        "mild": result("mild", 0.004),  # 0.004 x 4 > review_p: not a reason of the verdict
        "nothing": result("nothing", 1.0),
    }
    assert leading_detectors(results, policy) == {"blocks", "small"}


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
