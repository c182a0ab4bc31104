"""``python -m benchmarks.split_batches``: a poison split across a sender's two batches, and clean data
sent the same way, with and without the joint scan (``dataward.gates.earlier_batches``).

Each case's contribution is cut in two halves at random, A and B, the poison shared between them. A is the
sender's earlier batch, already merged and promoted: **alone** judges B against the baseline with A in it
(what a ward did before the joint scan); **joint** folds into that report the scan of A and B together
against the baseline without A (``earlier_batches.joined``), which is what a ward does now. Per case:
both verdicts, and how many of B's poisoned records each queues.

Attacks (``--attacks``): the fixed-count text trigger and image patch (``attacks.fixed_counts``) with
``--counts`` poisoned records in all, in a contribution of ``--size`` records. Benign (``--sets``): every
clean situation of the named benign sets, whose contributions are split alike; none may be blocked.

    python -m benchmarks.split_batches --seeds 0,1,2 --out benchmarks/results/split-batches.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import shifts
from benchmarks.attacks.fixed_counts import fixed_count
from dataward.gates import scan
from dataward.gates.earlier_batches import joined

ATTACKS = ("text_trigger", "image_patch")
COUNTS = (8, 12, 16)
SIZE = 1_000
EARLIER = "earlier#1"


def halves(n: int, poison: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of A and B: the clean rows and the poisoned rows each cut in two at random, so that
    each half carries half the poison (A the extra one of an odd count)."""
    rng = np.random.default_rng(10_007 + seed)
    a, b = [], []
    for rows in (np.flatnonzero(~poison), np.flatnonzero(poison)):
        rows = rng.permutation(rows)
        cut = (len(rows) + 1) // 2
        a.append(rows[:cut])
        b.append(rows[cut:])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def judged(case: Any, seed: int) -> dict[str, Any]:
    """Both verdicts of B, and what each queues, for one case split in two."""
    poison = np.asarray(case.poison, dtype=bool)
    a, b = halves(len(case.contribution), poison, seed)
    part_a = case.contribution.iloc[a].reset_index(drop=True)
    part_b = case.contribution.iloc[b].reset_index(drop=True)
    policy = {"seed": seed}
    started = time.perf_counter()
    alone = scan(
        pd.concat([case.baseline, part_a], ignore_index=True), part_b, case.schema, case.validation, policy
    ).to_dict()
    together = scan(
        case.baseline, pd.concat([part_b, part_a], ignore_index=True), case.schema, case.validation, policy
    ).to_dict()
    ids = [r["record_id"] for r in together["records"]]
    earlier = {i: EARLIER for i in ids[len(part_b) :]}
    verdict_alone, queued_alone = alone["verdict"], _queued(alone, poison[b])
    folded = joined(alone, together, ids[: len(part_b)], earlier)
    return {
        "poisoned": [int(poison[a].sum()), int(poison[b].sum())],
        "records": [len(a), len(b)],
        "alone": verdict_alone,
        "alone_queued": queued_alone,
        "joint": folded["verdict"],
        "joint_queued": _queued(folded, poison[b]),
        "joint_scan": together["verdict"],
        "blocked_by": folded["earlier_batches"]["blocked_by"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def _queued(report: dict[str, Any], poison: np.ndarray) -> dict[str, int]:
    """Records of B queued, and poisoned ones among them."""
    flagged = np.array([r["flagged"] for r in report["records"]], dtype=bool)
    return {"queued": int(flagged.sum()), "poisoned": int((flagged & poison).sum())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="fixed-count kinds; '' for none")
    parser.add_argument("--counts", default=",".join(map(str, COUNTS)))
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--sets", default="", help="benign sets (tuning, heldout, heldout2 ...); '' for none")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    out: dict[str, Any] = {"size": args.size, "cases": {}}
    for seed in seeds:
        for kind in [k for k in args.attacks.split(",") if k]:
            for count in [int(c) for c in args.counts.split(",") if c]:
                name = f"{kind}_{count}_in_{args.size}@{seed}"
                out["cases"][name] = judged(fixed_count(kind, count, args.size, seed=seed), seed)
                print(name, out["cases"][name], flush=True)
        for group in [g for g in args.sets.split(",") if g]:
            for name, build in shifts.GROUPS[group].items():
                case = build(seed).as_case()
                out["cases"][f"{name}@{seed}"] = judged(case, seed) | {"benign": True}
                print(name, seed, out["cases"][f"{name}@{seed}"], flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
