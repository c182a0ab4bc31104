"""``python -m benchmarks.bench_stream``: a version streamed for training, against the same version read whole.

A ward is made with one text dataset; ``--records`` short records are imported in ``--chunks``
contributions (one stored chunk each) and merged into one version. Then, each in a fresh state (the
process's checked-manifest and checked-chunk records emptied, as for a first read):

* ``read whole``: ``Ward.read_version`` (the version in its id order);
* ``stream``: ``Ward.stream_version`` with batches of ``--batch-rows`` (the guarded loader's stream:
  the version checked once, then every batch authorized and loaded on its own);
* ``loader check``: ``guard.loadable_version`` alone (the version checked against the signed ledger and
  its manifest, and which of its records must never reach training), with the peak of memory Python
  allocated for it (``tracemalloc``).

Run it with each side's ``dataward`` first on ``PYTHONPATH`` to compare two versions of the code::

    python -m benchmarks.bench_stream --records 1000000 --chunks 4
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.bench_import import TEXT_SCHEMA, make_text_csv
from dataward.service import guard, recordstore
from dataward.service.ward import Ward

DATASET = "streamed"


def _fresh() -> None:
    guard._manifests.clear()
    recordstore._verified_chunks.clear()


def run(records: int, chunks: int, batch_rows: int, work: Path) -> dict[str, Any]:
    """Build the ward in ``work`` and time the three reads (one run each)."""
    ward, _ = Ward.init(work / "ward")
    try:
        ward.create_dataset("served", TEXT_SCHEMA, description="stream benchmark")
        ward.create_dataset(DATASET, TEXT_SCHEMA, description="stream benchmark", validation_for="served")
        for part in range(chunks):
            source = work / f"part-{part}.csv"
            make_text_csv(source, records // chunks, part)
            ward.contribute(DATASET, source, source=f"file://{source}", gate=False)
            ward.merge(f"{DATASET}#{part + 1}")
        _fresh()
        started = time.perf_counter()
        whole = ward.read_version(DATASET)[1].num_rows
        whole_s = time.perf_counter() - started
        _fresh()
        started = time.perf_counter()
        _, batches = ward.stream_version(DATASET, stage=None, batch_rows=batch_rows)
        streamed = sum(batch.num_rows for batch in batches)
        stream_s = time.perf_counter() - started
        _fresh()
        tracemalloc.start()
        started = time.perf_counter()
        with ward.db.reading() as conn:
            guard.loadable_version(ward, conn, DATASET, None, None)
        check_s = time.perf_counter() - started
        _, check_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        ward.db.dispose()
    if whole != streamed:
        raise RuntimeError(f"read {whole} records whole and {streamed} streamed")
    figures = {
        "records": whole,
        "chunks": chunks,
        "batch_rows": batch_rows,
        "read_whole_seconds": round(whole_s, 3),
        "stream_seconds": round(stream_s, 3),
        "stream_over_whole": round(stream_s / whole_s, 2),
        "loader_check_seconds": round(check_s, 3),
        "loader_check_peak_mb": round(check_peak / 1e6, 1),
    }
    print(json.dumps(figures))
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_stream", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dataward-stream-"))
    try:
        figures = run(args.records, args.chunks, args.batch_rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
