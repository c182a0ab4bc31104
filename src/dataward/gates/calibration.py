"""Calibrated p-values and the test of "more flags than alpha explains", shared by the detectors."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from dataward.gates.base import conformal_p_values

TAIL_FRACTION = 0.05
"""Share of the highest calibration scores used to fit the exponential tail beyond the largest one."""


def tail_p_values(calibration_scores: np.ndarray, test_scores: np.ndarray) -> np.ndarray:
    """Conformal p-values, refined beyond the largest calibration score.

    Plain conformal p-values stop at ``1 / (n + 1)``, so every record more extreme than all the trusted
    data ties there and cannot be ranked. Beyond the maximum we continue with an exponential tail
    fitted to the top ``TAIL_FRACTION`` of calibration scores (peaks over a threshold), which keeps
    the ranking meaningful and leaves every p-value at or above ``1/(n+1)`` unchanged.
    """
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64))
    test = np.asarray(test_scores, dtype=np.float64)
    p = conformal_p_values(cal, test)
    n = cal.shape[0]
    cal = cal[np.isfinite(cal)]
    if cal.shape[0] < 10:
        return p
    m = max(5, math.ceil(TAIL_FRACTION * cal.shape[0]))
    threshold = cal[-m - 1] if m < cal.shape[0] else cal[0]
    beta = float(np.mean(cal[-m:] - threshold))
    if beta <= 0:
        # A flat top (e.g. counts that are all 1): fall back to the scale of the scores themselves.
        beta = max(abs(float(cal[-1])), 1.0) * 0.1
    beyond = test > cal[-1]
    if beta > 0 and np.any(beyond):
        p[beyond] = np.exp(-(test[beyond] - cal[-1]) / beta) / (n + 1.0)
    return p


def excess_flags_p_value(p_values: np.ndarray, alpha: float, n_calibration: int) -> tuple[float, float]:
    """Is the number of small p-values more than calibration explains? Returns (excess, p-value).

    For thresholds ``t`` in ``alpha, alpha/4, alpha/16`` (as far as the calibration set resolves them)
    the count of records with ``p <= t`` follows, for conformal p-values of records exchangeable with
    the ``n`` calibration records, a beta-binomial law with ``a = floor(t (n+1))``, ``b = n + 1 - a``.
    That accounts for the calibration set's own randomness, so small baselines do not raise false
    alarms. The smallest tail probability, Bonferroni-corrected over thresholds, is combined
    (Bonferroni) with ``extreme_records_p_value`` and returned with the count at ``alpha`` minus its
    expectation.
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    n = p_values.shape[0]
    if n == 0 or n_calibration <= 0:
        return 0.0, 1.0
    thresholds = [t for t in (alpha, alpha / 4, alpha / 16) if math.floor(t * (n_calibration + 1)) >= 1]
    if not thresholds:
        thresholds = [1.0 / (n_calibration + 1)]
    best = 1.0
    for t in thresholds:
        a = math.floor(t * (n_calibration + 1))
        b = n_calibration + 1 - a
        count = int(np.sum(p_values <= a / (n_calibration + 1) + 1e-12))
        tail = float(stats.betabinom.sf(count - 1, n, a, b)) if count > 0 else 1.0
        best = min(best, tail)
    excess = float(np.sum(p_values <= alpha) - alpha * n)
    count_p = min(1.0, best * len(thresholds))
    return excess, min(1.0, 2.0 * min(count_p, extreme_records_p_value(p_values, n_calibration)))


ORDER_STATISTICS = 20
"""How many of the smallest p-values the extreme-records test looks at."""


EXTRAPOLATION_DECADES = 2
"""How far (in powers of ten) below the calibration set's resolution ``1/(n+1)`` tail-extrapolated
p-values are trusted by the extreme-records test."""


def extreme_records_p_value(p_values: np.ndarray, n_calibration: int) -> float:
    """Are a few records far more extreme than ``n`` records should be? (order-statistic test)

    For ``j = 2 .. ORDER_STATISTICS``, with ``p_(j)`` the ``j``-th smallest p-value, the chance that at
    least ``j`` of ``n`` records fall at or below ``p_(j)`` is ``P(Binomial(n, p_(j)) >= j)``; the
    smallest, Bonferroni-corrected over ``j``, is returned. It catches a handful of records (a 1%
    backdoor) whose p-values lie far beyond the calibration set, where a count at ``alpha`` sees only
    a few flags. ``j`` starts at 2 so that one extreme record alone never moves the verdict.

    The test leans on the extrapolated tail beyond the calibration set, so it is used only where that
    is sound: p-values are floored ``EXTRAPOLATION_DECADES`` below ``1/(n_calibration+1)``, and batches
    larger than the calibration set (where many clean records fall beyond it and a slightly wrong tail
    shape would add up) are left to the count test.
    """
    p_values = np.sort(np.asarray(p_values, dtype=np.float64))
    n = p_values.shape[0]
    if n > n_calibration:
        return 1.0
    p_values = np.maximum(p_values, 10.0**-EXTRAPOLATION_DECADES / (n_calibration + 1.0))
    top = min(ORDER_STATISTICS, n)
    if top < 2:
        return 1.0
    j = np.arange(2, top + 1)
    tails = stats.binom.sf(j - 1, n, np.clip(p_values[1:top], 0.0, 1.0))
    return float(min(1.0, tails.min() * (top - 1)))


def binomial_p_value(count: int, n: int, rate: float) -> float:
    """P(X >= count) for X ~ Binomial(n, rate)."""
    if count <= 0 or n <= 0:
        return 1.0
    return float(stats.binom.sf(count - 1, n, min(max(rate, 0.0), 1.0)))
