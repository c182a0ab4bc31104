"""Calibration, in one place: conformal p-values, their tail, per-class (Mondrian) calibration, flag
thresholds, and the tests of "more small p-values than calibration explains".

Every detector that scores records turns a nonconformity score (larger = more suspicious) into a
p-value against scores of trusted records with these functions, so that ``alpha`` means the same
false-positive rate for every detector:

* ``conformal_p_values``: ``(1 + #{calibration >= s}) / (n + 1)``, valid for records exchangeable
  with the calibration records;
* ``tail_p_values``: the same, with ties beyond the largest calibration score broken by an
  exponential tail, for *ranking* only (``leave_one_out_tail_p_values``: each calibration record
  against the others, alike);
* ``flag_mask``: the flag decision, which never trusts the extrapolated tail: a record beyond every
  calibration score counts as ``1 / (n + 1)``, so a baseline too small to resolve ``alpha`` flags
  nothing by p-value;
* ``mondrian_p_values``: per-class calibration, each record against the trusted records of its class;
* ``fdr_confirmed``: which of a detector's flags go to the review queue, so that the queue is mostly
  poisoned records (Benjamini-Hochberg over the contribution's floored conformal p-values).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from scipy import special, stats

from dataward.gates.shared_calibration_law import composition_sum_tail

TAIL_FRACTION = 0.05
"""Share of the highest calibration scores used to fit the exponential tail beyond the largest one."""

MIN_TAIL_FIT = 10
"""Finite calibration scores ``tail_p_values`` needs before it fits a tail at all."""


def tail_scores(n_calibration: int) -> int:
    """How many of the highest of ``n_calibration`` scores the exponential tail is fitted on (``m``)."""
    return max(5, math.ceil(TAIL_FRACTION * n_calibration))


MIN_CLASS_CALIBRATION = 50
"""Trusted records a class needs for its own (Mondrian) calibration; smaller classes use the pooled scores."""


def conformal_p_values(calibration_scores: np.ndarray, test_scores: np.ndarray) -> np.ndarray:
    """Conformal p-values: larger nonconformity score = more suspicious.

    ``p = (1 + #{calibration >= test}) / (n + 1)``; valid when the test record is exchangeable with
    the calibration records, so thresholding at ``alpha`` flags at most a fraction ``alpha`` of clean
    records in expectation.
    """
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64))
    test = np.asarray(test_scores, dtype=np.float64)
    n = cal.shape[0]
    if n == 0:
        return np.ones_like(test)
    greater_equal = n - np.searchsorted(cal, test, side="left")
    return (1.0 + greater_equal) / (n + 1.0)


def leave_one_out_p_values(scores: np.ndarray) -> np.ndarray:
    """Conformal p-value of each calibration record against the other calibration records.

    ``p_i = (1 + #{j != i: s_j >= s_i}) / n``: the statistic a new record gets against the full set,
    so calibration and new records stay exchangeable.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[0]
    if n == 0:
        return s
    order = np.sort(s)
    return (n - np.searchsorted(order, s, side="left")) / n  # includes i itself


def tail_p_values(
    calibration_scores: np.ndarray, test_scores: np.ndarray, *, leave_one_out: bool = False
) -> np.ndarray:
    """Conformal p-values, refined beyond the largest calibration score (for ranking).

    Plain conformal p-values stop at ``1 / (n + 1)``, so every record more extreme than all the trusted
    data ties there and cannot be ranked. Beyond the maximum the p-value decays as an exponential tail
    fitted to the top ``TAIL_FRACTION`` of calibration scores (peaks over a threshold); every p-value at
    or above ``1/(n+1)`` is the conformal one. With ``leave_one_out`` the test records are the
    calibration records themselves. Flags must go through ``flag_mask``, which ignores the tail.
    """
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64))
    test = np.asarray(test_scores, dtype=np.float64)
    n = cal.shape[0]
    if n == 0:
        return np.ones_like(test)
    if leave_one_out:
        p, floor = leave_one_out_p_values(test), 1.0 / n
    else:
        p, floor = conformal_p_values(cal, test), 1.0 / (n + 1.0)
    finite = cal[np.isfinite(cal)]
    if finite.shape[0] < MIN_TAIL_FIT:
        return p
    m = tail_scores(finite.shape[0])
    threshold = finite[-m - 1] if m < finite.shape[0] else finite[0]
    beta = float(np.mean(finite[-m:] - threshold))
    if beta <= 0:
        # A flat top (e.g. counts that are all 1): fall back to the scale of the scores themselves.
        beta = max(abs(float(finite[-1])), 1.0) * 0.1
    beyond = test > finite[-1]
    if np.any(beyond):
        p = p.copy()
        p[beyond] = floor * np.exp(-(test[beyond] - finite[-1]) / beta)
    return p


def leave_one_out_tail_p_values(scores: np.ndarray) -> np.ndarray:
    """``tail_p_values`` of each calibration record against the *other* records, for ranking.

    ``tail_p_values(s, s, leave_one_out=True)`` never extrapolates: the largest record is never beyond
    itself, so it stops at ``1/n`` while a new record with the same score would get an extrapolated
    p-value below ``1/(n+1)``. Here the largest record is scored against the others, as a new record
    is against all of them (the tail fitted to the others, beyond the second largest), so a statistic
    built from tail p-values is computed alike on both sides and can be calibrated once more. Every
    other record gets its plain leave-one-out p-value: the others' maximum is above it.
    """
    s = np.asarray(scores, dtype=np.float64)
    p = leave_one_out_p_values(s)
    if s.shape[0] < 2:
        return p
    top = int(np.argmax(s))
    others = np.delete(s, top)
    if s[top] > others.max():
        p[top] = tail_p_values(others, s[top : top + 1])[0]
    return p


def flag_mask(p_values: np.ndarray, alpha: float, n_calibration: int) -> np.ndarray:
    """Records flagged at ``alpha``: ``p <= alpha`` where ``p`` is floored at the calibration set's
    resolution ``1 / (n + 1)``, so no flag rests on the extrapolated tail alone."""
    p = np.asarray(p_values, dtype=np.float64)
    if n_calibration <= 0:
        return np.zeros(p.shape, dtype=bool)
    return np.maximum(p, 1.0 / (n_calibration + 1.0)) <= alpha


FDR_FALLBACK = 0.5
"""``fdr_confirmed`` keeps its best level even above ``q`` while fewer than this share is expected clean..."""

FDR_FALLBACK_P = 0.01
"""...and the count at that level is this unlikely for clean records."""


def fdr_confirmed(
    p_values: np.ndarray,
    flagged: np.ndarray,
    alpha: float,
    n_calibration: int,
    q: float,
    by_rule: np.ndarray | None = None,
) -> np.ndarray:
    """The flags a reviewer should see: those whose share of clean records is expected to stay below ``q``.

    A flag at ``alpha`` keeps the per-record false-positive rate, but a batch of ``n`` records then
    brings about ``alpha n`` clean flags whatever is planted in it, so 25 flips caught in 5,000
    records arrive with some 17 clean records beside them. Conformal p-values of records scored
    against one calibration set are positively dependent (PRDS), so the Benjamini-Hochberg step-up
    controls the false discovery rate over them (Bates, Candes, Lei, Romano and Sesia, "Testing for
    outliers with conformal p-values", Annals of Statistics, 2023): at a level ``t`` at most ``n t``
    clean records are expected at or below ``t``, and the largest ``t <= alpha`` with
    ``n t / R(t) <= q`` (``R(t)``: flagged records at or below ``t``) is kept.

    p-values are floored at the calibration set's resolution ``1 / (n_calibration + 1)`` as in
    ``flag_mask``, so no level rests on the extrapolated tail. Where even the lowest level cannot reach
    ``q`` (a few records against a calibration set that cannot tell them from the ``n / (N + 1)``
    clean records expected at its floor), the level with the lowest expected share is kept while that
    share is below ``FDR_FALLBACK`` and the count at it is one that clean records reach with
    probability below ``FDR_FALLBACK_P`` (beta-binomial: the shared calibration set makes the rate at
    its floor uncertain). More of those records are then poisoned than clean, and an empty queue would
    leave a reviewer nothing to look at. Flags not made by the p-value threshold (``by_rule``: an exact
    conflict, a resolution flag; or any flag above ``alpha``) are kept as they are: their own rules
    already make them rare on clean data.

    Flags only shrink: a record this keeps is flagged at ``alpha``, so the per-record false-positive
    rate stays at or below ``alpha``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    flags = np.asarray(flagged, dtype=bool)
    if p.size == 0 or n_calibration <= 0:
        return flags.copy()
    floored = np.maximum(p, 1.0 / (n_calibration + 1.0))
    by_threshold = flags & (floored <= alpha)
    if by_rule is not None:
        by_threshold &= ~np.asarray(by_rule, dtype=bool)
    levels = np.unique(floored[by_threshold])
    if levels.size == 0:
        return flags.copy()
    reached = np.searchsorted(np.sort(floored[by_threshold]), levels, side="right")
    expected_share = p.size * levels / reached
    within = np.flatnonzero(expected_share <= q)
    if within.size:
        level = float(levels[within[-1]])
    else:
        best = int(np.argmin(expected_share))
        level = float(levels[best]) if expected_share[best] < FDR_FALLBACK else -1.0
        # Clean batches reach a share below one half at the floor by chance (3 records where 1.25 are
        # expected); the fallback needs a count that clean records reach with probability below 1%.
        big_n = n_calibration + 1.0
        k = max(1.0, round(level * big_n))
        if level > 0 and stats.betabinom.sf(int(reached[best]) - 1, p.size, k, big_n - k) >= FDR_FALLBACK_P:
            level = -1.0
    return (flags & ~by_threshold) | (by_threshold & (floored <= level))


RESOLUTION_FLAG_P = 1e-3
"""``resolution_flags`` flags only when this many records at the resolution floor are this unlikely."""


def lowest_level(p_values: np.ndarray, n_calibration: int) -> tuple[int, float]:
    """The lowest grid level any record reached, ``(k, k / (n + 1))``: ``1/(n+1)``, or ``k/(n+1)`` when
    ``k - 1`` trusted records tie with the most extreme score (fused views saturate). Tie-breaking moves a
    p-value by far less than one step. ``p_values`` must not be empty."""
    k = max(1, math.ceil(float(np.min(p_values)) * (n_calibration + 1.0) - 1e-3))
    return k, k / (n_calibration + 1.0)


def resolution_flags(p_values: np.ndarray, alpha: float, n_calibration: int) -> np.ndarray:
    """Records flagged where the calibration set is too small to resolve ``alpha`` at all.

    With fewer than ``1 / alpha - 1`` calibration records no conformal p-value reaches ``alpha``, so
    ``flag_mask`` can flag nothing however poisoned the batch is, and the review queue would stay empty
    while the contribution is blocked. Here the records at the lowest level any record reached
    (``k / (n + 1)``, ``k`` usually 1 or 2) are flagged together, and only when there are so many of
    them that clean records would produce that count with probability below ``RESOLUTION_FLAG_P``
    (beta-binomial, as in ``excess_flags_p_value``): on clean data these flags appear that rarely, and
    then for few records.
    """
    p = np.asarray(p_values, dtype=np.float64)
    none = np.zeros(p.shape, dtype=bool)
    if n_calibration <= 0 or p.size == 0:
        return none
    k, level = lowest_level(p, n_calibration)
    if alpha >= level or k > n_calibration:
        return none
    at_level = p <= level + 1e-12
    count = int(at_level.sum())
    tail = float(stats.betabinom.sf(count - 1, p.size, k, n_calibration + 1 - k))
    return at_level if tail < RESOLUTION_FLAG_P else none


def mondrian_p_values(
    calibration_scores: np.ndarray,
    calibration_labels: np.ndarray,
    test_scores: np.ndarray,
    test_labels: np.ndarray,
    *,
    min_class: int = MIN_CLASS_CALIBRATION,
    p_values: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class (Mondrian) tail p-values and the calibration size behind each.

    A test record of class ``c`` is calibrated on the trusted records of class ``c`` when there are at
    least ``min_class`` of them, else on all trusted records. Returns ``(p_values, n_calibration)``,
    the second per record, for ``flag_mask``-style floors. ``p_values(calibration, test)`` computes
    each group's p-values: ``tail_p_values`` by default, ``conformal_p_values`` for plain ones.
    """
    p_of = tail_p_values if p_values is None else p_values
    cal = np.asarray(calibration_scores, dtype=np.float64)
    cal_y = np.asarray(calibration_labels)
    test = np.asarray(test_scores, dtype=np.float64)
    test_y = np.asarray(test_labels)
    p = p_of(cal, test)
    sizes = np.full(test.shape[0], cal.shape[0], dtype=np.int64)
    for c in np.unique(test_y):
        members = cal_y == c
        if int(members.sum()) >= min_class:
            rows = test_y == c
            p[rows] = p_of(cal[members], test[rows])
            sizes[rows] = int(members.sum())
    return p, sizes


EXCESS_THRESHOLDS = np.array([16.0, 4.0, 1.0, 1 / 4, 1 / 16])
"""Multiples of alpha at which ``excess_flags_p_value`` counts small p-values."""


def excess_flags_p_value(
    p_values: np.ndarray,
    alpha: float,
    n_calibration: int,
    *,
    beyond_calibration: bool = False,
    finest: bool | None = None,
) -> tuple[float, float]:
    """Is the number of small p-values more than calibration explains? Returns (excess, p-value).

    For thresholds ``t`` in ``16 alpha, 4 alpha, alpha, alpha/4, alpha/16`` (as far as the calibration
    set resolves them; the larger ones catch many records that are each only moderately suspicious, as
    a few percent of label flips in short texts are)
    the count of records with ``p <= t`` follows, for conformal p-values of records exchangeable with
    the ``n`` calibration records, a beta-binomial law with ``a = floor(t (n+1))``, ``b = n + 1 - a``.
    That accounts for the calibration set's own randomness, so small baselines do not raise false
    alarms. The smallest tail probability, Bonferroni-corrected over thresholds, is combined
    (Bonferroni) with ``extreme_records_p_value`` and returned with the count at ``alpha`` minus its
    expectation. With ``beyond_calibration``, ``beyond_calibration_p_value`` (records beyond every
    calibration score) joins it (Bonferroni), or for a batch larger than the calibration set (where the
    extreme-records test is not used) takes its place. Only a caller whose p-values are all
    conformal against one shared set of ``n_calibration`` scores may ask for it: a record's p-value
    from a smaller calibration (one class's scores, a minimum over views times their number) reaches
    the floor ``1 / (n_calibration + 1)`` through the extrapolated tail, far more often than that
    count's law allows (a simulation of ``outliers``' per-class views rejected clean batches 11% of the
    time at 1%).

    ``finest`` splits the test in two (``None``: the whole test). ``True``: the counts at thresholds no
    coarser than ``alpha`` (``alpha``, ``alpha/4``, ``alpha/16``, as resolved; the calibration's
    resolution ``1 / (n + 1)`` when it resolves none of them) and the records beyond calibration: the
    records each flagged on its own. ``False``: the coarser counts alone (``4 alpha``, ``16 alpha``),
    records each only mildly unlikely, with no extreme-records test; ``(0, 1)`` when there are none.
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    n = p_values.shape[0]
    if n == 0 or n_calibration <= 0:
        return 0.0, 1.0
    counts = _threshold_counts(p_values, alpha, n_calibration, finest)
    excess = float(np.sum(p_values <= alpha) - alpha * n)
    if not counts:
        return excess, 1.0
    best = min(c["p_value"] for c in counts)
    count_p = min(1.0, best * len(counts))
    if finest is False:
        return excess, count_p
    if beyond_calibration and n > n_calibration:
        extreme_p = beyond_calibration_p_value(p_values, n_calibration)
    elif beyond_calibration:
        # The exact count beyond every calibration score beside the order statistics: these stop at
        # ORDER_STATISTICS records and read records just beyond the largest score as little evidence,
        # so 25 flips just beyond 227 trusted records in 227 (count: 1.5e-8) were only reviewed.
        order_p = extreme_records_p_value(p_values, n_calibration)
        extreme_p = min(1.0, 2.0 * min(order_p, beyond_calibration_p_value(p_values, n_calibration)))
    else:
        extreme_p = extreme_records_p_value(p_values, n_calibration)
    return excess, min(1.0, 2.0 * min(count_p, extreme_p))


def beyond_calibration_p_value(p_values: np.ndarray, n_calibration: int) -> float:
    """Are more records beyond every calibration score than ``n`` exchangeable records put there?

    A record exchangeable with the ``n_calibration`` trusted records lies beyond all of them (its
    conformal p-value is at the floor ``1 / (n_calibration + 1)``) with probability ``1 / (N + 1)``;
    the share of such records in a batch follows the law of the calibration set's largest score,
    ``Beta(1, N)``, so their count is beta-binomial with ``a = 1``, ``b = N``: exact, with no
    extrapolated tail. Label flips seen by a strong probe lie far beyond every trusted record, so
    this count has far more power than the counts at multiples of ``alpha`` when ``alpha (N + 1)``
    is a few records: 23 of 5,000 records beyond 4,000 trusted ones, where 1.25 are expected, have
    ``p = 1.3e-6``; the count at ``alpha / 4`` (three calibration records) gave ``8.7e-5``.
    ``excess_flags_p_value`` uses it in place of ``extreme_records_p_value`` for batches larger than the
    calibration set, where that order-statistic test (which leans on the tail) is not used.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0 or n_calibration <= 0:
        return 1.0
    count = int(np.sum(p <= 1.0 / (n_calibration + 1.0) + 1e-12))
    return betabinom_tail(count, p.size, 1.0, float(n_calibration))


def excess_flags_count(
    p_values: np.ndarray,
    alpha: float,
    n_calibration: int,
    *,
    beyond_calibration: bool = False,
    finest: bool | None = None,
) -> dict[str, float]:
    """The threshold of ``excess_flags_p_value``'s count test whose tail is smallest, for a reviewer:
    ``threshold`` (a p-value level), ``count`` (records at or below it), ``expected`` (their number
    for records exchangeable with the calibration records) and ``p_value`` (that tail, uncorrected).
    With ``beyond_calibration``, the count beyond every calibration score too.
    ``finest``: the thresholds of that part of ``excess_flags_p_value``'s test only.
    Empty when there is nothing to count."""
    p_values = np.asarray(p_values, dtype=np.float64)
    n = p_values.shape[0]
    if n == 0 or n_calibration <= 0:
        return {}
    counts = _threshold_counts(p_values, alpha, n_calibration, finest)
    if beyond_calibration and finest is not False:
        level = 1.0 / (n_calibration + 1.0)
        counts.append(
            {
                "threshold": level,
                "count": int(np.sum(p_values <= level + 1e-12)),
                "expected": level * n,
                "p_value": beyond_calibration_p_value(p_values, n_calibration),
            }
        )
    return min(counts, key=lambda c: c["p_value"]) if counts else {}


def flagged_count_p_value(p_values: np.ndarray, alpha: float, n_calibration: int) -> float:
    """Are the records each flagged on their own more than calibration explains? The counts at the
    thresholds no coarser than ``alpha`` (``excess_flags_p_value``'s ``finest`` part) and beyond every
    calibration score, their smallest tail Bonferroni-corrected over them: a count, with no order
    statistics and no extrapolated tail. For p-values all conformal against one shared set of
    ``n_calibration`` scores."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0 or n_calibration <= 0:
        return 1.0
    tails = [c["p_value"] for c in _threshold_counts(p, alpha, n_calibration, True)]
    tails.append(beyond_calibration_p_value(p, n_calibration))
    return min(1.0, min(tails) * len(tails))


def _threshold_counts(
    p_values: np.ndarray, alpha: float, n_calibration: int, finest: bool | None = None
) -> list[dict[str, float]]:
    """The count at each threshold (``finest``: see ``excess_flags_p_value``)."""
    n = p_values.shape[0]
    resolved = [t for t in EXCESS_THRESHOLDS * alpha if t < 1.0 and math.floor(t * (n_calibration + 1)) >= 1]
    fine = [t for t in resolved if t <= alpha * (1 + 1e-9)] or [1.0 / (n_calibration + 1)]
    # A coarse threshold counts at a level of its own (a ``t`` above alpha that the calibration rounds
    # down to the fine level counts the same records).
    cells = math.floor(max(fine) * (n_calibration + 1) + 1e-9)
    coarse = [t for t in resolved if t > alpha * (1 + 1e-9) and math.floor(t * (n_calibration + 1)) > cells]
    thresholds = resolved or [1.0 / (n_calibration + 1)]
    if finest is not None:
        thresholds = fine if finest else coarse
    out = []
    for t in thresholds:
        a = math.floor(t * (n_calibration + 1))
        b = n_calibration + 1 - a
        level = a / (n_calibration + 1)
        count = int(np.sum(p_values <= level + 1e-12))
        out.append(
            {"threshold": level, "count": count, "expected": level * n, "p_value": betabinom_tail(count, n, a, b)}
        )
    return out


def p_text(p: float) -> str:
    """A p-value as a reviewer reads it: ``p=3.1e-07``, and never ``p=0``: a tail that underflowed double
    precision (every test here computes tails accurately down to about 1e-300) is shown as that bound."""
    return f"p={p:.2g}" if p > 0 else "p<1e-300"


def betabinom_tail(count: int, n: int, a: float, b: float) -> float:
    """``P(X >= count)`` for ``X ~ BetaBinomial(n, a, b)``, accurate far into the tail.

    scipy's ``sf`` is ``1 - cdf``: it loses relative precision below about 1e-8 (a factor 2.7 off at
    3e-14) and rounds to 0 below about 1e-16, which a reviewer would read as "p=0". There the tail is
    summed from the log-pmf instead, accurate down to the smallest double."""
    if count <= 0:
        return 1.0
    if count > n:
        return 0.0
    p = float(stats.betabinom.sf(count - 1, n, a, b))
    if p > 1e-8:
        return p
    log_pmf = stats.betabinom.logpmf(np.arange(count, n + 1), n, a, b)
    log_pmf = log_pmf[np.isfinite(log_pmf)]
    return float(np.exp(np.logaddexp.reduce(log_pmf))) if log_pmf.size else 0.0


ORDER_STATISTICS = 20
"""How many of the smallest p-values the extreme-records test looks at."""


EXTRAPOLATION_DECADES = 2
"""How far (in powers of ten) below the calibration set's resolution ``1/(n+1)`` tail-extrapolated
p-values are trusted by the extreme-records test."""


def extreme_records_p_value(p_values: np.ndarray, n_calibration: int) -> float:
    """Are a few records far more extreme than ``n`` records should be? (order-statistic test)

    For ``j = 2 .. ORDER_STATISTICS``, with ``p_(j)`` the ``j``-th smallest p-value, the chance that at
    least ``j`` of ``n`` records exchangeable with the ``N`` calibration records fall at or below
    ``p_(j)`` (``_count_at_or_below_tail``); the smallest, Bonferroni-corrected over ``j``, is returned.
    It catches a handful of records (a 1% backdoor) whose p-values lie far beyond the calibration set,
    where a count at ``alpha`` sees only a few flags. ``j`` starts at 2 so that one extreme record alone
    never moves the verdict.

    The chance is that of the whole null, the calibration set as random as the batch, as for the count
    tests: treating the p-values as exact rates made clean batches reach ``p <= 1e-6`` several hundred
    times more often than that (0.06% of clean 500-record batches against 700 trusted records, 0.12% of
    171 against 227, with scores whose tail is exactly the exponential the extrapolation fits), and
    blocked a new scanner (ten shifted digits just beyond 718 trusted records gave ``1e-8``).
    p-values are floored ``EXTRAPOLATION_DECADES`` below ``1/(n_calibration+1)``, and batches larger
    than the calibration set (where many clean records fall beyond it and a slightly wrong tail shape
    would add up) are left to the count test.
    """
    return order_statistic_p_value(p_values, n_calibration, _count_at_or_below_tail)


def order_statistic_p_value(
    p_values: np.ndarray, n_calibration: int, tail: Callable[[int, int, float, int], float]
) -> float:
    """``min_j tail(j, n, p_(j), n_calibration)`` over ``j = 2 .. ORDER_STATISTICS``, Bonferroni-corrected
    over ``j``, with the p-values floored ``EXTRAPOLATION_DECADES`` below ``1/(n_calibration+1)``; 1 for a
    batch larger than the calibration set. ``tail(count, n, level, n_calibration)`` is the chance that at
    least ``count`` of ``n`` clean records fall at or below ``level``: ``extreme_records_p_value``'s law,
    or another to compare it with."""
    p_values = np.sort(np.asarray(p_values, dtype=np.float64))
    n = p_values.shape[0]
    if n > n_calibration:
        return 1.0
    p_values = np.maximum(p_values, 10.0**-EXTRAPOLATION_DECADES / (n_calibration + 1.0))
    top = min(ORDER_STATISTICS, n)
    if top < 2:
        return 1.0
    tails = [tail(j, n, float(p_values[j - 1]), n_calibration) for j in range(2, top + 1)]
    return float(min(1.0, min(tails) * (top - 1)))


GRID_TOLERANCE = 1e-3
"""A p-value within this share of a calibration bin below ``a / (N + 1)`` is read as that level: tie
breaks move conformal p-values by less (``label_consistency``: ``5e-4`` of a bin)."""


def _count_at_or_below_tail(count: int, n: int, level: float, n_calibration: int) -> float:
    """``P(at least count of n exchangeable records have p <= level)``, calibration set and batch random.

    At a level ``a / (N + 1)`` (``N = n_calibration``) the share of such records is ``Beta(a, N + 1 - a)``
    (the mass beyond the ``a``-th largest calibration score) and the count is beta-binomial. Below
    ``1 / (N + 1)`` the p-value comes from ``tail_p_values``' exponential tail, and the share is that of
    a tail whose largest score and fitted scale come from the same top calibration scores
    (``_beyond_calibration_mixture``)."""
    big_n = n_calibration + 1.0
    scaled = level * big_n
    if scaled + GRID_TOLERANCE >= 1.0:
        a = max(1, math.floor(scaled + GRID_TOLERANCE))
        if a >= big_n:
            return 1.0  # every exchangeable record is at or below the level
        return betabinom_tail(count, n, float(a), big_n - a)
    if tail_scores(n_calibration) >= n_calibration or n_calibration < MIN_TAIL_FIT:
        # tail_p_values fits no tail on so few scores: anything below the grid is at most beyond them all.
        return betabinom_tail(count, n, 1.0, float(n_calibration))
    return _beyond_calibration_mixture(count, n, max(scaled, 1e-300), n_calibration)


def _beyond_calibration_mixture(count: int, n: int, share: float, n_calibration: int) -> float:
    """``E[P(Binomial(n, rate) >= count)]`` for the true rate of ``p <= share / (N + 1)``, ``share < 1``.

    ``tail_p_values`` fits ``beta`` as the mean excess of the top ``m`` scores over the ``(m+1)``-th
    largest, ``u``, and puts ``p = share / (N + 1)`` at ``max + beta * lam``, ``lam = -log(share)``.
    For an exponential tail (Renyi: the top spacings ``E_i / i`` are independent of ``u``) the mass
    beyond that score is ``Q exp(-Z)``: ``Q ~ Beta(m + 1, N - m)`` the mass beyond ``u`` and
    ``Z = sum_i E_i (1 / i + lam / m)``, ``E_i ~ Exp(1)``. The largest score and the fitted scale
    share the ``E_i``: taken apart (the mass beyond the maximum ``Beta(1, N)`` and the fitted scale
    ``Gamma(m, 1/m)`` independent) the law was too light, and clean batches against 100 to 700 trusted
    records reached ``1e-6`` two to six times as often. ``Z``'s law is the saddlepoint (``r*``)
    approximation, within a few percent of simulation down to ``1e-4``."""
    m = tail_scores(n_calibration)
    lam = -math.log(share)
    weights, counts = _spacing_weights(m)
    z_mass, z_value = _weighted_exponential_sum_cells(weights + lam / m, counts)
    log_q, log_q_mass = _beyond_threshold_cells(n_calibration)
    log_rate = np.minimum(0.0, log_q[None, :] - z_value[:, None])
    # The binomial tail is smooth in the log of its rate: computed on RATE_GRID rates and interpolated.
    grid = np.linspace(float(log_rate.min()), 0.0, RATE_GRID)
    log_tail = np.interp(log_rate, grid, stats.binom.logsf(count - 1, n, np.exp(grid)))
    log_terms = log_tail + np.log(np.maximum(z_mass, 1e-300))[:, None] + log_q_mass[None, :]
    return float(min(1.0, np.exp(np.logaddexp.reduce(log_terms.ravel()))))


RATE_GRID = 1024
"""Rates at which ``_beyond_calibration_mixture`` computes the binomial tail exactly."""


@functools.lru_cache(maxsize=64)
def _beyond_threshold_cells(n_calibration: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells of ``Q ~ Beta(m + 1, N - m)``, the mass beyond the ``(m+1)``-th largest calibration score:
    log midpoints and log masses (each from the side of the median it lies on: ``1 - cdf`` loses the
    upper tail). The last cell (mass ``1e-15``) is taken at its top, ``Q = 1``: an upper bound."""
    m = tail_scores(n_calibration)
    a, b = m + 1.0, float(n_calibration - m)
    median = float(stats.beta.median(a, b))
    edges = np.concatenate([[0.0], np.geomspace(stats.beta.ppf(1e-15, a, b), stats.beta.isf(1e-15, a, b), 150), [1.0]])
    cdf, sf = stats.beta.cdf(edges, a, b), stats.beta.sf(edges, a, b)
    mass = np.where(edges[1:] <= median, cdf[1:] - cdf[:-1], sf[:-1] - sf[1:])
    straddle = (edges[:-1] < median) & (edges[1:] > median)
    mass[straddle] = 1.0 - cdf[:-1][straddle] - sf[1:][straddle]
    value = np.sqrt(np.maximum(edges[:-1], edges[1] * 1e-3) * edges[1:])
    value[-1] = 1.0
    log_value, log_mass = np.log(value), np.log(np.maximum(mass, 1e-300))
    for array in (log_value, log_mass):
        array.setflags(write=False)
    return log_value, log_mass


def _spacing_weights(m: int) -> tuple[np.ndarray, np.ndarray]:
    """``1 / i`` for ``i = 1 .. m`` as (weights, multiplicities): exact up to 64, then blocks of ``i``
    within 2% of one another, each at its smallest weight (a slightly smaller ``Z``, a larger rate: an
    upper bound), so that a calibration set of a million records costs a few hundred terms, not 50,000."""
    exact = np.arange(1, min(m, 64) + 1, dtype=np.float64)
    if m <= 64:
        return 1.0 / exact, np.ones_like(exact)
    starts = np.unique(np.round(np.geomspace(65, m + 1, max(2, math.ceil(math.log((m + 1) / 65) / math.log(1.02))))))
    starts = np.unique(np.concatenate([[65.0], starts, [m + 1.0]]))
    return (
        np.concatenate([1.0 / exact, 1.0 / (starts[1:] - 1.0)]),
        np.concatenate([np.ones_like(exact), np.diff(starts)]),
    )


def _weighted_exponential_sum_cells(weights: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells (masses, midpoints) of ``Z = sum_i c_i w_i Gamma_i``, ``Gamma_i ~ Gamma(c_i, 1) / c_i``
    independent (``c_i`` copies of ``w_i E_i``, ``E_i ~ Exp(1)``).

    Fine below the mean (small ``Z`` is a large rate, and the binomial tail of ``count`` records grows
    as ``exp(-count Z)``), coarse above it; the first cell, ``Z`` below 1% of its mean, is taken at 0 (an
    upper bound). The CDF at the edges is Barndorff-Nielsen's ``r*`` saddlepoint approximation: the
    cumulant generating function ``K(t) = -sum log(1 - w_i t)`` is explicit, and ``K'(t) = z`` is solved
    by interpolation on a grid of ``t`` and Newton steps (``K'`` is convex and increasing)."""
    w, c = np.asarray(weights, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    mean, sd, w_max = float(np.sum(c * w)), float(np.sqrt(np.sum(c * w * w))), float(w.max())

    def k1(t: np.ndarray) -> np.ndarray:
        return (w / (1.0 - np.outer(t, w))) @ c

    def k2(t: np.ndarray) -> np.ndarray:
        return (w / (1.0 - np.outer(t, w))) ** 2 @ c

    edges = np.concatenate(
        [np.linspace(0.01 * mean, mean - 0.01 * sd, 300), np.linspace(mean + 0.01 * sd, mean + 14.0 * sd, 60)]
    )
    t_grid = np.concatenate([-np.geomspace(1e8, 1e-8, 300), 1.0 - np.geomspace(1.0, 1e-8, 120)[1:]]) / w_max
    t = np.interp(edges, k1(t_grid), t_grid)
    for _ in range(4):
        t = np.minimum(t - (k1(t) - edges) / k2(t), (1.0 - 1e-12) / w_max)
    r = np.sign(t) * np.sqrt(np.maximum(2.0 * (t * edges + np.log1p(-np.outer(t, w)) @ c), 1e-300))
    r_star = r + np.log(t * np.sqrt(k2(t)) / r) / r
    cdf = np.concatenate([[0.0], np.exp(special.log_ndtr(r_star)), [1.0]])
    sf = np.concatenate([[1.0], np.exp(special.log_ndtr(-r_star)), [0.0]])
    bounds = np.concatenate([[0.0], edges, [np.inf]])
    mass = np.where(bounds[1:] <= mean, cdf[1:] - cdf[:-1], sf[:-1] - sf[1:])
    straddle = (bounds[:-1] < mean) & (bounds[1:] > mean)
    mass[straddle] = 1.0 - cdf[:-1][straddle] - sf[1:][straddle]
    value = np.concatenate([[0.0], (edges[:-1] + edges[1:]) / 2.0, [edges[-1]]])
    return np.maximum(mass, 0.0), value


def binomial_p_value(count: int, n: int, rate: float) -> float:
    """P(X >= count) for X ~ Binomial(n, rate)."""
    if count <= 0 or n <= 0:
        return 1.0
    return float(stats.binom.sf(count - 1, n, min(max(rate, 0.0), 1.0)))


def fisher_excess_p_value(p_values: np.ndarray, n_calibration: int, n_scored: int | None = None) -> float:
    """Is ``sum(-log p)`` over the batch larger than calibration explains? (combined evidence)

    The count tests see records one threshold at a time; label noise in hard data shows as many
    records with *moderately* small p-values (0.005 to 0.05), none extreme. Fisher's sum adds them up.
    Its null law is that of conformal p-values of ``n`` records exchangeable with ``n_calibration``
    trusted ones, which share one calibration set: each record's p sits on the grid ``k / N``,
    ``N = n_calibration + 1``, and the records' cells are uniform over the compositions of ``n`` into
    ``N`` parts. The tail is that law's, by a saddlepoint approximation
    (``dataward.gates.shared_calibration_law``): a gamma law matched to its mean and variance, used
    before, let clean batches reach ``1e-6``, where a block is decided, 1.7 to 2.7 times as often. p-values are taken
    at their grid cell (a tie broken within a cell counts as the cell) and floored at ``1 / N``: no
    extrapolated tail enters.

    ``n_scored``: how many calibration records can reach a p-value below 1 at all (the rest tie at
    the bottom, as records that a detector rules out before scoring do); default all of them.
    """
    p = np.asarray(p_values, dtype=np.float64)
    n = p.shape[0]
    if n == 0 or n_calibration <= 0:
        return 1.0
    big_n = n_calibration + 1
    scored = n_calibration if n_scored is None else max(0, min(int(n_scored), n_calibration))
    weights = np.zeros(big_n)
    weights[: scored + 1] = -np.log(np.arange(1, scored + 2) / big_n)
    # The cell of each p-value: k / N, or a tie broken just below it, is cell k (1-based).
    cells = np.clip(np.ceil(np.clip(p, 0.0, 1.0) * big_n - 1e-6), 1, big_n).astype(np.int64)
    statistic = float(np.sum(weights[cells - 1]))
    return composition_sum_tail(weights, n, statistic)
