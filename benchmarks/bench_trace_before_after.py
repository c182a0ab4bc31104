"""Trace by every handle and the object re-hash of ``verify``, as they were at a commit and as they are,
in one process on one kept ward.

The code as it was (``--before``: ``service/tracing.py``, ``service/holders.py``,
``service/derived.py``, ``store/local.py`` and ``service/audit.py`` read from git and loaded under
other names) and the code as it is answer the same calls in alternation: each trace is made by both,
in turn, and their outputs are compared (they must be equal); the objects are re-hashed by both, in
alternating rounds, with BLAKE3 alone over the same files (read and hashed, as
``bench_provenance`` measures it) in the same rounds. Figures are CPU milliseconds of this process
(the work itself, on a shared machine) and wall-clock milliseconds.

*Cold*: the per-process parsed id lists and lineage forgotten before every trace (a one-shot CLI
process); *warm*: kept (a long-lived server), after one warm-up call per handle kind.

Usage (a ward kept by ``bench_provenance --ward``, with its ``built.json``; a PostgreSQL ward with
``--pg-dir``, its kept cluster)::

    nice -n 10 python -m benchmarks.bench_trace_before_after DIR/sqlite-1000000 --before 46bcb4f \\
        --out benchmarks/results/trace_before_after.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from blake3 import blake3

from dataward.service import derived, idsets
from dataward.service.audit import AuditService, VerifyReport
from dataward.service.tracing import TraceService
from dataward.service.ward import Ward

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {"record": 60, "derived record": 30, "contribution": 60, "key": 33, "source": 60}
"""As ``bench_provenance``: traces per handle kind (a third of them cold)."""


def module_at(commit: str, path: str, name: str, renames: dict[str, str]) -> types.ModuleType:
    """The module at ``path`` as it was at ``commit``, loaded as ``name``; ``renames`` maps an import of
    a module to the name of the copy loaded before it (so the old modules use each other)."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    for old, new in renames.items():
        source = source.replace(f"from {old} import", f"from {new} import")
    module = types.ModuleType(name)
    module.__file__ = f"{path}@{commit}"
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def code_at(commit: str) -> dict[str, types.ModuleType]:
    tag = f"before_{commit}"
    holders = module_at(commit, "src/dataward/service/holders.py", f"{tag}_holders", {})
    derived_ = module_at(commit, "src/dataward/service/derived.py", f"{tag}_derived", {})
    renames = {"dataward.service.holders": holders.__name__, "dataward.service.derived": derived_.__name__}
    tracing = module_at(commit, "src/dataward/service/tracing.py", f"{tag}_tracing", renames)
    local = module_at(commit, "src/dataward/store/local.py", f"{tag}_local", {})
    audit = module_at(commit, "src/dataward/service/audit.py", f"{tag}_audit", {})
    return {"derived": derived_, "tracing": tracing, "local": local, "audit": audit}


def _percentiles(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {
        "n": len(ms),
        "p50": round(statistics.median(ms), 2),
        "p99": round(ms[min(len(ms) - 1, math.ceil(0.99 * len(ms)) - 1)], 2),
    }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def time_traces(
    ward: Ward, old: TraceService, handles: dict[str, list[str]], old_derived: Any, *, cold: bool, budget: float
) -> dict[str, Any]:
    """Each pick traced by the old code and by the new, in turn (which goes first alternates)."""
    new = ward.services.tracing
    rng = random.Random(1)
    out: dict[str, Any] = {}
    for kind, pool in handles.items():
        if not pool:
            continue
        picks = [rng.choice(pool) for _ in range(SAMPLES[kind] // (3 if cold else 1))]
        if kind == "source":
            picks = [f"source:{p}" for p in picks]
        new.trace(picks[0])  # warm-up: imports, statements compiled, first connection
        old.trace(picks[0])
        times: dict[str, dict[str, list[float]]] = {w: {"cpu": [], "wall": []} for w in ("before", "after")}
        stop = time.perf_counter() + budget
        for i, ref in enumerate(picks):
            answers = {}
            order = [("before", old), ("after", new)]
            for which, service in order if i % 2 == 0 else order[::-1]:
                if cold:
                    idsets.clear()
                    derived.clear()
                    old_derived.clear()
                wall, cpu = time.perf_counter(), time.process_time()
                answers[which] = service.trace(ref)
                times[which]["cpu"].append(time.process_time() - cpu)
                times[which]["wall"].append(time.perf_counter() - wall)
            assert _canonical(answers["before"]) == _canonical(answers["after"]), f"{ref}: the outputs differ"
            if time.perf_counter() > stop and i >= 5:
                break
        row = {w: {"cpu": _percentiles(t["cpu"]), "wall": _percentiles(t["wall"])} for w, t in times.items()}
        row["before_over_after_cpu_p50"] = round(row["before"]["cpu"]["p50"] / row["after"]["cpu"]["p50"], 2)
        row["before_over_after_cpu_p99"] = round(row["before"]["cpu"]["p99"] / row["after"]["cpu"]["p99"], 2)
        out[kind] = row
        print(kind, "cold" if cold else "warm", json.dumps(row), flush=True)
    return out


def time_taint(ward: Ward, keys: list[str], old_derived: Any, repeats: int = 3) -> dict[str, Any]:
    """The forward part of a key's trace when versions do hold steps' outputs (the trace skips it when
    none does, as on the benchmark's wards): ``taint_of(..., complete=False)`` of each key's
    contributions, as it was and as it is, cold, in turn; their answers compared."""
    from sqlalchemy import select

    from dataward.catalog.tables import contributions
    from dataward.service import rows

    times: dict[str, list[float]] = {"before": [], "after": []}
    with ward.db.reading() as conn:
        for _ in range(repeats):
            for i, key in enumerate(keys):
                found = conn.execute(select(contributions).where(contributions.c.key_id == rows.key_id_of(key))).all()
                if not found:
                    continue
                answers = {}
                order = [("before", old_derived), ("after", derived)]
                for which, module in order if i % 2 == 0 else order[::-1]:
                    idsets.clear()
                    derived.clear()
                    old_derived.clear()
                    cpu = time.process_time()
                    taint = module.taint_of(ward.store, conn, found, complete=False)
                    times[which].append(time.process_time() - cpu)
                    answers[which] = (taint.seeds, taint.derived, taint.step_contributions, taint.copied_by)
                assert answers["before"] == answers["after"], f"{key}: the taints differ"
    out = {w: _percentiles(t) for w, t in times.items()}
    out["before_over_after_cpu_p50"] = round(out["before"]["p50"] / out["after"]["p50"], 2)
    print("taint", json.dumps(out), flush=True)
    return out


def time_objects(ward: Ward, old_modules: dict[str, types.ModuleType], rounds: int) -> dict[str, Any]:
    """The objects part of ``verify`` (the catalog's references, then every object re-hashed) as it was
    and as it is, in alternating rounds, and BLAKE3 alone over the same files in the same rounds."""
    new = AuditService(ward.context)
    old_store = old_modules["local"].LocalObjectStore(ward.store.root)
    # The old service over the old store (``store`` is a property of the service's context).
    audit_before = type("AuditBefore", (old_modules["audit"].AuditService,), {"store": property(lambda _: old_store)})
    old = audit_before(ward.context)
    assert old.store is old_store and new.store is ward.store
    files = [os.path.join(d, f) for d, _, names in os.walk(ward.store.root / "objects") for f in names]
    size = sum(os.path.getsize(f) for f in files)
    timings: dict[str, dict[str, list[float]]] = {w: {"cpu": [], "wall": []} for w in ("before", "after", "blake3")}

    def run(which: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        if which == "blake3":
            for f in files:
                with open(f, "rb") as stream:
                    blake3(stream.read()).digest()
        else:
            report = VerifyReport()
            with ward.db.reading() as conn:
                (old if which == "before" else new)._verify_objects(conn, report)
            assert report.ok and report.checked["objects"] > 0, report.problems
        timings[which]["cpu"].append(time.process_time() - cpu)
        timings[which]["wall"].append(time.perf_counter() - wall)

    run("blake3")  # the files in the page cache for every round alike
    for r in range(rounds):
        for which in ("before", "after", "blake3") if r % 2 == 0 else ("blake3", "after", "before"):
            run(which)
    mb = size / 1e6
    out: dict[str, Any] = {"objects": len(files), "mb": round(mb, 1), "rounds": rounds}
    for which, t in timings.items():
        best_cpu, best_wall = min(t["cpu"]), min(t["wall"])
        out[which] = {
            "cpu_s": round(best_cpu, 3),
            "wall_s": round(best_wall, 3),
            "mb_per_cpu_s": round(mb / best_cpu, 1),
            "mb_per_s": round(mb / best_wall, 1),
            "cpu_s_all": [round(x, 3) for x in t["cpu"]],
        }
    out["before_over_after_cpu"] = round(out["before"]["cpu_s"] / out["after"]["cpu_s"], 2)
    out["after_over_blake3_cpu"] = round(out["after"]["cpu_s"] / out["blake3"]["cpu_s"], 2)
    out["before_over_after_wall"] = round(out["before"]["wall_s"] / out["after"]["wall_s"], 2)
    out["after_over_blake3_wall"] = round(out["after"]["wall_s"] / out["blake3"]["wall_s"], 2)
    print("objects", json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a ward folder kept by bench_provenance --ward (with built.json)")
    parser.add_argument("--before", required=True, help="the commit whose code is compared")
    parser.add_argument("--budget", type=float, default=60.0, help="at most this many seconds per handle kind")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the object re-hash")
    parser.add_argument("--skip-traces", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--pg-dir", type=Path, help="the kept PostgreSQL cluster of a PostgreSQL ward (started, then stopped)"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.pg_dir is not None:
            from benchmarks.pg_cluster import postgres_cluster

            stack.enter_context(postgres_cluster(root=args.pg_dir))
        run(args)


def run(args: argparse.Namespace) -> None:
    built = json.loads((args.folder / "built.json").read_text())
    ward = Ward.open(args.folder / "ward")
    old_modules = code_at(args.before)
    old = old_modules["tracing"].TraceService(ward.context)
    result: dict[str, Any] = {
        "command": "python -m benchmarks.bench_trace_before_after " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_start": round(os.getloadavg()[0], 1),
        "before": args.before,
        "after": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "ward": str(args.folder),
    }
    if not args.skip_traces:
        for cold in (False, True):
            result["cold" if cold else "warm"] = time_traces(
                ward, old, built["handles"], old_modules["derived"], cold=cold, budget=args.budget
            )
    result["taint"] = time_taint(ward, built["handles"]["key"], old_modules["derived"])
    result["objects"] = time_objects(ward, old_modules, args.rounds)
    result["load_average_end"] = round(os.getloadavg()[0], 1)
    if args.out is not None:
        earlier = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
        earlier["runs"] = [r for r in earlier["runs"] if r.get("ward") != result["ward"]] + [result]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(earlier, indent=2) + "\n")


if __name__ == "__main__":
    main()
