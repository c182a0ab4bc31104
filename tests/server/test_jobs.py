"""Jobs: their state is a file any worker process can answer for; only their starter reads them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dataward.domain.errors import Conflict, NotFound
from dataward.server.jobs import Job, JobStore


def wait(store: JobStore, job_id: str, owner: str, key: str = "") -> Job:
    deadline = time.monotonic() + 10
    while (job := store.get(job_id, owner, key)).status in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return job


def test_a_job_started_in_one_process_is_read_from_another(tmp_path: Path) -> None:
    one, other = JobStore(tmp_path), JobStore(tmp_path)  # two worker processes sharing the folder

    def work(progress):  # type: ignore[no-untyped-def]
        progress("step one")
        return {"answer": 42}, {"html": "<html></html>"}

    job = one.submit("verify", "p_alice", work)
    done = wait(other, job.id, "p_alice")
    assert done.status == "succeeded" and done.result == {"answer": 42} and done.steps == 1
    assert done.attachments == {"html": "<html></html>"}
    assert "owner" not in done.public() and "pid" not in done.public()
    with pytest.raises(NotFound):
        other.get(job.id, "p_mallory")
    with pytest.raises(NotFound):
        other.get("../../etc/passwd", "p_alice")


def test_a_failed_job_carries_an_error_document_and_never_internals(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    refused = store.submit("gate", "p", lambda _p: (_ for _ in ()).throw(Conflict("already merged")))
    crashed = store.submit("gate", "p", lambda _p: (_ for _ in ()).throw(RuntimeError("/secret/path")))
    assert wait(store, refused.id, "p").error == {
        "error": "conflict",
        "message": "already merged",
        "hint": None,
        "details": {},
        "exit_code": 4,
    }
    crash = wait(store, crashed.id, "p")
    assert crash.error is not None and crash.error["error"] == "internal"
    assert "secret" not in json.dumps(crash.public())


def test_a_job_whose_process_died_reads_failed(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    orphan = Job(id="j_" + "ab" * 12, kind="verify", owner="p", status="running", pid=2**22 + 12345)
    (tmp_path / f"{orphan.id}.json").write_text(json.dumps(orphan.__dict__))
    job = store.get(orphan.id, "p")
    assert job.status == "failed" and job.error is not None and job.error["error"] == "interrupted"


def test_a_job_is_read_only_with_the_key_that_started_it(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job = store.submit("verify", "p_alice", lambda _p: ({"answer": 1}, {}), key="k_wide")
    assert wait(store, job.id, "p_alice", "k_wide").result == {"answer": 1}
    assert "key" not in store.get(job.id, "p_alice", "k_wide").public()
    for owner, key in (("p_alice", "k_narrow"), ("p_alice", ""), ("p_mallory", "k_wide")):
        with pytest.raises(NotFound):
            store.get(job.id, owner, key)
