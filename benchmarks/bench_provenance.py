"""Provenance at scale: trace from any handle, quarantine of a leaked key, and verify, on SQLite and
PostgreSQL, at several ward sizes, with how each figure grows.

The ward at size N (the issue's full size is N = 1,000,000):

* 10 text datasets; ``C = N / 1,000`` contributions of 1,000 records each (at least 10), submitted
  through the real import path (``Ward.contribute`` on a CSV file, with a bot's key) by 10 bots and
  one *leaked* bot key, which submits every tenth contribution (100 at full size);
* ``V = N / 10,000`` merges (at least 10): gated (the light ``duplicates`` gate), merged; every
  version is a new immutable version of its dataset;
* ``T = N / 10,000`` transformations (at least 10): a relabelling of 20 records of a dataset's latest
  version, recorded with its record lineage (not merged);
* ``C / 10`` source URIs.

Measured, in the same process, after building:

* ``trace`` latency (p50, p99, max) from a record (an ordinary one and a relabelled one), a
  contribution, a key and a source URI: each the whole use case (authorization, catalog, objects);
* ``quarantine dw_<leaked key>`` once (every contribution it touched, one rollback per dataset);
* ``verify`` once: events per second for the chain (hash and signature of every event), object MB
  per second for re-hashing every stored object, against BLAKE3 over the same bytes in-process, and
  the whole run.

Growth is fitted as ``time = a * N^b`` over the sizes run (b near 1: linear in the ward's size).

Usage::

    python -m benchmarks.bench_provenance --sizes 10000,100000 --catalogs sqlite,postgresql
    python -m benchmarks.bench_provenance --report      # rewrite docs/benchmarks.md from the JSON

Figures go to ``benchmarks/results/provenance.json`` and docs/benchmarks.md (between the
``provenance`` markers).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from blake3 import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.service import audit, derived, idsets, rows
from dataward.service.heap import settle_startup_heap
from dataward.service.recordstore import read_ids
from dataward.service.ward import Ward

RESULTS = Path(__file__).resolve().parent / "results" / "provenance.json"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- provenance:begin -->", "<!-- provenance:end -->"
SCHEMA = Schema(label="label", inputs=(Column("text", ColumnKind.TEXT),))
POLICY = "approvals:\n  required: 0\ngate:\n  detectors: [duplicates]\nfirst_import: self-reference\n"
DATASETS = 10
PER_CONTRIBUTION = 1_000
BOTS = 10
RELABELLED = 20
"""Records per relabelling (the gate's self-reference mode needs a few dozen to judge one)."""
LABELS = [f"class_{i}" for i in range(10)]
SAMPLES = {"record": 60, "derived record": 30, "contribution": 60, "key": 33, "source": 60}
BUDGET_S = 90.0
"""At most this long per handle: at the largest sizes a slow handle gets fewer samples."""


def _csv(path: Path, start: int, count: int, rng: random.Random) -> Path:
    words = [f"w{i:04d}" for i in range(5_000)]
    texts = [f"r{start + i} " + " ".join(rng.choices(words, k=rng.randint(5, 12))) for i in range(count)]
    labels = [rng.choice(LABELS) for _ in range(count)]
    pacsv.write_csv(pa.table({"text": texts, "label": labels}), path)
    return path


def shape(size: int) -> dict[str, int]:
    """Contributions, merges, transformations and sources of a ward of ``size`` records."""
    contributions = max(10, size // PER_CONTRIBUTION)
    steps = max(10, size // 10_000)
    return {
        "records": contributions * PER_CONTRIBUTION,
        "contributions": contributions,
        "merges": steps,
        "transformations": steps,
        "sources": max(10, contributions // 10),
        "leaked_key_contributions": contributions // 10,
    }


STATE = "build_state.json"
"""A resumable build's progress in its folder: what is done, and what the next part starts from."""


def build(folder: Path, size: int, catalog_url: str | None, seed: int = 0) -> dict[str, Any]:
    """Build the ward through the real paths; returns the handles to trace and the build timings."""
    built = build_part(folder, size, catalog_url, seed=seed)
    assert built is not None
    return built


def build_part(
    folder: Path,
    size: int,
    catalog_url: str | None,
    *,
    seed: int = 0,
    budget_s: float | None = None,
    merges: int | None = None,
) -> dict[str, Any] | None:
    """Build (or go on building) the ward in ``folder``; stop after ``budget_s`` seconds at the next
    whole step (a contribution, a merge, a relabelling) with the progress saved in ``folder/STATE``,
    and return None; return what ``build`` returns once the ward is whole. Every step draws from its
    own generator (seeded by ``seed`` and its number), so a build in parts makes the same ward as one
    in one go: each part fits a time limit on a shared machine. ``merges`` (once given, kept in the
    progress) merges only that many contributions instead of the shape's: each gated merge costs the
    gate's scan, about 13 s of CPU, so the issue's 100 at 1,000,000 records take the longest part."""
    plan = shape(size)
    names = [f"shard{i}" for i in range(DATASETS)]
    state_path = folder / STATE
    deadline = None if budget_s is None else time.perf_counter() + budget_s
    if state_path.exists():
        state = json.loads(state_path.read_text())
        ward = Ward.open(folder / "ward")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        ward, _ = Ward.init(folder / "ward", catalog_url=catalog_url)
        for name in names:
            ward.create_dataset(name, SCHEMA)
            ward.set_policy(name, POLICY)
        ward.create_principal("alice")
        bots = []
        for i in range(BOTS + 1):
            bot = "leaked-bot" if i == BOTS else f"bot{i}"
            ward.create_principal(bot, kind="service", owner="alice")
            for name in names:
                ward.grant(bot, "contributor", f"dataset:{name}")
            bots.append((bot, ward.issue_key(bot)["key"]))
        ward.create_principal("rita")
        for name in names:
            ward.grant("rita", "reviewer", f"dataset:{name}")
        state = {
            "bots": bots,
            "reviewer": ward.issue_key("rita")["key"],
            "refs": [],
            "sources": [],
            "merged": 0,
            "derived": [],
            "transformed": 0,
            "build_s": {"contribute": 0.0, "merge": 0.0, "transform": 0.0},
        }
        state_path.write_text(json.dumps(state))
    if merges is not None:
        state["merges"] = merges
    plan["merges"] = state.get("merges", plan["merges"])
    keyed = {bot: ward.as_key(key) for bot, key in state["bots"]}
    reviewer = ward.as_key(state["reviewer"])

    def save() -> None:
        state_path.write_text(json.dumps(state))

    def out_of_time() -> bool:
        if deadline is not None and time.perf_counter() > deadline:
            save()
            ward.db.dispose()
            return True
        return False

    def merge(ref: str) -> None:
        # What the light gate happens to flag is accepted by a reviewer, as a team would.
        pending = [item["id"] for item in ward.review_list(contribution=ref)]
        if pending:
            reviewer.review_decide(pending, "accept", reason="benchmark: checked")
        ward.merge(ref)

    inputs = folder / "inputs"
    inputs.mkdir(exist_ok=True)
    refs: list[str] = state["refs"]
    sources: list[str] = state["sources"]
    for i in range(len(refs), plan["contributions"]):
        if out_of_time():
            return None
        started = time.perf_counter()
        bot = "leaked-bot" if i % 10 == 9 else f"bot{i % BOTS}"
        source = f"https://crawl.example/{i % plan['sources']}/dump.csv"
        path = _csv(inputs / f"c{i}.csv", i * PER_CONTRIBUTION, PER_CONTRIBUTION, random.Random(f"{seed}:c{i}"))
        info = keyed[bot].contribute(names[i % DATASETS], path, source=source, gate=False)
        path.unlink()
        refs.append(info["ref"])
        sources.append(source)
        state["build_s"]["contribute"] += time.perf_counter() - started
        save()
    # Merges: the first contributions of each dataset, round-robin, so versions grow in every one.
    while state["merged"] < plan["merges"]:
        if out_of_time():
            return None
        started = time.perf_counter()
        ref = refs[state["merged"]]
        ward.run_gate(ref)
        merge(ref)
        state["merged"] += 1
        state["build_s"]["merge"] += time.perf_counter() - started
        save()
    with_versions = [name for name in names if ward.versions(name)]
    while state["transformed"] < plan["transformations"]:
        if out_of_time():
            return None
        started = time.perf_counter()
        t = state["transformed"]
        rng = random.Random(f"{seed}:t{t}")
        name = with_versions[t % len(with_versions)]
        _, table = ward.read_version(name, ward.versions(name)[-1]["ref"].split("@")[1])
        rows = table.take(pa.array(rng.sample(range(table.num_rows), RELABELLED))).to_pylist()
        changes = {r["record_id"]: LABELS[(LABELS.index(r["label"]) + 1) % len(LABELS)] for r in rows}
        # Recorded with its lineage, not gated or merged: a relabelling's gate (rightly) blocks label
        # changes its content does not support, and merging it is not what is measured here.
        result = ward.relabel(name, changes, reason=f"annotator pass {t}", gate=False)
        state["derived"].extend(_record_ids(ward, result["ref"]))
        state["transformed"] += 1
        state["build_s"]["transform"] += time.perf_counter() - started
        save()
    rng = random.Random(seed)
    bots = state["bots"]
    handles = {
        "record": [],
        "derived record": sorted(set(state["derived"])),
        "contribution": refs,
        "key": [f"dw_{key.split('_')[1]}" for _, key in bots],
        "source": sorted(set(sources)),
    }
    for ref in rng.sample(refs, min(len(refs), SAMPLES["record"])):
        handles["record"].append(rng.choice(_record_ids(ward, ref)))
    leaked = dict(bots)["leaked-bot"]
    return {
        "ward": ward,
        "plan": plan,
        "handles": handles,
        "leaked": f"dw_{leaked.split('_')[1]}",
        "build_s": state["build_s"],
        "versions": sum(len(ward.versions(n)) for n in names),
    }


def _record_ids(ward: Ward, ref: str) -> list[str]:
    """Record ids a contribution added (read through the ward's own object store)."""
    with ward.db.reading() as conn:
        c = rows.contribution_row(conn, ref)
    return read_ids(ward.store, c.added_object)


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, math.ceil(0.99 * len(ms)) - 1)], 2),
        "max_ms": round(ms[-1], 2),
    }


def _cold() -> None:
    """Forget the per-process parsed id lists and lineage: what a one-shot CLI process starts with."""
    idsets.clear()
    derived.clear()


def time_traces(ward: Ward, handles: dict[str, list[str]], *, cold: bool, seed: int = 1) -> dict[str, dict[str, float]]:
    """Latency of ``trace`` per handle kind: warm (a long-lived process such as ``dataward serve``,
    parsed id lists kept) or cold (every trace starts from nothing parsed, as a CLI call does)."""
    rng = random.Random(seed)
    out = {}
    for kind, pool in handles.items():
        if not pool:
            continue
        picks = [rng.choice(pool) for _ in range(SAMPLES[kind] // (3 if cold else 1))]
        if kind == "source":
            picks = [f"source:{p}" for p in picks]
        ward.trace(picks[0])  # one warm-up: imports and first connection
        if not cold:
            # What ``dataward serve``'s workers do once started (service.heap): the start-up heap is
            # left out of later full collections. A one-shot CLI process (cold) does not.
            settle_startup_heap()
        seconds: list[float] = []
        cpu: list[float] = []
        full_gc: list[float] = []
        budget = time.perf_counter() + BUDGET_S
        for ref in picks:
            if cold:
                _cold()
            with _full_collections() as spent:
                start, start_cpu = time.perf_counter(), time.process_time()
                ward.trace(ref)
                seconds.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            full_gc.append(spent[0])
            if time.perf_counter() > budget and len(seconds) >= 5:
                break
        # Wall-clock time, and this process's CPU time: on a shared machine the wall clock includes
        # waiting for a core; the CPU time is the work itself. Also how many calls ran a full
        # (generation-2) collection of this process's heap, and the CPU p99 of the calls that did not.
        cpu_p = _percentiles(cpu)
        quiet = [c for c, g in zip(cpu, full_gc, strict=True) if not g]
        out[kind] = {
            **_percentiles(seconds),
            "cpu_p50_ms": cpu_p["p50_ms"],
            "cpu_p99_ms": cpu_p["p99_ms"],
            "full_gc_calls": sum(1 for g in full_gc if g),
            "full_gc_max_ms": round(max(full_gc) * 1000, 2),
            "cpu_p99_ms_without_full_gc": _percentiles(quiet)["p99_ms"] if quiet else None,
        }
    if not cold:
        gc.unfreeze()  # the cold traces that follow stand for a fresh process, which has not settled
    return out


@contextlib.contextmanager
def _full_collections() -> Iterator[list[float]]:
    """Wall-clock seconds spent in full (generation-2) garbage collections while the block runs."""
    spent = [0.0]
    started: list[float] = []

    def watch(phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            spent[0] += time.perf_counter() - started.pop()

    gc.callbacks.append(watch)
    try:
        yield spent
    finally:
        gc.callbacks.remove(watch)


@contextlib.contextmanager
def _timing(target: Any, name: str, sink: dict[str, float]) -> Iterator[None]:
    original = getattr(target, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            sink[name] = sink.get(name, 0.0) + time.perf_counter() - start

    with patch.object(target, name, timed):
        yield


def time_verify(ward: Ward) -> dict[str, Any]:
    """One ``verify``, split into the chain check and the object re-hash, and BLAKE3 over the same
    object bytes in this process."""
    phases: dict[str, float] = {}
    with (
        _timing(audit, "verify_stored", phases),
        _timing(audit.AuditService, "_verify_objects", phases),
        _timing(audit.AuditService, "_verify_projections", phases),
        _timing(audit.AuditService, "_verify_records", phases),
    ):
        start = time.perf_counter()
        report = ward.verify()
        total = time.perf_counter() - start
    assert report.ok, report.to_dict()
    events = report.checked["events"]
    objects = [p for p in (ward.folder / "objects").rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in objects)
    start = time.perf_counter()
    for p in objects:
        blake3(p.read_bytes()).digest()
    b3 = time.perf_counter() - start
    mb = size / 1e6
    signer = Ed25519PrivateKey.generate()
    message = b"dataward bench " * 8
    signature, public = signer.sign(message), signer.public_key()
    start = time.perf_counter()
    for _ in range(2_000):
        public.verify(signature, message)
    ed25519 = 2_000 / (time.perf_counter() - start)
    return {
        "ed25519_per_s": round(ed25519),
        "events": events,
        "objects": len(objects),
        "object_mb": round(mb, 1),
        "total_s": round(total, 2),
        "chain_s": round(phases.get("verify_stored", 0.0), 2),
        "events_per_s": round(events / phases["verify_stored"]) if phases.get("verify_stored") else None,
        "objects_s": round(phases.get("_verify_objects", 0.0), 2),
        "object_mb_per_s": round(mb / phases["_verify_objects"], 1) if phases.get("_verify_objects") else None,
        "blake3_mb_per_s": round(mb / b3, 1) if b3 else None,
        "projections_s": round(phases.get("_verify_projections", 0.0), 2),
        "records_s": round(phases.get("_verify_records", 0.0), 2),
    }


CHAIN_EVENTS = 20_000
"""Events in the chain ``time_chain`` checks: the ward's own events, repeated with new sequence numbers."""


def time_chain(ward: Ward, count: int = CHAIN_EVENTS) -> dict[str, Any]:
    """The chain check alone, at a ledger length the ward's own history does not reach: ``count`` events
    re-sealed from the ward's own (same types, subjects and payloads, in turn), each read back from
    its stored JSON text as ``read_events`` does. Timed in the same process: the check as shipped
    (links and hashes of every event, spaced signatures), with every signature, and the way it was
    before (RFC 8785 in pure Python and one Ed25519 verification per event), against Ed25519 and
    BLAKE3 alone over the same events."""
    import json as _json

    from dataward.domain.hashing import canonical_json
    from dataward.ledger.events import GENESIS, SIGNATURE_SPACING, Actor, Event, seal, verify_chain
    from dataward.ledger.signing import SignatureVerifier

    with ward.db.reading() as conn:
        templates = list(audit.ledger_store.read_events(conn))
    sealed: list[Event] = []
    prev = GENESIS
    for i in range(count):
        t = templates[i % len(templates)]
        e = seal(
            seq=i + 1,
            prev=prev,
            time=t.time,
            actor=Actor(**t.actor),
            type=t.type,
            subject=t.subject,
            payload=t.payload,
            signer=ward.signer,
            ward_id=ward.ward_id,
        )
        sealed.append(e)
        prev = e.hash
    stored = [(e, canonical_json(e.subject).decode(), canonical_json(e.payload).decode()) for e in sealed]
    start = time.perf_counter()
    events = [
        Event(**{**e.__dict__, "subject": _json.loads(subject), "payload": _json.loads(payload)})
        for e, subject, payload in stored
    ]
    parse_s = time.perf_counter() - start
    verifier = SignatureVerifier(ward.signer.public_key_b64)
    timings: dict[str, float] = {}
    for label, every in (("spaced", SIGNATURE_SPACING), ("all_signatures", 1)):
        start = time.perf_counter()
        texts = [(subject, payload) for _, subject, payload in stored]
        assert verify_chain(events, verifier, ward.ward_id, signature_every=every, stored=texts) == []
        timings[label] = time.perf_counter() - start
    start = time.perf_counter()
    for e in events:  # the check before this change: exact RFC 8785 and every signature
        assert e.computed_hash() == e.hash and verifier.verify(e.signed_message(ward.ward_id), e.sig)
    timings["before"] = time.perf_counter() - start
    messages = [(e.signed_message(ward.ward_id), e.sig) for e in events]
    start = time.perf_counter()
    for message, sig in messages:
        verifier.verify(message, sig)
    timings["ed25519"] = time.perf_counter() - start
    bodies = [e.canonical_body() for e in events]
    start = time.perf_counter()
    for body in bodies:
        blake3(body).digest()
    timings["blake3"] = time.perf_counter() - start
    rate = {k: round(count / v) for k, v in timings.items()}
    return {
        "events": count,
        "spacing": SIGNATURE_SPACING,
        "parse_per_s": round(count / parse_s),
        "per_s": rate,
        "spaced_over_before": round(timings["before"] / timings["spaced"], 1),
        "spaced_over_ed25519": round(timings["ed25519"] / timings["spaced"], 1),
    }


def _reuse(folder: Path, size: int) -> dict[str, Any] | None:
    """A ward an earlier run built and kept in ``folder`` (``--ward``), with its handles; None if none."""
    saved = folder / "built.json"
    if not saved.exists():
        return None
    data = json.loads(saved.read_text())
    ward = Ward.open(folder / "ward")
    return {
        "ward": ward,
        "plan": data.get("plan", shape(size)),
        "handles": data["handles"],
        "leaked": data["leaked"],
        "build_s": data.get("build_s", {}),
        "versions": sum(len(ward.versions(f"shard{i}")) for i in range(DATASETS)),
    }


BUILD_MERGES: int | None = None
"""``--merges``: merge only this many contributions in a build in parts (see ``build_part``)."""


def run_one(
    size: int, catalog: str, template: str | None, keep: Path | None = None, build_budget: float | None = None
) -> dict[str, Any] | None:
    """Build (or reuse a kept) ward and measure it; with ``build_budget`` (and ``keep``), only build, for at
    most that many seconds per call: returns None, the ward whole (``built.json`` written) or not."""
    folder = keep or Path(tempfile.mkdtemp(prefix="dataward-bench-prov-"))
    try:
        url = None
        if build_budget is not None:
            assert keep is not None, "a build in parts needs --ward"
            if (folder / "built.json").exists():
                print(f"{folder}: whole", flush=True)
                return None
            if catalog == "postgresql" and not (folder / STATE).exists():
                from benchmarks.pg_cluster import create_database

                assert template is not None
                url = create_database(template)
            built = build_part(folder, size, url, budget_s=build_budget, merges=BUILD_MERGES)
            if built is None:
                print(f"{folder}: not whole yet, run again", flush=True)
                return None
            saved = {k: built[k] for k in ("handles", "leaked", "build_s", "plan")}
            (folder / "built.json").write_text(json.dumps(saved))
            built["ward"].db.dispose()
            print(f"{folder}: whole", flush=True)
            return None
        if catalog == "postgresql":
            from benchmarks.pg_cluster import create_database

            assert template is not None
            url = create_database(template)
        started = time.perf_counter()
        built = _reuse(folder, size) if keep is not None else None
        if built is None:
            folder.mkdir(parents=True, exist_ok=True)
            built = build(folder, size, url)
            if keep is not None:
                saved = {k: built[k] for k in ("handles", "leaked", "build_s")}
                (folder / "built.json").write_text(json.dumps(saved))
        ward: Ward = built["ward"]
        build_s = sum(built["build_s"].values()) if keep is not None else time.perf_counter() - started
        traces = time_traces(ward, built["handles"], cold=False)
        cold = time_traces(ward, built["handles"], cold=True)
        verify = time_verify(ward)
        if CHAIN_EVENTS:
            verify["chain"] = time_chain(ward, CHAIN_EVENTS)
        start = time.perf_counter()
        result = ward.quarantine_by(built["leaked"], reason="benchmark: leaked bot key")
        quarantine_s = time.perf_counter() - start
        touched = sum(len(d["contributions"]) for d in result["datasets"])
        ward.db.dispose()
        row = {
            "size": size,
            "catalog": catalog,
            "code": _commit(),
            **built["plan"],
            "versions": built["versions"],
            "build_s": round(build_s, 1),
            "build_parts_s": {k: round(v, 1) for k, v in built["build_s"].items()},
            "trace": traces,
            "trace_cold": cold,
            "quarantine": {
                "contributions": touched,
                "datasets": len(result["datasets"]),
                "rollbacks": sum(1 for d in result["datasets"] if d["rollback_version"]),
                "seconds": round(quarantine_s, 2),
            },
            "verify": verify,
        }
        print(json.dumps(row), flush=True)
        return row
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def _commit() -> str:
    """The short commit of the code measured (with ``+`` when the tree has other changes)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src"], cwd=root, capture_output=True)
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("+" if dirty.returncode else "")


FIRST_RUN_CODE = "d2c76b2"
"""The code of runs recorded before rows named their commit."""


def _round(row: dict[str, Any]) -> str:
    """Which code a run measured, for fitting growth: the first round, or any later commit (the trace and
    verify code measured did not change between the later commits the rows name)."""
    code = row.get("code", FIRST_RUN_CODE)
    return FIRST_RUN_CODE if code == FIRST_RUN_CODE else f"after {FIRST_RUN_CODE}"


def _fit(points: list[tuple[int, float]]) -> float | None:
    """The exponent b of ``y = a * x^b`` by least squares on logs (None with fewer than two sizes)."""
    points = [(x, y) for x, y in points if y and y > 0]
    if len(points) < 2:
        return None
    xs, ys = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return round(float(np.polyfit(xs, ys, 1)[0]), 2) + 0.0  # never "-0.0"


def render(data: dict[str, Any]) -> str:
    rows = sorted(data["runs"], key=lambda r: (r["catalog"], r["records"]))
    kinds = [k for k in SAMPLES if any(k in r["trace"] for r in rows)]
    lines = [
        BEGIN,
        "## Provenance at scale: trace, quarantine and verify",
        "",
        f"- command: `{data['command']}`; figures in `benchmarks/results/provenance.json`",
        f"- machine: {data['machine']}; date: {data['date']}",
        "- the ward at size N: 10 text datasets, N/1,000 contributions of 1,000 records submitted through "
        "`Ward.contribute` with bot keys (every tenth by one leaked key), N/10,000 gated merges (at least 10), "
        "N/10,000 relabelling transformations with record lineage (at least 10, recorded, not merged), N/10,000 source "
        "URIs; see `benchmarks/bench_provenance.py`. Every figure is the whole use case in-process "
        "(authentication, authorization, catalog, objects), after one warm-up call.",
        "- *warm*: a long-lived process (`dataward serve`, a notebook) that has parsed the id lists before; "
        "*cold*: the parsed id lists and lineage forgotten before every call, as a one-shot CLI process starts.",
        "",
        "Trace latency, p50 / p99 in milliseconds:",
        "",
        "| catalog | code | records | contributions | versions | transformations | "
        + " | ".join(f"{k} warm | {k} cold" for k in kinds)
        + " |",
        "| --- | --- | ---: | ---: | ---: | ---: | " + " | ".join("---: | ---:" for _ in kinds) + " |",
    ]
    for r in rows:
        cells = []
        for k in kinds:
            for series in ("trace", "trace_cold"):
                got = r.get(series, {}).get(k)
                cells.append(f"{got['p50_ms']} / {got['p99_ms']}" if got else "-")
        lines.append(
            f"| {r['catalog']} | {r.get('code', FIRST_RUN_CODE)} | {r['records']:,} | {r['contributions']:,} "
            f"| {r['versions']} | {r['transformations']} | " + " | ".join(cells) + " |"
        )
    if any("cpu_p50_ms" in r["trace"].get(k, {}) for r in rows for k in kinds):
        lines += [
            "",
            "The same traces in CPU time of the measuring process (the work itself, without waiting for a core "
            "on the shared machine), p50 / p99 in milliseconds:",
            "",
            "| catalog | code | records | " + " | ".join(f"{k} warm | {k} cold" for k in kinds) + " |",
            "| --- | --- | ---: | " + " | ".join("---: | ---:" for _ in kinds) + " |",
        ]
        for r in rows:
            if not any("cpu_p50_ms" in r["trace"].get(k, {}) for k in kinds):
                continue
            cells = []
            for k in kinds:
                for series in ("trace", "trace_cold"):
                    got = r.get(series, {}).get(k, {})
                    cells.append(f"{got['cpu_p50_ms']} / {got['cpu_p99_ms']}" if "cpu_p50_ms" in got else "-")
            lines.append(
                f"| {r['catalog']} | {r.get('code', FIRST_RUN_CODE)} | {r['records']:,} | " + " | ".join(cells) + " |"
            )
    lines += [
        "",
        "Quarantine of the leaked key and verify:",
        "",
        "| catalog | records | quarantine (s) | contributions touched | rollback versions | events | verify chain "
        "events/s | Ed25519 verifications/s alone | object MB | verify objects MB/s | BLAKE3 MB/s alone "
        "| verify total (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        q, v = r["quarantine"], r["verify"]
        lines.append(
            f"| {r['catalog']} | {r['records']:,} | {q['seconds']} | {q['contributions']} | {q['rollbacks']} "
            f"| {v['events']:,} | {v['events_per_s']:,} | {v.get('ed25519_per_s', '-'):,} | {v['object_mb']} "
            f"| {v['object_mb_per_s']} | {v['blake3_mb_per_s']} | {v['total_s']} |"
        )
    chains = [r for r in rows if r["verify"].get("chain")]
    if chains:
        lines += [
            "",
            "The chain check alone, on a chain of the ward's own events re-sealed to a length its history does not "
            "reach (`time_chain`), in events per second, all in the same process: as shipped (every link and hash, "
            "spaced signatures), with every signature, as before (RFC 8785 in pure Python, every signature), and "
            "Ed25519 and BLAKE3 alone over the same events:",
            "",
            "| catalog | records | chain events | shipped | all signatures | before | Ed25519 alone | BLAKE3 alone "
            "| shipped / before | shipped / Ed25519 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in chains:
            c = r["verify"]["chain"]
            rate = c["per_s"]
            lines.append(
                f"| {r['catalog']} | {r['records']:,} | {c['events']:,} | {rate['spaced']:,} | "
                f"{rate['all_signatures']:,} | {rate['before']:,} | {rate['ed25519']:,} | {rate['blake3']:,} "
                f"| {c['spaced_over_before']}x | {c['spaced_over_ed25519']}x |"
            )
    lines += ["", "How each grows with the ward's size N (b of time = a * N^b, fitted over the sizes run):", ""]
    lines += ["| catalog | code | figure | b |", "| --- | --- | --- | ---: |"]
    for catalog, code in sorted({(r["catalog"], _round(r)) for r in rows}):
        mine = [r for r in rows if r["catalog"] == catalog and _round(r) == code]
        figures: dict[str, Callable[[dict[str, Any]], float | None]] = {}
        for k in kinds:
            figures[f"trace {k} warm p50"] = lambda r, k=k: r["trace"].get(k, {}).get("p50_ms")
            figures[f"trace {k} cold p50"] = lambda r, k=k: r.get("trace_cold", {}).get(k, {}).get("p50_ms")
        figures["quarantine"] = lambda r: r["quarantine"]["seconds"]
        figures["verify chain"] = lambda r: r["verify"]["chain_s"]
        figures["verify objects"] = lambda r: r["verify"]["objects_s"]
        figures["verify total"] = lambda r: r["verify"]["total_s"]
        for label, get in figures.items():
            b = _fit([(r["records"], get(r)) for r in mine])
            if b is not None:
                lines.append(f"| {catalog} | {code} | {label} | {b} |")
    lines += ["", *data.get("notes", []), END]
    return "\n".join(lines) + "\n"


def write_docs(data: dict[str, Any]) -> None:
    text = DOCS.read_text()
    block = render(data)
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    DOCS.write_text(text)


def main() -> None:
    global BUDGET_S, CHAIN_EVENTS, BUILD_MERGES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated ward sizes in records")
    parser.add_argument("--catalogs", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--report", action="store_true", help="only rewrite docs/benchmarks.md from the JSON")
    parser.add_argument(
        "--ward",
        type=Path,
        help="keep each ward built in FOLDER/CATALOG-SIZE, or measure the one an earlier run kept there (the "
        "quarantine step changes it, so measure a kept ward once)",
    )
    parser.add_argument("--merge", action="store_true", help="add these runs to the JSON instead of replacing it")
    parser.add_argument(
        "--build-budget",
        type=float,
        help="only build the wards in --ward, for at most this many seconds (run again until each is whole)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write the figures to this JSON file (merged by size and catalog) and leave docs/benchmarks.md as it is",
    )
    parser.add_argument("--merges", type=int, help="with --build-budget: merge only this many contributions")
    parser.add_argument("--trace-budget", type=float, default=BUDGET_S, help="at most this many seconds per handle")
    parser.add_argument(
        "--chain-events", type=int, default=CHAIN_EVENTS, help="events of the re-sealed chain check (0: skip it)"
    )
    parser.add_argument(
        "--pg-dir", type=Path, help="keep the PostgreSQL cluster in this folder (a ward built over several runs)"
    )
    args = parser.parse_args()
    BUDGET_S, CHAIN_EVENTS, BUILD_MERGES = args.trace_budget, args.chain_events, args.merges
    if args.report:
        write_docs(json.loads(RESULTS.read_text()))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    catalogs = [c for c in args.catalogs.split(",") if c]
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        template = None
        if "postgresql" in catalogs:
            from benchmarks.pg_cluster import postgres_cluster

            template = stack.enter_context(postgres_cluster(root=args.pg_dir))
        for catalog in catalogs:
            for size in sizes:
                keep = None if args.ward is None else args.ward / f"{catalog}-{size}"
                row = run_one(size, catalog, template, keep=keep, build_budget=args.build_budget)
                if row is not None:
                    runs.append(row)
    if args.build_budget is not None:
        return
    data = {
        "command": f"python -m benchmarks.bench_provenance --sizes {args.sizes} --catalogs {args.catalogs}"
        + (f" --ward {args.ward}" if args.ward else "")
        + (" --merge" if args.merge else ""),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, load average "
        f"{os.getloadavg()[0]:.1f} at the end",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": runs,
        "notes": [],
    }
    if args.out is not None:
        earlier = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
        mine = {(r["size"], r["catalog"]) for r in runs}
        command = f"{data['command']} --trace-budget {args.trace_budget:g} --chain-events {args.chain_events}"
        for row in runs:  # each run keeps its own command, machine and date: the file gathers several
            row.update(command=command, machine=data["machine"], date=data["date"])
        data["runs"] = [r for r in earlier["runs"] if (r["size"], r["catalog"]) not in mine] + runs
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=2) + "\n")
        return
    if RESULTS.exists():
        earlier = json.loads(RESULTS.read_text())
        data["notes"] = earlier.get("notes", [])
        if args.merge:
            # Runs of other sizes or catalogs measured earlier stay; the same size and catalog is replaced.
            mine = {(r["size"], r["catalog"]) for r in runs}
            data["runs"] = [r for r in earlier["runs"] if (r["size"], r["catalog"]) not in mine] + runs
            data["command"] = f"{earlier['command']}; then {data['command']}"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    write_docs(data)


if __name__ == "__main__":
    main()
