"""``python -m benchmarks.fisher_sum_null``: how often clean batches reach a level in Fisher's sum test.

``label_consistency`` adds ``-log p`` over the batch (``calibration.fisher_excess_p_value``). Its
records' conformal p-values share one calibration set, so under the null their cells are uniform over
the compositions of ``n`` into ``N = n_calibration + 1`` parts. Two tails of the sum are compared on
the same clean batches, in one process:

* ``gamma``: the law used before 2026-12-02, a gamma matched to the sum's mean and variance (kept here
  as the baseline);
* ``saddlepoint``: ``shared_calibration_law.composition_sum_tail``, what the detector uses now.

Plain simulation (Dirichlet cell masses, multinomial counts) gives the share of clean batches at or
below ``1e-2 .. 1e-4``; ``1e-6``, where a block is decided, is out of its reach, so there the test's
chance of reaching the level is estimated by importance sampling (a Pólya urn tilted towards the
extreme cells, reweighted) at the sum each law puts at ``1e-6``. A valid test stays at or below the level.

    python -m benchmarks.fisher_sum_null --batches 200000 --out benchmarks/results/fisher-sum-null.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from dataward.gates import shared_calibration_law
from dataward.gates.shared_calibration_law import composition_sum_tail

LEVELS = (1e-2, 1e-3, 1e-4)
BLOCK_LEVEL = 1e-6
SIZES = ((50, 50), (227, 171), (716, 178), (200, 2000))
"""(calibration records, batch records): a small first import, breast cancer, the demo's self-test, and
a batch ten times its calibration set."""
URN_MAX_BATCH = 500
"""The urn's weights vary more with every record: beyond this batch size its estimate at the block level
is too noisy to read, and only the simulated levels are reported."""


def fisher_weights(n_calibration: int) -> np.ndarray:
    """``-log(k / N)`` for the ``N`` cells."""
    big_n = n_calibration + 1
    return -np.log(np.arange(1, big_n + 1) / big_n)


def gamma_tail(weights: np.ndarray, n: int, t: float) -> float:
    """The gamma law matched to the sum's mean and variance (the test before 2026-12-02)."""
    big_n = weights.size
    mean, var = n * weights.mean(), n * weights.var() * (n + big_n) / (big_n + 1.0)
    return float(stats.gamma.sf(t, mean**2 / var, scale=var / mean))


def simulated_sums(n_calibration: int, n: int, batches: int, rng: np.random.Generator) -> np.ndarray:
    """Fisher's sum over ``batches`` clean batches: cell masses ``Dirichlet(1, ..., 1)``, then counts."""
    weights = fisher_weights(n_calibration)
    out = []
    for start in range(0, batches, 20_000):
        size = min(20_000, batches - start)
        out.append(rng.multinomial(n, rng.dirichlet(np.ones(weights.size), size=size)) @ weights)
    return np.concatenate(out)


def level_sum(tail: object, weights: np.ndarray, n: int, level: float) -> float:
    """The sum at which ``tail(weights, n, t)`` is ``level``."""
    lo = hi = n * weights.mean() * 1.0001
    while tail(weights, n, hi) > level:  # type: ignore[operator]
        lo, hi = hi, min(hi * 1.1, n * weights.max() * (1 - 1e-9))
    return float(optimize.brentq(lambda t: np.log(tail(weights, n, t)) - np.log(level), lo, hi))  # type: ignore[operator]


def importance_sampled_tail(
    weights: np.ndarray, n: int, t: float, samples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """``P(sum >= t)`` under the null by a tilted Pólya urn: (estimate, standard error). In the urn a
    record joins cell ``k`` with chance ``(1 + c_k) / (N + i)`` (the uniform law over compositions); the
    tilt multiplies it by ``exp(b w_k)``, ``b`` the saddlepoint's."""
    big_n = weights.size
    values, counts = shared_calibration_law._cells(weights)
    mean = n * float(np.sum(values * counts)) / big_n
    tilt = np.exp(shared_calibration_law._tilt(values, counts, n, t, mean) * weights)
    estimates = []
    for start in range(0, samples, 5_000):
        size = min(5_000, samples - start)
        cells_held = np.zeros((size, big_n))
        log_ratio, total = np.zeros(size), np.zeros(size)
        for i in range(n):
            mass = (1.0 + cells_held) * tilt
            sums = mass.sum(axis=1)
            pick = (np.cumsum(mass, axis=1) < (rng.random(size) * sums)[:, None]).sum(axis=1)
            cell = np.minimum(pick, big_n - 1)
            log_ratio += np.log(sums) - np.log(big_n + i) - np.log(tilt[cell])
            cells_held[np.arange(size), cell] += 1.0
            total += weights[cell]
        estimates.append(np.where(total >= t, np.exp(log_ratio), 0.0))
    joined = np.concatenate(estimates)
    return float(joined.mean()), float(joined.std() / np.sqrt(joined.size))


def run(batches: int, samples: int, seed: int = 0) -> list[dict[str, object]]:
    """One row per size: the share of clean batches at or below each level under both laws, and at
    ``BLOCK_LEVEL`` each law's actual rate by importance sampling."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for n_cal, n in SIZES:
        started = time.perf_counter()
        weights = fisher_weights(n_cal)
        sums = simulated_sums(n_cal, n, batches, rng)
        row: dict[str, object] = {"calibration": n_cal, "batch": n, "batches": batches}
        for name, tail in (("gamma", gamma_tail), ("saddlepoint", composition_sum_tail)):
            shares = {str(level): float(np.mean(sums >= level_sum(tail, weights, n, level))) for level in LEVELS}
            row[name] = shares
            if n <= URN_MAX_BATCH:
                t = level_sum(tail, weights, n, BLOCK_LEVEL)
                rate, error = importance_sampled_tail(weights, n, t, samples, rng)
                row[name] |= {str(BLOCK_LEVEL): rate, f"{BLOCK_LEVEL}_error": error}
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
    return rows


def render(rows: list[dict[str, object]]) -> str:
    """A Markdown table: share of clean batches at or below each level, gamma -> saddlepoint."""
    levels = [*map(str, LEVELS), str(BLOCK_LEVEL)]
    head = "| calibration / batch | " + " | ".join(f"at {lv}" for lv in levels) + " |"
    lines = [head, "|" + " --- |" * (len(levels) + 1)]
    for row in rows:
        cells = []
        for lv in levels:
            old, new = row["gamma"].get(lv), row["saddlepoint"].get(lv)  # type: ignore[attr-defined]
            cells.append("-" if old is None else f"{old:.2g} -> **{new:.2g}**")
        lines.append(f"| {row['calibration']} / {row['batch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100_000, help="clean batches simulated per size")
    parser.add_argument("--samples", type=int, default=20_000, help="urn samples at the block level")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = run(args.batches, args.samples, args.seed)
    print(render(rows))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
