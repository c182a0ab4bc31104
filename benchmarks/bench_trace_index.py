"""Trace from a record with the catalog's holder index and without it, in one process.

On a ward built as ``bench_provenance`` builds it (kept with ``--ward``, built when missing), one
process measures, in turn:

* *without*: the holder index emptied, so that every trace reads and parses every contribution's and
  version's id list, as every trace did before the index (the same code path a ward made before the
  index takes until ``dataward reindex``);
* ``reindex``: the index built from the lists (what ``dataward reindex`` does for an old ward);
* *with*: the same traces answered from the index;

each warm (a long-lived process) and cold (the per-process parsed lists and lineage forgotten before
every call, as a one-shot CLI process starts), in wall-clock and CPU time of the process, for every
handle kind of ``bench_provenance``; then ``verify``'s check of the index, and the index's size.
Then, as separate processes: ``dataward trace RECORD --json`` (CPU time of the child, with the index
and, on a copy whose index was emptied, without), beside ``dataward ledger head`` (what any command
costs to start and open the ward).

Usage::

    nice -n 10 python -m benchmarks.bench_trace_index --size 100000 --catalog sqlite --ward /tmp/wards
    nice -n 10 python -m benchmarks.bench_trace_index --write-cost   # indexing on the write path

Figures go to ``benchmarks/results/trace_index.json`` (one entry per size and catalog).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.bench_provenance import _commit, _reuse, build, shape, time_traces
from dataward.catalog import holder_index
from dataward.service import holders
from dataward.service.ward import Ward

RESULTS = Path(__file__).resolve().parent / "results" / "trace_index.json"
CLI_RUNS = 5


def _clear(ward: Ward) -> None:
    with ward.db.transaction() as conn:
        holder_index.clear(conn)


def _cpu_of(command: list[str], env: dict[str, str]) -> float:
    """CPU seconds (user + system) of one child process running ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def time_cli(folder: Path, records: list[str], *, with_index: bool) -> dict[str, float]:
    """Median CPU seconds of ``dataward trace RECORD --json`` and of ``dataward ledger head``, each a new
    process, on ``folder`` (a copy whose index is emptied first when ``with_index`` is false)."""
    work = Path(tempfile.mkdtemp(prefix="dataward-bench-trace-cli-"))
    try:
        ward_dir = work / "ward"
        shutil.copytree(folder, ward_dir)
        if not with_index:
            copy = Ward.open(ward_dir)
            _clear(copy)
            copy.db.dispose()
        exe = str(Path(sys.executable).with_name("dataward"))
        env = {**os.environ, "DATAWARD_WARD": str(ward_dir)}
        head = [_cpu_of([exe, "ledger", "head", "--json"], env) for _ in range(CLI_RUNS)]
        trace = [_cpu_of([exe, "trace", records[i % len(records)], "--json"], env) for i in range(CLI_RUNS)]
        return {
            "trace_cpu_p50_s": round(statistics.median(trace), 3),
            "trace_cpu_max_s": round(max(trace), 3),
            "ledger_head_cpu_p50_s": round(statistics.median(head), 3),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def time_write_cost(lists: int = 4, size: int = 1_000_000) -> dict[str, Any]:
    """CPU seconds of indexing id lists as a contribution does (``holders.index_list``, SQLite, one
    process): a 1,000-id list, then ``lists`` lists of ``size`` random ids one after the other (the
    ``FANOUT``-th of a size class is due to merge that class's segments, in the same transaction when
    within ``holder_index.MERGE_BUDGET``); then ``reindex``, which runs the merges left."""
    import numpy as np

    from dataward.domain.idarrays import binary_to_ids
    from dataward.service.recordstore import ids_table, table_to_parquet

    folder = Path(tempfile.mkdtemp(prefix="dataward-bench-index-write-"))
    try:
        ward, _ = Ward.init(folder / "ward")
        rng = np.random.default_rng(0)
        out: dict[str, Any] = {"lists": []}
        for n in [1_000] + [size] * lists:
            binary = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
            digest = ward.store.put(table_to_parquet(ids_table(binary_to_ids(binary), np.arange(1, n + 1))))
            start = time.process_time()
            with ward.db.transaction() as conn:
                holders.index_list(conn, ward.store, digest, "")
                stats = holder_index.stats(conn)
            out["lists"].append({"ids": n, "cpu_s": round(time.process_time() - start, 3), **stats})
        # The merges the writes left past holder_index.MERGE_BUDGET, run by reindex.
        start = time.process_time()
        with ward.db.transaction() as conn:
            done = holders.reindex(conn, ward.store)
        out["reindex"] = {"cpu_s": round(time.process_time() - start, 3), **done}
        ward.db.dispose()
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(size: int, catalog: str, keep: Path, kinds: list[str] | None = None) -> dict[str, Any]:
    url = None
    stack = None
    if catalog == "postgresql":
        import contextlib

        from benchmarks.pg_cluster import create_database, postgres_cluster

        stack = contextlib.ExitStack()
        url = create_database(stack.enter_context(postgres_cluster()))
    try:
        built = _reuse(keep, size)
        if built is None:
            keep.mkdir(parents=True, exist_ok=True)
            built = build(keep, size, url)
            saved = {k: built[k] for k in ("handles", "leaked", "build_s")}
            (keep / "built.json").write_text(json.dumps(saved))
        ward: Ward = built["ward"]
        handles = {k: v for k, v in built["handles"].items() if kinds is None or k in kinds}
        _clear(ward)
        without = {"warm": time_traces(ward, handles, cold=False), "cold": time_traces(ward, handles, cold=True)}
        start, start_cpu = time.perf_counter(), time.process_time()
        made = ward.reindex()
        reindex = {"s": round(time.perf_counter() - start, 2), "cpu_s": round(time.process_time() - start_cpu, 2)}
        with_index = {"warm": time_traces(ward, handles, cold=False), "cold": time_traces(ward, handles, cold=True)}
        with ward.db.reading() as conn:
            start_cpu = time.process_time()
            checked, problems = holders.verify_index(conn, ward.store)
            verify_cpu = time.process_time() - start_cpu
            stats = holder_index.stats(conn)
        assert not problems, problems
        cli = {}
        if catalog == "sqlite":
            ward.db.dispose()
            records = handles["record"]
            cli = {
                "with": time_cli(keep / "ward", records, with_index=True),
                "without": time_cli(keep / "ward", records, with_index=False),
            }
        row = {
            "size": size,
            "catalog": catalog,
            "code": _commit(),
            **shape(size),
            "versions": built["versions"],
            "index": {**stats, "lists_added": made["lists_added"]},
            "reindex": reindex,
            "verify_index_cpu_s": round(verify_cpu, 2),
            "verify_index_entries": checked,
            "without_index": without,
            "with_index": with_index,
            "cli": cli,
        }
        print(json.dumps(row), flush=True)
        return row
    finally:
        if stack is not None:
            stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--catalog", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--ward", type=Path, help="folder of kept wards (FOLDER/CATALOG-SIZE)")
    parser.add_argument("--kinds", help="comma-separated handle kinds to trace (default: every kind)")
    parser.add_argument(
        "--write-cost", action="store_true", help="only time indexing lists as contributions do, and print it"
    )
    args = parser.parse_args()
    if args.write_cost:
        print(json.dumps(time_write_cost()))
        return
    if args.ward is None:
        parser.error("--ward is needed")
    kinds = args.kinds.split(",") if args.kinds else None
    if args.catalog == "postgresql":
        # A kept PostgreSQL ward's database lives in a throwaway cluster: build it in this run.
        keep = Path(tempfile.mkdtemp(prefix="dataward-bench-trace-pg-"))
    else:
        keep = args.ward / f"{args.catalog}-{args.size}"
    row = run(args.size, args.catalog, keep, kinds)
    row["command"] = (
        f"nice -n 10 python -m benchmarks.bench_trace_index --size {args.size} --catalog {args.catalog}"
        + (f" --kinds {shlex.quote(args.kinds)}" if args.kinds else "")
    )
    row["machine"] = f"{os.cpu_count()} cores, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"
    row["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": []}
    data["runs"] = [r for r in data["runs"] if (r["size"], r["catalog"]) != (args.size, args.catalog)] + [row]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
