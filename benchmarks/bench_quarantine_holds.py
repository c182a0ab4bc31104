"""``review list`` on a ward with many quarantined contributions.

``quarantine_holds.quarantined_holders`` runs on every gate recording and every ``review list`` with
pending items: it read the id list of every quarantined contribution on each call. It now keeps them per
ward while the ledger's head stays the same event (``ledger_kept``). The cold rounds drop what was kept
before each call (``forget_kept``: the work every call did before); the warm rounds keep it. Rounds
alternate in one process on the same ward: CPU milliseconds of ``quarantined_holders`` and of the whole
``review_list``, medians. Run against a tree without the cache (``forget_kept`` missing), every round is
a plain one.

Usage::

    nice -n 10 python -m benchmarks.bench_quarantine_holds [QUARANTINES] [CALLS] [RECORDS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cpu_calls import cpu_of_calls
from dataward.service import quarantine_holds
from dataward.service.ward import Ward
from tests.helpers import wine_rows, wine_ward, write_csv
from tests.provenance.test_quarantine_sides import _added, _flag


def build(root: Path, quarantines: int, records: int) -> Ward:
    """``wine@v1`` (60 records), ``quarantines`` contributions of ``records`` new records each, all
    quarantined, and one more contribution with 12 pending review items (none held back)."""
    ward = wine_ward(root / "ward")
    ward.merge(ward.contribute("wine", write_csv(root / "base.csv", wine_rows(0, 60)), source="s3://base")["ref"])
    for n in range(quarantines + 1):
        # Each batch's records are new: the wine rows shifted by a step of its own.
        rows = [{**r, "alcohol": r["alcohol"] + 0.001 * (n + 1)} for r in wine_rows(60, 60 + records)]
        ref = ward.contribute("wine", write_csv(root / f"b{n}.csv", rows), source=f"s3://batch/{n}")["ref"]
        if n < quarantines:
            ward.quarantine_contribution(ref, reason="benchmark")
    _flag(ward, ref, _added(ward, ref)[:12])
    return ward


def main() -> None:
    quarantines = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    records = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    forget = getattr(quarantine_holds, "forget_kept", None)
    kinds = ("cold", "warm") if forget is not None else ("uncached",)
    with (
        cpu_of_calls(quarantine_holds, "quarantined_holders") as inner,
        tempfile.TemporaryDirectory(prefix="bench-holds-") as tmp,
    ):
        ward = build(Path(tmp), quarantines, records)
        for _ in range(3):
            assert len(ward.review_list("wine")) == 12  # warm the process (imports, the folded ledger)
        figures: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in kinds}
        for n in range(len(kinds) * calls):
            kind = kinds[n % len(kinds)]
            if kind == "cold" and forget is not None:
                forget()
            start = time.process_time()
            ward.review_list("wine")
            figures[kind][0].append(time.process_time() - start)
            figures[kind][1].append(inner[-1])
        ward.close()
    out = {k: (statistics.median(r) * 1e3, statistics.median(m) * 1e3) for k, (r, m) in figures.items()}
    print(f"{quarantines} quarantined contributions of {records} records, {calls} review_list calls of each kind")
    for kind, (whole, mine) in out.items():
        print(f"  {kind}: review_list {whole:.2f} ms, quarantined_holders {mine:.2f} ms (CPU, median)")
    if "warm" in out:
        print(
            f"  quarantined_holders cold/warm {out['cold'][1] / out['warm'][1]:.1f}x; "
            f"review_list cold/warm {out['cold'][0] / out['warm'][0]:.2f}x"
        )


if __name__ == "__main__":
    main()
