"""Outliers' batch peers, exact against estimated from a sample, on the same contribution in one process.

``outliers`` tells a lone outlier from a member of a new group by each unusual record's nearest batch
peers: exactly (``O(n^2 d)``) up to ``EXACT_PEERS_MAX`` records, from a seeded sample of ``PEER_SAMPLE``
records above it. This runs the detector both ways on one contribution (the exact way by raising the
limit) and reports the cost of each and how far the estimate's answers are from the exact ones: records
put in a group by one and not the other, flags, and how many members of planted new groups each finds.

Synthetic embeddings (Gaussian class clusters, as ``bench_gate_dask``) with new groups planted: tight
clusters away from every class, of the given sizes.

    python -m benchmarks.bench_outlier_peers --baseline 200000 --contribution 50000 --groups 50,200,1000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa


def table(x: np.ndarray, labels: np.ndarray) -> pa.Table:
    dim = x.shape[1]
    emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), type=pa.float32()), dim)
    return pa.table({"emb": emb, "label": pa.array([f"c{c}" for c in labels], type=pa.string())})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=int, default=200_000)
    parser.add_argument("--contribution", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--groups", default="50,200,1000", help="sizes of the planted new groups")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from dataward.gates import scan
    from dataward.gates.detectors import outliers
    from dataward.gates.fit_memo import MEMO

    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.classes, args.dim), dtype=np.float32) * 0.7

    def side(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, args.classes, n)
        return centres[labels] + rng.standard_normal((n, args.dim), dtype=np.float32), labels

    baseline = table(*side(args.baseline))
    x, labels = side(args.contribution)
    sizes = [int(s) for s in args.groups.split(",") if s]
    rows = rng.permutation(args.contribution)
    planted: list[np.ndarray] = []
    start = 0
    for size in sizes:
        members = np.sort(rows[start : start + size])
        start += size
        # A new sub-population: as spread as a class, centred well away from every class.
        direction = rng.standard_normal(args.dim).astype(np.float32)
        centre = 30.0 * direction / np.linalg.norm(direction)
        x[members] = centre + rng.standard_normal((size, args.dim), dtype=np.float32)
        planted.append(members)
    contribution = table(x, labels)
    schema = {"label": "label", "inputs": [{"name": "emb", "kind": "embedding", "dim": args.dim}]}
    policy = {"detectors": ["outliers"]}

    runs: dict[str, Any] = {}
    results = {}
    limit = outliers.EXACT_PEERS_MAX
    for name, exact_max in (("exact", args.contribution), ("sampled", limit)):
        outliers.EXACT_PEERS_MAX = exact_max
        try:
            MEMO.clear()  # timed as a first scan: no fit of an earlier scan in this process reused
            started, cpu = time.perf_counter(), time.process_time()
            report = scan(baseline, contribution, schema, policy=policy)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            outliers.EXACT_PEERS_MAX = limit
        result = report.results["outliers"]
        results[name] = result
        # A group member's p-value is reported as 1; a planted member, far from the baseline, would
        # otherwise have a tiny one, so p == 1 tells which planted members were put in a group.
        runs[name] = {
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "outliers_seconds": report.extras["timings"]["outliers"],
            "flagged": int(result.flagged.sum()),
            "in_unusual_groups": int(result.summary["in_unusual_groups"]),
            "planted_found": [int((result.p_values[m] == 1.0).sum()) for m in planted],
            "planted_flagged": [int(result.flagged[m].sum()) for m in planted],
        }
        print(name, json.dumps(runs[name]), flush=True)
    exact, sampled = results["exact"], results["sampled"]
    out = {
        "baseline": args.baseline,
        "contribution": args.contribution,
        "dim": args.dim,
        "planted_group_sizes": sizes,
        "peer_sample": outliers.PEER_SAMPLE,
        "machine": platform.platform(),
        "python": platform.python_version(),
        "runs": runs,
        "cpu_ratio_sampled_to_exact": round(runs["sampled"]["cpu_seconds"] / runs["exact"]["cpu_seconds"], 3),
        "flags_only_exact": int((exact.flagged & ~sampled.flagged).sum()),
        "flags_only_sampled": int((sampled.flagged & ~exact.flagged).sum()),
        "flags_both": int((exact.flagged & sampled.flagged).sum()),
    }
    print(json.dumps({k: v for k, v in out.items() if k.startswith(("flags", "cpu_ratio"))}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
