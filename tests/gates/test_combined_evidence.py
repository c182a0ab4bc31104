"""Fisher's sum over the batch: calibrated on exchangeable records, and sees many moderate p-values that
no single threshold count sees."""

from __future__ import annotations

import numpy as np
from scipy import stats

from dataward.gates.calibration import conformal_p_values, excess_flags_p_value, fisher_excess_p_value


def _clean_batch(rng: np.random.Generator, n_calibration: int, n: int) -> np.ndarray:
    return conformal_p_values(rng.random(n_calibration), rng.random(n))


def test_fisher_sum_holds_its_false_alarm_rate_on_records_exchangeable_with_calibration() -> None:
    rng = np.random.default_rng(0)
    for n_calibration, n in ((300, 2000), (716, 178)):
        p = np.array([fisher_excess_p_value(_clean_batch(rng, n_calibration, n), n_calibration) for _ in range(600)])
        for level in (0.05, 0.2):
            # Upper end of a 99.9% binomial interval around the promised rate, not several times it.
            bound = stats.binom.ppf(0.999, p.size, level) / p.size
            assert (p <= level).mean() <= bound, (n_calibration, n, level, (p <= level).mean())
        assert (p <= 0.2).mean() >= 0.1  # not vacuously conservative


def test_fisher_sum_adds_up_many_moderately_unlikely_records() -> None:
    """25 flipped labels in 178 records, each only as unlikely as the top 2-5% of trusted records (hard
    data: the flips look like plausible labels): the sum is stronger evidence than the best count in
    most draws."""
    n_calibration, n, flipped = 716, 178, 25
    count_p, fisher_p = [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        calibration = rng.random(n_calibration)
        scores = rng.random(n)
        scores[:flipped] = np.quantile(calibration, rng.uniform(0.95, 0.98, flipped))
        p = conformal_p_values(calibration, scores)
        count_p.append(excess_flags_p_value(p, 0.01 / 7, n_calibration)[1])
        fisher_p.append(fisher_excess_p_value(p, n_calibration))
    assert sum(f < c for f, c in zip(fisher_p, count_p, strict=True)) >= 7
    assert np.median(fisher_p) < np.median(count_p) / 2


def test_fisher_sum_ignores_the_extrapolated_tail_and_empty_input() -> None:
    assert fisher_excess_p_value(np.zeros(0), 100) == 1.0
    assert fisher_excess_p_value(np.full(5, 0.5), 0) == 1.0
    # One record far beyond calibration counts as 1/(n+1), not as its extrapolated 1e-30.
    one_extreme = np.array([1e-30, *np.linspace(0.05, 1.0, 99)])
    floored = np.array([1.0 / 101, *np.linspace(0.05, 1.0, 99)])
    assert fisher_excess_p_value(one_extreme, 100) == fisher_excess_p_value(floored, 100)


def test_the_count_beyond_calibration_is_only_for_one_shared_calibration_set() -> None:
    """p-values built from smaller calibrations (one class's scores, a minimum over views) reach the
    floor 1/(n+1) through the extrapolated tail far more often than the beta-binomial law of the count
    beyond every calibration score allows. Detectors whose p-values are made that way (``outliers``'
    per-class views) keep the old count tests: clean batches larger than the calibration set are not
    sent to review more often than alpha; a caller asking for the beyond count on the same p-values
    would be."""
    from dataward.gates.calibration import tail_p_values

    rng = np.random.default_rng(0)
    classes, per_class, n = 10, 100, 3_000
    default, beyond = [], []
    for _ in range(150):
        labels = rng.integers(classes, size=n)
        per_class_p = np.ones(n)
        for c in range(classes):
            rows = labels == c
            per_class_p[rows] = tail_p_values(rng.lognormal(size=per_class), rng.lognormal(size=int(rows.sum())))
        pooled_p = tail_p_values(rng.lognormal(size=classes * per_class), rng.lognormal(size=n))
        p = np.minimum(1.0, 2.0 * np.minimum(per_class_p, pooled_p))
        default.append(excess_flags_p_value(p, 0.01, classes * per_class)[1])
        beyond.append(excess_flags_p_value(p, 0.01, classes * per_class, beyond_calibration=True)[1])
    assert np.mean(np.array(default) <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 150)
    assert np.mean(np.array(beyond) <= 0.05) > 0.15
