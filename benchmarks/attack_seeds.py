"""``python -m benchmarks.attack_seeds``: the tuning attacks at more than one seed.

``benchmarks.review_queue`` and ``make bench`` judge every attack at seed 0. A gate change that relaxes a
detector (so that clean data that is merely new is not blocked) must keep blocking the attacks when they
are drawn anew, so this runs each tuning attack (``benchmarks.attacks.ATTACKS``) at the given seeds with
the default policy at that seed, and records per scan: the verdict, the detectors that asked for a
block, and how many records the review queue holds, poisoned and all.

    python -m benchmarks.attack_seeds --seeds 1,2,3 --out benchmarks/results/tuning-attacks-seeds-1-3.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.attacks import ATTACKS, build
from benchmarks.benign_seeds import sweep
from dataward.gates.report import GateReport


def _attack_row(case: Any, report: GateReport) -> dict[str, Any]:
    poison = np.asarray(case.poison, dtype=bool)
    queued = np.asarray(report.records.flagged, dtype=bool)
    return {
        "verdict": report.verdict,
        "blockers": sorted(d for d, result in report.results.items() if result.block),
        "queued": int(queued.sum()),
        "queued_poison": int((queued & poison).sum()),
    }


def run(seeds: list[int], names: list[str]) -> dict[str, dict[str, Any]]:
    """``{"name@seed": {verdict, blockers, queued, queued_poison, seconds}}`` for every attack and seed."""
    return sweep(seeds, names, build, _attack_row)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attack_seeds", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    parser.add_argument("--attacks", help="comma-separated attacks (default: every tuning attack)")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    names = args.attacks.split(",") if args.attacks else list(ATTACKS)
    unknown = sorted(set(names) - set(ATTACKS))
    if unknown:
        parser.error(f"unknown attack(s): {', '.join(unknown)}; known: {', '.join(ATTACKS)}")
    figures = run([int(s) for s in args.seeds.split(",")], names)
    verdicts = [row["verdict"] for row in figures.values()]
    print(", ".join(f"{verdicts.count(v)} {v}" for v in ("block", "review", "pass")) + f" of {len(figures)} scans")
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
