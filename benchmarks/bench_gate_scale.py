"""Scale benchmark of one full gate run: an M-record contribution against an N-record baseline.

Synthetic 384-d embeddings (Gaussian class clusters), the only synthetic data the benchmarks use.
Prints wall time, peak resident memory and the per-phase times as JSON.

    python benchmarks/bench_gate_scale.py --baseline 1000000 --contribution 100000 --dim 384
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np
import pyarrow as pa


def make_table(n: int, dim: int, classes: int, centres: np.ndarray, rng: np.random.Generator) -> pa.Table:
    labels = rng.integers(0, classes, n)
    chunks = []
    for start in range(0, n, 100_000):
        part = labels[start : start + 100_000]
        x = centres[part] + rng.standard_normal((part.shape[0], dim), dtype=np.float32)
        chunks.append(pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), type=pa.float32()), dim))
    emb = pa.chunked_array(chunks)
    return pa.table({"emb": emb, "label": pa.array([f"c{c}" for c in labels], type=pa.string())})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=int, default=1_000_000)
    parser.add_argument("--contribution", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detectors", nargs="*", default=None, help="detector names (default: all)")
    parser.add_argument("--reference-size", type=int, default=None, help="policy reference_size")
    args = parser.parse_args()

    from dataward.gates import scan
    from dataward.gates.fit_memo import MEMO

    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.classes, args.dim), dtype=np.float32) * 0.5
    baseline = make_table(args.baseline, args.dim, args.classes, centres, rng)
    contribution = make_table(args.contribution, args.dim, args.classes, centres, rng)
    schema = {"label": "label", "inputs": [{"name": "emb", "kind": "embedding", "dim": args.dim}]}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    MEMO.clear()  # timed as a first scan: no fit of an earlier scan in this process reused
    start = time.perf_counter()
    policy: dict = {}
    if args.detectors:
        policy["detectors"] = args.detectors
    if args.reference_size:
        policy["reference_size"] = args.reference_size
    report = scan(baseline, contribution, schema, policy=policy)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "baseline": args.baseline,
                "contribution": args.contribution,
                "dim": args.dim,
                "wall_seconds": round(wall, 1),
                "peak_rss_mb": round(peak),
                "rss_before_scan_mb": round(rss_before),
                "verdict": report.verdict,
                "seconds_per_detector": report.extras.get("timings"),
                "flagged": int(report.records.flagged.sum()),
                "detectors": {k: v["p_value"] for k, v in report.to_dict()["detectors"].items()},
                "machine": platform.platform(),
                "python": platform.python_version(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
