"""A version's round trip at scale: import, merge, then read it back in a fresh process.

``bench_import`` times the import and reads back in the same process. This one times what a user
sees across processes: ``ward.contribute`` (no gate) of N short text records into a clean validation
set (merged without a gate run: this measures storage, not the gate), ``ward.merge`` into a version,
then ``Ward.read_version`` twice in a new Python process (the first read pays the process's ledger
state, the manifest's check and each chunk's re-hash; the second does not).

Run it with the ``dataward`` package of each side on ``PYTHONPATH`` to compare two commits::

    python -m benchmarks.version_roundtrip --records 1000000 --work /tmp/roundtrip

It prints one JSON line: ``contribute``, ``merge``, ``read_fresh``, ``read_again`` (seconds), ``rows``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_import import TEXT_SCHEMA, make_text_csv

DATASET = "bench"

_READ = """
import json, sys, time
from dataward.service.ward import Ward
ward = Ward.open(sys.argv[1])
start = time.perf_counter(); _, table = ward.read_version(sys.argv[2]); first = time.perf_counter() - start
start = time.perf_counter(); ward.read_version(sys.argv[2]); again = time.perf_counter() - start
print(json.dumps({"read_fresh": round(first, 3), "read_again": round(again, 3), "rows": table.num_rows}))
"""


def main(argv: list[str] | None = None) -> dict:
    from dataward.service.ward import Ward

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, required=True, help="a scratch folder (emptied first)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    source = args.work / f"records-{args.records}-{args.seed}.csv"
    ward_folder = args.work / "ward"
    shutil.rmtree(ward_folder, ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    if not source.exists():
        make_text_csv(source, args.records, args.seed)
    ward, _ = Ward.init(ward_folder)
    ward.create_dataset("served", TEXT_SCHEMA, description="round-trip benchmark")
    ward.create_dataset(DATASET, TEXT_SCHEMA, description="round-trip benchmark", validation_for="served")
    start = time.perf_counter()
    ward.contribute(DATASET, source, source=f"file://{source}", gate=False)
    contribute = time.perf_counter() - start
    start = time.perf_counter()
    ward.merge(f"{DATASET}#1")
    merge = time.perf_counter() - start
    ward.db.dispose()
    read = subprocess.run(
        [sys.executable, "-c", _READ, str(ward_folder), DATASET], capture_output=True, text=True, check=True
    )
    figures = {"contribute": round(contribute, 3), "merge": round(merge, 3), **json.loads(read.stdout)}
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
