"""Import throughput: a full ``ward.contribute`` against pyarrow alone, in the same process.

The dataward figure is the service use case behind ``dataward contribute --no-gate``: read and
validate the file, canonicalize, compute record ids (one ``blake3`` call per record over the rows'
encodings joined column-wise by Arrow), store the new
records once as a Parquet chunk in the ward's object store, index them in the SQLite catalog (one row
per block of about 256 ids), store the contribution's id list and append the signed ledger event.
Each timed run uses a fresh ward (``Ward.init`` and ``create_dataset`` are not timed), so every
record is new.

Two workloads:

* text: N short synthetic records (5-12 words from a 5,000-word vocabulary, 10 labels) in one
  CSV file; the baseline is ``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table`` (defaults).
* images: M random-noise PNGs of about 50 KB in 10 class folders; the baseline reads the files
  and writes the same table to Parquet with pyarrow.

The breakdown is measured inside the timed import by wrapping the functions it calls, on the
calling thread in the order they run: reading (parse, validate, canonicalize, record ids), of which
record ids alone; the staging (the distinct ids, a lookup of the ids stored already, the record
index's blocks); the contribution's content hash; the holder index's entries for its id list (which
contributions and versions hold each record, for ``trace``); the wait for the chunk; the record
index's insert (one row per chunk and id prefix); and the rest (the lookup again under the write lock,
the rows, the ledger event and the commits). The new records' Parquet chunk and the id-list object
are encoded and stored on threads of their own meanwhile: their times are reported beside
(``..._beside``), as is the catalog's checkpoint that runs on its own thread once the import has
returned (``catalog_checkpoint_seconds_after``, not part of the import's time). CPU time
(``time.process_time``, best of the runs) is reported beside wall time for both sides.

Then the text records are merged into a version and read back (``read_back``) with
``Ward.read_version``: the version's rows against the signed ledger, its manifest against the version
id, every record read from the chunk and row its self-locating manifest gives, each chunk's ids
recomputed from its content at its first read in the process, every record checked against its id.
The merge, the first read, a read again and a stream (``stream_version``, batches of 10,000, the
process's checks emptied as for the first read) are timed, against pyarrow reading the bare Parquet file.

Usage (from the repository's top folder)::

    python -m benchmarks.bench_import --records 1000000 --images 10000
    python -m benchmarks.bench_import --records 1000000 --images 0 --store s3

With ``--store s3`` the ward's objects, and the bare Parquet file, go to an S3 bucket on moto's
standalone server on loopback, through s3fs: the same protocol exchange as with a real bucket.

Figures are printed and written to ``benchmarks/results/import.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from PIL import Image

from dataward.catalog import record_index
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.io import readers
from dataward.service import contributions, guard, holders, recordstore
from dataward.service.ward import Ward

RESULTS = Path(__file__).resolve().parent / "results" / "import.json"
TEXT_SCHEMA = Schema(label="label", inputs=(Column("text", ColumnKind.TEXT),))
IMAGE_SCHEMA = Schema(label="label", inputs=(Column("image", ColumnKind.IMAGE),))
DATASET = "bench"
STREAM_BATCH_ROWS = 10_000
"""The loader's default batch."""


def make_text_csv(path: Path, records: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i:04d}" for i in range(5000)])
    lengths = rng.integers(5, 13, records)
    words = vocabulary[rng.integers(0, len(vocabulary), int(lengths.sum()))]
    ends = np.cumsum(lengths)
    texts = [" ".join(words[end - n : end]) for end, n in zip(ends.tolist(), lengths.tolist(), strict=True)]
    labels = np.array([f"class_{i}" for i in range(10)])[rng.integers(0, 10, records)]
    pacsv.write_csv(pa.table({"text": texts, "label": labels}), path)


def make_image_folder(root: Path, images: int, kilobytes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Noise does not compress: a side of sqrt(KB * 1024 / 3) pixels gives a PNG of about KB.
    side = round((kilobytes * 1024 / 3) ** 0.5)
    for i in range(images):
        folder = root / f"class_{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.png", format="PNG", compress_level=1)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall time and best CPU time (``time.process_time``: every thread of the process) of
    ``repeat`` runs, and the last result."""
    best, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best, best_cpu, result


class Stopwatch:
    """Wall time spent inside named functions during one import, accumulated per name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start

        return timed_call


def instrumented_contribute(ward: Ward, source: Path) -> tuple[float, float, dict[str, Any], dict[str, float]]:
    """``ward.contribute`` timed as a whole and by piece (wrapping the functions it calls)."""
    watch = Stopwatch()
    digest_of = recordstore.Staged.digest.fget
    assert digest_of is not None
    patches = [
        patch.object(contributions, "read_table", watch.wrap("read", contributions.read_table)),
        patch.object(readers.RecordDigests, "result", watch.wrap("ids_wait", readers.RecordDigests.result)),
        patch.object(contributions, "stage_new_records", watch.wrap("stage", contributions.stage_new_records)),
        patch.object(record_index, "locate", watch.wrap("catalog_lookup", record_index.locate)),
        patch.object(contributions, "joined_ids_hash", watch.wrap("content_hash", contributions.joined_ids_hash)),
        patch.object(
            record_index, "insert_chunk_blocks", watch.wrap("catalog_insert", record_index.insert_chunk_blocks)
        ),
        patch.object(recordstore.Staged, "digest", property(watch.wrap("chunk_wait", digest_of))),
        patch.object(recordstore, "_put_chunk", watch.wrap("chunk", recordstore._put_chunk)),
        patch.object(recordstore, "_put_records_chunk", watch.wrap("chunk", recordstore._put_records_chunk)),
        patch.object(recordstore, "_index_work", watch.wrap("index_blocks", recordstore._index_work)),
        patch.object(
            contributions.ContributionService,
            "_put_id_list",
            watch.wrap("id_list", contributions.ContributionService._put_id_list),
        ),
        patch.object(holders, "index_list", watch.wrap("holder_index", holders.index_list)),
    ]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        start, start_cpu = time.perf_counter(), time.process_time()
        info = ward.contribute(DATASET, source, source=f"file://{source}", gate=False)
        total, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    seconds = watch.seconds
    # On the calling thread, in the order they run.
    parts = {
        # The file read and checked; its records' ids are then worked out on threads of their own
        # while the chunk's first row groups are encoded, and waited for here.
        "read_seconds": seconds["read"],
        "waiting_for_ids_seconds": seconds["ids_wait"],
        "stage_ids_and_index_blocks_seconds": seconds["stage"],
        "content_hash_seconds": seconds["content_hash"],
        "holder_index_seconds": seconds["holder_index"],
        "wait_for_chunk_seconds": seconds["chunk_wait"],
        "catalog_insert_seconds": seconds["catalog_insert"],
    }
    counted = sum(parts.values())
    # The rest: the source and contribution rows, the ledger event and the transaction commits.
    parts["other_seconds"] = total - counted
    # On threads of their own: the chunk (its Parquet encoding, begun as the first ids are known, and
    # put) and the id-list object, while the calling thread goes on; it waits for the chunk only where
    # its digest is needed (above).
    parts["chunk_parquet_and_store_seconds_beside"] = seconds["chunk"]
    parts["id_list_object_seconds_beside"] = seconds["id_list"]
    # Parts of the above: the index blocks (of the staging) and the record index's lookups of ids
    # stored already (one in the staging, one again under the write lock, in "other").
    parts["of_staging_index_blocks_seconds"] = seconds["index_blocks"]
    parts["of_which_catalog_lookups_seconds"] = seconds["catalog_lookup"]
    return total, cpu, info, {k: round(v, 3) for k, v in parts.items()}


@dataclass(frozen=True)
class Target:
    """Where the ward's objects and the bare Parquet file go: the local disk, or under an S3 URL."""

    s3_root: str | None = None

    def store_url(self, run: int) -> str | None:
        return f"{self.s3_root}/ward-{run}" if self.s3_root else None

    def read_parquet(self, local: Path) -> pa.Table:
        if self.s3_root is None:
            return pq.read_table(local)
        fs, root = fsspec.core.url_to_fs(self.s3_root)
        with fs.open(f"{root}/{local.name}", "rb") as source:
            return pq.read_table(source)

    def write_parquet(self, table: pa.Table, local: Path) -> None:
        if self.s3_root is None:
            pq.write_table(table, local)
            return
        fs, root = fsspec.core.url_to_fs(self.s3_root)
        with fs.open(f"{root}/{local.name}", "wb") as out:
            pq.write_table(table, out)


def contribute_timed(
    work: Path, schema: Schema, source: Path, repeat: int, target: Target
) -> tuple[float, float, dict, dict]:
    """Best of ``repeat`` imports, each into a new ward (``Ward.init`` and ``create_dataset`` untimed):
    the best wall time with its run's breakdown, and the best CPU time."""
    best: tuple[float, float, dict, dict] = (float("inf"), float("inf"), {}, {})
    best_cpu = float("inf")
    for run in range(repeat):
        folder = work / f"ward-{run}"
        ward, _ = Ward.init(folder, store_url=target.store_url(run))
        ward.create_dataset(DATASET, schema, description="import benchmark")
        result = instrumented_contribute(ward, source)
        # The catalog's log is copied into its file on a thread of its own once the import has returned
        # (``dataward.catalog.wal``): timed apart, not part of the import's time.
        checkpoint_start = time.perf_counter()
        if ward.db.checkpointer is not None:
            ward.db.checkpointer.wait_idle()
        result[3]["catalog_checkpoint_seconds_after"] = round(time.perf_counter() - checkpoint_start, 3)
        best = min(best, result, key=lambda r: r[0])
        best_cpu = min(best_cpu, result[1])
        ward.db.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    return best[0], best_cpu, best[2], best[3]


def read_back_timed(work: Path, schema: Schema, source: Path, repeat: int, target: Target, bare: Path) -> dict:
    """The imported records merged into a version and read back as a user reads a version
    (``Ward.read_version``: the version's rows checked against the signed ledger, its manifest against
    the version id, then every record read from the chunk and row its manifest gives, each chunk's ids
    recomputed from its content at the process's first read of it, every record checked against its
    id), against pyarrow reading the bare Parquet file. The merge (one run) is timed too. Best of
    ``repeat`` for the first read (the process's checked-manifest and verified-chunk caches emptied
    before each) and for a read again. The records go to a clean validation set, which a merge takes
    without a gate run: this measures storage, not the gate."""
    folder = work / "ward-read"
    ward, _ = Ward.init(folder, store_url=target.store_url(repeat))
    try:
        ward.create_dataset("served", schema, description="import benchmark")
        ward.create_dataset(DATASET, schema, description="import benchmark", validation_for="served")
        ward.contribute(DATASET, source, source=f"file://{source}", gate=False)
        merge_s, merge_cpu, _ = timed(lambda: ward.merge(f"{DATASET}#1"), 1)

        def first() -> pa.Table:
            guard._manifests.clear()
            recordstore._verified_chunks.clear()
            return ward.read_version(DATASET)[1]

        first_s, first_cpu, table = timed(first, repeat)
        again_s, again_cpu, _ = timed(lambda: ward.read_version(DATASET)[1], repeat)

        def streamed() -> int:
            guard._manifests.clear()
            recordstore._verified_chunks.clear()
            _, batches = ward.stream_version(DATASET, stage=None, batch_rows=STREAM_BATCH_ROWS)
            return sum(batch.num_rows for batch in batches)

        stream_s, stream_cpu, streamed_rows = timed(streamed, repeat)
        bare_s, bare_cpu, bare_table = timed(lambda: target.read_parquet(bare), repeat)
    finally:
        ward.db.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    if table.num_rows != bare_table.num_rows or streamed_rows != bare_table.num_rows:
        raise RuntimeError(
            f"read {table.num_rows} records back ({streamed_rows} streamed), the file holds {bare_table.num_rows}"
        )
    figures = {
        "records": table.num_rows,
        "merge_seconds": round(merge_s, 3),
        "merge_cpu_seconds": round(merge_cpu, 3),
        "first_read_seconds": round(first_s, 3),
        "first_read_cpu_seconds": round(first_cpu, 3),
        "read_again_seconds": round(again_s, 3),
        "read_again_cpu_seconds": round(again_cpu, 3),
        "stream_seconds": round(stream_s, 3),
        "stream_cpu_seconds": round(stream_cpu, 3),
        "stream_batch_rows": STREAM_BATCH_ROWS,
        "stream_ratio": round(stream_s / bare_s, 2),
        "pyarrow_read_seconds": round(bare_s, 3),
        "pyarrow_read_cpu_seconds": round(bare_cpu, 3),
        "first_read_ratio": round(first_s / bare_s, 2),
        "read_again_ratio": round(again_s / bare_s, 2),
    }
    print(f"  merge into a version      : {merge_s:7.2f} s")
    print(f"  read back, first read     : {first_s:7.2f} s ({figures['first_read_ratio']:.2f}x pyarrow's read)")
    print(f"  read back, again          : {again_s:7.2f} s ({figures['read_again_ratio']:.2f}x)")
    print(
        f"  streamed, checks emptied  : {stream_s:7.2f} s ({figures['stream_ratio']:.2f}x), "
        f"{STREAM_BATCH_ROWS:,} records a batch"
    )
    print(f"  pyarrow read of the file  : {bare_s:7.2f} s")
    return figures


def compare(
    name: str,
    records: int,
    input_bytes: int,
    ours: float,
    bare: float,
    parts: dict[str, float],
    cpu: tuple[float, float] | None = None,
) -> dict:
    figures: dict[str, Any] = {
        "records": records,
        "input_mb": round(input_bytes / 1e6, 1),
        "dataward_seconds": round(ours, 3),
        "dataward_records_per_s": round(records / ours),
        "dataward_mb_per_s": round(input_bytes / 1e6 / ours, 1),
        "pyarrow_seconds": round(bare, 3),
        "pyarrow_records_per_s": round(records / bare),
        "pyarrow_mb_per_s": round(input_bytes / 1e6 / bare, 1),
        "ratio": round(ours / bare, 2),
        "breakdown": parts,
    }
    if cpu is not None:
        # CPU seconds (best of the runs), steadier than wall time on a shared machine.
        figures |= {
            "dataward_cpu_seconds": round(cpu[0], 3),
            "pyarrow_cpu_seconds": round(cpu[1], 3),
            "cpu_ratio": round(cpu[0] / cpu[1], 2),
        }
    print(f"\n{name}: {records:,} records, {figures['input_mb']} MB")
    print(f"  dataward contribute     : {ours:7.2f} s  {figures['dataward_records_per_s']:>10,} rec/s")
    print(f"  pyarrow read + parquet  : {bare:7.2f} s  {figures['pyarrow_records_per_s']:>10,} rec/s")
    print(f"  ratio                   : {figures['ratio']:.2f}x")
    if cpu is not None:
        print(f"  CPU seconds             : {cpu[0]:7.2f} s against {cpu[1]:.2f} s, {figures['cpu_ratio']:.2f}x")
    for key, value in figures["breakdown"].items():
        print(f"    {key:34}: {value:7.3f} s")
    return figures


def bench_text(work: Path, records: int, repeat: int, seed: int, target: Target) -> dict:
    source = work / "records.csv"
    make_text_csv(source, records, seed)

    def bare() -> None:
        target.write_parquet(pacsv.read_csv(source), work / "bare.parquet")

    bare_s, bare_cpu, _ = timed(bare, repeat)
    ours_s, ours_cpu, info, parts = contribute_timed(work, TEXT_SCHEMA, source, repeat, target)
    if info["new_records"] != records:
        raise RuntimeError(f"expected {records} new records, the ward stored {info['new_records']}")
    figures = compare("text (CSV)", records, source.stat().st_size, ours_s, bare_s, parts, (ours_cpu, bare_cpu))
    figures["read_back"] = read_back_timed(work, TEXT_SCHEMA, source, repeat, target, work / "bare.parquet")
    return figures


def bench_images(work: Path, images: int, kilobytes: int, repeat: int, seed: int, target: Target) -> dict:
    root = work / "images"
    make_image_folder(root, images, kilobytes, seed)
    files = sorted(p for p in root.rglob("*.png"))
    total = sum(p.stat().st_size for p in files)

    def bare() -> None:
        table = pa.table(
            {
                "image": pa.array([p.read_bytes() for p in files], pa.large_binary()),
                "label": [p.parent.name for p in files],
            }
        )
        target.write_parquet(table, work / "bare-images.parquet")

    bare_s, bare_cpu, _ = timed(bare, repeat)
    ours_s, ours_cpu, info, parts = contribute_timed(work, IMAGE_SCHEMA, root, repeat, target)
    if info["new_records"] != images:
        raise RuntimeError(f"expected {images} new records, the ward stored {info['new_records']}")
    figures = compare("images (folder)", images, total, ours_s, bare_s, parts, (ours_cpu, bare_cpu))
    figures["mean_image_kb"] = round(total / images / 1024, 1)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="text records (0 to skip)")
    parser.add_argument("--images", type=int, default=10_000, help="images (0 to skip)")
    parser.add_argument("--image-kb", type=int, default=50, help="approximate size of each image")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file of figures")
    parser.add_argument(
        "--store",
        choices=("local", "s3"),
        default="local",
        help="where objects go: the ward folder, or an S3 bucket on moto's server on loopback (through s3fs); "
        "the bare write goes to the same place",
    )
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "benchmark": "import",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pyarrow": pa.__version__,
            # The machine may be shared: a load above the core count means the figures are pessimistic.
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "command": "python benchmarks/bench_import.py "
        + f"--records {args.records} --images {args.images} --image-kb {args.image_kb} --repeat {args.repeat}"
        + (f" --store {args.store}" if args.store != "local" else ""),
        "measured": "Ward.contribute(dataset, path, source=..., gate=False) on a fresh ward, "
        "against pyarrow read + parquet.write_table",
        "record_ids": "one blake3 call per record over the joined encodings",
    }
    work = Path(tempfile.mkdtemp(prefix="dataward-bench-import-"))
    try:
        with contextlib.ExitStack() as stack:
            target = Target()
            if args.store == "s3":
                # Imported here: the local run needs neither moto nor s3fs.
                from benchmarks.s3_server import apply_environment, make_bucket, restore_environment, s3_server

                endpoint = stack.enter_context(s3_server())
                make_bucket(endpoint, "bench")
                previous = apply_environment(endpoint)
                stack.callback(restore_environment, previous)
                target = Target("s3://bench/import")
                results["store"] = "S3 protocol: moto's standalone server on loopback, through s3fs"
            if args.records:
                results["text"] = bench_text(work, args.records, args.repeat, args.seed, target)
            if args.images:
                results["images"] = bench_images(work, args.images, args.image_kb, args.repeat, args.seed, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nfigures written to {args.out}")


if __name__ == "__main__":
    main()
