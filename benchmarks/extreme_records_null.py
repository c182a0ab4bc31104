"""``python -m benchmarks.extreme_records_null``: how often clean batches reach a p-value in the extreme-records test.

Clean batches only: calibration and batch scores drawn from one distribution, turned into p-values by
``calibration.tail_p_values`` (the exponential tail beyond the largest calibration score, as the
detectors rank with), then judged by

* ``exact rates``: the test as it was before 2026-12-02, ``P(Binomial(n, p_(j)) >= j)`` with the
  p-values taken as exact rates (kept here as the baseline);
* ``calibrated``: ``calibration.extreme_records_p_value``, which keeps the calibration set as random
  as the batch and the fitted tail scale uncertain.

For each distribution, calibration size and batch size, the share of clean batches at or below each
level: a valid test stays at or below the level. Normal and exponential scores have the tail the
extrapolation assumes (or a lighter one); lognormal and Student-t (3) scores have heavier tails.

    python -m benchmarks.extreme_records_null --batches 10000 --out benchmarks/results/extreme-records-null.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

from dataward.gates.calibration import extreme_records_p_value, order_statistic_p_value, tail_p_values

LEVELS = (1e-2, 1e-3, 1e-4, 1e-6)
SIZES = ((700, 500), (227, 171))
"""(calibration records, batch records): a digits-sized and a breast-cancer-sized case."""


def exact_rates_p_value(p_values: np.ndarray, n_calibration: int) -> float:
    """The extreme-records test before 2026-12-02: each p-value an exact rate (no calibration randomness)."""
    return order_statistic_p_value(p_values, n_calibration, _exact_rate_tail)


def _exact_rate_tail(count: int, n: int, level: float, n_calibration: int) -> float:
    return float(stats.binom.sf(count - 1, n, min(max(level, 0.0), 1.0)))


def _draws(rng: np.random.Generator) -> dict[str, Callable[[int], np.ndarray]]:
    return {
        "normal": lambda k: rng.normal(size=k),
        "exponential": lambda k: rng.exponential(size=k),
        "lognormal (sigma 1.5)": lambda k: rng.lognormal(0.0, 1.5, size=k),
        "student t (3)": lambda k: rng.standard_t(3, size=k),
    }


def run(batches: int, seed: int = 0) -> list[dict[str, object]]:
    """One row per distribution and size: the share of clean batches at or below each level, both tests."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, draw in _draws(rng).items():
        for n_cal, n in SIZES:
            started = time.perf_counter()
            exact, calibrated = np.ones(batches), np.ones(batches)
            for b in range(batches):
                p = tail_p_values(draw(n_cal), draw(n))
                exact[b] = exact_rates_p_value(p, n_cal)
                calibrated[b] = extreme_records_p_value(p, n_cal)
            rows.append(
                {
                    "scores": name,
                    "calibration": n_cal,
                    "batch": n,
                    "batches": batches,
                    "exact_rates": {str(level): float(np.mean(exact <= level)) for level in LEVELS},
                    "calibrated": {str(level): float(np.mean(calibrated <= level)) for level in LEVELS},
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.extreme_records_null", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--batches", type=int, default=10_000, help="clean batches per distribution and size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = run(args.batches, args.seed)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
