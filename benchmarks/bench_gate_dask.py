"""Partitioned and distributed gate scans: one-shot in process, partitioned on the local engine, and on
a Dask cluster of 1 and 2 workers, over the same contribution written as Parquet partitions.

Synthetic embeddings (Gaussian class clusters with a few flipped labels): no real data set of this size
is at hand. Every run's report is checked equal to the first (verdict, flags, every p-value); times are
given as ratios to the one-shot scan measured in this same process. CPU time is the scanning process's
(every thread, ``time.process_time``) plus, on Dask, the workers' (user + system, ``getrusage``). Peak
memory is the peak resident set of the scanning process during each run (Linux ``VmHWM``, reset before
the run) and, on Dask, the largest of the workers' (each worker's own, also reset before the run).

Both sides are written straight to Parquet a block at a time and passed to the partitioned runs as
paths, so neither is ever held as one table (only the one-shot scan reads them whole, as it must).
Reports are compared by a digest of their JSON without the per-record list, plus a digest of every
per-record array (at 1,000,000 records the per-record JSON list alone takes over a gigabyte).
``--max-memory-gb`` stops the benchmark (exit status 3) when its resident memory, or a Dask worker's,
passes the cap; ``--stages`` prints each stage's seconds and resident memory (before, after, peak).

    python -m benchmarks.bench_gate_dask --baseline 200000 --contribution 100000 --workers 1,2
    python -m benchmarks.bench_gate_dask --scheduler tcp://HOST:8786   # an existing cluster
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import json
import os
import platform
import resource
import sys
import tempfile
import threading
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
    """A digest of everything the report says: its JSON without the per-record list, and the bytes of
    every per-record array (equal bytes give equal JSON)."""
    from dataward.gates.report import GateReport

    records = report.records
    empty = type(records)(np.zeros(0), [], np.zeros(0), np.zeros(0, bool), {}, {})
    whole = GateReport(**{**report.__dict__, "records": empty})
    digest = hashlib.sha256()
    digest.update(json.dumps(_without_records(whole), sort_keys=True, default=str).encode())
    digest.update("\n".join(records.record_ids).encode())
    arrays = [records.rows, records.score, records.flagged]
    arrays += [records.detector_scores[k] for k in sorted(records.detector_scores)]
    arrays += [records.detector_flags[k] for k in sorted(records.detector_flags)]
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _without_records(report: Any) -> dict[str, Any]:
    out = report.to_dict()
    out.pop("records")
    out.pop("counts")
    return out


def rss_mb(field: str = "VmRSS") -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemoryCap:
    """Samples this process's resident memory (and the largest anonymous part) every 0.2 s; past
    ``limit_gb`` it prints what it saw and ends the process with status 3."""

    def __init__(self, limit_gb: float | None) -> None:
        self.limit_mb = limit_gb * 1024 if limit_gb else None
        self.peak_anon = 0.0
        self.samples: list[tuple[float, float]] = []
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            rss = rss_mb()
            self.peak_anon = max(self.peak_anon, rss_mb("RssAnon"))
            self.samples.append((time.perf_counter(), rss))
            if self.limit_mb is not None and rss > self.limit_mb:
                print(f"stopped: resident memory {rss:.0f} MB passed --max-memory-gb", file=sys.stderr, flush=True)
                os._exit(3)
            time.sleep(0.2)

    def peak_between(self, start: float, end: float) -> float:
        return max((r for t, r in self.samples if start <= t <= end), default=0.0)


class Stages:
    """Wraps the scan's stages to print each one's seconds and resident memory (``--stages``; the record
    stage is the scan's own ``record_stage`` timing, between ``give_samples`` and the contribution mapped back)."""

    NAMES = ("survey", "take", "give_samples", "combine_records", "queued_flags", "_findings", "_extras")

    def __init__(self, cap: MemoryCap, *, local_only: bool = False) -> None:
        self.cap, self.rows = cap, []
        scan_module = importlib.import_module("dataward.gates.scanning")
        for name in self.NAMES:
            self._wrap(scan_module, name, name)
        partitioned = importlib.import_module("dataward.gates.partitioned")
        self._wrap(partitioned.PartitionedSide, "hashes", "baseline hashes")
        self._wrap(partitioned.PartitionedSide, "__init__", "baseline survey")
        self._wrap(partitioned.Gathered, "contribution", "contribution mapped back")
        self._wrap(partitioned.Gathered, "add", "record stage: one partition spilled")
        if local_only:
            # The partition's own work (read, featurize, search); on Dask it runs in the workers.
            self._wrap(scan_module, "score_one", "record stage: one partition scored")
        from dataward.gates.base import registered

        for name, cls in registered().items():
            for method in ("fit", "finish", "score"):
                if method in cls.__dict__:
                    self._wrap(cls, method, f"{name}.{method}")

    def _wrap(self, owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr)
        stages = self

        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            t0, r0, a0 = time.perf_counter(), rss_mb(), rss_mb("RssAnon")
            try:
                return fn(*args, **kwargs)
            finally:
                t1 = time.perf_counter()
                row = (label, t0, t1, r0, rss_mb(), stages.cap.peak_between(t0, t1), a0, rss_mb("RssAnon"))
                stages.rows.append(row)
                # As it happens, so that a run stopped by a cap still shows how far it got.
                print(
                    f"  {label}: {t1 - t0:.1f} s, resident {row[3]:.0f} -> {row[4]:.0f} MB "
                    f"(anonymous {a0:.0f} -> {row[7]:.0f} MB), process CPU {cpu_now():.1f} s",
                    flush=True,
                )

        setattr(owner, attr, wrapped)

    def report(self) -> list[dict[str, Any]]:
        out = []
        for label, t0, t1, r0, r1, peak, a0, a1 in self.rows:
            row = {"stage": label, "seconds": round(t1 - t0, 2), "rss_before_mb": round(r0)}
            row |= {"rss_after_mb": round(r1), "rss_peak_mb": round(max(peak, r0, r1))}
            row |= {"anonymous_before_mb": round(a0), "anonymous_after_mb": round(a1)}
            out.append(row)
        self.rows = []
        return out


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
    parser.add_argument("--no-local", action="store_true", help="skip the partitioned scan on the local engine")
    parser.add_argument("--detectors", nargs="*", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-memory-gb", type=float, default=None, help="stop past this resident memory")
    parser.add_argument("--stages", action="store_true", help="print seconds and memory per stage")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from dataward.gates import scan
    from dataward.gates.fit_memo import MEMO

    cap = MemoryCap(args.max_memory_gb)
    stages = Stages(cap, local_only=not args.workers and not args.scheduler) if args.stages else None
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
        reference: str | None = None

        def record(name: str, report: Any, seconds: float, cpu: float, **extra: Any) -> None:
            nonlocal reference
            row = {**summary(report, seconds), "cpu_seconds": round(cpu, 2), **extra}
            row["peak_rss_mb_scanning_process"] = round(peak_mb())
            row["peak_anonymous_mb_scanning_process"] = round(cap.peak_anon)
            if stages is not None:
                row["stages"] = stages.report()
            digest = fingerprint(report)
            if reference is None:
                reference = digest
            row["same_report_as_first"] = digest == reference
            row["report_digest"] = digest  # equal digests across code versions: the same report
            out["runs"][name] = row
            print(name, json.dumps(row), flush=True)

        if not args.no_one_shot:
            baseline = pa.concat_tables(pq.read_table(f) for f in base_files)
            contribution = pa.concat_tables(pq.read_table(f) for f in parts)
            reset_peak()
            cap.peak_anon = 0.0
            MEMO.clear()  # timed as a first scan: no fit of an earlier scan in this process reused
            started, cpu = time.perf_counter(), cpu_now()
            report = scan(baseline, contribution, schema, policy=policy)
            record("one_shot", report, time.perf_counter() - started, cpu_now() - cpu)
            del baseline, contribution, report
        # The partitioned runs read both sides from their Parquet files, a partition at a time.
        baseline = base_files
        if not args.no_local:
            reset_peak()
            cap.peak_anon = 0.0
            MEMO.clear()  # timed as a first scan: no fit of an earlier scan in this process reused
            started, cpu = time.perf_counter(), cpu_now()
            report = scan(baseline, parts, schema, policy=policy, engine="local", partition_rows=args.partition_rows)
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
                cap.peak_anon = 0.0
                client.run(worker_reset)
                MEMO.clear()  # timed as a first scan: no fit of an earlier scan in this process reused
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
                        memory_limit=f"{args.max_memory_gb}GB" if args.max_memory_gb else "auto",
                    ) as cluster,
                    distributed.Client(cluster) as client,
                ):
                    reset_peak()
                    cap.peak_anon = 0.0
                    client.run(worker_reset)
                    MEMO.clear()  # timed as a first scan: no fit of an earlier scan in this process reused
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
