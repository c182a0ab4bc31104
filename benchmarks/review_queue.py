"""The review queue against the flags at alpha: precision and recall of what a reviewer is shown.

Each case is scanned once with the default policy (``flag_fdr`` 0.2). The report gives both sets: the
queue (``records.flagged``) and every detector's flags at alpha (``records.detector_flags``, what the
verdict counts). Ranking figures (recall at 1% FPR, AUROC) come from the records' scores, which the
queue does not change.

    python -m benchmarks.review_queue \\
        [--group tuning|heldout|heldout2|...|heldout10|fixed|benign|all] \\
        [--out FILE.json]

``heldout2`` is the second held-out set (``benchmarks/shifts/heldout2.py`` and
``benchmarks/attacks/heldout2.py``): its benign situations, then its attacks; ``heldout3`` the third
(``benchmarks/shifts/heldout3.py`` and ``benchmarks/attacks/heldout3.py``), likewise, ``heldout4`` the
fourth (``benchmarks/shifts/heldout4.py`` and ``benchmarks/attacks/heldout4.py``), ``heldout5`` the fifth
(``benchmarks/shifts/heldout5.py`` and ``benchmarks/attacks/heldout5.py``, images only), ``heldout6`` the
sixth (``benchmarks/shifts/heldout6.py`` and ``benchmarks/attacks/heldout6.py``, text and tables only) and
``heldout7`` the seventh (``benchmarks/shifts/heldout7.py`` and ``benchmarks/attacks/heldout7.py``, benign
near-copies and attacks hidden in near-copies among others), ``heldout8`` the eighth
(``benchmarks/shifts/heldout8.py`` and ``benchmarks/attacks/heldout8.py``), ``heldout9`` the ninth
(``benchmarks/shifts/heldout9.py`` and ``benchmarks/attacks/heldout9.py``) and ``heldout10`` the tenth
(``benchmarks/shifts/heldout10.py`` and ``benchmarks/attacks/heldout10.py``).

Rows print as they finish; ``--out`` keeps them as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import shifts
from benchmarks.attacks import ATTACKS, build
from benchmarks.attacks.fixed_counts import fixed_count
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
from benchmarks.benign_seeds import scan_at_seed
from benchmarks.metrics import auroc, recall_at_fpr
from benchmarks.shifts.base import SET_GROUPS

FIXED = [(kind, count, 5000) for kind in ("text_trigger", "image_patch", "label_flip") for count in (25, 50, 100)]


def _cases(group: str) -> Iterator[tuple[str, str, Any, np.ndarray]]:
    """(group, name, case, poison mask) for every case of ``group``."""
    if group in ("tuning", "all"):
        for name in ATTACKS:
            case = build(name, 0)
            yield "tuning attack", name, case, np.asarray(case.poison, dtype=bool)
    if group in ("heldout", "all"):
        for name in HELDOUT_ATTACKS:
            case = build_heldout(name, 0)
            yield "held-out attack", name, case, np.asarray(case.poison, dtype=bool)
    later_sets = [
        ("heldout2", "held-out 2 attack", HELDOUT2_ATTACKS, build_heldout2),
        ("heldout3", "held-out 3 attack", HELDOUT3_ATTACKS, build_heldout3),
        ("heldout4", "held-out 4 attack", HELDOUT4_ATTACKS, build_heldout4),
        ("heldout5", "held-out 5 attack", HELDOUT5_ATTACKS, build_heldout5),
        ("heldout6", "held-out 6 attack", HELDOUT6_ATTACKS, build_heldout6),
        ("heldout7", "held-out 7 attack", HELDOUT7_ATTACKS, build_heldout7),
        ("heldout8", "held-out 8 attack", HELDOUT8_ATTACKS, build_heldout8),
        ("heldout9", "held-out 9 attack", HELDOUT9_ATTACKS, build_heldout9),
        ("heldout10", "held-out 10 attack", HELDOUT10_ATTACKS, build_heldout10),
    ]
    for set_name, kind, attacks, build_attack in later_sets:
        if group == set_name:  # with "all", the "benign" block below runs these
            for name in shifts.GROUPS[set_name]:
                situation = shifts.build(name, 0, "full")
                yield f"benign ({set_name})", name, situation, np.zeros(len(situation.contribution), dtype=bool)
        if group in (set_name, "all"):
            for name in attacks:
                case = build_attack(name, 0)
                yield kind, name, case, np.asarray(case.poison, dtype=bool)
    if group in ("fixed", "all"):
        for kind, count, size in FIXED:
            case = fixed_count(kind, count, size, seed=0)
            yield "fixed count", case.name, case, np.asarray(case.poison, dtype=bool)
    if group in ("benign", "all"):
        for set_name, situations in shifts.GROUPS.items():
            for name in situations:
                situation = shifts.build(name, 0, "full")
                poison = np.zeros(len(situation.contribution), dtype=bool)
                yield f"benign ({set_name})", name, situation, poison


def _flag_figures(flags: np.ndarray, poison: np.ndarray) -> dict[str, Any]:
    caught = int((flags & poison).sum())
    return {
        "flagged": int(flags.sum()),
        "poisoned_flagged": caught,
        "clean_flagged": int((flags & ~poison).sum()),
        "precision": caught / int(flags.sum()) if flags.any() else None,
        "recall": caught / int(poison.sum()) if poison.any() else None,
    }


def run_case(group: str, name: str, case: Any, poison: np.ndarray) -> dict[str, Any]:
    """Scan one case as the suites scan it (``benign_seeds.scan_at_seed``: with its first baseline and
    groups when it has them) and measure the queue beside the flags at alpha."""
    started = time.perf_counter()
    report = scan_at_seed(case, 0)
    seconds = time.perf_counter() - started
    records = report.records
    at_alpha = records.flagged_at_alpha
    return {
        "group": group,
        "case": name,
        "records": int(poison.size),
        "poisoned": int(poison.sum()),
        "verdict": report.verdict,
        "recall_at_1pct_fpr": recall_at_fpr(records.score, poison, 0.01),
        "auroc": auroc(records.score, poison),
        "at_alpha": _flag_figures(at_alpha, poison),
        "queue": _flag_figures(np.asarray(records.flagged, dtype=bool), poison),
        "seconds": round(seconds, 1),
    }


def _cell(figures: dict[str, Any], poisoned: int) -> str:
    precision = "-" if figures["precision"] is None else f"{figures['precision']:.2f}"
    if not poisoned:
        return f"{figures['clean_flagged']} clean"
    return f"{figures['flagged']} ({precision} / {figures['recall']:.2f})"


def row(result: dict[str, Any]) -> str:
    """One Markdown table row: flags at alpha and queue as count (precision / recall)."""
    ranking = "" if not result["poisoned"] else f"{result['recall_at_1pct_fpr']:.2f} / {result['auroc']:.2f}"
    alpha, queue = _cell(result["at_alpha"], result["poisoned"]), _cell(result["queue"], result["poisoned"])
    return (
        f"| {result['group']} | {result['case']} ({result['poisoned']}/{result['records']}) | {result['verdict']} "
        f"| {ranking} | {alpha} | {queue} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--group",
        choices=[*SET_GROUPS, "fixed", "benign", "all"],
        default="all",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    print("| set | case (poisoned/records) | verdict | R@1% / AUROC | flags at alpha | review queue |")
    print("|---|---|---|---|---|---|")
    results = []
    for group, name, case, poison in _cases(args.group):
        result = run_case(group, name, case, poison)
        results.append(result)
        print(row(result), flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
