"""``python -m benchmarks.text_cases``: every text attack and text benign situation of the given sets, scanned
whole at each seed, for a before/after comparison of a change to the text gate.

Each case is scanned as ``benchmarks.benign_seeds`` scans it (default policy at the seed, its validation
set). Written per scan: the verdict, the detectors that asked for a block, the records queued (and how many
of them poisoned), ``label_consistency``'s flags and the recall at 1% false-positive rate of the record
ranking. ``--compare OLD.json`` prints the scans whose figures differ and both sides' totals.

    python -m benchmarks.text_cases --seeds 0,1,2 --sets tuning,heldout2,heldout3,heldout4,heldout6 \\
        --out benchmarks/results/text-cases-new.json --compare benchmarks/results/text-cases-old.json

Building a case is needed to see whether it is text, so image-only sets are not offered.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import attack_seeds, shifts
from benchmarks.benign_seeds import scan_at_seed
from benchmarks.metrics import recall_at_fpr
from dataward.domain.schema import ColumnKind
from dataward.gates.gate import blocking_detectors

IMAGE_ONLY = ("heldout5", "fixed")
"""Sets without a text case (building their cases costs minutes)."""
COMPARED = ("verdict", "queued", "queued_poison", "lc_flagged", "r1")


def is_text(case: Any) -> bool:
    return any(col.kind == ColumnKind.TEXT for col in case.schema.inputs)


def describe(case: Any, seed: int) -> dict[str, Any]:
    report = scan_at_seed(case, seed)
    queued = np.asarray(report.records.flagged, dtype=bool)
    poison = np.asarray(getattr(case, "poison", np.zeros(queued.shape[0], bool)), dtype=bool)
    lc = report.results.get("label_consistency")
    return {
        "verdict": report.verdict,
        "blockers": blocking_detectors(report.results, report.policy["block_p"]),
        "queued": int(queued.sum()),
        "queued_poison": int((queued & poison).sum()),
        "records": int(queued.shape[0]),
        "poisoned": int(poison.sum()),
        "lc_flagged": int(np.asarray(lc.flagged).sum()) if lc is not None else None,
        "r1": round(float(recall_at_fpr(report.records.score, poison, 0.01)), 3) if poison.any() else None,
    }


def run(seeds: list[int], sets: list[str]) -> dict[str, dict[str, Any]]:
    """``{"A:set:attack@seed" | "B:situation@seed": figures}`` for every text case of ``sets``."""
    out: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        for set_name in sets:
            names, build = attack_seeds.SETS[set_name]
            for name in names:
                case = build(name, seed)
                if is_text(case):
                    out[f"A:{set_name}:{name}@{seed}"] = describe(case, seed)
                    print(f"A:{set_name}:{name}@{seed}", out[f"A:{set_name}:{name}@{seed}"], flush=True)
            for name in shifts.GROUPS[set_name]:
                situation = shifts.build(name, seed, "full")
                if situation.group == set_name and is_text(situation):
                    out[f"B:{name}@{seed}"] = describe(situation, seed)
                    print(f"B:{name}@{seed}", out[f"B:{name}@{seed}"], flush=True)
    return out


def totals(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Verdict counts and queued records, benign and attacks apart, with the attacks' mean recall."""
    benign = [r for k, r in rows.items() if k.startswith("B:")]
    attacks = [r for k, r in rows.items() if k.startswith("A:")]
    return {
        "benign": dict(Counter(r["verdict"] for r in benign)),
        "benign_queued": sum(r["queued"] for r in benign),
        "benign_records": sum(r["records"] for r in benign),
        "attacks": dict(Counter(r["verdict"] for r in attacks)),
        "attack_queued_poison": sum(r["queued_poison"] for r in attacks),
        "attack_queued_clean": sum(r["queued"] - r["queued_poison"] for r in attacks),
        "attack_mean_r1": round(float(np.mean([r["r1"] for r in attacks])), 3) if attacks else None,
    }


def compare(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[str]:
    """One line per scan whose figures differ, then both sides' totals over the scans they share."""
    shared = [k for k in new if k in old]
    lines = [
        f"{k}: {[old[k][f] for f in COMPARED]} -> {[new[k][f] for f in COMPARED]}"
        for k in shared
        if any(old[k][f] != new[k][f] for f in COMPARED)
    ]
    lines.append(f"old: {totals({k: old[k] for k in shared})}")
    lines.append(f"new: {totals({k: new[k] for k in shared})}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.text_cases", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--sets", default="tuning", help="comma-separated sets (held-out sets are measured once)")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--compare", type=Path, help="an earlier run's JSON file to compare with")
    args = parser.parse_args(argv)
    sets = args.sets.split(",")
    unknown = sorted(set(sets) - set(attack_seeds.SETS) | set(sets) & set(IMAGE_ONLY))
    if unknown:
        parser.error(f"unknown or image-only set(s): {', '.join(unknown)}")
    rows = run([int(s) for s in args.seeds.split(",")], sets)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if args.compare is not None:
        print("\n".join(compare(json.loads(args.compare.read_text(encoding="utf-8")), rows)))
    else:
        print(totals(rows))


if __name__ == "__main__":
    main()
