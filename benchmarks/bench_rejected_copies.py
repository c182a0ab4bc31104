"""Guarded reads of a version holding a step's output, on a ward with many steps and rejected records.

``rejected_copies.made_from_rejected`` runs on every guarded read of such a version (``barred_records``):
it checked every transformation row against the signed ledger, read every step's lineage from the store
and walked it from the rejected records, on each read. It now keeps the steps and what they made from the
rejected records per ward while the ledger's head stays the same event. The cold rounds drop what was
kept before each read (``forget_kept``: the work every read did before); the warm rounds keep it. Rounds
alternate in one process on the same ward: CPU milliseconds of ``made_from_rejected`` and of the whole
read (``load_version``), medians.

Usage::

    nice -n 10 python -m benchmarks.bench_rejected_copies [STEPS] [READS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cpu_calls import cpu_of_calls
from dataward.domain.schema import RECORD_ID, Schema
from dataward.service import rejected_copies
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, wine_ward, write_csv
from tests.provenance.test_quarantine_sides import _added, _as, _flag


def build(root: Path, steps: int) -> Ward:
    """``wine@v1`` (60 records); a bot's batch of which 4 records a reviewer rejected; ``other@v1``, a
    recorded copy of ``wine@v1``; and ``steps - 1`` more steps of 3 records each into ``other``."""
    ward = wine_ward(root / "ward")
    first = ward.contribute("wine", write_csv(root / "a.csv", wine_rows(0, 60)), source="s3://a")
    v1 = merge_reviewed(ward, first["ref"])["ref"]
    ward.create_principal("scraper")
    ward.grant("scraper", "contributor", "dataset:wine")
    batch = write_csv(root / "bot.csv", wine_rows(100, 124))
    bot = _as(ward, "scraper").contribute("wine", batch, source="https://bot.example")["ref"]
    _flag(ward, bot, _added(ward, bot)[:4])
    ward.create_principal("rev")
    ward.grant("rev", "reviewer", "dataset:wine")
    items = [i["id"] for i in ward.review_list(contribution=bot)]
    _as(ward, "rev").review_decide(items, "reject", reason="backdoor")
    label, specs = wine_schema_specs()
    ward.create_dataset("other", Schema.parse(label, specs))
    ward.set_policy("other", NO_APPROVALS_POLICY)
    for n in range(steps):
        gate = n == 0  # the first is merged (a merge needs a gate run); the others stay steps only
        with ward.transform(f"step{n}", inputs=v1, output="other", code={"kind": "unknown"}, gate=gate) as t:
            read = t.read().to_pylist()[: 60 if n == 0 else 3]
            bump = 0.001 * n
            t.write([{**r, "alcohol": r["alcohol"] + bump} for r in read], parents=[r[RECORD_ID] for r in read])
        if n == 0:
            assert t.result is not None
            merge_reviewed(ward, t.result["ref"])
    return ward


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    reads = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with (
        cpu_of_calls(rejected_copies, "made_from_rejected") as inner,
        tempfile.TemporaryDirectory(prefix="bench-rejected-") as tmp,
    ):
        ward = build(Path(tmp), steps)
        figures: dict[str, tuple[list[float], list[float]]] = {"cold": ([], []), "warm": ([], [])}
        for _ in range(3):
            ward.load_version("other", "v1", stage=None)  # warm the process (imports, the folded ledger)
        for n in range(2 * reads):
            kind = "cold" if n % 2 == 0 else "warm"
            if kind == "cold":
                rejected_copies.forget_kept()
            start = time.process_time()
            ward.load_version("other", "v1", stage=None)
            figures[kind][0].append(time.process_time() - start)
            figures[kind][1].append(inner[-1])
        ward.close()
    out = {k: (statistics.median(r) * 1e3, statistics.median(m) * 1e3) for k, (r, m) in figures.items()}
    print(f"{steps} steps, {reads} reads of each kind, CPU ms (median)")
    for kind, (read, mine) in out.items():
        print(f"  {kind}: read {read:.2f}, made_from_rejected {mine:.2f}")
    print(
        f"  made_from_rejected cold/warm {out['cold'][1] / out['warm'][1]:.1f}x; "
        f"read cold/warm {out['cold'][0] / out['warm'][0]:.2f}x"
    )


if __name__ == "__main__":
    main()
