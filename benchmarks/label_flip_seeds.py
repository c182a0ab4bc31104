"""``python -m benchmarks.label_flip_seeds``: label flips against cleanlab, seed after seed.

The attack benchmark compares the gate's per-record score with cleanlab's ``find_label_issues`` (the peer
``cleanlab_label_issues``) at seed 0 only, where one record is 0.01 of recall at 1% FPR on a 100-flip case.
This runs every label-flip case (the tuning attacks, both held-out sets and the fixed counts) at several
seeds, each case drawn anew and scanned with the default policy at that seed (``scan_at_seed``), cleanlab
on the same case at the same seed, and records per scan: recall at 1% FPR and AUROC of the gate's
combined score, of ``label_consistency``'s own p-values and of cleanlab's score, and the gate's verdict.

The summary per case is the mean over seeds and the paired count of seeds where the gate is above, level
with or below cleanlab, with a two-sided sign test over the seeds that differ: a gap of one record at one
seed is not a gap in the detector.

    python -m benchmarks.label_flip_seeds --seeds 0,1,2,3,4 --out benchmarks/results/label-flip-seeds.json

Each finished scan is written to ``--out`` at once (a rerun with the same file skips the scans it holds),
so a long run can be stopped and resumed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from benchmarks.metrics import auroc, recall_at_fpr

TUNING = ["random_flips_5pct", "random_flips_20pct", "random_flips_5pct_text", "targeted_flips", "text_targeted_flips"]
HELDOUT = ["random_flips_10pct_tabular", "photo_targeted_flips", "wine_targeted_flips"]
HELDOUT2 = ["random_flips_2pct_digits"]
FIXED = ["label_flip:25:5000", "label_flip:50:5000", "label_flip:100:5000"]
FPR = 0.01
SCORES = ("gate", "label_consistency", "cleanlab")


def builder(name: str) -> Callable[[int], Any]:
    """The case ``name`` at a seed: a tuning or held-out attack, or a fixed count ``kind:count:size``."""
    from benchmarks.attacks import build
    from benchmarks.attacks.fixed_counts import fixed_count
    from benchmarks.attacks.heldout import build_heldout
    from benchmarks.attacks.heldout2 import build_heldout2

    if name.count(":") == 2:
        kind, count, size = name.split(":")
        return lambda seed: fixed_count(kind, int(count), int(size), seed=seed)
    if name in HELDOUT:
        return lambda seed: build_heldout(name, seed)
    if name in HELDOUT2:
        return lambda seed: build_heldout2(name, seed)
    return lambda seed: build(name, seed)


def _figures(scores: np.ndarray, poison: np.ndarray) -> dict[str, float]:
    return {
        "recall_at_1pct_fpr": round(recall_at_fpr(scores, poison, FPR), 4),
        "auroc": round(auroc(scores, poison), 5),
    }


def run_case(name: str, seed: int) -> dict[str, Any]:
    """One case at one seed: the gate and cleanlab on the same batch."""
    from benchmarks.benign_seeds import scan_at_seed
    from benchmarks.peers.cleanlab_peers import CleanlabLabelIssues

    case = builder(name)(seed)
    poison = np.asarray(case.poison, dtype=bool)
    started = time.perf_counter()
    report = scan_at_seed(case, seed)
    gate_seconds = time.perf_counter() - started
    started = time.perf_counter()
    peer = CleanlabLabelIssues().score(case.baseline, case.contribution, case.schema, seed=seed)
    peer_seconds = time.perf_counter() - started
    row: dict[str, Any] = {
        "poisoned": int(poison.sum()),
        "records": int(poison.size),
        "verdict": report.verdict,
        "gate": _figures(np.asarray(report.records.score, dtype=float), poison),
        "cleanlab": _figures(np.asarray(peer.scores, dtype=float), poison),
        "gate_seconds": round(gate_seconds, 1),
        "cleanlab_seconds": round(peer_seconds, 1),
    }
    consistency = report.results.get("label_consistency")
    if consistency is not None:
        row["label_consistency"] = _figures(1.0 - np.asarray(consistency.p_values, dtype=float), poison)
    return row


def sign_test(above: int, below: int) -> float:
    """Two-sided sign test p-value over the seeds where the two scores differ (1 when none differ)."""
    if above + below == 0:
        return 1.0
    return float(stats.binomtest(above, above + below, 0.5).pvalue)


def summarise(rows: dict[str, dict[str, Any]], names: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    """Per case: mean figures over the seeds run, and the gate's paired record against cleanlab."""
    out = []
    for name in names:
        runs = [rows[f"{name}@{s}"] for s in seeds if f"{name}@{s}" in rows]
        if not runs:
            continue
        summary: dict[str, Any] = {"case": name, "seeds": len(runs), "poisoned": runs[0]["poisoned"]}
        for score in SCORES:
            present = [r[score] for r in runs if score in r]
            for metric in ("recall_at_1pct_fpr", "auroc"):
                summary[f"{score}_{metric}"] = float(np.mean([f[metric] for f in present])) if present else None
        for metric in ("recall_at_1pct_fpr", "auroc"):
            above = sum(r["gate"][metric] > r["cleanlab"][metric] for r in runs)
            below = sum(r["gate"][metric] < r["cleanlab"][metric] for r in runs)
            summary[f"{metric}_above_level_below"] = [above, len(runs) - above - below, below]
            summary[f"{metric}_sign_p"] = round(sign_test(above, below), 4)
        summary["verdicts"] = [r["verdict"] for r in runs]
        out.append(summary)
    return out


def markdown(summary: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table (means over seeds; above / level / below cleanlab per seed)."""

    def cell(row: dict[str, Any], score: str) -> str:
        recall, area = row[f"{score}_recall_at_1pct_fpr"], row[f"{score}_auroc"]
        return "-" if recall is None else f"{recall:.3f} / {area:.4f}"

    lines = [
        "| case (poisoned) | seeds | gate R@1% / AUROC | label_consistency alone | cleanlab | gate vs cleanlab, R@1% "
        "(above/level/below, sign p) | AUROC (above/level/below, sign p) | verdicts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary:
        r, a = row["recall_at_1pct_fpr_above_level_below"], row["auroc_above_level_below"]
        verdicts = ", ".join(
            f"{row['verdicts'].count(v)} {v}" for v in ("block", "review", "pass") if v in row["verdicts"]
        )
        lines.append(
            f"| {row['case']} ({row['poisoned']}) | {row['seeds']} | {cell(row, 'gate')} | "
            f"{cell(row, 'label_consistency')} | {cell(row, 'cleanlab')} | {r[0]}/{r[1]}/{r[2]}, "
            f"{row['recall_at_1pct_fpr_sign_p']:.2g} | {a[0]}/{a[1]}/{a[2]}, {row['auroc_sign_p']:.2g} | {verdicts} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.label_flip_seeds", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    parser.add_argument(
        "--cases", help="comma-separated cases (default: every label-flip case; fixed counts as kind:count:size)"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON file of every scan (resumed when it exists)")
    args = parser.parse_args(argv)
    known = TUNING + HELDOUT + HELDOUT2 + FIXED
    names = args.cases.split(",") if args.cases else known
    unknown = [n for n in names if n not in known and n.count(":") != 2]
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(known)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict[str, dict[str, Any]] = json.loads(args.out.read_text()) if args.out.exists() else {}
    for seed in seeds:
        for name in names:
            key = f"{name}@{seed}"
            if key in rows:
                continue
            rows[key] = run_case(name, seed)
            args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
            print(key, rows[key], flush=True)
    print(markdown(summarise(rows, names, seeds)))


if __name__ == "__main__":
    main()
