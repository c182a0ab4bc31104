"""Long operations as jobs: a gate run, a self-test, a verify, a contribution's import and gate.

A job runs on a background thread of the worker process that accepted it; its state is a JSON file
in the ward's ``server/jobs`` folder, written atomically at every step, so that any worker process
can answer ``GET /api/v1/jobs/{id}``. A job whose process died while it ran is reported ``failed``.
Only the key that started a job may read it (not another key of the same principal: a key narrowed to
one dataset must not read a job another key ran on a dataset it cannot see). Finished jobs are kept for
a day.

Writing a job's state can fail (a full disk, a folder made read-only). A job whose state cannot be
written is refused at submission (``JobStateUnwritable``, 507) with nothing left behind; one whose
state cannot be written once it runs ends ``failed`` all the same: its thread goes on to the next job,
its slot and uploads are given back, and a client polling it sees it end (``get``), never a job that
stays ``queued`` or ``running`` for as long as its process lives.

Jobs are shared fairly (``JobLimits``). Each job belongs to the principal that started it and to the
human accountable for it (itself, or a service principal's owner): a bot's jobs count against its
owner too, as separation of duties counts a bot and its owner as one side. A principal, and an
accountable human with all their bots, may hold only so many jobs queued or running at once, in every
worker process together (the ``active`` folder holds one marker per such job, named after both);
past either limit a job is refused at once rather than queued. A worker process's queue is bounded
too. Its threads take jobs round-robin: one accountable human's next job, then the next human's, and
within one human their principals in turn; and one human's jobs hold at most
``running_per_owner`` threads at once, so someone else's first job never waits behind a backlog.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dataward.domain.errors import DatawardError, NotFound
from dataward.domain.transport_errors import JobQueueFull, JobStateUnwritable, TooManyJobs
from dataward.ledger.events import format_time, utc_now

log = logging.getLogger("dataward.server")

JOB_KEEP_S = 86_400.0

# Names this process in job markers beside its pid: a server restarted in a container often gets the
# same pids again, and a marker its previous run left must not hold a slot for ever.
_PROCESS_NONCE = secrets.token_hex(8)

# The job's function gets a progress callback; it returns the result document and, optionally,
# attachments (such as an HTML report) kept beside the result.
JobFunction = Callable[[Callable[[str], None]], tuple[Any, dict[str, str]]]


@dataclass(frozen=True)
class JobLimits:
    """How a server shares its job threads (``ServerSettings`` gives them; see docs/server.md)."""

    per_principal: int = 4
    """Jobs one principal may hold queued or running at once, in every worker process together."""
    per_owner: int = 8
    """Jobs one accountable human may hold queued or running at once with all their service
    principals, in every worker process together."""
    running_per_owner: int = 1
    """Job threads of one worker process that one accountable human's jobs may hold at once: below the
    number of threads, some are always left for everyone else."""
    queued: int = 64
    """Jobs waiting for a thread in one worker process, everyone's together."""
    retry_after_s: int = 30
    """What a refusal's ``Retry-After`` says: roughly how long a short job takes."""


@dataclass
class Job:
    """The state of one job, as ``GET /api/v1/jobs/{id}`` shows it."""

    id: str
    kind: str
    owner: str
    key: str = ""
    """The id of the key that started the job: the one key that may read it."""
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
        """What a client sees (not the owner's id, its key's nor the process id)."""
        data = asdict(self)
        del data["owner"], data["key"], data["pid"]
        return data


@dataclass
class _Waiting:
    """A job in this process's queue, with what it needs to run and to give its slot back."""

    job: Job
    fn: JobFunction
    cleanup: Callable[[], None] | None
    principal: str
    party: str
    marker: Path
    """Holds the job's slot (``held`` counts it) until the job ends."""
    opened: Path
    """Says the job's file is still to be written once more, until its last write was tried: a job
    reading ``queued`` or ``running`` without it ended with its state unwritten (``get``)."""


class JobStore:
    """Job files in one folder, shared by every worker process of the server, and this process's
    job threads with their fair queue."""

    def __init__(self, folder: Path, *, workers: int = 2, limits: JobLimits | None = None) -> None:
        self.folder = folder
        # Results can quote records: readable by the server's account only, as the ward's folder is.
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.active = folder / "active"
        self.active.mkdir(exist_ok=True, mode=0o700)
        # Which run of a pid is the live one: the last to start with it (``_held_by_live_process``).
        (self.active / f".proc.{os.getpid()}").write_text(_PROCESS_NONCE, "utf-8")
        self.limits = limits or JobLimits()
        self._workers = max(1, workers)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._reserving = threading.Lock()
        self._swept = 0.0
        # The fair queue: accountable human -> principal -> that principal's jobs, in arrival order
        # (``_take`` chooses among them); a key leaves when its queue empties.
        self._ready = threading.Condition()
        self._waiting: OrderedDict[str, OrderedDict[str, deque[_Waiting]]] = OrderedDict()
        self._queued = 0
        self._running: Counter[str] = Counter()
        # When each accountable human, and each principal, was last given a thread (a turn number): the
        # round-robin's memory. One entry per principal that ever ran a job here: a ward's principals.
        self._served_party: dict[str, int] = {}
        self._served_principal: dict[str, int] = {}
        self._turn = 0
        self._stopping = False

    def _path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def _save(self, job: Job) -> None:
        """Write ``job``'s file atomically; an ``OSError`` leaves the previous file, and no temporary one."""
        tmp = self.folder / f".{job.id}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(job), default=str))
            os.replace(tmp, self._path(job.id))
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)  # a part-written file must not fill the disk further
            raise

    # --- submitting: the limits ------------------------------------------------------------------
    def submit(
        self,
        kind: str,
        owner: str,
        fn: JobFunction,
        *,
        key: str = "",
        cleanup: Callable[[], None] | None = None,
        accountable: str | None = None,
    ) -> Job:
        """Queue ``fn`` as a job of principal ``owner`` started with key ``key`` (its id; only that key reads it,
        ``get``), accountable to the human ``accountable`` (``owner`` itself by default); ``cleanup`` runs
        when it ends, however it ends, or at once when the job is refused: ``TooManyJobs`` (429) past a
        principal's or an accountable human's limit, ``JobQueueFull`` (503) when this process's queue is
        full, ``JobStateUnwritable`` (507) when the jobs folder cannot be written; a refused job leaves
        nothing behind."""
        party = accountable or owner
        self._sweep()
        job = Job(id=f"j_{secrets.token_hex(12)}", kind=kind, owner=owner, key=key, created_at=format_time(utc_now()))
        job.pid = os.getpid()
        marker = self.active / f"{job.id}.{_tag(owner)}.{_tag(party)}.{job.pid}.{_PROCESS_NONCE}"
        opened = self.active / f"{job.id}.open.{job.pid}.{_PROCESS_NONCE}"
        made: list[Path] = []
        counted = False
        try:
            with self._reserved():
                self._check_limits(owner, party)
                with self._ready:
                    if self._stopping or self._queued >= self.limits.queued:
                        raise self._queue_full()
                for path in (opened, marker):
                    path.touch(mode=0o600, exist_ok=False)
                    made.append(path)
                with self._ready:
                    # Counted while still reserving: a parallel submission sees it (job threads only
                    # ever take from the count).
                    self._queued += 1
                    counted = True
            self._save(job)
        except Exception as exc:
            # Whatever was refused or failed part-way, nothing of the job stays: no marker holding a
            # slot, no place in the queue's count, no upload.
            self._undo(job, made, counted, cleanup)
            if isinstance(exc, OSError):
                # The operator's problem, not the caller's: the log says so (the client gets the cause).
                log.error("job %s (%s) of %s refused: the jobs folder cannot be written (%s)", job.id, kind, owner, exc)
                raise _unwritable(exc, started=False) from exc
            raise
        queued = replace(job)  # the answer, as queued: a job thread changes ``job`` from now on
        with self._ready:
            self._waiting.setdefault(party, OrderedDict()).setdefault(owner, deque()).append(
                _Waiting(job, fn, cleanup, owner, party, marker, opened)
            )
            self._ready.notify()
        self._start_threads()
        return queued

    def _undo(self, job: Job, made: list[Path], counted: bool, cleanup: Callable[[], None] | None) -> None:
        """Take back what a submission did before it failed (``submit``)."""
        for path in made:
            _remove(path, job, "its marker")
        if counted:
            with self._ready:
                self._queued -= 1
        _clean(cleanup, job)

    @contextlib.contextmanager
    def _reserved(self) -> Iterator[None]:
        """Counting a principal's jobs and adding one, at once for every thread and every worker process
        (a lock file; where there is no ``fcntl``, for this process's threads only)."""
        with self._reserving:
            try:
                import fcntl
            except ImportError:  # not POSIX: one worker process is what such a host should run
                yield
                return
            fd = os.open(self.active / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def held(self, principal: str, party: str | None = None) -> tuple[int, int]:
        """How many jobs, queued or running in any live worker process, ``principal`` holds, and how many
        the accountable human ``party`` holds with all their principals (markers of a process that died,
        or of an earlier run of a pid, are deleted)."""
        mine = theirs = 0
        me, them = _tag(principal), _tag(party or principal)
        runs: dict[int, str | None] = {}
        for path in self.active.iterdir():
            parts = path.name.split(".")
            if len(parts) == 3 and parts[1] == "proc" and parts[2].isdigit() and not _alive(int(parts[2])):
                path.unlink(missing_ok=True)  # a process that ended: nothing names its run any more
                continue
            if len(parts) == 4 and parts[1] == "open" and parts[2].isdigit():  # says a job's file is current
                pid, run, counts = int(parts[2]), parts[3], False
            elif len(parts) == 5 and parts[3].isdigit():  # holds a slot
                pid, run, counts = int(parts[3]), parts[4], True
            else:
                continue
            if pid not in runs:
                runs[pid] = self._live_run(pid)
            if runs[pid] != run:
                path.unlink(missing_ok=True)  # its process ended, or was restarted with the same pid
                continue
            if not counts:
                continue
            mine += parts[1] == me
            theirs += parts[2] == them
        return mine, theirs

    def _live_run(self, pid: int) -> str | None:
        """The nonce of the live process ``pid``, None when none lives."""
        if pid == os.getpid():
            return _PROCESS_NONCE
        if not _alive(pid):
            return None
        try:
            return (self.active / f".proc.{pid}").read_text("utf-8")
        except OSError:
            return None

    def _check_limits(self, principal: str, party: str) -> None:
        mine, theirs = self.held(principal, party)
        limits = self.limits
        if mine >= limits.per_principal:
            raise self._too_many(
                f"you hold {mine} jobs queued or running on this server: its limit is "
                f"{limits.per_principal} per principal (max_jobs_per_principal)",
                limit=limits.per_principal,
                held=mine,
                scope="principal",
            )
        if theirs >= limits.per_owner:
            who = (
                "you and your service principals hold"
                if party == principal
                else ("your accountable owner and their service principals, you among them, hold")
            )
            raise self._too_many(
                f"{who} {theirs} jobs queued or running on this server: its limit is {limits.per_owner} "
                "per accountable human, their service principals' jobs included (max_jobs_per_owner)",
                limit=limits.per_owner,
                held=theirs,
                scope="owner",
            )

    def _too_many(self, message: str, **details: Any) -> TooManyJobs:
        retry = self.limits.retry_after_s
        return TooManyJobs(
            message,
            hint=f"wait until one of them ends (GET /api/v1/jobs/ID) and try again, in about {retry} seconds",
            retry_after=retry,
            **details,
        )

    def _queue_full(self) -> JobQueueFull:
        retry = self.limits.retry_after_s
        return JobQueueFull(
            f"the server's job queue is full: {self.limits.queued} jobs are waiting for a thread (max_queued_jobs)",
            hint=f"nothing was started: try again in about {retry} seconds",
            limit=self.limits.queued,
            retry_after=retry,
        )

    # --- running: the fair queue -------------------------------------------------------------------
    def _start_threads(self) -> None:
        """Start the job threads on the first job (a process that never runs a job starts none)."""
        with self._lock:
            while len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name=f"dataward-job-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def _take(self) -> _Waiting | None:
        """The next job, round-robin (called holding ``_ready``): of the accountable humans with a job
        waiting and fewer than ``running_per_owner`` jobs running, the one served least recently (one
        never served first, then by arrival); of their principals with a job waiting, likewise; that
        principal's oldest job. A human whose queue emptied keeps their place in the turn: a backlog
        sent a job at a time does not come before someone else's first job."""
        eligible = [p for p in self._waiting if self._running[p] < self.limits.running_per_owner]
        if not eligible:
            return None
        party = min(eligible, key=lambda p: self._served_party.get(p, -1))  # min keeps arrival order on ties
        principals = self._waiting[party]
        principal = min(principals, key=lambda p: self._served_principal.get(p, -1))
        jobs = principals[principal]
        item = jobs.popleft()
        if not jobs:
            del principals[principal]
        if not principals:
            del self._waiting[party]
        self._turn += 1
        self._served_party[party] = self._served_principal[principal] = self._turn
        return item

    def _work(self) -> None:
        while True:
            with self._ready:
                while (item := None if self._stopping else self._take()) is None:
                    if self._stopping:
                        return
                    self._ready.wait()
                self._queued -= 1
                self._running[item.party] += 1
            try:
                self._run(item)
            except Exception:  # never expected (``_run`` ends every job itself): the thread lives on
                log.exception("job %s (%s): its thread caught an error and goes on", item.job.id, item.job.kind)

    def _run(self, item: _Waiting) -> None:
        """Run one job, then end it whatever happened: its uploads cleaned, its slot given back, its
        final state written if it can be."""
        try:
            self._execute(item.job, item.fn)
        finally:
            self._end(item)

    def _execute(self, job: Job, fn: JobFunction) -> None:
        job.status, job.started_at = "running", format_time(utc_now())
        try:
            self._save(job)
        except OSError as exc:
            # Not started: a job whose state cannot be written could not report what it did.
            log.error("job %s (%s) not started: its state could not be written (%s)", job.id, job.kind, exc)
            job.status, job.started_at, job.error = "failed", None, error_body(_unwritable(exc, started=False))
            return
        unsaved = False

        def progress(text: str) -> None:
            nonlocal unsaved
            job.progress, job.steps = text, job.steps + 1
            try:
                self._save(job)
            except OSError as exc:
                # Progress is a hint to whoever polls: the job goes on, and its end is written or reads
                # failed (``get``). Logged once, not at every step of a full disk.
                if not unsaved:
                    log.warning("job %s (%s): its progress could not be written (%s)", job.id, job.kind, exc)
                unsaved = True

        try:
            job.result, job.attachments = fn(progress)
            job.status = "succeeded"
        except DatawardError as exc:
            job.status, job.error = "failed", error_body(exc)
        except Exception:  # the server log has the traceback; the client gets no internals
            log.exception("job %s (%s) failed", job.id, job.kind)
            job.status, job.error = "failed", internal_error_body()

    def _end(self, item: _Waiting) -> None:
        job = item.job
        _clean(item.cleanup, job)
        # The slot is given back before the job reads as ended: whoever sees it end may start another
        # at once.
        self._release(item)
        job.finished_at = format_time(utc_now())
        try:
            self._save(job)
        except Exception as exc:
            log.error(
                "job %s (%s) ended %s, but its state could not be written (%s): it reads failed",
                job.id,
                job.kind,
                job.status,
                exc,
            )
        finally:
            # Its last write was tried: from now on a file still reading ``running`` means it failed.
            _remove(item.opened, job, "its open marker")

    def _release(self, item: _Waiting) -> None:
        _remove(item.marker, item.job, "its slot marker")
        with self._ready:
            self._running[item.party] -= 1
            if self._running[item.party] <= 0:
                del self._running[item.party]
            self._ready.notify_all()

    # --- reading -------------------------------------------------------------------------------------
    def get(self, job_id: str, owner: str, key: str = "") -> Job:
        """The job ``job_id`` if principal ``owner`` started it with key ``key``; ``NotFound`` otherwise
        (whether it exists or not, as for anything else a caller may not see)."""
        missing = NotFound(f"no job {job_id!r}", hint="job ids are returned by the request that started them")
        if not job_id.startswith("j_") or not job_id[2:].isalnum():
            raise missing
        try:
            data = json.loads(self._path(job_id).read_text("utf-8"))
        except (OSError, ValueError):
            raise missing from None
        job = Job(**data)
        if job.owner != owner or job.key != key:
            raise missing
        if job.status in ("queued", "running"):
            if not _alive(job.pid):
                job.status, job.error = "failed", interrupted_body()
            elif not any(self.active.glob(f"{job_id}.open.{job.pid}.*")):
                # Its last write was tried, after the file was read: read it again, and if it still
                # says queued or running, the write failed.
                with contextlib.suppress(OSError, ValueError, TypeError):
                    job = Job(**json.loads(self._path(job_id).read_text("utf-8")))
                if job.status in ("queued", "running"):
                    job.error = error_body(_unwritable(None, started=job.status == "running"))
                    job.status = "failed"
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
        """Stop taking jobs (running ones finish): the queued ones end ``failed`` (``interrupted``) and
        give their slots back."""
        with self._ready:
            self._stopping = True
            dropped = [item for principals in self._waiting.values() for jobs in principals.values() for item in jobs]
            self._waiting.clear()
            self._queued -= len(dropped)
            self._ready.notify_all()
        for item in dropped:
            _remove(item.marker, item.job, "its slot marker")
            _clean(item.cleanup, item.job)
            item.job.status, item.job.error = "failed", interrupted_body()
            item.job.finished_at = format_time(utc_now())
            try:
                self._save(item.job)
            except OSError as exc:
                log.error("job %s (%s): its interruption could not be written (%s)", item.job.id, item.job.kind, exc)
            finally:
                _remove(item.opened, item.job, "its open marker")


def _remove(path: Path, job: Job, what: str) -> None:
    """Delete one of a job's files; a failure is logged, never raised (the job's end goes on)."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.error("job %s (%s): %s could not be deleted (%s)", job.id, job.kind, what, exc)


def _clean(cleanup: Callable[[], None] | None, job: Job) -> None:
    """Run a job's ``cleanup`` (its uploads); a failure is logged, never raised."""
    if cleanup is None:
        return
    try:
        cleanup()
    except Exception:
        log.exception("job %s (%s): its cleanup failed", job.id, job.kind)


def _unwritable(exc: OSError | None, *, started: bool) -> JobStateUnwritable:
    """The error of a job whose state the server could not write: refused or never run (``started``
    false), or ended with its outcome unrecorded. Names the cause, not the folder's path."""
    cause = f" ({exc.strerror or exc})" if exc is not None else ""
    if not started:
        return JobStateUnwritable(
            f"the server could not write the job's state in its jobs folder{cause}: the job was not run",
            hint="nothing was started: the server's operator must free disk space or make the ward's "
            "server/jobs folder writable, then start it again",
        )
    return JobStateUnwritable(
        f"the job ran, but the server could not write how it ended in its jobs folder{cause}",
        hint="its outcome is unknown: check what it changed before starting it again (the server's log "
        "has how it ended); the server's operator must free disk space or make server/jobs writable",
    )


def _tag(principal: str) -> str:
    """A principal id as it may appear in a marker's name (no dot: the name's fields are dot-separated)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", principal)[:64]


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
    and the CLI ``exit_code`` so that a client reproduces the embedded ward's behaviour exactly. Every
    error a caller is answered with (a route's, a job's, a stream's) is made here, so what is for the
    server's operator only (``local_detail``: the file of a lost or altered object) is logged here and
    never sent."""
    if exc.local_detail:
        log.warning("%s: %s (%s)", exc.code, exc.message, exc.local_detail)
    return {**exc.to_dict(), "exit_code": exc.exit_code}


def interrupted_body() -> dict[str, Any]:
    """The error document of a job whose server process stopped before it ended."""
    return {
        "error": "interrupted",
        "message": "the server process running this job stopped before it finished",
        "hint": "start it again",
        "details": {},
        "exit_code": 1,
    }


def internal_error_body() -> dict[str, Any]:
    """The error document of an unexpected failure: nothing of its internals."""
    return {
        "error": "internal",
        "message": "the server failed to process the request",
        "hint": "the server's log has the details",
        "details": {},
        "exit_code": 1,
    }
