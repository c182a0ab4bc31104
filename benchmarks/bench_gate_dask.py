"""Partitioned and distributed gate scans: one-shot in process, partitioned on the local engine, and on
a Dask cluster of 1 and 2 workers, over the same contribution written as Parquet partitions.

Synthetic embeddings (Gaussian class clusters with a few flipped labels): no real data set of this size
is at hand. Every run's report is checked equal to the first (verdict, flags, every p-value); times are
given as ratios to the one-shot scan measured in this same process. CPU time is the scanning process's
(every thread, ``time.process_time``) plus, on Dask, the workers' (user + system, ``getrusage``). Peak
memory is the peak resident set of the scanning process during each run (Linux ``VmHWM``, reset before
the run) and, on Dask, the largest of the workers' (each worker's own, also reset before the run).

    python -m benchmarks.bench_gate_dask --baseline 200000 --contribution 100000 --workers 1,2
    python -m benchmarks.bench_gate_dask --scheduler tcp://HOST:8786   # an existing cluster
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BLOCK = 50_000


def write_side(
    path: Path, n: int, dim: int, centres: np.ndarray, rng: np.random.Generator, flips: float, rows: int
) -> list[str]:
    """``n`` records in Parquet files of ``rows`` rows, written a block at a time (never held whole)."""
    path.mkdir(parents=True, exist_ok=True)
    files, writer, in_file = [], None, 0
    classes = centres.shape[0]
    for start in range(0, n, BLOCK):
        size = min(BLOCK, n - start)
        labels = rng.integers(0, classes, size)
        x = centres[labels] + rng.standard_normal((size, dim), dtype=np.float32)
        flipped = rng.random(size) < flips
        labels[flipped] = (labels[flipped] + 1) % classes
        table = pa.table(
            {
                "emb": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), type=pa.float32()), dim),
                "label": pa.array([f"c{c}" for c in labels], type=pa.string()),
            }
        )
        offset = 0
        while offset < size:
            if writer is None:
                files.append(str(path / f"part-{len(files):05d}.parquet"))
                writer, in_file = pq.ParquetWriter(files[-1], table.schema), 0
            take = min(rows - in_file, size - offset)
            writer.write_table(table.slice(offset, take))
            offset, in_file = offset + take, in_file + take
            if in_file == rows:
                writer.close()
                writer = None
    if writer is not None:
        writer.close()
    return files


def reset_peak() -> None:
    """Start a new peak-memory window for this process (Linux: clear VmHWM; elsewhere no-op)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    """Peak resident memory of this process since ``reset_peak`` (Linux VmHWM), else since it started.

    ``ru_maxrss`` alone is not enough: a Dask worker process inherits its parent's at start, so every
    worker would report the scanning process's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_now() -> float:
    """User + system CPU seconds of the calling process, every thread."""
    return time.process_time()


def summary(report: Any, seconds: float) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 2),
        "verdict": report.verdict,
        "flagged": int(report.records.flagged.sum()),
        "flagged_at_alpha": int(report.records.flagged_at_alpha.sum()),
        "seconds_per_detector": report.extras.get("timings"),
    }


def fingerprint(report: Any) -> str:
    return json.dumps(report.to_dict(), sort_keys=True, default=str)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=int, default=200_000)
    parser.add_argument("--contribution", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--flips", type=float, default=0.01, help="share of contribution labels flipped")
    parser.add_argument("--partition-rows", type=int, default=25_000)
    parser.add_argument("--workers", default="1,2", help="Dask LocalCluster sizes to run (worker processes)")
    parser.add_argument("--scheduler", default=None, help="run on this existing Dask cluster instead")
    parser.add_argument("--no-one-shot", action="store_true", help="skip the in-memory one-shot scan")
    parser.add_argument("--detectors", nargs="*", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from dataward.gates import scan

    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.classes, args.dim), dtype=np.float32) * 0.7
    schema = {"label": "label", "inputs": [{"name": "emb", "kind": "embedding", "dim": args.dim}]}
    policy: dict[str, Any] = {"detectors": args.detectors} if args.detectors else {}
    out: dict[str, Any] = {
        "baseline": args.baseline,
        "contribution": args.contribution,
        "dim": args.dim,
        "partition_rows": args.partition_rows,
        "data": "synthetic embeddings: Gaussian class clusters, a share of contribution labels flipped",
        "machine": platform.platform(),
        "python": platform.python_version(),
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="dataward-bench-") as tmp:
        base_files = write_side(Path(tmp, "b"), args.baseline, args.dim, centres, rng, 0.0, BLOCK)
        parts = write_side(Path(tmp, "c"), args.contribution, args.dim, centres, rng, args.flips, args.partition_rows)
        baseline = pa.concat_tables(pq.read_table(f) for f in base_files)
        reference: str | None = None

        def record(name: str, report: Any, seconds: float, cpu: float, **extra: Any) -> None:
            nonlocal reference
            row = {**summary(report, seconds), "cpu_seconds": round(cpu, 2), **extra}
            row["peak_rss_mb_scanning_process"] = round(peak_mb())
            if reference is None:
                reference = fingerprint(report)
            row["same_report_as_first"] = fingerprint(report) == reference
            out["runs"][name] = row
            print(name, json.dumps(row), flush=True)

        if not args.no_one_shot:
            contribution = pa.concat_tables(pq.read_table(f) for f in parts)
            reset_peak()
            started, cpu = time.perf_counter(), cpu_now()
            report = scan(baseline, contribution, schema, policy=policy)
            record("one_shot", report, time.perf_counter() - started, cpu_now() - cpu)
            del contribution, report
        reset_peak()
        started, cpu = time.perf_counter(), cpu_now()
        report = scan(baseline, parts, schema, policy=policy, engine="local")
        record("local_partitioned", report, time.perf_counter() - started, cpu_now() - cpu)

        import distributed

        def worker_peak() -> float:
            from benchmarks.bench_gate_dask import peak_mb

            return peak_mb()

        def worker_reset() -> None:
            from benchmarks.bench_gate_dask import reset_peak

            reset_peak()

        def worker_cpu() -> float:
            import resource as r

            usage = r.getrusage(r.RUSAGE_SELF)
            return usage.ru_utime + usage.ru_stime

        def cluster_cpu(client: Any) -> float:
            return cpu_now() + sum(client.run(worker_cpu).values())

        if args.scheduler:
            with distributed.Client(args.scheduler) as client:
                n = len(client.scheduler_info(n_workers=-1)["workers"])
                reset_peak()
                client.run(worker_reset)
                started, cpu = time.perf_counter(), cluster_cpu(client)
                report = scan(baseline, parts, schema, policy=policy, client=client)
                seconds, cpu = time.perf_counter() - started, cluster_cpu(client) - cpu
                peaks = client.run(worker_peak)
                record(f"dask_{n}_workers", report, seconds, cpu, worker_peak_mb=max(peaks.values()))
        else:
            for workers in [int(w) for w in args.workers.split(",") if w]:
                with (
                    distributed.LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=":0",
                        silence_logs=40,
                    ) as cluster,
                    distributed.Client(cluster) as client,
                ):
                    reset_peak()
                    client.run(worker_reset)
                    started, cpu = time.perf_counter(), cluster_cpu(client)
                    report = scan(baseline, parts, schema, policy=policy, client=client)
                    seconds, cpu = time.perf_counter() - started, cluster_cpu(client) - cpu
                    peaks = client.run(worker_peak)
                    record(f"dask_{workers}_workers", report, seconds, cpu, worker_peak_mb=round(max(peaks.values())))
    first = next(iter(out["runs"].values()))
    out["ratio_to_first"] = {name: round(r["seconds"] / first["seconds"], 2) for name, r in out["runs"].items()}
    out["cpu_ratio_to_first"] = {
        name: round(r["cpu_seconds"] / first["cpu_seconds"], 2) for name, r in out["runs"].items()
    }
    print(json.dumps({"ratio_to_first": out["ratio_to_first"], "cpu_ratio_to_first": out["cpu_ratio_to_first"]}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
