"""Where one import's time goes, thread by thread: a timeline of the functions it calls.

Each wrapped function's start, end and thread CPU time (``time.thread_time``) are recorded with the
thread that ran it, for a ``Ward.contribute(..., gate=False)`` of the bench_import CSV into a fresh
ward. The write transaction is split into taking the lock (``BEGIN IMMEDIATE`` and the checks before
the body), its body, and the commit (the synced write of the catalog's log). One JSON line a run::

    PYTHONPATH=src:. python benchmarks/import_timeline.py --records 1000000 --runs 3

``--table`` prints the last run as a table (offsets from the start of the import, in seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

from sqlalchemy import event

from benchmarks.bench_import import DATASET, TEXT_SCHEMA, make_text_csv
from dataward.catalog import holder_index, ledger_store, record_index
from dataward.io import readers
from dataward.service import contributions, holders, recordstore
from dataward.service.ward import Ward
from dataward.store import local as local_store
from dataward.store import tables as stored_tables


class Timeline:
    """Spans ``(name, thread, start, end, thread CPU seconds)`` of the wrapped calls."""

    def __init__(self) -> None:
        self.origin = time.perf_counter()
        self.spans: list[tuple[str, str, float, float, float]] = []
        self._lock = threading.Lock()

    def add(self, name: str, start: float, end: float, cpu: float) -> None:
        with self._lock:
            self.spans.append((name, threading.current_thread().name, start - self.origin, end - self.origin, cpu))

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, start, time.perf_counter(), time.thread_time() - cpu)

        return timed_call


def _patches(line: Timeline) -> list[Any]:
    digest_of = recordstore.Staged.digest.fget
    assert digest_of is not None
    wrapped = [
        (contributions, "read_table"),
        (readers.RecordDigests, "result"),
        (contributions, "stage_new_records"),
        (contributions, "store_new_records"),
        (contributions, "joined_ids_hash"),
        (recordstore, "_new_rows"),
        (recordstore, "_index_work"),
        (recordstore, "_put_chunk"),
        (recordstore, "_put_records_chunk"),
        (stored_tables, "table_to_parquet"),
        (stored_tables, "records_to_parquet"),
        (record_index, "insert_chunk_blocks"),
        (record_index, "insert_blocks"),
        (holder_index, "insert_blocks"),
        (holder_index, "_write_segment"),
        (holder_index, "compact"),
        (holders, "index_changes"),
        (ledger_store, "append"),
    ]
    out = [patch.object(module, name, line.wrap(name, getattr(module, name))) for module, name in wrapped]
    out.append(patch.object(recordstore.Staged, "digest", property(line.wrap("chunk_wait", digest_of))))
    store = local_store.LocalObjectStore
    out.append(patch.object(store, "put", line.wrap("store_put", store.put)))
    service = contributions.ContributionService
    out.append(patch.object(service, "_put_id_list", line.wrap("id_list", service._put_id_list)))
    out.append(patch.object(service, "_held_back", line.wrap("held_back", service._held_back)))
    return out


def _split_transactions(ward: Ward, line: Timeline) -> contextlib.AbstractContextManager[Any]:
    """Wrap the ward's write transactions: lock (until the body starts), body, commit."""
    db = ward.db
    plain = db.transaction
    commit_at: list[float] = []

    def on_commit(_conn: Any) -> None:
        commit_at.append(time.perf_counter())

    @contextlib.contextmanager
    def transaction(*args: Any, **kwargs: Any) -> Iterator[Any]:
        start, cpu = time.perf_counter(), time.thread_time()
        commit_at.clear()
        with plain(*args, **kwargs) as conn:
            body, body_cpu = time.perf_counter(), time.thread_time()
            line.add("txn_lock", start, body, body_cpu - cpu)
            yield conn
            end_body, end_cpu = time.perf_counter(), time.thread_time()
            line.add("txn_body", body, end_body, end_cpu - body_cpu)
        end = time.perf_counter()
        line.add("txn_commit_and_after", end_body, end, time.thread_time() - end_cpu)
        if commit_at:
            line.add("txn_driver_commit", commit_at[0], end, 0.0)

    event.listen(db.engine, "commit", on_commit)
    stack = contextlib.ExitStack()
    stack.callback(event.remove, db.engine, "commit", on_commit)
    stack.enter_context(patch.object(db, "transaction", transaction))
    return stack


def _watch_gc(line: Timeline) -> contextlib.AbstractContextManager[Any]:
    """Record the garbage collector's passes as spans ``gc<generation>``."""
    started: dict[str, tuple[float, float]] = {}

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started["gc"] = (time.perf_counter(), time.thread_time())
        elif "gc" in started:
            start, cpu = started.pop("gc")
            line.add(f"gc{info['generation']}", start, time.perf_counter(), time.thread_time() - cpu)

    gc.callbacks.append(callback)
    stack = contextlib.ExitStack()
    stack.callback(gc.callbacks.remove, callback)
    return stack


def one_import(work: Path, source: Path, run: int) -> dict[str, Any]:
    folder = work / f"ward-{run}"
    ward, _ = Ward.init(folder)
    ward.create_dataset(DATASET, TEXT_SCHEMA, description="import timeline")
    line = Timeline()
    with contextlib.ExitStack() as stack:
        for p in _patches(line):
            stack.enter_context(p)
        stack.enter_context(_split_transactions(ward, line))
        stack.enter_context(_watch_gc(line))
        start, cpu = time.perf_counter(), time.process_time()
        line.origin = start
        ward.contribute(DATASET, source, source=f"file://{source}", gate=False)
        total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
    ward.db.dispose()
    shutil.rmtree(folder, ignore_errors=True)
    spans = [
        {"name": n, "thread": t, "start": round(s, 4), "end": round(e, 4), "cpu": round(c, 4)}
        for n, t, s, e, c in sorted(line.spans, key=lambda x: x[2])
    ]
    return {"run": run, "total": round(total, 4), "cpu": round(total_cpu, 4), "spans": spans}


def print_table(result: dict[str, Any]) -> None:
    print(f"total {result['total']:.3f} s, process CPU {result['cpu']:.3f} s")
    for s in result["spans"]:
        print(
            f"{s['start']:7.3f} {s['end']:7.3f} {s['end'] - s['start']:6.3f} cpu {s['cpu']:6.3f}"
            f"  {s['thread'][:22]:22} {s['name']}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="tree")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dataward-import-timeline-"))
    try:
        source = work / "records.csv"
        make_text_csv(source, args.records, args.seed)
        results = [one_import(work, source, run) for run in range(args.runs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print(json.dumps({"label": args.label, "records": args.records, **r}))
    if args.table:
        print_table(min(results, key=lambda r: r["total"]))


if __name__ == "__main__":
    main()
