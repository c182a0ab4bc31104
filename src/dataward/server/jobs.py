"""Long operations as jobs: a gate run, a self-test, a verify, a contribution's import and gate.

A job runs on a background thread of the worker process that accepted it; its state is a JSON file
in the ward's ``server/jobs`` folder, written atomically at every step, so that any worker process
can answer ``GET /api/v1/jobs/{id}``. A job whose process died while it ran is reported ``failed``.
Only the principal that started a job may read it. Finished jobs are kept for a day.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dataward.domain.errors import DatawardError, NotFound
from dataward.ledger.events import format_time, utc_now

JOB_KEEP_S = 86_400.0

# The job's function gets a progress callback; it returns the result document and, optionally,
# attachments (such as an HTML report) kept beside the result.
JobFunction = Callable[[Callable[[str], None]], tuple[Any, dict[str, str]]]


@dataclass
class Job:
    """The state of one job, as ``GET /api/v1/jobs/{id}`` shows it."""

    id: str
    kind: str
    owner: str
    status: str = "queued"  # queued -> running -> succeeded | failed
    progress: str = ""
    steps: int = 0
    created_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    attachments: dict[str, str] = field(default_factory=dict)
    pid: int = 0

    def public(self) -> dict[str, Any]:
        """What a client sees (not the owner's id nor the process id)."""
        data = asdict(self)
        del data["owner"], data["pid"]
        return data


class JobStore:
    """Job files in one folder, shared by every worker process of the server."""

    def __init__(self, folder: Path, *, workers: int = 2) -> None:
        self.folder = folder
        # Results can quote records: readable by the server's account only, as the ward's folder is.
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="dataward-job")
        self._lock = threading.Lock()
        self._swept = 0.0

    def _path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def _save(self, job: Job) -> None:
        tmp = self.folder / f".{job.id}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(job), default=str))
        os.replace(tmp, self._path(job.id))

    def submit(self, kind: str, owner: str, fn: JobFunction, *, cleanup: Callable[[], None] | None = None) -> Job:
        """Queue ``fn`` as a job of principal ``owner``; ``cleanup`` runs when it ends, however it ends."""
        self._sweep()
        job = Job(id=f"j_{secrets.token_hex(12)}", kind=kind, owner=owner, created_at=format_time(utc_now()))
        job.pid = os.getpid()
        self._save(job)
        self._pool.submit(self._run, job, fn, cleanup)
        return job

    def _run(self, job: Job, fn: JobFunction, cleanup: Callable[[], None] | None) -> None:
        job.status, job.started_at = "running", format_time(utc_now())
        self._save(job)

        def progress(text: str) -> None:
            job.progress, job.steps = text, job.steps + 1
            self._save(job)

        try:
            job.result, job.attachments = fn(progress)
            job.status = "succeeded"
        except DatawardError as exc:
            job.status, job.error = "failed", error_body(exc)
        except Exception:  # the server log has the traceback; the client gets no internals
            import logging

            logging.getLogger("dataward.server").exception("job %s (%s) failed", job.id, job.kind)
            job.status, job.error = "failed", internal_error_body()
        finally:
            if cleanup is not None:
                cleanup()
        job.finished_at = format_time(utc_now())
        self._save(job)

    def get(self, job_id: str, owner: str) -> Job:
        """The job ``job_id`` if ``owner`` started it; ``NotFound`` otherwise (whether it exists or not)."""
        missing = NotFound(f"no job {job_id!r}", hint="job ids are returned by the request that started them")
        if not job_id.startswith("j_") or not job_id[2:].isalnum():
            raise missing
        try:
            data = json.loads(self._path(job_id).read_text("utf-8"))
        except (OSError, ValueError):
            raise missing from None
        job = Job(**data)
        if job.owner != owner:
            raise missing
        if job.status in ("queued", "running") and not _alive(job.pid):
            job.status = "failed"
            job.error = {
                "error": "interrupted",
                "message": "the server process running this job stopped before it finished",
                "hint": "start it again",
                "details": {},
                "exit_code": 1,
            }
        return job

    def _sweep(self) -> None:
        """Delete job files older than ``JOB_KEEP_S`` (at most once a minute)."""
        now = time.time()
        with self._lock:
            if now - self._swept < 60:
                return
            self._swept = now
        for path in self.folder.glob("j_*.json"):
            try:
                if now - path.stat().st_mtime > JOB_KEEP_S:
                    path.unlink()
            except OSError:
                pass

    def shutdown(self) -> None:
        """Stop taking jobs (running ones finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def error_body(exc: DatawardError) -> dict[str, Any]:
    """The JSON error document of a domain error: ``error`` (code), ``message``, ``hint``, ``details``,
    and the CLI ``exit_code`` so that a client reproduces the embedded ward's behaviour exactly."""
    return {**exc.to_dict(), "exit_code": exc.exit_code}


def internal_error_body() -> dict[str, Any]:
    """The error document of an unexpected failure: nothing of its internals."""
    return {
        "error": "internal",
        "message": "the server failed to process the request",
        "hint": "the server's log has the details",
        "details": {},
        "exit_code": 1,
    }
