"""``python -m benchmarks.clean_null``: how often the whole gate reviews or blocks clean batches of real data.

For each dataset and seed, a fresh stratified split (``data.split``): the baseline, the validation set
and the pool, all drawn from one dataset alike, so the pool (the contribution) is exchangeable with
the baseline and every verdict other than ``pass`` is a false alarm. Each batch is scanned with the
default policy at that seed; per batch the verdict, the detectors that asked for a block, and each
poisoning detector's contribution-level p-value are kept.

``--compare-exact-rates`` scans every batch a second time with the extreme-records test of before
2026-12-02 (each p-value taken as an exact rate, ``extreme_records_null.exact_rates_p_value``), in the
same process, so the two can be read side by side.

    python -m benchmarks.clean_null --datasets digits,breast_cancer,wine --seeds 100 --compare-exact-rates \\
        --out benchmarks/results/clean-null.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

from benchmarks import data
from benchmarks.extreme_records_null import exact_rates_p_value
from dataward.gates import scan
from dataward.gates.base import Evidence, registered

LEVELS = (1e-2, 1e-3, 1e-4, 1e-6)


@contextmanager
def _exact_rates():
    """The extreme-records test of before 2026-12-02, for the length of the block."""
    with patch("dataward.gates.calibration.extreme_records_p_value", exact_rates_p_value):
        yield


def scan_batch(name: str, seed: int) -> dict[str, Any]:
    """One clean batch of ``name`` at ``seed``: verdict, blockers, poisoning detectors' p-values."""
    dataset = data.load(name)
    parts = data.split(dataset, seed)
    report = scan(parts.baseline, parts.pool, dataset.schema, parts.validation, {"seed": seed})
    detectors = registered()
    return {
        "verdict": report.verdict,
        "blockers": sorted(d for d, r in report.results.items() if r.block),
        "p_values": {
            d: float(r.p_value)
            for d, r in report.results.items()
            if d in detectors and detectors[d].evidence == Evidence.POISONING
        },
        "records": len(parts.pool),
        "baseline": len(parts.baseline),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Verdict counts and, per level, the share of batches whose smallest poisoning p-value is at or below it."""
    smallest = [min(r["p_values"].values(), default=1.0) for r in rows]
    return {
        "batches": len(rows),
        "verdicts": dict(Counter(r["verdict"] for r in rows)),
        "blocked_by": dict(Counter(d for r in rows for d in r["blockers"])),
        "smallest_p_at_or_below": {str(level): sum(p <= level for p in smallest) / len(rows) for level in LEVELS},
    }


def run(names: list[str], seeds: int, compare: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        for version in ("calibrated", "exact_rates") if compare else ("calibrated",):
            started = time.perf_counter()
            rows = []
            for seed in range(seeds):
                if version == "exact_rates":
                    with _exact_rates():
                        rows.append(scan_batch(name, seed))
                else:
                    rows.append(scan_batch(name, seed))
            out[f"{name}/{version}"] = {
                **summarize(rows),
                "seconds": round(time.perf_counter() - started, 1),
                "rows": rows,
            }
            summary = {k: v for k, v in out[f"{name}/{version}"].items() if k != "rows"}
            print(name, version, json.dumps(summary), flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clean_null", description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="digits,breast_cancer,wine", help="comma-separated dataset names")
    parser.add_argument("--seeds", type=int, default=100, help="clean batches (splits) per dataset")
    parser.add_argument("--compare-exact-rates", action="store_true", help="also scan with the old extreme test")
    parser.add_argument("--out", type=Path, help="write every batch's figures to this JSON file")
    args = parser.parse_args(argv)
    results = run(args.datasets.split(","), args.seeds, args.compare_exact_rates)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
