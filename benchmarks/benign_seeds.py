"""``python -m benchmarks.benign_seeds``: the benign situations at more than one seed.

The benign-shift suite (``benchmarks.shifts``) runs at seed 0 in ``make bench``; a property such as "clean
data that is merely new is never blocked" must also hold when the data are drawn anew and the gate samples
with another seed. Each situation is built with ``shifts.build(name, seed, "full")`` and scanned with the
default policy at that seed (every detector that applies, with the situation's validation set). Printed
and written per scan: the verdict, the detectors that asked for a block, and how many records the
review queue holds (every one of them clean).

    python -m benchmarks.benign_seeds --seeds 0,1,2,3 --out benchmarks/results/benign-seeds-0-3.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import shifts
from dataward.gates import scan
from dataward.gates.gate import blocking_detectors
from dataward.gates.report import GateReport


def scan_at_seed(case: Any, seed: int) -> GateReport:
    """The whole gate on a benchmark case (a benign situation or an attack) with the default policy at
    ``seed``: its baseline, contribution, schema and validation set, and its first baseline and groups
    when it has them."""
    return scan(
        case.baseline,
        case.contribution,
        case.schema,
        case.validation,
        {"seed": seed},
        first_baseline=getattr(case, "first_baseline", None),
        groups=getattr(case, "groups", None),
    )


def sweep(
    seeds: list[int],
    names: list[str],
    build: Callable[[str, int], Any],
    describe: Callable[[Any, GateReport], dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """``{"name@seed": describe(case, report) | {seconds}}``: every case ``build(name, seed)`` scanned at
    its seed (``scan_at_seed``), printed as it finishes."""
    out: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        for name in names:
            started = time.perf_counter()
            case = build(name, seed)
            row = describe(case, scan_at_seed(case, seed))
            out[f"{name}@{seed}"] = row | {"seconds": round(time.perf_counter() - started, 1)}
            print(name, seed, out[f"{name}@{seed}"], flush=True)
    return out


def _benign_row(case: Any, report: GateReport) -> dict[str, Any]:
    return {
        "group": case.group,
        "verdict": report.verdict,
        "blockers": blocking_detectors(report.results, report.policy["block_p"]),
        "queued": int(np.asarray(report.records.flagged, dtype=bool).sum()),
    }


def run(seeds: list[int], names: list[str]) -> dict[str, dict[str, Any]]:
    """``{"name@seed": {group, verdict, blockers, queued, seconds}}`` for every situation and seed."""
    return sweep(seeds, names, lambda name, seed: shifts.build(name, seed, "full"), _benign_row)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.benign_seeds", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds")
    parser.add_argument("--situations", help="comma-separated situations (default: every one of every group)")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    names = args.situations.split(",") if args.situations else [n for group in shifts.GROUPS.values() for n in group]
    figures = run([int(s) for s in args.seeds.split(",")], names)
    blocked = [key for key, row in figures.items() if row["verdict"] == "block"]
    print(f"{len(blocked)} of {len(figures)} scans blocked: {', '.join(blocked) or 'none'}")
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
