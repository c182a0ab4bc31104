"""Imports of one code tree beside pyarrow's bare write, for alternating pairs of two trees.

Each run: pyarrow reads the CSV and writes it to Parquet (the bare write), then a fresh ward imports it
(``Ward.contribute(..., gate=False)``, timed), then the ward is disposed of (timed apart: with the
catalog's checkpoint on a thread of its own, ``dispose`` waits for it). One JSON line a call, on
standard output. To compare two trees, alternate calls with ``PYTHONPATH`` pointing at each::

    for i in 1 2 3 4; do
      PYTHONPATH=/tmp/old/src:/tmp/old python benchmarks/import_pairs.py --records 1000000 --runs 5 --label old
      PYTHONPATH=src:. python benchmarks/import_pairs.py --records 1000000 --runs 5 --label new
    done >> pairs.jsonl

Machine noise on a shared two-core machine is about 20% between processes, hence pairs, and medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from benchmarks.bench_import import DATASET, TEXT_SCHEMA, make_text_csv
from dataward.service.ward import Ward


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--label", default="tree")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dataward-import-pairs-"))
    source = work / "records.csv"
    make_text_csv(source, args.records, args.seed)
    ours, bare, dispose = [], [], []
    load = [round(x, 2) for x in os.getloadavg()]
    try:
        for run in range(args.runs):
            start = time.perf_counter()
            pq.write_table(pacsv.read_csv(source), work / "bare.parquet")
            bare.append(time.perf_counter() - start)
            folder = work / f"ward-{run}"
            ward, _ = Ward.init(folder)
            ward.create_dataset(DATASET, TEXT_SCHEMA, description="import pairs")
            start = time.perf_counter()
            ward.contribute(DATASET, source, source=f"file://{source}", gate=False)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            ward.db.dispose()
            dispose.append(time.perf_counter() - start)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "label": args.label,
                "records": args.records,
                "ours": ours,
                "bare": bare,
                "dispose_after": dispose,
                # The load average (1, 5, 15 minutes) when the runs began and when they ended.
                "load": [load, [round(x, 2) for x in os.getloadavg()]],
            }
        )
    )


if __name__ == "__main__":
    main()
