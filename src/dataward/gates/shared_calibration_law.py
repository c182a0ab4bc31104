"""The null law of a sum over records whose conformal p-values share one calibration set.

``n`` records exchangeable with ``N - 1`` calibration records fall into the ``N`` cells between the
sorted calibration scores; a record in cell ``k`` (counted from the most extreme) has the conformal
p-value ``k / N``. Given the calibration set the records are independent, each in cell ``k`` with
probability ``D_k``, the share of the score distribution in that cell; over calibration sets
``D ~ Dirichlet(1, ..., 1)``. Mixed over ``D``, the count vector ``(c_1, ..., c_N)`` is uniform over the
compositions of ``n`` into ``N`` parts (Bose-Einstein). A statistic ``T = sum_k c_k w_k`` (Fisher's sum
of ``-log p`` has ``w_k = -log(k / N)``) therefore has a law that no independent-records formula gives:
the shared calibration set makes a batch's p-values move together, and a moment-matched gamma law is
too light far in the tail (clean batches of 50 to 178 records reached 1e-6 1.7 to 2.7 times as often;
``benchmarks/fisher_sum_null.py``).

:func:`composition_sum_tail` computes ``P(T >= t)`` by Skovgaard's saddlepoint approximation for a
conditional law: the uniform law over compositions is that of independent geometric counts given
their sum (``P(c) ∝ r^(sum c)`` for any ``r``), so ``T`` given ``sum c = n`` has an explicit joint
cumulant generating function. Checked against exact enumeration (4 records against 60 calibration
records, down to 5e-6), importance sampling at 1e-6 (50 and 60 records against 50 and 120; 178 against
716 when it was written: within 5%) and simulated batches, in ``tests/gates/test_shared_calibration_law.py``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

EXACT_CELLS = 50_000
"""Cells handled one by one; beyond, cells of nearly equal weight are merged (see ``_cells``)."""

EXACT_COUNT = 10_000
"""Where the saddlepoint puts fewer compositions than this at or beyond ``t``, they are counted exactly
(``_log_count_reaching``, at most ``EXACT_NODES`` steps). There the law is a few atoms and the
saddlepoint (a smooth law's) misses their own mass: up to 1.55 times too light below 10 compositions
and 1.2 times below 100 (two records against 3,000 calibration records: the second-largest sum has 2
compositions of 4.5e6, 4.4e-7, and the saddlepoint said 2.9e-7); within 7% beyond 100."""

EXACT_NODES = 20_000
"""Steps the exact count may take where few compositions reach ``t``; beyond, the saddlepoint."""

LATTICE_NODES = 300
"""Steps the exact count may take elsewhere: enough for weights with few distinct values (``n_scored``
small: most cells weigh 0), a lattice on which the saddlepoint was up to 10 times too light."""

MERGE_WIDTH = 2e-4
"""Largest spread of weights merged into one cell beyond ``EXACT_CELLS``. A merged cell takes the
largest weight among its members, so ``T`` can only grow: the tail is an upper bound (by at most
``MERGE_WIDTH * n`` in ``T``, a fraction of a standard deviation)."""


def composition_sum_tail(weights: np.ndarray, n: int, t: float) -> float:
    """``P(sum_k c_k weights[k] >= t)`` for ``c`` uniform over the compositions of ``n`` into
    ``len(weights)`` parts (see the module docstring). ``weights`` are non-negative."""
    w, mult = _cells(np.asarray(weights, dtype=np.float64))
    if n <= 0 or w.size == 0:
        return 1.0 if t <= 0 else 0.0
    cells = float(mult.sum())
    w_max = float(w.max())
    top = n * w_max
    if t > top * (1.0 + 1e-12):
        return 0.0
    if t >= top * (1.0 - 1e-9):
        # Only compositions with every record in a largest-weight cell reach it: count them exactly.
        at_max = float(mult[w == w_max].sum())
        return float(np.exp(_log_compositions(n, at_max) - _log_compositions(n, cells)))
    mean = n * float(np.sum(mult * w)) / cells
    var_w = float(np.sum(mult * (w - mean / n) ** 2)) / cells
    if var_w <= 0.0 or t <= mean:
        return 1.0  # at or below its mean the sum is no evidence (conservative)
    sd = math.sqrt(n * (n + cells) / (cells + 1.0) * var_w)
    b = _tilt(w, mult, n, t, mean)
    y = _log_rate(w, mult, n, b)
    x = np.exp(y + b * w)
    v = x / (1.0 - x) ** 2
    kaa, kab, kbb = float(np.sum(mult * v)), float(np.sum(mult * w * v)), float(np.sum(mult * w * w * v))
    det = kaa * kbb - kab * kab
    y0 = math.log(n / (n + cells))
    r0 = math.exp(y0)
    kaa0 = cells * r0 / (1.0 - r0) ** 2
    # -log of the tilted against the untilted joint density's normalizer, at the two saddlepoints.
    alt = -float(np.sum(mult * np.log1p(-x))) - n * y - b * t
    null = -cells * math.log1p(-r0) - n * y0
    signed_root = math.sqrt(max(2.0 * (null - alt), 0.0))
    if signed_root < 1e-3 or det <= 0.0:
        return _exact_if_few(w, mult, n, t, float(special.ndtr(-(t - mean) / sd)))
    u = b * math.sqrt(det / kaa0)
    tail = float(special.ndtr(-signed_root)) + math.exp(-0.5 * signed_root**2) / math.sqrt(2.0 * math.pi) * (
        1.0 / u - 1.0 / signed_root
    )
    return _exact_if_few(w, mult, n, t, min(1.0, max(tail, 0.0)))


def _exact_if_few(w: np.ndarray, mult: np.ndarray, n: int, t: float, saddlepoint: float) -> float:
    """The exact tail where few compositions reach ``t`` (the saddlepoint, a smooth law's, misses the
    atoms' own mass there), or where few steps count them all (a lattice: few distinct weights)."""
    log_total = _log_compositions(n, float(mult.sum()))
    few = saddlepoint * math.exp(min(log_total, 700.0)) <= EXACT_COUNT
    log_count = _log_count_reaching(w[::-1], mult[::-1], n, t, EXACT_NODES if few else LATTICE_NODES)
    if log_count is None:
        return saddlepoint
    return float(min(1.0, math.exp(log_count - log_total)))


def _log_compositions(n: int, parts: float) -> float:
    """log of the number of compositions of ``n`` into ``parts`` parts, ``C(n + parts - 1, n)``."""
    return float(special.gammaln(n + parts) - special.gammaln(n + 1.0) - special.gammaln(parts))


class _TooManySteps(Exception):
    """The exact count would take more than its budget of steps."""


def _log_count_reaching(values: np.ndarray, mult: np.ndarray, n: int, t: float, budget: int) -> float | None:
    """log of the number of compositions of ``n`` into the cells (``values`` decreasing, ``mult`` cells
    each) whose sum reaches ``t``, or ``None`` when counting them would take more than ``budget`` steps.
    Sums within ``1e-9`` (relative) below ``t`` count as reaching it: the statistic and these sums add
    the same weights in other orders (and products that tie, 1 x 4 and 2 x 2, are one sum), and counting
    one more atom only raises the tail."""
    tol = 1e-9 * max(1.0, abs(t))
    vals = [float(v) for v in values] + [0.0]
    sizes = [float(c) for c in mult]
    after = [float(c) for c in np.concatenate((np.cumsum(mult[::-1])[::-1], [0.0]))]  # cells in groups h..
    descending = -np.asarray(values, dtype=np.float64)
    steps = 0

    def log_ways(m: int, parts: float) -> float:
        """log of the number of ways to put ``m`` records into ``parts`` cells."""
        if m == 0:
            return 0.0
        if parts <= 0.0:
            return -math.inf
        return math.lgamma(m + parts) - math.lgamma(m + 1.0) - math.lgamma(parts)

    def log_ways_run(lo: int, hi: int, parts: float) -> np.ndarray:
        """``log_ways(k, parts)`` for ``k = lo .. hi``, each the same float ``log_ways`` gives. The counts of
        cells are whole numbers, so that the lgammas are read from ``_lgamma_table``."""
        whole = int(parts) if float(parts).is_integer() and parts > 0.0 else 0
        table = _lgamma_table(hi + whole + 1) if whole else None
        if table is None:
            return np.fromiter((log_ways(k, parts) for k in range(lo, hi + 1)), dtype=np.float64, count=hi + 1 - lo)
        # (lgamma(k + parts) - lgamma(k + 1)) - lgamma(parts), in log_ways's order.
        out = table[lo + whole : hi + whole + 1] - table[lo + 1 : hi + 2] - table[whole]
        if lo == 0:
            out[0] = 0.0
        return out

    def count(m: int, g: int, need: float) -> float:
        nonlocal steps
        steps += 1
        if steps > budget:
            raise _TooManySteps
        if need <= tol:
            return log_ways(m, after[g])
        if m == 0 or g >= len(sizes) or m * vals[g] < need - tol:
            return -math.inf
        if m == 1:
            reach = int(np.searchsorted(descending, tol - need, side="right"))
            cells = after[g] - after[max(reach, g)]
            return math.log(cells) if cells > 0 else -math.inf
        terms: list[float] = []
        for h in range(g, len(sizes)):
            v, v_next = vals[h], vals[h + 1]
            if m * v < need - tol:
                break
            steps += 1
            if steps > budget:
                raise _TooManySteps
            # j >= 1 records in group h (none in groups g .. h - 1), the other m - j after h: from
            # j_closed on every completion reaches ``need``; below it (down to j_low) some may.
            j_closed = next(j for j in range(max(1, math.floor((need - tol) / v)), m + 1) if need - j * v <= tol)
            if j_closed <= m:
                # log_ways(j, sizes[h]) + log_ways(m - j, after[h + 1]) for j = j_closed .. m, added as
                # arrays (each sum the same float as one by one).
                firsts = log_ways_run(j_closed, m, sizes[h])
                seconds = log_ways_run(0, m - j_closed, after[h + 1])[::-1]
                terms.extend((firsts + seconds).tolist())
            j_low = 1 if v <= v_next else max(1, math.ceil((need - tol - m * v_next) / (v - v_next) - 1e-9))
            for j in range(j_low, j_closed):
                rest = count(m - j, h + 1, need - j * v)
                if rest > -math.inf:
                    terms.append(log_ways(j, sizes[h]) + rest)
        if not terms:
            return -math.inf
        top = max(terms)
        if top == -math.inf:
            return top
        # ``x - top`` for each term as the same floats, their exponentials added by ``sum`` in the same order.
        return top + math.log(sum(map(math.exp, (np.array(terms) - top).tolist())))

    try:
        return count(n, 0, t)
    except (_TooManySteps, RecursionError):
        return None


LGAMMA_TABLE = 1 << 20
"""Whole numbers below this have their lgamma kept in ``_lgamma_table`` (8 MB at most); a count over
more records and cells than that computes its terms one by one."""

_lgammas = np.zeros(0)


def _lgamma_table(top: int) -> np.ndarray | None:
    """``math.lgamma(x)`` at ``x = 0 .. top`` at least (inf at the pole 0), or None beyond
    ``LGAMMA_TABLE``. Kept for the process: a count's closed terms read runs of it, every count the same
    values. Two threads may grow it at once: each computes the same floats, and keeps its own copy."""
    global _lgammas
    table = _lgammas
    if table.shape[0] > top:
        return table
    if top >= LGAMMA_TABLE:
        return None
    size = min(LGAMMA_TABLE, max(top + 1, 2 * table.shape[0]))
    more = (math.lgamma(float(x)) if x > 0 else math.inf for x in range(table.shape[0], size))
    table = np.concatenate((table, np.fromiter(more, dtype=np.float64, count=size - table.shape[0])))
    _lgammas = table
    return table


def _cells(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct weights and how many cells have each; beyond ``EXACT_CELLS`` distinct weights, runs of
    sorted weights spanning at most ``MERGE_WIDTH`` merged at their largest."""
    values, counts = np.unique(weights, return_counts=True)
    if values.size <= EXACT_CELLS:
        return values, counts.astype(np.float64)
    groups = np.floor((values - values[0]) / MERGE_WIDTH).astype(np.int64)
    ends = np.flatnonzero(np.diff(groups)) + 1
    starts = np.concatenate(([0], ends))
    stops = np.concatenate((ends, [values.size]))
    return values[stops - 1], np.add.reduceat(counts, starts).astype(np.float64)


def _log_rate(w: np.ndarray, mult: np.ndarray, n: int, b: float) -> float:
    """``y`` with ``sum mult x / (1 - x) = n``, ``x = exp(y + b w)``: Newton from the right, where the
    left side is convex and increasing in ``y``, so that no step overshoots."""
    bw = b * w
    y_top = -float(bw.max())
    y = y_top - 0.5 / (n + 1.0)  # the largest cell alone holds more than n there
    for _ in range(200):
        x = np.exp(y + bw)
        m = x / (1.0 - x)
        f = float(np.sum(mult * m)) - n
        if f <= n * 1e-13:
            break
        step = f / float(np.sum(mult * m / (1.0 - x)))
        y -= step
        if step <= 1e-15 * max(1.0, abs(y)):
            break
    return y


def _tilt(w: np.ndarray, mult: np.ndarray, n: int, t: float, mean: float) -> float:
    """``b > 0`` with ``sum mult w x / (1 - x) = t`` at the matching ``y``: the tilted law's mean of
    ``T`` is ``t`` (it rises with ``b`` from ``mean`` towards ``n max w``)."""

    def excess(b: float) -> float:
        x = np.exp(_log_rate(w, mult, n, b) + b * w)
        return float(np.sum(mult * w * x / (1.0 - x))) - t

    if excess(0.0) >= 0.0:
        return 0.0  # t within rounding of the mean (a lattice sum can land there): no tilt, no bracket
    hi = 1.0
    while excess(hi) < 0.0:
        hi *= 2.0
        if hi > 1e12:
            break
    return float(optimize.brentq(excess, 0.0, hi, xtol=1e-14, rtol=1e-12, maxiter=300))
