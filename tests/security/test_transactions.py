"""Transactions: reads and long work never hold the catalog's write lock, and lock contention reaches
the user as a clear error.

Each test plays a long job (a gate loading its inputs, a self-test, an export writing its file,
`verify` re-hashing objects) or a foreign writer holding the lock, and checks that other commands go
on meanwhile, that what the long job records is still checked against what it read, and that
contention beyond the lock timeout is a `busy` error (exit 10), never a raw `OperationalError`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import dataward.catalog.database as database
from dataward.domain.errors import Busy, Conflict, KeyRevoked
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv

LOCK_TIMEOUT_S = 1.0
"""A short lock timeout, so that a command stuck behind the lock fails fast instead of after 60 s."""


@pytest.fixture(autouse=True)
def short_lock_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAWARD_LOCK_TIMEOUT", str(LOCK_TIMEOUT_S))
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_S", LOCK_TIMEOUT_S)


def make_ward(root: Path) -> Ward:
    """wine@v1 (120 records) is training; wine#2 (30 records) is submitted, not yet gated."""
    ward, _ = Ward.init(root / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    first = ward.contribute("wine", write_csv(root / "a.csv", wine_rows(0, 120, shuffled=True)), source="a")
    merge_reviewed(ward, first["ref"])
    ward.promote("wine@v1")
    ward.contribute("wine", write_csv(root / "b.csv", wine_rows(120, 150, shuffled=True)), source="b", gate=False)
    return ward


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a ward ``make_ward`` made (its gated, merged and promoted training version is most of
    a test's setup), built once per module: each test works on a copy of its own."""
    root = tmp_path_factory.mktemp("transactions-template")
    make_ward(root).close()
    return root / "ward"


@pytest.fixture
def ward(template: Path, tmp_path: Path) -> Ward:
    """A ward as ``make_ward(tmp_path)`` makes it, at ``tmp_path / "ward"``: a copy of the module's template."""
    folder = shutil.copytree(template, tmp_path / "ward")
    ward = Ward.open(folder, key=(folder / "credentials").read_text("utf-8").strip())
    # The admin's key used just now, as make_ward's last contribution left it: a read in a test finds its
    # last-used time recent, whenever the template was made.
    ward.datasets()
    return ward


@contextmanager
def foreign_write_lock(ward: Ward) -> Iterator[None]:
    """Hold the catalog's write lock from another connection, as a long writer elsewhere would."""
    db = sqlite3.connect(ward.folder / "catalog.sqlite", isolation_level=None, timeout=10)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def event_types(ward: Ward) -> list[str]:
    return [e["type"] for e in ward.ledger(newest_first=False)]


# --- reads take no write lock ---------------------------------------------------------------------


def test_reads_go_on_while_another_writer_holds_the_lock(ward: Ward) -> None:
    """Authentication used to write the key's last-used time, so every read queued for the write lock
    and failed with OperationalError once a long writer outlasted the busy timeout."""
    with foreign_write_lock(ward):
        reader = Ward.open(ward.folder)
        assert [d["name"] for d in reader.datasets()] == ["wine"]
        assert len(reader.contributions("wine")) == 2
        assert reader.versions("wine")[0]["stage"] == "training"
        assert reader.ledger(limit=3)
        assert reader.dataset("wine").version("training").to_pandas().shape[0] == 120
        assert reader.gate_report("wine#1")["verdict"]
        assert reader.review_list("wine") == []
        assert reader.verify().ok


def test_last_used_time_is_batched_not_written_by_every_read(ward: Ward) -> None:
    """A read writes the key's last-used time at most once a minute, in its own short write."""
    ward.datasets()
    first = ward.keys()[0]["last_used_at"]
    assert first is not None
    with foreign_write_lock(ward):
        ward.datasets()  # recent enough: nothing to write, so nothing waits for the lock
    assert ward.keys()[0]["last_used_at"] == first


# --- long work runs outside the lock --------------------------------------------------------------


def _blocking(original: Callable[..., Any], started: threading.Event, release: threading.Event) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(30), "the test never released the long job"
        return original(*args, **kwargs)

    return wrapper


def _long_job(kind: str, ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started, release):  # type: ignore[no-untyped-def]
    """Patch the slow step of ``kind`` to wait until released; return the call that runs the job."""
    if kind == "gate":
        from dataward.service.gating import GateService

        monkeypatch.setattr(GateService, "_gate_inputs", _blocking(GateService._gate_inputs, started, release))
        return lambda: ward.run_gate("wine#2")
    if kind == "selftest":
        import dataward.gates.selftest as selftest

        monkeypatch.setattr(selftest, "selftest", _blocking(selftest.selftest, started, release))
        return lambda: ward.selftest("wine")
    if kind == "export":
        import dataward.service.versions as versions

        monkeypatch.setattr(versions, "guarded_read", _blocking(versions.guarded_read, started, release))
        return lambda: ward.export("wine@v1", tmp_path / "out.parquet")
    assert kind == "verify"
    from dataward.service.audit import AuditService

    monkeypatch.setattr(AuditService, "_verify_objects", _blocking(AuditService._verify_objects, started, release))
    return lambda: ward.verify()


@pytest.mark.parametrize("kind", ["gate", "selftest", "export", "verify"])
def test_long_work_does_not_hold_the_write_lock(
    kind: str, ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a gate loads its inputs, a self-test plants canaries, an export writes its file or verify
    re-hashes objects, another principal's contribution and dataset creation go through."""
    started, release = threading.Event(), threading.Event()
    job = _long_job(kind, ward, tmp_path, monkeypatch, started, release)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = job()
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert started.wait(30), outcome.get("error")
        other = Ward.open(ward.folder)
        other.create_dataset("other", Schema.parse(*wine_schema_specs()))
        rows = write_csv(tmp_path / "c.csv", wine_rows(150, 160, shuffled=True))
        assert other.contribute("wine", rows, source="c", gate=False)["ref"] == "wine#3"
    finally:
        release.set()
        worker.join(60)
    assert "error" not in outcome, outcome.get("error")
    recorded = {"gate": "gate.completed", "selftest": "gate.selftest", "export": "version.exported"}
    if kind in recorded:
        assert event_types(ward)[-1] == recorded[kind]
    else:
        assert outcome["result"].ok
    assert ward.verify().ok


# --- what long work records is checked against what it read ---------------------------------------


def test_gate_run_again_when_the_baseline_changes_while_it_runs(
    ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promotion lands while the gate scans: its verdict was judged against a retired baseline, so
    it is not recorded; the gate runs again against the new training version."""
    from dataward.service.gating import GateService

    extra = ward.contribute("wine", write_csv(tmp_path / "d.csv", wine_rows(160, 170)), source="d")
    merge_reviewed(ward, extra["ref"])
    original = GateService._gate_inputs
    calls: list[str | None] = []

    def inputs_then_promote(self: Any, conn: Any, ds: Any, contribution: Any) -> dict[str, Any]:
        got = original(self, conn, ds, contribution)
        calls.append(got["baseline_version"])
        if len(calls) == 1:
            # Another session promotes while this gate is between reading and recording.
            Ward.open(ward.folder).promote("wine@v2")
        return got

    monkeypatch.setattr(GateService, "_gate_inputs", inputs_then_promote)
    report = ward.run_gate("wine#2")
    assert len(calls) == 2 and calls[0] != calls[1]
    assert report["trusted"]["version"] == calls[1]
    runs = [e for e in ward.ledger(types=["gate.completed"]) if e["subject"]["gate_run"] == report["gate_run"]]
    assert len(runs) == 1 and runs[0]["payload"]["baseline_version"] == calls[1]
    assert ward.verify().ok


def test_export_refused_when_the_key_is_revoked_while_it_writes(
    ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The long part of an export runs without the lock; the short write that records it authenticates
    again, so a key revoked meanwhile gets neither the event nor the file."""
    import dataward.service.versions as versions

    ward.create_principal("rita")
    ward.grant("rita", "reader", "dataset:wine")
    rita_key = ward.issue_key("rita")
    rita = ward.as_key(rita_key["key"])
    original = versions.guarded_read

    def read_then_revoke(*args: Any, **kwargs: Any) -> Any:
        got = original(*args, **kwargs)
        Ward.open(ward.folder).revoke_key(rita_key["key"])
        return got

    monkeypatch.setattr(versions, "guarded_read", read_then_revoke)
    target = tmp_path / "leak.parquet"
    with pytest.raises(KeyRevoked):
        rita.export("wine@v1", target)
    assert not target.exists()
    assert not list(tmp_path.glob(".leak.parquet.*"))
    assert "version.exported" not in event_types(ward)


def test_export_runs_again_when_its_version_is_retired_meanwhile(
    ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promotion retires the version while its export is being written: that export is not recorded,
    and the export runs again on the version as it now is."""
    import dataward.service.versions as versions

    extra = ward.contribute("wine", write_csv(tmp_path / "d.csv", wine_rows(160, 170)), source="d")
    merge_reviewed(ward, extra["ref"])
    original = versions.guarded_read
    stages: list[str] = []

    def read_then_promote(*args: Any, **kwargs: Any) -> Any:
        ver, table = original(*args, **kwargs)
        stages.append(ver.stage)
        if len(stages) == 1:
            Ward.open(ward.folder).promote("wine@v2")
        return ver, table

    monkeypatch.setattr(versions, "guarded_read", read_then_promote)
    target = tmp_path / "out.parquet"
    result = ward.export("wine@v1", target)
    assert stages == ["training", "retired"]
    assert result["version"]["stage"] == "retired" and target.exists()
    assert event_types(ward).count("version.exported") == 1
    assert ward.verify().ok


def test_export_that_stays_stale_is_refused_as_a_conflict(
    ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When what an export read keeps changing, the caller gets a Conflict after the retries, and no
    file and no event are left behind."""
    import dataward.service.versions as versions
    from dataward.service.core import Stale

    def always_changed(read: Any, shown: str) -> Callable[[Any], None]:
        def check(conn: Any) -> None:
            raise Stale(f"{shown} changed while it was being exported", hint="export it again")

        return check

    monkeypatch.setattr(versions, "_version_unchanged", always_changed)
    target = tmp_path / "out.parquet"
    with pytest.raises(Conflict, match="changed while it was being exported"):
        ward.export("wine@v1", target)
    assert not target.exists() and not list(tmp_path.glob(".out.parquet.*"))
    assert "version.exported" not in event_types(ward)


def test_merge_builds_its_manifest_without_the_lock_and_runs_again_when_a_version_lands(
    ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge reads the parent's manifest and writes the new one outside the lock; when another merge
    lands meanwhile, its version would have the wrong parent, so it is built again on the new one."""
    # The merge reads the parent's manifest where the guard checks it, which imports the reader from
    # dataward.service.manifests when it runs (the modules that import it at their top are unaffected).
    import dataward.service.manifests as manifests

    ward.run_gate("wine#2")
    third = ward.contribute("wine", write_csv(tmp_path / "d.csv", wine_rows(160, 170)), source="d")
    original = manifests.read_manifest
    calls: list[str] = []

    def manifest_then_merge(store: Any, digest: str) -> Any:
        calls.append(digest)
        if len(calls) == 1:
            # The write lock is free while the manifest is read: another session's merge lands.
            merge_reviewed(Ward.open(ward.folder), third["ref"])
        return original(store, digest)

    monkeypatch.setattr(manifests, "read_manifest", manifest_then_merge)
    merged = merge_reviewed(ward, "wine#2")
    # v1's manifest read by the first attempt and by the other merge, then v2's by the second attempt.
    assert len(calls) == 3 and calls[0] == calls[1] != calls[2]
    assert merged["number"] == 3
    v2 = next(v for v in ward.versions("wine") if v["number"] == 2)
    assert merged["parent"] == v2["id"] and merged["records"] == v2["records"] + 30
    assert ward.verify().ok


def test_promotion_checked_without_the_lock_is_refused_when_its_contribution_is_quarantined_meanwhile(
    ward: Ward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promotion checks its version's records outside the lock; a quarantine that lands meanwhile
    makes it check again, and the records now barred from training stop it."""
    import dataward.service.versions as versions
    from dataward.domain.errors import PolicyViolation

    ward.run_gate("wine#2")
    merge_reviewed(ward, "wine#2")
    original = versions.barred_records
    calls: list[int] = []

    def check_then_quarantine(*args: Any, **kwargs: Any) -> dict[str, str]:
        barred = original(*args, **kwargs)
        calls.append(len(barred))
        if len(calls) == 1:
            Ward.open(ward.folder).quarantine_contribution("wine#2", reason="a leaked key submitted it")
        return barred

    monkeypatch.setattr(versions, "barred_records", check_then_quarantine)
    with pytest.raises(PolicyViolation, match="must never reach training"):
        ward.promote("wine@v2")
    assert calls[0] == 0 and calls[1] > 0
    assert ward.versions("wine")[0]["stage"] == "training"
    assert "version.promoted" not in event_types(ward)[-3:]
    assert ward.verify().ok


# --- contention that outlasts the timeout is a clear error -----------------------------------------


def test_contention_beyond_the_timeout_is_a_busy_error(ward: Ward, tmp_path: Path) -> None:
    rows = write_csv(tmp_path / "c.csv", wine_rows(150, 160))
    with foreign_write_lock(ward):
        with pytest.raises(Busy) as caught:
            Ward.open(ward.folder).contribute("wine", rows, source="c", gate=False)
        with pytest.raises(Busy):
            Ward.open(ward.folder).export("wine@v1", tmp_path / "out.parquet")
    assert caught.value.exit_code == 10 and "locked" in caught.value.message
    assert not (tmp_path / "out.parquet").exists() and not list(tmp_path.glob(".out.parquet.*"))
    # Nothing half-done: the contribution goes through once the lock is free.
    assert Ward.open(ward.folder).contribute("wine", rows, source="c", gate=False)["ref"] == "wine#3"


def test_cli_reports_lock_contention_without_a_traceback(ward: Ward, tmp_path: Path) -> None:
    rows = write_csv(tmp_path / "c.csv", wine_rows(150, 160))
    env = {**os.environ, "DATAWARD_LOCK_TIMEOUT": str(LOCK_TIMEOUT_S)}
    command = [sys.executable, "-m", "dataward", "--ward", str(ward.folder), "contribute", "wine", str(rows)]
    with foreign_write_lock(ward):
        done = subprocess.run(
            [*command, "--source", "c", "--no-gate"], capture_output=True, text=True, env=env, timeout=30
        )
    assert done.returncode == 10, done.stderr
    assert "Traceback" not in done.stderr and "OperationalError" not in done.stderr
    assert "locked" in done.stderr and "DATAWARD_LOCK_TIMEOUT" in done.stderr
