"""Many processes at once on one ward: reads, contributions, small gate runs and exports.

8 processes on SQLite and 32 on PostgreSQL (when a throwaway cluster can start) run the mix of
``concurrency_worker.py`` together. No lock error may reach any of them, every event each one caused
must be in the ledger, and ``verify`` must pass on the chain afterwards.
"""

from __future__ import annotations

import queue
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv
from tests.preloaded import preloaded_context
from tests.security import concurrency_worker

PROCESSES = {"sqlite": 8, "postgresql": 32}


def _context() -> Any:
    return preloaded_context(concurrency_worker.__name__)


def test_concurrent_mix_of_reads_contributions_gates_and_exports(tmp_path: Path, catalog_url: str | None) -> None:
    dialect = "sqlite" if catalog_url is None else "postgresql"
    ward, _ = Ward.init(tmp_path / "ward", catalog_url=catalog_url)
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    first = ward.contribute("wine", write_csv(tmp_path / "base.csv", wine_rows(0, 100, shuffled=True)), source="b")
    merge_reviewed(ward, first["ref"])
    ward.promote("wine@v1")
    before = Counter(e["type"] for e in ward.ledger())

    count = PROCESSES[dialect]
    out = tmp_path / "exports"
    out.mkdir()
    files = [
        # Slices of 12 overlapping by 4: the same new record often arrives from two processes at once.
        str(write_csv(tmp_path / f"part{i}.csv", wine_rows(100 + (i * 8) % 70, 112 + (i * 8) % 70, shuffled=True)))
        for i in range(count)
    ]
    ctx = _context()
    start, results = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(
            target=concurrency_worker.run, args=(str(ward.folder), i, files[i], str(out), start, results), daemon=True
        )
        for i in range(count)
    ]
    for w in workers:
        w.start()
    began = time.monotonic()
    start.set()
    reports: list[dict[str, Any]] = []
    try:
        for _ in workers:
            reports.append(results.get(timeout=120))
    except queue.Empty:
        pytest.fail(f"only {len(reports)} of {count} processes finished")
    finally:
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.kill()
    elapsed = time.monotonic() - began

    errors = [f"worker {r['index']}: {e}" for r in reports for e in r["errors"]]
    assert not errors, "\n".join(errors)
    contributed = [c for r in reports for c in r["contributions"]]
    gated = [c for r in reports for c in r["gated"]]
    exported = [p for r in reports for p in r["exports"]]
    assert len(contributed) == 3 * count // 4 and len(gated) == count // 2 and len(exported) == 3 * count // 4

    events = ward.ledger(newest_first=False)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    submitted = {e["subject"]["contribution"] for e in events if e["type"] == "contribution.submitted"}
    gate_runs = Counter(e["subject"]["contribution"] for e in events if e["type"] == "gate.completed")
    exports = [e["payload"]["path"] for e in events if e["type"] == "version.exported"]
    assert set(contributed) <= submitted
    assert all(gate_runs[c] == 1 for c in gated)
    assert sorted(exports) == sorted(str(Path(p).resolve()) for p in exported)
    assert all(Path(p).stat().st_size > 0 for p in exported)
    after = Counter(e["type"] for e in events)
    assert after["contribution.submitted"] - before["contribution.submitted"] == len(contributed)
    assert after["gate.completed"] - before["gate.completed"] == len(gated)
    assert after["version.exported"] - before["version.exported"] == len(exported)
    assert after["access.denied"] == before["access.denied"]

    numbers = sorted(c["number"] for c in ward.contributions("wine"))
    assert numbers == list(range(1, len(contributed) + 2))
    report = ward.verify()
    assert report.ok, report.to_dict()
    print(f"{count} processes on {dialect}: {elapsed:.1f} s, {len(events)} events")
