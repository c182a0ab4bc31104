"""What a served ward is configured with: where the ward is, and the limits of the boundary."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dataward.domain.errors import InputError
from dataward.service.checkpoints import WITNESS_ALLOW_ENV

if TYPE_CHECKING:
    from dataward.server.jobs import JobLimits
    from dataward.service.ward import Ward

ENV_PREFIX = "DATAWARD_SERVER_"


@dataclass(frozen=True)
class ServerSettings:
    """Settings of one server process (every worker reads the same ones from the environment)."""

    ward: Path
    """The ward folder, or, with ``catalog``, the server's private state folder."""
    catalog: str | None = None
    """A catalog database URL: serve the ward assembled from ``catalog``, ``store`` and ``signing_key``
    instead of a ward folder."""
    store: str | None = None
    signing_key: Path | None = None
    max_json_bytes: int = 1 << 20
    """Largest accepted JSON request body (1 MiB): a request of a use case is small."""
    max_upload_bytes: int = 512 << 20
    """Largest accepted upload (512 MiB): a contribution's file, streamed to disk, never held in memory."""
    max_pending_uploads: int = 8
    """Uploads one principal may hold at once (complete but not yet used, or still arriving)."""
    max_pending_upload_bytes: int = 2 << 30
    """Bytes of uploads one principal may hold at once (2 GiB)."""
    body_idle_timeout_s: float = 60.0
    """A request body that has begun but from which nothing arrives for this long ends with 408."""
    body_deadline_s: float = 120.0
    """A request body other than an upload must have arrived whole within this long of the request's
    head, however steadily it trickles, or the request ends with 408 (a 1 MiB JSON body needs 9 KiB/s)."""
    min_upload_rate: float = 4096.0
    """Bytes per second an upload must average once ``body_deadline_s`` has passed (after ``t`` seconds
    it must have sent ``min_upload_rate * (t - body_deadline_s)`` bytes), or it ends with 408. Under
    connection pressure an authenticated body arriving slower than this may be closed for a new
    connection (``dataward.server.connections``)."""
    write_timeout_s: float = 30.0
    """An answer that makes no write progress for this long (its client does not read it) closes the
    connection; under connection pressure a connection whose client does not read its answer may be
    closed sooner for a new one (``dataward.server.connections``)."""
    auth_failures_per_key: int = 10
    """Failed authentications allowed per claimed key id within ``auth_window_s`` before 429."""
    auth_failures_per_address: int = 30
    """Failed authentications allowed per client address within ``auth_window_s`` before 429."""
    auth_window_s: float = 60.0
    job_workers: int = 2
    """Background threads per worker process running jobs (gate runs, self-tests, verify)."""
    max_jobs_per_principal: int = 4
    """Jobs one principal may hold queued or running at once, in every worker process together; one
    more is refused at once (429 ``too_many_jobs``)."""
    max_jobs_per_owner: int = 8
    """Jobs one accountable human may hold queued or running at once together with all their service
    principals (a bot's jobs count against its owner too), in every worker process together."""
    max_running_jobs_per_owner: int = 1
    """Job threads of one worker process that one accountable human's jobs (theirs and their bots')
    may hold at once: below ``job_workers``, a thread is always left for everyone else."""
    max_queued_jobs: int = 64
    """Jobs waiting for a thread in one worker process, everyone's together; one more is refused at
    once (503 ``job_queue_full``)."""
    upload_ttl_s: float = 3600.0
    """An upload not used by a contribution within this time is deleted."""
    console_session_s: float = 3600.0
    """How long a console session lasts after sign-in (never longer than its key)."""
    auth_cache_s: float = 30.0
    """How long a worker remembers a verified key (0: never). Whatever is remembered is used only
    while the catalog's auth epoch is unchanged, so a revocation still takes effect at once."""
    skops_trusted: tuple[str, ...] = ()
    """Types outside skops' trusted set that a release gate request may let a ``.skops`` file rebuild
    here. None by default: a type trusted is code the server runs on a trainer's file, next to the
    signing key, so only the operator names them (``dataward serve --trust-skops-type``)."""
    witness_allow: tuple[str, ...] = ()
    """Where an admin may point the witness (folders and URL prefixes; ``DATAWARD_WITNESS_ALLOW`` in the
    environment of ``dataward serve``, comma-separated). Empty: anywhere outside the ward's folder, as
    ``check_witness_location`` accepts. The witness is where the server writes checkpoints and reads
    removal copies, so the operator, not a key holder, may bound it."""

    def job_limits(self) -> JobLimits:
        """How the job threads are shared (``dataward.server.jobs``)."""
        from dataward.server.jobs import JobLimits

        return JobLimits(
            per_principal=self.max_jobs_per_principal,
            per_owner=self.max_jobs_per_owner,
            running_per_owner=self.max_running_jobs_per_owner,
            queued=self.max_queued_jobs,
        )

    def to_environment(self) -> dict[str, str]:
        """The settings as environment variables, so that each uvicorn worker process rebuilds them
        (the catalog URL among them: the environment of the server's own processes, never a file)."""
        return {
            ENV_PREFIX + "WARD": str(self.ward),
            ENV_PREFIX + "MAX_JSON_BYTES": str(self.max_json_bytes),
            ENV_PREFIX + "MAX_UPLOAD_BYTES": str(self.max_upload_bytes),
            ENV_PREFIX + "MAX_PENDING_UPLOADS": str(self.max_pending_uploads),
            ENV_PREFIX + "MAX_PENDING_UPLOAD_BYTES": str(self.max_pending_upload_bytes),
            ENV_PREFIX + "BODY_IDLE_TIMEOUT_S": str(self.body_idle_timeout_s),
            ENV_PREFIX + "BODY_DEADLINE_S": str(self.body_deadline_s),
            ENV_PREFIX + "MIN_UPLOAD_RATE": str(self.min_upload_rate),
            ENV_PREFIX + "WRITE_TIMEOUT_S": str(self.write_timeout_s),
            ENV_PREFIX + "AUTH_FAILURES_PER_KEY": str(self.auth_failures_per_key),
            ENV_PREFIX + "AUTH_FAILURES_PER_ADDRESS": str(self.auth_failures_per_address),
            ENV_PREFIX + "AUTH_WINDOW_S": str(self.auth_window_s),
            ENV_PREFIX + "JOB_WORKERS": str(self.job_workers),
            ENV_PREFIX + "MAX_JOBS_PER_PRINCIPAL": str(self.max_jobs_per_principal),
            ENV_PREFIX + "MAX_JOBS_PER_OWNER": str(self.max_jobs_per_owner),
            ENV_PREFIX + "MAX_RUNNING_JOBS_PER_OWNER": str(self.max_running_jobs_per_owner),
            ENV_PREFIX + "MAX_QUEUED_JOBS": str(self.max_queued_jobs),
            ENV_PREFIX + "UPLOAD_TTL_S": str(self.upload_ttl_s),
            ENV_PREFIX + "CONSOLE_SESSION_S": str(self.console_session_s),
            ENV_PREFIX + "AUTH_CACHE_S": str(self.auth_cache_s),
            ENV_PREFIX + "SKOPS_TRUSTED": ",".join(self.skops_trusted),
            ENV_PREFIX + "WITNESS_ALLOW": ",".join(self.witness_allow),
        } | (
            {}
            if self.catalog is None
            else {
                ENV_PREFIX + "CATALOG": self.catalog,
                ENV_PREFIX + "STORE": str(self.store),
                ENV_PREFIX + "SIGNING_KEY": str(self.signing_key),
            }
        )

    @classmethod
    def from_environment(cls) -> ServerSettings:
        """The settings ``to_environment`` wrote (``DATAWARD_SERVER_WARD`` is required)."""
        env = os.environ
        ward = env.get(ENV_PREFIX + "WARD")
        if not ward:
            raise RuntimeError(f"{ENV_PREFIX}WARD is not set: start the server with `dataward serve`")
        defaults = cls(ward=Path(ward))

        def num(name: str, default: float) -> float:
            value = env.get(ENV_PREFIX + name)
            return float(value) if value else default

        catalog = env.get(ENV_PREFIX + "CATALOG") or None
        return cls(
            ward=Path(ward),
            catalog=catalog,
            store=env.get(ENV_PREFIX + "STORE") if catalog else None,
            signing_key=Path(env[ENV_PREFIX + "SIGNING_KEY"]) if catalog else None,
            max_json_bytes=int(num("MAX_JSON_BYTES", defaults.max_json_bytes)),
            max_upload_bytes=int(num("MAX_UPLOAD_BYTES", defaults.max_upload_bytes)),
            max_pending_uploads=int(num("MAX_PENDING_UPLOADS", defaults.max_pending_uploads)),
            max_pending_upload_bytes=int(num("MAX_PENDING_UPLOAD_BYTES", defaults.max_pending_upload_bytes)),
            body_idle_timeout_s=num("BODY_IDLE_TIMEOUT_S", defaults.body_idle_timeout_s),
            body_deadline_s=num("BODY_DEADLINE_S", defaults.body_deadline_s),
            min_upload_rate=num("MIN_UPLOAD_RATE", defaults.min_upload_rate),
            write_timeout_s=num("WRITE_TIMEOUT_S", defaults.write_timeout_s),
            auth_failures_per_key=int(num("AUTH_FAILURES_PER_KEY", defaults.auth_failures_per_key)),
            auth_failures_per_address=int(num("AUTH_FAILURES_PER_ADDRESS", defaults.auth_failures_per_address)),
            auth_window_s=num("AUTH_WINDOW_S", defaults.auth_window_s),
            job_workers=int(num("JOB_WORKERS", defaults.job_workers)),
            max_jobs_per_principal=int(num("MAX_JOBS_PER_PRINCIPAL", defaults.max_jobs_per_principal)),
            max_jobs_per_owner=int(num("MAX_JOBS_PER_OWNER", defaults.max_jobs_per_owner)),
            max_running_jobs_per_owner=int(num("MAX_RUNNING_JOBS_PER_OWNER", defaults.max_running_jobs_per_owner)),
            max_queued_jobs=int(num("MAX_QUEUED_JOBS", defaults.max_queued_jobs)),
            upload_ttl_s=num("UPLOAD_TTL_S", defaults.upload_ttl_s),
            console_session_s=num("CONSOLE_SESSION_S", defaults.console_session_s),
            auth_cache_s=num("AUTH_CACHE_S", defaults.auth_cache_s),
            skops_trusted=tuple(t for t in env.get(ENV_PREFIX + "SKOPS_TRUSTED", "").split(",") if t),
            witness_allow=witness_allow_from(env.get(ENV_PREFIX + "WITNESS_ALLOW", env.get(WITNESS_ALLOW_ENV, ""))),
        )


def witness_allow_from(text: str) -> tuple[str, ...]:
    """The operator's witness allow-list written as ``DATAWARD_WITNESS_ALLOW`` is: comma-separated
    folders and URL prefixes (blanks around each ignored)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def open_served_ward(settings: ServerSettings) -> Ward:
    """The ward ``settings`` name: a ward folder, or a ward assembled from catalog, store and key."""
    from dataward.server.assembly import assemble_ward
    from dataward.service.ward import Ward

    if settings.catalog is None:
        return Ward.open(settings.ward)
    if settings.store is None or settings.signing_key is None:
        raise InputError(
            "a served catalog needs its object store and signing key too", hint="pass --store and --signing-key"
        )
    return assemble_ward(settings.catalog, settings.store, settings.signing_key, settings.ward)
