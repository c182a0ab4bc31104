"""``python -m benchmarks.attack_seeds``: the attacks at more than one seed.

``benchmarks.review_queue`` and ``make bench`` judge every attack at seed 0. A gate change that relaxes a
detector (so that clean data that is merely new is not blocked) must keep blocking the attacks when they
are drawn anew, so this runs each attack of the chosen sets at the given seeds with the default policy at
that seed, and records per scan: the verdict, the detectors that asked for a block, how many records the
review queue holds, poisoned and all, and the combined record score's recall at 1% FPR and AUROC.

Sets: ``tuning`` (``benchmarks.attacks.ATTACKS``), ``heldout``, ``heldout2``, ``heldout3``, ``heldout4``,
``heldout5``, ``heldout6``, ``heldout7``, ``heldout8``, ``heldout9`` and ``heldout10`` (the held-out sets),
``fixed`` (the fixed-count image patch, 25, 50 and 100 poisoned crops in 5,000).

    python -m benchmarks.attack_seeds --seeds 1,2,3 --out benchmarks/results/tuning-attacks-seeds-1-3.json
    python -m benchmarks.attack_seeds --sets tuning,heldout,heldout2,fixed --seeds 0,1,2 --out FILE.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.attacks import ATTACKS, build
from benchmarks.attacks.fixed_counts import case_name, fixed_count
from benchmarks.attacks.heldout import HELDOUT_ATTACKS, build_heldout
from benchmarks.attacks.heldout2 import HELDOUT2_ATTACKS, build_heldout2
from benchmarks.attacks.heldout3 import HELDOUT3_ATTACKS, build_heldout3
from benchmarks.attacks.heldout4 import HELDOUT4_ATTACKS, build_heldout4
from benchmarks.attacks.heldout5 import HELDOUT5_ATTACKS, build_heldout5
from benchmarks.attacks.heldout6 import HELDOUT6_ATTACKS, build_heldout6
from benchmarks.attacks.heldout7 import HELDOUT7_ATTACKS, build_heldout7
from benchmarks.attacks.heldout8 import HELDOUT8_ATTACKS, build_heldout8
from benchmarks.attacks.heldout9 import HELDOUT9_ATTACKS, build_heldout9
from benchmarks.attacks.heldout10 import HELDOUT10_ATTACKS, build_heldout10
from benchmarks.benign_seeds import sweep
from benchmarks.metrics import auroc, recall_at_fpr
from dataward.gates.gate import blocking_detectors
from dataward.gates.report import GateReport

FIXED_IMAGE = {
    case_name("image_patch", count, 5000): partial(fixed_count, "image_patch", count, 5000) for count in (25, 50, 100)
}


def _fixed(name: str, seed: int) -> Any:
    return FIXED_IMAGE[name](seed=seed)


SETS: dict[str, tuple[list[str], Callable[[str, int], Any]]] = {
    "tuning": (list(ATTACKS), build),
    "heldout": (list(HELDOUT_ATTACKS), build_heldout),
    "heldout2": (list(HELDOUT2_ATTACKS), build_heldout2),
    "heldout3": (list(HELDOUT3_ATTACKS), build_heldout3),
    "heldout4": (list(HELDOUT4_ATTACKS), build_heldout4),
    "heldout5": (list(HELDOUT5_ATTACKS), build_heldout5),
    "heldout6": (list(HELDOUT6_ATTACKS), build_heldout6),
    "heldout7": (list(HELDOUT7_ATTACKS), build_heldout7),
    "heldout8": (list(HELDOUT8_ATTACKS), build_heldout8),
    "heldout9": (list(HELDOUT9_ATTACKS), build_heldout9),
    "heldout10": (list(HELDOUT10_ATTACKS), build_heldout10),
    "fixed": (list(FIXED_IMAGE), _fixed),
}


def _attack_row(case: Any, report: GateReport) -> dict[str, Any]:
    poison = np.asarray(case.poison, dtype=bool)
    queued = np.asarray(report.records.flagged, dtype=bool)
    return {
        "verdict": report.verdict,
        "blockers": blocking_detectors(report.results, report.policy["block_p"]),
        "queued": int(queued.sum()),
        "queued_poison": int((queued & poison).sum()),
        "recall_at_1pct_fpr": round(float(recall_at_fpr(report.records.score, poison, 0.01)), 4),
        "auroc": round(float(auroc(report.records.score, poison)), 4),
    }


def run(seeds: list[int], names: list[str], set_name: str = "tuning") -> dict[str, dict[str, Any]]:
    """``{"name@seed": {verdict, blockers, queued, queued_poison, recall_at_1pct_fpr, auroc, seconds}}`` for
    every attack ``names`` of ``set_name`` and every seed."""
    return sweep(seeds, names, SETS[set_name][1], _attack_row)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attack_seeds", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    parser.add_argument("--sets", default="tuning", help=f"comma-separated sets of attacks: {', '.join(SETS)}")
    parser.add_argument("--attacks", help="comma-separated attacks of the one set given (default: all of them)")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    sets = args.sets.split(",")
    unknown_sets = sorted(set(sets) - set(SETS))
    if unknown_sets:
        parser.error(f"unknown set(s): {', '.join(unknown_sets)}; known: {', '.join(SETS)}")
    if args.attacks and len(sets) != 1:
        parser.error("--attacks needs exactly one set in --sets")
    seeds = [int(s) for s in args.seeds.split(",")]
    figures: dict[str, dict[str, Any]] = {}
    for set_name in sets:
        known = SETS[set_name][0]
        names = args.attacks.split(",") if args.attacks else known
        unknown = sorted(set(names) - set(known))
        if unknown:
            parser.error(f"unknown attack(s): {', '.join(unknown)}; known in {set_name}: {', '.join(known)}")
        figures.update({f"{set_name}:{key}": row for key, row in run(seeds, names, set_name).items()})
    verdicts = [row["verdict"] for row in figures.values()]
    print(", ".join(f"{verdicts.count(v)} {v}" for v in ("block", "review", "pass")) + f" of {len(figures)} scans")
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
