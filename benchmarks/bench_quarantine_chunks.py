"""Time ``quarantine_contribution`` of one contribution of N text records (not merged, no gate): the
quarantine now locates its records' chunks for the list of removals (``record_chunks``).

    PYTHONPATH=src:. python benchmarks/bench_quarantine_chunks.py 1000000
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY


def main() -> None:
    """Print how long the quarantine took."""
    n = int(sys.argv[1])
    d = Path(tempfile.mkdtemp())
    ward, _ = Ward.init(d / "ward")
    ward.create_dataset("notes", Schema.parse("topic", ["text:text"]))
    ward.set_policy("notes", NO_APPROVALS_POLICY)
    t = pa.table({"text": [f"text number {i}" for i in range(n)], "topic": ["a" if i % 2 else "b" for i in range(n)]})
    c = ward.contribute("notes", t, source="s", gate=False)
    t0 = time.perf_counter()
    ward.quarantine_contribution(c["ref"], reason="x")
    print(n, "quarantine %.3f s" % (time.perf_counter() - t0))
    shutil.rmtree(d)


if __name__ == "__main__":
    main()
