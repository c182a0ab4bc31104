"""Import throughput: dataward's validated import against pyarrow alone, in the same process.

Two workloads:

* text: N short synthetic records (5-12 words from a 5,000-word vocabulary, 10 labels) in one
  CSV file. (a) ``dataward.io.read_table`` (parse, validate, canonicalize, record ids) and storing
  the canonical table as one Parquet object in a ``LocalObjectStore`` (hash, fsync, rename);
  (b) ``pyarrow.csv.read_csv`` and ``pyarrow.parquet.write_table`` (defaults) on the same file.
* images: M random-noise PNGs of about 50 KB in 10 class folders. (a) ``read_table`` on the
  folder (every file read, hashed and checked by Pillow) and storing the table as a Parquet
  object; (b) reading the files and writing the same table to Parquet with pyarrow.

Usage::

    python benchmarks/bench_import.py --records 1000000 --images 10000

Figures are printed and written to ``benchmarks/results/import.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from PIL import Image

from dataward.domain.records import record_ids
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.io import read_table
from dataward.store import LocalObjectStore

RESULTS = Path(__file__).resolve().parent / "results" / "import.json"
TEXT_SCHEMA = Schema(label="label", inputs=(Column("text", ColumnKind.TEXT),))
IMAGE_SCHEMA = Schema(label="label", inputs=(Column("image", ColumnKind.IMAGE),))


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


def parquet_bytes(table: pa.Table) -> bytes:
    """The canonical table as one Parquet object, compressed as the ward's record store does."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(name: str, records: int, input_bytes: int, ours: float, bare: float, extra: dict[str, Any]) -> dict:
    figures = {
        "records": records,
        "input_mb": round(input_bytes / 1e6, 1),
        "dataward_seconds": round(ours, 3),
        "dataward_records_per_s": round(records / ours),
        "dataward_mb_per_s": round(input_bytes / 1e6 / ours, 1),
        "pyarrow_seconds": round(bare, 3),
        "pyarrow_records_per_s": round(records / bare),
        "pyarrow_mb_per_s": round(input_bytes / 1e6 / bare, 1),
        "ratio": round(ours / bare, 2),
        **extra,
    }
    print(f"\n{name}: {records:,} records, {figures['input_mb']} MB")
    print(f"  dataward import + store : {ours:7.2f} s  {figures['dataward_records_per_s']:>10,} rec/s")
    print(f"  pyarrow read + parquet  : {bare:7.2f} s  {figures['pyarrow_records_per_s']:>10,} rec/s")
    print(f"  ratio                   : {figures['ratio']:.2f}x")
    for key, value in extra.items():
        print(f"  {key:24}: {value}")
    return figures


def bench_text(work: Path, records: int, repeat: int, seed: int) -> dict:
    source = work / "records.csv"
    make_text_csv(source, records, seed)
    store = LocalObjectStore(work / "store-text")

    def bare() -> None:
        pq.write_table(pacsv.read_csv(source), work / "bare.parquet")

    def ours() -> str:
        imported = read_table(source, TEXT_SCHEMA)
        return store.put(parquet_bytes(imported.table))

    bare_s, _ = timed(bare, repeat)
    ours_s, _ = timed(ours, repeat)
    # Where the time goes: reading (parse, validate, canonicalize, record ids), of which record
    # ids alone, and the Parquet write + store put of the canonical table.
    read_s, imported = timed(lambda: read_table(source, TEXT_SCHEMA), repeat)
    table = imported.table
    ids_s, _ = timed(lambda: record_ids(TEXT_SCHEMA, table.drop_columns(["record_id"])), repeat)
    store_s, _ = timed(lambda: store.put(parquet_bytes(table)), repeat)
    return compare(
        "text (CSV)",
        records,
        source.stat().st_size,
        ours_s,
        bare_s,
        {
            "read_table_seconds": round(read_s, 3),
            "of_which_record_id_seconds": round(ids_s, 3),
            "parquet_and_store_seconds": round(store_s, 3),
        },
    )


def bench_images(work: Path, images: int, kilobytes: int, repeat: int, seed: int) -> dict:
    root = work / "images"
    make_image_folder(root, images, kilobytes, seed)
    files = sorted(p for p in root.rglob("*.png"))
    total = sum(p.stat().st_size for p in files)
    store = LocalObjectStore(work / "store-images")

    def bare() -> None:
        table = pa.table(
            {
                "image": pa.array([p.read_bytes() for p in files], pa.large_binary()),
                "label": [p.parent.name for p in files],
            }
        )
        pq.write_table(table, work / "bare-images.parquet")

    def ours() -> str:
        imported = read_table(root, IMAGE_SCHEMA)
        return store.put(parquet_bytes(imported.table))

    bare_s, _ = timed(bare, repeat)
    ours_s, _ = timed(ours, repeat)
    return compare("images (folder)", images, total, ours_s, bare_s, {"mean_image_kb": round(total / images / 1024, 1)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="text records (0 to skip)")
    parser.add_argument("--images", type=int, default=10_000, help="images (0 to skip)")
    parser.add_argument("--image-kb", type=int, default=50, help="approximate size of each image")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file of figures")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "benchmark": "import",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "pyarrow": pa.__version__},
        "command": "python benchmarks/bench_import.py "
        + f"--records {args.records} --images {args.images} --image-kb {args.image_kb} --repeat {args.repeat}",
    }
    work = Path(tempfile.mkdtemp(prefix="dataward-bench-import-"))
    try:
        if args.records:
            results["text"] = bench_text(work, args.records, args.repeat, args.seed)
        if args.images:
            results["images"] = bench_images(work, args.images, args.image_kb, args.repeat, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nfigures written to {args.out}")


if __name__ == "__main__":
    main()
