"""``verify``'s chain check on a long ledger: events per second, read from the catalog and checked
(every link and every hash recomputed from the stored bytes, the spaced signatures), on SQLite and on
PostgreSQL.

The ledger: ``--events`` events re-sealed (new sequence numbers and links, signed with the ward key)
from the events of a real ward built by ``bench_provenance.build`` at 10,000 records (same types,
actors, subjects and payloads, in turn), written to the catalog's ``ledger_events`` table as
``ledger_store.append`` writes them.

Measured in one process, one after the other:

* *before*: the check as it was (``ledger_store.read_chain``: every row through SQLAlchemy, subject
  and payload parsed into events; ``verify_chain`` over them);
* *after*: ``ledger_store.read_stored`` (the driver's cursor, the stored texts unparsed) and
  ``verify_stored``;
* BLAKE3 alone over the same event bytes (each event's RFC 8785 body, in memory), the floor of any
  check that rehashes every event in this process;
* parsing the rows into events (``decode_stored``), which ``Ward.verify`` does after the chain check
  for its catalog and record checks.

With ``--whole`` (SQLite): the whole ``Ward.verify`` (chain, key, checkpoints, catalog, record index,
holder index, objects, versions) on a copy of the template ward whose ledger is replaced by the
re-sealed chain, rounded down to whole rounds of the template's events so that replaying it gives
exactly the template's catalog (the verify finds nothing). Measured against ``AuditService`` as it
was at ``--before`` (its ``audit.py`` read from git and run over the same ward, in the same process,
rounds alternating); and, in the same process, the parts of the verify as shipped.

Usage::

    nice -n 10 python -m benchmarks.bench_verify_chain --events 1000000 --catalog sqlite --keep DIR
    nice -n 10 python -m benchmarks.bench_verify_chain --events 100000 --whole --keep DIR

Figures go to ``benchmarks/results/verify_chain.json`` (one entry per catalog and size), and with
``--whole`` to ``benchmarks/results/verify_whole.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from blake3 import blake3
from sqlalchemy import func, insert, select

from dataward.catalog import ledger_store
from dataward.catalog.database import CatalogDatabase
from dataward.catalog.tables import ledger_events
from dataward.domain.hashing import canonical_json, jcs_quick
from dataward.ledger.events import (
    _BODY,
    CURRENT_FORMAT,
    GENESIS,
    SIGNATURE_SPACING,
    decode_stored,
    signed_message,
    verify_chain,
    verify_stored,
)
from dataward.ledger.signing import SignatureVerifier
from dataward.service.ward import Ward

RESULTS = Path(__file__).resolve().parent / "results" / "verify_chain.json"
BATCH = 10_000


def template_ward(folder: Path) -> Ward:
    """The ward whose events are re-sealed: built once (about 90 s) and kept in ``folder``."""
    if not (folder / "ward" / "catalog.sqlite").exists():
        from benchmarks.bench_provenance import build

        build(folder, 10_000, None)
    return Ward.open(folder / "ward")


def fill(db: CatalogDatabase, ward: Ward, count: int) -> float:
    """Write a sound chain of ``count`` events to ``db``'s empty ledger; returns the seconds taken."""
    start = time.perf_counter()
    with ward.db.reading() as conn:
        templates = list(ledger_store.read_events(conn))
    parts = []
    for t in templates:
        # The stored texts (what append writes) and the RFC 8785 texts the hash is over.
        stored = (canonical_json(t.subject).decode(), canonical_json(t.payload).decode())
        hashed = (jcs_quick(t.subject).decode(), jcs_quick(t.payload).decode())
        parts.append((t, stored, hashed))
    prev = GENESIS
    batch: list[dict[str, Any]] = []
    for i in range(count):
        t, stored, hashed = parts[i % len(parts)]
        seq = i + 1
        key = t.actor["key"]
        body = _BODY[CURRENT_FORMAT] % (
            "null" if key is None else f'"{key}"',
            t.actor["principal"],
            hashed[1],
            prev,
            seq,
            hashed[0],
            t.time,
            t.type,
        )
        digest = "b3:" + blake3(body.encode()).hexdigest()
        batch.append(
            {
                "seq": seq,
                "prev": prev,
                "hash": digest,
                "time": t.time,
                "type": t.type,
                "actor_principal": t.actor["principal"],
                "actor_key": key,
                "subject": stored[0],
                "payload": stored[1],
                "sig": ward.signer.sign(signed_message(CURRENT_FORMAT, seq, digest, ward.ward_id)),
                "format": CURRENT_FORMAT,
            }
        )
        prev = digest
        if len(batch) == BATCH or i == count - 1:
            with db.transaction() as conn:
                conn.execute(insert(ledger_events), batch)
            batch = []
    return time.perf_counter() - start


def measure(db: CatalogDatabase, ward: Ward, *, before: bool) -> dict[str, Any]:
    verifier = SignatureVerifier(ward.signer.public_key_b64)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(label: str, work: Any) -> Any:
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        result = work()
        timings[label] = time.perf_counter() - start
        cpu[label] = time.process_time() - start_cpu
        return result

    def read() -> list[Any]:
        with db.reading() as conn:
            return ledger_store.read_stored(conn)

    rows = timed("read", read)
    count = len(rows)
    problems = timed("check", lambda: verify_stored(rows, verifier, ward.ward_id, signature_every=SIGNATURE_SPACING))
    assert problems == [], problems[:5]
    timings["after"] = timings["read"] + timings["check"]
    cpu["after"] = cpu["read"] + cpu["check"]
    # How many rows the quick way took (outside the timing): the others were parsed and checked exactly.
    # Their bytes are what BLAKE3 alone hashes: the put-together ones are the RFC 8785 bodies.
    bodies: list[bytes] = []
    for seq, prev, digest, time_, kind, principal, key, subject, payload, _, _ in rows:
        quoted = "null" if key is None else f'"{key}"'
        b = (_BODY[CURRENT_FORMAT] % (quoted, principal, payload, prev, seq, subject, time_, kind)).encode()
        bodies.append(b if "b3:" + blake3(b).hexdigest() == digest else b"")
    quick = sum(1 for b in bodies if b)
    bodies = [b or decode_stored(r).canonical_body() for b, r in zip(bodies, rows, strict=True)]
    size = sum(map(len, bodies)) / len(bodies)

    def bare() -> None:
        for b in bodies:
            blake3(b).digest()

    timed("blake3", bare)
    timed("decode", lambda: [decode_stored(r, damaged={}) for r in rows])
    rows.clear()  # free them before the check as it was reads everything again
    bodies.clear()
    if before:

        def old() -> None:
            with db.reading() as conn:
                events, texts = ledger_store.read_chain(conn)
            assert verify_chain(events, verifier, ward.ward_id, signature_every=SIGNATURE_SPACING, stored=texts) == []

        timed("before", old)
    return {
        "events": count,
        "quick_share": round(quick / count, 4),
        "mean_event_bytes": round(size),
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "per_s": {k: round(count / v) for k, v in timings.items()},
        "per_cpu_s": {k: round(count / v) for k, v in cpu.items() if v},
        "after_over_before": round(timings["before"] / timings["after"], 1) if before else None,
        "after_over_before_cpu": round(cpu["before"] / cpu["after"], 1) if before else None,
        "after_over_blake3": round(timings["after"] / timings["blake3"], 2),
        "after_over_blake3_cpu": round(cpu["after"] / cpu["blake3"], 2),
    }


WHOLE_RESULTS = Path(__file__).resolve().parent / "results" / "verify_whole.json"
BEFORE = "fe5d897"
"""The commit whose ``AuditService.verify`` is the baseline of ``--whole`` (every row parsed into an
event, every change made a ``RowChange``, every submitted chunk read at each submission)."""


def whole_ward(folder: Path, template: Ward, count: int) -> tuple[Ward, int]:
    """A copy of the template ward whose ledger is ``count`` re-sealed events, rounded down to whole
    rounds of the template's events (at least one); kept in ``folder``."""
    import shutil

    from sqlalchemy import delete

    with template.db.reading() as conn:
        per_round = ledger_store.count(conn)
    count = max(1, count // per_round) * per_round
    target = folder / f"whole-{count}"
    if not (target / "ward.json").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(template.folder, target)
        db = CatalogDatabase(f"sqlite:///{target / 'catalog.sqlite'}")
        try:
            with db.transaction() as conn:
                conn.execute(delete(ledger_events))
            fill(db, template, count)
        finally:
            db.dispose()
    return Ward.open(target), count


def audit_at(commit: str) -> Any:
    """``dataward.service.audit`` as it was at ``commit``, loaded from git under another name."""
    import subprocess
    import types

    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{commit}:src/dataward/service/audit.py"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    import sys

    module = types.ModuleType(f"audit_{commit}")
    module.__file__ = f"audit@{commit}"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def measure_whole(ward: Ward, count: int, *, before: str, rounds: int) -> dict[str, Any]:
    """CPU seconds of the whole verify as shipped and as it was at ``before``, rounds alternating;
    then the parts of the verify as shipped, one run."""
    from unittest.mock import patch

    from dataward.service import audit

    now = ward.services.audit
    if before:
        old_module = audit_at(before)
        old = old_module.AuditService.__new__(old_module.AuditService)
        old.__dict__.update(now.__dict__)

    def cpu(work: Any) -> float:
        gc.collect()
        start = time.process_time()
        report = work()
        spent = time.process_time() - start
        assert report.ok, report.problems[:5]
        assert report.checked["events"] == count
        return spent

    after_s: list[float] = []
    before_s: list[float] = []
    for _ in range(rounds):
        after_s.append(cpu(now.verify))
        if before:
            before_s.append(cpu(old.verify))
    parts: dict[str, float] = {}

    def timed(target: Any, name: str) -> Any:
        original = getattr(target, name)

        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                parts[name] = parts.get(name, 0.0) + time.process_time() - start

        return patch.object(target, name, run)

    # The catalog check's input alone, both ways, over the same rows: every row made an event and every
    # change a RowChange (before), against the payloads' changes as parsed (after).
    from dataward.catalog.projection import replay, replay_stored

    with ward.db.reading() as conn:
        rows = ledger_store.read_stored(conn)
    replayed: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(rounds):
        gc.collect()
        start = time.process_time()
        expected_before = replay(c for r in rows for c in ledger_store.event_changes(decode_stored(r, damaged={})))
        replayed["before"].append(time.process_time() - start)
        gc.collect()
        start = time.process_time()
        expected_after = replay_stored(ledger_store.stored_facts(rows).changes)
        replayed["after"].append(time.process_time() - start)
        assert expected_after == expected_before
    del rows, expected_before, expected_after
    gc.collect()
    start = time.process_time()
    with (
        timed(ledger_store, "read_stored"),
        timed(audit, "verify_stored"),
        timed(ledger_store, "stored_facts"),
        timed(audit.AuditService, "_verify_projections"),
        timed(audit.AuditService, "_verify_records"),
        timed(audit.AuditService, "_verify_holders"),
        timed(audit.AuditService, "_verify_objects"),
        timed(audit.AuditService, "_verify_versions"),
    ):
        assert now.verify().ok
    total = time.process_time() - start
    parts["rest"] = total - sum(parts.values())
    best_after = min(after_s)
    best_before = min(before_s) if before_s else None
    return {
        "events": count,
        "before": before,
        "cpu_seconds_after": [round(x, 2) for x in after_s],
        "cpu_seconds_before": [round(x, 2) for x in before_s],
        "events_per_cpu_s_after": round(count / best_after),
        "events_per_cpu_s_before": round(count / best_before) if best_before else None,
        "after_over_before": round(best_before / best_after, 2) if best_before else None,
        "catalog_input_cpu_seconds_after": [round(x, 3) for x in replayed["after"]],
        "catalog_input_cpu_seconds_before": [round(x, 3) for x in replayed["before"]],
        "catalog_input_after_over_before": round(min(replayed["before"]) / min(replayed["after"]), 2),
        "parts_cpu_seconds": {k: round(v, 3) for k, v in parts.items()},
        "parts_events_per_cpu_s": {k: round(count / v) for k, v in parts.items() if v > 0},
    }


def measure_jobs(ward: Ward, count: int, *, rounds: int) -> dict[str, Any]:
    """The whole verify in one process (``jobs=1``) and with a forked child checking part of the chain
    (``jobs=2``), rounds alternating: wall-clock seconds, and CPU seconds of this process and of the
    child (user + system)."""
    import resource

    audit = ward.services.audit

    def cpu() -> tuple[float, float]:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime

    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for _ in range(rounds):
        for jobs in (1, 2):
            gc.collect()
            (me0, kids0), start = cpu(), time.perf_counter()
            report = audit.verify(jobs=jobs)
            wall = time.perf_counter() - start
            me1, kids1 = cpu()
            assert report.ok and report.checked["events"] == count, report.problems[:5]
            runs[jobs].append(
                {"wall_s": round(wall, 2), "self_cpu_s": round(me1 - me0, 2), "child_cpu_s": round(kids1 - kids0, 2)}
            )

    def best(jobs: int, key: str) -> float:
        return min(r[key] for r in runs[jobs])

    one_cpu = min(r["self_cpu_s"] + r["child_cpu_s"] for r in runs[1])
    two_cpu = min(r["self_cpu_s"] + r["child_cpu_s"] for r in runs[2])
    return {
        "events": count,
        "runs": {str(k): v for k, v in runs.items()},
        "events_per_s": {"1": round(count / best(1, "wall_s")), "2": round(count / best(2, "wall_s"))},
        "events_per_cpu_s": {"1": round(count / one_cpu), "2": round(count / two_cpu)},
        "events_per_parent_cpu_s": {
            "1": round(count / best(1, "self_cpu_s")),
            "2": round(count / best(2, "self_cpu_s")),
        },
    }


def main_whole(args: argparse.Namespace, folder: Path) -> None:
    template = template_ward(folder / "template")
    ward, count = whole_ward(folder, template, args.events)
    measured = (
        measure_jobs(ward, count, rounds=args.rounds)
        if args.jobs
        else measure_whole(ward, count, before=args.before, rounds=args.rounds)
    )
    row = {
        "catalog": "sqlite",
        "load_average": round(os.getloadavg()[0], 1),
        **measured,
        "before": "jobs" if args.jobs else args.before,
        "load_average_end": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(row), flush=True)
    results = args.out or WHOLE_RESULTS
    data = json.loads(results.read_text()) if results.exists() else {"runs": []}
    data["runs"] = [r for r in data["runs"] if (r["events"], r.get("before")) != (row["events"], row["before"])]
    data["runs"].append(
        {
            **row,
            "command": f"python -m benchmarks.bench_verify_chain --events {args.events} --whole --before "
            f"{args.before or chr(39) * 2} --rounds {args.rounds}"
            + (" --jobs" if args.jobs else "")
            + (f" --out {args.out}" if args.out else ""),
            "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
    )
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--catalog", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--keep", type=Path, help="folder for the template ward and the SQLite chains, kept")
    parser.add_argument("--no-before", action="store_true", help="skip the check as it was (slow at 1,000,000)")
    parser.add_argument("--whole", action="store_true", help="the whole Ward.verify, against --before (SQLite)")
    parser.add_argument(
        "--before", default=BEFORE, help="the commit of the baseline verify for --whole ('' to skip it)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds for --whole")
    parser.add_argument("--jobs", action="store_true", help="--whole: verify in one process against jobs=2")
    parser.add_argument("--out", type=Path, help="the JSON file for --whole (default: results/verify_whole.json)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="dataward-bench-chain-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.whole:
        main_whole(args, folder)
        return
    ward = template_ward(folder / "template")
    with_cluster = None
    if args.catalog == "postgresql":
        from benchmarks.pg_cluster import create_database, postgres_cluster

        with_cluster = postgres_cluster()
        db = CatalogDatabase(create_database(with_cluster.__enter__()))
    else:
        db = CatalogDatabase(f"sqlite:///{folder / f'chain-{args.events}.sqlite'}")
    try:
        db.migrate()
        with db.reading() as conn:
            have = conn.execute(select(func.count()).select_from(ledger_events)).scalar_one()
        fill_s = None
        if have != args.events:
            assert have == 0, f"{db.url} holds {have} events, not {args.events}"
            fill_s = round(fill(db, ward, args.events), 1)
        row = {
            "catalog": args.catalog,
            "fill_s": fill_s,
            "load_average": round(os.getloadavg()[0], 1),
            **measure(db, ward, before=not args.no_before),
        }
    finally:
        db.dispose()
        if with_cluster is not None:
            with_cluster.__exit__(None, None, None)
    row["load_average_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(row), flush=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": []}
    data["runs"] = [r for r in data["runs"] if (r["catalog"], r["events"]) != (row["catalog"], row["events"])]
    data["runs"].append(
        {
            **row,
            "command": f"python -m benchmarks.bench_verify_chain --events {args.events} --catalog {args.catalog}"
            + (" --no-before" if args.no_before else ""),
            "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
