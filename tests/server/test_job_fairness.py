"""Fair job scheduling: per-principal and per-owner limits, a bounded queue, round-robin dispatch.

Deterministic: the job functions wait on events the test sets, and the test waits on events the job
functions set (a timeout there only turns a hang into a failure; no sleep is an assertion)."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataward.domain.errors import Conflict
from dataward.domain.transport_errors import JobQueueFull, JobStateUnwritable, TooManyJobs
from dataward.server.jobs import Job, JobLimits, JobStore
from tests.server.conftest import start_server

WAIT_S = 30.0


def ended(store: JobStore, job_id: str, owner: str) -> Job:
    """The job once it has ended (polling its file, as a client does)."""
    deadline = time.monotonic() + WAIT_S
    while (job := store.get(job_id, owner)).status in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job_id} did not end"
        time.sleep(0.005)
    return job


class Gate:
    """Job functions that record when they start and wait until the test lets them go."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._lock = threading.Lock()
        self.release: dict[str, threading.Event] = {}
        self.began: dict[str, threading.Event] = {}

    def job(self, name: str, *, fail: bool = False) -> Callable[[Any], tuple[Any, dict[str, str]]]:
        self.release[name], self.began[name] = threading.Event(), threading.Event()

        def run(_progress: Any) -> tuple[Any, dict[str, str]]:
            with self._lock:
                self.started.append(name)
            self.began[name].set()
            assert self.release[name].wait(WAIT_S)
            if fail:
                raise Conflict(f"{name} failed")
            return {"name": name}, {}

        return run

    def open_all(self) -> None:
        for event in self.release.values():
            event.set()

    def wait_started(self, name: str) -> None:
        assert self.began[name].wait(WAIT_S), f"{name} never started"


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.open_all()  # never leave a job thread waiting


# --- dispatch order ----------------------------------------------------------------------------------


def test_a_second_principals_first_job_starts_before_the_first_principals_backlog(tmp_path: Path, gate: Gate) -> None:
    store = JobStore(tmp_path, workers=1, limits=JobLimits(per_principal=10, per_owner=10))
    first = store.submit("gate", "p_bot", gate.job("bot-1"))
    gate.wait_started("bot-1")  # the only thread is the bot's now
    backlog = [store.submit("gate", "p_bot", gate.job(f"bot-{i}")) for i in (2, 3, 4)]
    carol = store.submit("gate", "p_carol", gate.job("carol-1"))
    gate.open_all()
    for job in (first, *backlog):
        assert ended(store, job.id, "p_bot").status == "succeeded"
    assert ended(store, carol.id, "p_carol").status == "succeeded"
    # FIFO would have run the bot's whole backlog first.
    assert gate.started == ["bot-1", "carol-1", "bot-2", "bot-3", "bot-4"]


def test_principals_take_turns_and_a_bots_owner_has_one_turn_for_all_of_them(tmp_path: Path, gate: Gate) -> None:
    store = JobStore(tmp_path, workers=1, limits=JobLimits(per_principal=10, per_owner=10))
    store.submit("gate", "p_x", gate.job("x-0"))
    gate.wait_started("x-0")
    jobs = [
        store.submit("gate", "p_bot1", gate.job("bot1-1"), accountable="p_alice"),
        store.submit("gate", "p_bot1", gate.job("bot1-2"), accountable="p_alice"),
        store.submit("gate", "p_bot2", gate.job("bot2-1"), accountable="p_alice"),
        store.submit("gate", "p_carol", gate.job("carol-1")),
        store.submit("gate", "p_carol", gate.job("carol-2")),
    ]
    gate.open_all()
    for job in jobs:
        ended(store, job.id, job.owner)
    # alice's two bots share alice's turns, and take turns within them.
    assert gate.started == ["x-0", "bot1-1", "carol-1", "bot2-1", "carol-2", "bot1-2"]


def test_one_owners_jobs_leave_a_thread_for_someone_else(tmp_path: Path, gate: Gate) -> None:
    store = JobStore(tmp_path, workers=2, limits=JobLimits(running_per_owner=1))
    heavy = store.submit("contribute", "p_bot", gate.job("bot-1"), accountable="p_alice")
    second = store.submit("contribute", "p_bot", gate.job("bot-2"), accountable="p_alice")
    gate.wait_started("bot-1")
    carol = store.submit("verify", "p_carol", gate.job("carol-1"))
    gate.wait_started("carol-1")  # on the second thread, while the bot's first job still runs
    assert store.get(second.id, "p_bot").status == "queued"
    assert gate.started == ["bot-1", "carol-1"]
    gate.release["carol-1"].set()
    assert ended(store, carol.id, "p_carol").status == "succeeded"
    assert store.get(second.id, "p_bot").status == "queued"  # a thread is free, but alice's share is used
    gate.release["bot-1"].set()
    gate.wait_started("bot-2")
    gate.release["bot-2"].set()
    assert ended(store, heavy.id, "p_bot").status == ended(store, second.id, "p_bot").status == "succeeded"


# --- limits ------------------------------------------------------------------------------------------


def test_past_the_per_principal_limit_a_job_is_refused_at_once_and_the_slot_frees_when_one_ends(
    tmp_path: Path, gate: Gate
) -> None:
    store = JobStore(tmp_path, workers=1, limits=JobLimits(per_principal=2, retry_after_s=17))
    running = store.submit("gate", "p_bot", gate.job("bot-1"))
    store.submit("gate", "p_bot", gate.job("bot-2"))
    cleaned: list[str] = []
    with pytest.raises(TooManyJobs) as refused:
        store.submit("gate", "p_bot", gate.job("bot-3"), cleanup=lambda: cleaned.append("bot-3"))
    err = refused.value
    assert err.http_status == 429 and err.code == "too_many_jobs" and err.exit_code == 4
    assert "you hold 2 jobs queued or running" in err.message and "its limit is 2 per principal" in err.message
    assert err.details == {"limit": 2, "held": 2, "scope": "principal", "retry_after": 17}
    assert cleaned == ["bot-3"]  # a refused job's uploads are let go at once
    assert store.held("p_bot") == (2, 2)
    assert store.submit("gate", "p_carol", gate.job("carol-1")).status == "queued"  # others are not held up
    gate.release["bot-1"].set()
    assert ended(store, running.id, "p_bot").status == "succeeded"
    assert store.held("p_bot") == (1, 1)
    again = store.submit("gate", "p_bot", gate.job("bot-4"))
    gate.open_all()
    assert ended(store, again.id, "p_bot").status == "succeeded"


def test_a_failed_job_frees_its_slot(tmp_path: Path, gate: Gate) -> None:
    store = JobStore(tmp_path, workers=1, limits=JobLimits(per_principal=1))
    failing = store.submit("gate", "p_bot", gate.job("bot-1", fail=True))
    with pytest.raises(TooManyJobs):
        store.submit("gate", "p_bot", gate.job("bot-2"))
    gate.release["bot-1"].set()
    job = ended(store, failing.id, "p_bot")
    assert job.status == "failed" and job.error is not None and job.error["error"] == "conflict"
    assert store.held("p_bot") == (0, 0)
    crashing = store.submit("gate", "p_bot", lambda _p: (_ for _ in ()).throw(RuntimeError("boom")))
    assert ended(store, crashing.id, "p_bot").status == "failed"
    assert store.held("p_bot") == (0, 0)


def test_a_bots_jobs_count_against_its_owner(tmp_path: Path, gate: Gate) -> None:
    store = JobStore(tmp_path, workers=1, limits=JobLimits(per_principal=2, per_owner=3))
    store.submit("gate", "p_alice", gate.job("alice-1"), accountable="p_alice")
    store.submit("gate", "p_bot1", gate.job("bot1-1"), accountable="p_alice")
    store.submit("gate", "p_bot2", gate.job("bot2-1"), accountable="p_alice")
    assert store.held("p_bot1", "p_alice") == (1, 3)
    with pytest.raises(TooManyJobs) as bot_refused:
        store.submit("gate", "p_bot1", gate.job("bot1-2"), accountable="p_alice")
    assert bot_refused.value.message.startswith(
        "your accountable owner and their service principals, you among them, hold 3 jobs queued or running"
    )
    assert "its limit is 3 per accountable human" in bot_refused.value.message
    assert bot_refused.value.details["scope"] == "owner"
    with pytest.raises(TooManyJobs, match="you and your service principals hold 3 jobs"):
        store.submit("gate", "p_alice", gate.job("alice-2"), accountable="p_alice")
    assert store.submit("gate", "p_dave", gate.job("dave-1")).status == "queued"


def test_the_queue_is_bounded(tmp_path: Path, gate: Gate) -> None:
    store = JobStore(tmp_path, workers=1, limits=JobLimits(queued=2, retry_after_s=5))
    store.submit("gate", "p_a", gate.job("a"))
    gate.wait_started("a")  # running: no longer waiting
    store.submit("gate", "p_b", gate.job("b"))
    store.submit("gate", "p_c", gate.job("c"))
    cleaned: list[str] = []
    with pytest.raises(JobQueueFull) as full:
        store.submit("gate", "p_d", gate.job("d"), cleanup=lambda: cleaned.append("d"))
    assert full.value.http_status == 503 and full.value.details == {"limit": 2, "retry_after": 5}
    assert "2 jobs are waiting" in full.value.message and cleaned == ["d"]
    assert store.held("p_d") == (0, 0)
    gate.release["a"].set()
    gate.wait_started("b")  # one left the queue: there is room again
    assert store.submit("gate", "p_d", gate.job("d2")).status == "queued"


def test_the_limits_hold_across_worker_processes_and_ignore_dead_ones(tmp_path: Path, gate: Gate) -> None:
    limits = JobLimits(per_principal=2)
    one, other = JobStore(tmp_path, limits=limits), JobStore(tmp_path, limits=limits)  # sharing the folder
    one.submit("gate", "p_bot", gate.job("bot-1"))
    other.submit("gate", "p_bot", gate.job("bot-2"))
    with pytest.raises(TooManyJobs):
        one.submit("gate", "p_bot", gate.job("bot-3"))
    # A process that died while it held jobs holds none.
    gate.open_all()
    store = JobStore(tmp_path / "fresh", limits=JobLimits(per_principal=1))
    (store.active / f"j_{'ab' * 12}.p_bot.p_bot.{2**22 + 12345}.0123456789abcdef").touch()
    # Nor does an earlier run of a pid (a server restarted in a container gets the same pids again).
    (store.active / f"j_{'cd' * 12}.p_bot.p_bot.{os.getpid()}.0123456789abcdef").touch()
    assert store.held("p_bot") == (0, 0)
    (store.active / f".proc.{2**22 + 12345}").write_text("0123456789abcdef")
    assert store.held("p_bot") == (0, 0)
    assert sorted(p.name for p in store.active.iterdir() if p.name != ".lock") == [f".proc.{os.getpid()}"]
    assert store.submit("gate", "p_bot", lambda _p: ({}, {})).status == "queued"


# --- over HTTP -----------------------------------------------------------------------------------------


def test_the_server_refuses_a_job_past_the_limit_with_429_and_retry_after(tmp_path: Path, gate: Gate) -> None:
    from dataward.client import HTTPWard
    from dataward.service.ward import Ward

    ward_dir = tmp_path / "ward"
    opened, admin_key = Ward.init(ward_dir)
    opened.db.dispose()
    server, thread, _settings, url = start_server(ward_dir, max_jobs_per_principal=1, max_jobs_per_owner=1)
    try:
        jobs: JobStore = server.config.app.state.dataward.jobs
        admin = HTTPWard(url, key=admin_key)
        admin.create_principal("hu")
        admin.create_principal("bot", kind="service", owner="hu")
        for who in ("hu", "bot"):
            admin.grant(who, "reader")
        keys = {who: admin.issue_key(who)["key"] for who in ("hu", "bot")}
        keys["admin"] = admin_key
        ids = {who: HTTPWard(url, key=keys[who]).whoami()["principal_id"] for who in ("hu", "bot")}

        def verify(who: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {keys[who]}"}
            return httpx.post(f"{url}/api/v1/verify", json={}, headers=headers, timeout=WAIT_S)

        # The bot holds a job: its next is refused at once, naming the limit and what it holds.
        held = jobs.submit("verify", ids["bot"], gate.job("bot-1"), accountable=ids["hu"])
        refused = verify("bot")
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
        body = refused.json()
        assert body["error"] == "too_many_jobs" and body["exit_code"] == 4
        assert body["message"] == (
            "you hold 1 jobs queued or running on this server: its limit is 1 per principal (max_jobs_per_principal)"
        )
        assert body["details"] == {"limit": 1, "held": 1, "scope": "principal", "retry_after": 30}
        # The bot's job counts against its owner too.
        owner_refused = verify("hu")
        assert owner_refused.status_code == 429 and owner_refused.headers["Retry-After"] == "30"
        assert owner_refused.json()["message"].startswith("you and your service principals hold 1 jobs")
        assert owner_refused.json()["details"]["scope"] == "owner"
        # Someone else's job waits for no one of them, and the admin is not refused.
        assert verify("admin").status_code == 202
        # Once the bot's job ends, it may start another; the client sees it through.
        gate.release["bot-1"].set()
        assert ended(jobs, held.id, ids["bot"]).status == "succeeded"
        assert HTTPWard(url, key=keys["bot"]).verify().ok
        # Through the client, a refusal is the same error with the same exit code.
        jobs.submit("verify", ids["hu"], gate.job("hu-1"), accountable=ids["hu"])
        with pytest.raises(TooManyJobs, match="your accountable owner and their service principals") as by_client:
            HTTPWard(url, key=keys["bot"]).verify()
        assert by_client.value.exit_code == 4
    finally:
        gate.open_all()
        server.should_exit = True
        thread.join(timeout=10)


def test_a_job_whose_state_cannot_be_written_frees_its_slot_and_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing a job's file can fail (a full disk): the job must end failed or be retried, never hold its
    principal's slot and a job thread for as long as the process lives."""
    store = JobStore(tmp_path / "jobs", workers=1, limits=JobLimits(per_principal=1, per_owner=1))
    real_save = store._save
    failed = threading.Event()

    def save(job: Job) -> None:
        if job.status == "running" and not failed.is_set():
            failed.set()
            raise OSError(28, "No space left on device")
        real_save(job)

    monkeypatch.setattr(store, "_save", save)
    store.submit("gate", "p_bot", lambda _p: ({}, {}))
    assert failed.wait(WAIT_S)
    deadline = time.monotonic() + 5
    while store.held("p_bot") != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.held("p_bot") == (0, 0)  # the slot came back
    later = store.submit("gate", "p_bot", lambda _p: ({"ran": True}, {}))
    assert ended(store, later.id, "p_bot").status == "succeeded"  # and a thread still takes jobs


# --- when the jobs folder cannot be written -------------------------------------------------------------


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDisk:
    """Writes into the jobs folder fail with ENOSPC while ``full`` is set, after the file was created
    (as a full disk fails them: on ``write`` or ``close``). Only the file object's write is replaced."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = True
        real = os.fdopen
        disk = self

        class Failing:
            def __init__(self, fh: Any) -> None:
                self.fh = fh

            def __enter__(self) -> Failing:
                return self

            def __exit__(self, *exc: object) -> None:
                self.fh.close()

            def write(self, text: str) -> int:
                if disk.full:
                    raise no_space()
                return self.fh.write(text)

        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Failing(real(fd, *a, **k)))


def leftovers(store: JobStore) -> list[str]:
    """What a job left in the jobs folder besides job files: markers, temporary files."""
    kept = {"active", ".lock", f".proc.{os.getpid()}"}
    found = [p.name for p in store.folder.iterdir() if not p.name.endswith(".json")]
    found += [p.name for p in store.active.iterdir()]
    return sorted(set(found) - kept)


def test_a_job_the_server_cannot_record_is_refused_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submitting on a full disk is refused (507, naming the cause), and undoes all it did: the marker
    holding the principal's slot, its place in the queue's count, the uploads it was given."""
    store = JobStore(tmp_path / "jobs", workers=1, limits=JobLimits(per_principal=1, per_owner=1, queued=1))
    disk = FullDisk(monkeypatch)
    cleaned: list[str] = []
    with pytest.raises(JobStateUnwritable) as refused:
        store.submit("gate", "p_bot", lambda _p: ({}, {}), cleanup=lambda: cleaned.append("uploads"))
    assert refused.value.http_status == 507 and refused.value.exit_code == 10
    assert "could not write the job's state" in refused.value.message
    assert "No space left on device" in refused.value.message
    assert cleaned == ["uploads"]
    assert store.held("p_bot") == (0, 0)
    assert leftovers(store) == [] and not list(store.folder.glob("j_*.json"))
    # Once the disk has room, the same principal is not over its limit, nor the one-place queue full.
    disk.full = False
    job = store.submit("gate", "p_bot", lambda _p: ({"ran": True}, {}))
    assert ended(store, job.id, "p_bot").result == {"ran": True}


def test_a_job_whose_end_cannot_be_written_reads_failed_and_its_thread_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The job ran but its outcome could not be written: every worker process reads it failed (its
    outcome unknown), not running for ever; its slot and uploads are given back; the thread serves on."""
    store = JobStore(tmp_path / "jobs", workers=1, limits=JobLimits(per_principal=1, per_owner=1))
    other = JobStore(tmp_path / "jobs")  # another worker process reading the same folder
    disk = FullDisk(monkeypatch)
    disk.full = False
    ran, cleaned = threading.Event(), threading.Event()

    def run(_progress: Any) -> tuple[Any, dict[str, str]]:
        disk.full = True  # the disk fills while the job runs
        ran.set()
        return {"done": True}, {}

    with caplog.at_level(logging.ERROR, logger="dataward.server"):
        job = store.submit("contribute", "p_bot", run, cleanup=cleaned.set)
        for reader in (store, other):
            seen = ended(reader, job.id, "p_bot")
            assert seen.status == "failed" and ran.is_set() and cleaned.is_set()
            assert seen.error is not None and seen.error["error"] == "job_state_unwritable"
            assert seen.error["message"].startswith("the job ran, but the server could not write how it ended")
            assert "check what it changed" in seen.error["hint"]
    assert any(job.id in r.getMessage() and "could not be written" in r.getMessage() for r in caplog.records)
    assert store.held("p_bot") == (0, 0) and leftovers(store) == []
    disk.full = False
    later = store.submit("gate", "p_bot", lambda _p: ({"ran": True}, {}))
    assert ended(store, later.id, "p_bot").status == "succeeded"


def test_a_job_that_cannot_start_on_a_full_disk_reads_failed_and_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No state of the job can be written once it is taken from the queue: it is not run (what it did
    could not be reported), reads failed rather than queued, and gives everything back."""
    store = JobStore(tmp_path / "jobs", workers=1, limits=JobLimits(per_principal=1, per_owner=1))
    disk = FullDisk(monkeypatch)
    disk.full = False
    began, hold, ran, cleaned = threading.Event(), threading.Event(), threading.Event(), threading.Event()

    def first_job(_progress: Any) -> tuple[Any, dict[str, str]]:
        began.set()
        return hold.wait(WAIT_S), {}

    first = store.submit("gate", "p_hu", first_job)
    job = store.submit("gate", "p_bot", lambda _p: (ran.set(), {}), cleanup=cleaned.set)
    assert began.wait(WAIT_S)
    disk.full = True  # fills while the job waits its turn
    hold.set()
    assert cleaned.wait(WAIT_S)
    seen = ended(store, job.id, "p_bot")
    assert seen.status == "failed" and not ran.is_set()
    assert seen.error is not None and seen.error["error"] == "job_state_unwritable"
    assert seen.error["message"].endswith("the job was not run")
    assert store.held("p_bot") == (0, 0) and store.held("p_hu") == (0, 0)
    disk.full = False
    assert ended(store, first.id, "p_hu").status == "failed"  # its end could not be written either
    assert leftovers(store) == []
    later = store.submit("gate", "p_bot", lambda _p: ({"ran": True}, {}))
    assert ended(store, later.id, "p_bot").status == "succeeded"


def test_a_job_survives_progress_it_cannot_write_and_a_cleanup_that_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress is a hint: a job whose progress cannot be written runs on and its end is written. An
    error in a job's cleanup is logged, and the slot is given back all the same."""
    store = JobStore(tmp_path / "jobs", workers=1, limits=JobLimits(per_principal=1, per_owner=1))
    disk = FullDisk(monkeypatch)
    disk.full = False

    def run(progress: Callable[[str], None]) -> tuple[Any, dict[str, str]]:
        disk.full = True
        progress("importing")
        disk.full = False
        return {"done": True}, {}

    def cleanup() -> None:
        raise RuntimeError("the upload folder vanished")

    job = store.submit("contribute", "p_bot", run, cleanup=cleanup)
    assert ended(store, job.id, "p_bot").result == {"done": True}
    assert store.held("p_bot") == (0, 0)
    later = store.submit("gate", "p_bot", lambda _p: ({"ran": True}, {}))
    assert ended(store, later.id, "p_bot").status == "succeeded"


def test_the_server_answers_507_when_it_cannot_write_a_job_and_lets_its_uploads_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataward.client import HTTPWard
    from dataward.domain.schema import Schema
    from dataward.service.ward import Ward
    from tests.helpers import wine_schema_specs

    ward_dir = tmp_path / "ward"
    opened, admin_key = Ward.init(ward_dir)
    opened.db.dispose()
    server, thread, _settings, url = start_server(ward_dir)
    try:
        state = server.config.app.state.dataward
        headers = {"Authorization": f"Bearer {admin_key}"}
        admin = HTTPWard(url, key=admin_key)
        admin_id = admin.whoami()["principal_id"]
        label, specs = wine_schema_specs()
        admin.create_dataset("wine", Schema.parse(label, specs))
        upload = httpx.post(
            f"{url}/api/v1/uploads", params={"filename": "b.csv"}, headers=headers, content=b"a,b\n1,2\n"
        )
        assert upload.status_code == 201 and state.uploads.pending(admin_id)[0] == 1

        def save(_job: Job) -> None:
            raise no_space()

        monkeypatch.setattr(state.jobs, "_save", save)
        refused = httpx.post(
            f"{url}/api/v1/datasets/wine/contributions",
            json={"upload": upload.json()["upload"], "source": "https://example.org/b.csv"},
            headers=headers,
            timeout=WAIT_S,
        )
        assert refused.status_code == 507, refused.text
        body = refused.json()
        assert body["error"] == "job_state_unwritable" and body["exit_code"] == 10
        assert body["message"] == (
            "the server could not write the job's state in its jobs folder (No space left on device): "
            "the job was not run"
        )
        assert "Traceback" not in refused.text
        assert state.uploads.pending(admin_id) == (0, 0)  # the refused contribution's upload is let go
        assert state.jobs.held(admin_id) == (0, 0)
        with pytest.raises(JobStateUnwritable, match="No space left on device") as by_client:
            admin.verify()
        assert by_client.value.exit_code == 10
        monkeypatch.undo()
        assert admin.verify().ok
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_stopping_server_lets_every_queued_job_go_even_when_it_cannot_write_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore(tmp_path / "jobs", workers=1)
    disk = FullDisk(monkeypatch)
    disk.full = False
    began, hold = threading.Event(), threading.Event()

    def running(_progress: Any) -> tuple[Any, dict[str, str]]:
        began.set()
        return hold.wait(WAIT_S), {}

    first = store.submit("gate", "p_hu", running)
    cleaned: list[str] = []
    queued = [
        store.submit("gate", name, lambda _p: ({}, {}), cleanup=lambda n=name: cleaned.append(n))
        for name in ("p_a", "p_b")
    ]
    assert began.wait(WAIT_S)
    disk.full = True
    store.shutdown()
    assert sorted(cleaned) == ["p_a", "p_b"]  # the first failed write did not stop the others' release
    for job, name in zip(queued, ("p_a", "p_b"), strict=True):
        assert store.held(name) == (0, 0)
        seen = store.get(job.id, name)
        assert seen.status == "failed" and seen.error is not None
        assert seen.error["error"] == "job_state_unwritable"
    hold.set()  # the running job finishes: its end cannot be written either
    assert ended(store, first.id, "p_hu").status == "failed"
