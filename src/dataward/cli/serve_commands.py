"""``dataward serve`` (the ward behind its HTTP API, FastAPI under uvicorn) and ``dataward whoami``
(which principal and key a command acts as, against a folder or a server alike)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from dataward.cli.errors import reports_errors
from dataward.cli.output import console, emit_json, err_console, safe, table
from dataward.cli.state import JSON_HELP, open_ward, state
from dataward.domain.errors import Conflict, InputError

WORKER_START_SECONDS = 120
"""How long a server worker may take to start before the supervisor restarts it (``serve --workers N``)."""


def check_listening_address(host: str, port: int) -> None:
    """Refuse, before the ward is opened and uvicorn started, an address this process cannot listen on
    (another server holds the port: conflict; the host is none of this machine's: bad input). uvicorn
    would log the error and exit 3, which the CLI's exit codes read as not_found."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(message, hint="choose another --port, or stop the process that listens there") from None
        raise InputError(message, hint="give a --host of this machine (127.0.0.1, or 0.0.0.0 for all)") from None


def _choose_scheduler(scheduler: str | None, allow_insecure: bool) -> None:
    """Set the Dask scheduler every server worker's gate runs use (``$DATAWARD_SCHEDULER``), refusing one
    reached without authentication from another host (docs/threat-model.md) unless ``allow_insecure``."""
    from dataward.gates.engine import INSECURE_SCHEDULER_ENV, check_scheduler_address, insecure_scheduler_allowed

    address = scheduler or os.environ.get("DATAWARD_SCHEDULER", "").strip()
    if address:
        # Refused before the server starts, rather than in every gate run.
        check_scheduler_address(address, allow_insecure=allow_insecure or insecure_scheduler_allowed())
    if allow_insecure:
        os.environ[INSECURE_SCHEDULER_ENV] = "1"  # read by every worker's gate runs
    if scheduler:
        os.environ["DATAWARD_SCHEDULER"] = scheduler  # read by every worker's gate runs


def open_files_limit() -> int | None:
    """This process's soft limit of open files (None where it cannot be read)."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_options(
    *,
    forwarded_allow_ips: str | None,
    limit_concurrency: int,
    timeout_keep_alive: int,
    backlog: int,
    max_header_bytes: int,
) -> dict[str, Any]:
    """uvicorn's settings for connections: the guarded h11 protocol (a deadline for request heads, a
    cap on held connections), the cap kept below the open-file limit (a reserve for the catalog,
    the store and uploads), and forwarding headers trusted only from the proxies named."""
    files = open_files_limit()
    if files is not None:
        limit_concurrency = max(2, min(limit_concurrency, files - max(64, files // 4)))
    proxies = [p.strip() for p in (forwarded_allow_ips or "").split(",") if p.strip()]
    return {
        "http": "dataward.server.connections:GuardedH11Protocol",
        "limit_concurrency": limit_concurrency,
        "timeout_keep_alive": timeout_keep_alive,
        "backlog": backlog,
        "h11_max_incomplete_event_size": max_header_bytes,
        # uvicorn trusts 127.0.0.1 when given nothing: any local process could then name any client.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": ",".join(proxies) if proxies else "",
    }


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``whoami`` to ``app``."""

    @app.command()
    @reports_errors
    def whoami(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
        """Show the principal and key commands act as, and its grants."""
        info = open_ward().whoami()
        if as_json:
            emit_json(info)
            return
        owner = f", owned by {info['owner']}" if info["owner"] else ""
        console.print(f"[bold]{info['principal']}[/bold] ({info['kind']}{owner}) on ward {info['ward']}")
        # A key with scopes acts with only what they allow of the grants below: say so beside them.
        scopes = info.get("key_scopes")
        limited = f" (acts only within its scopes: {', '.join(scopes)})" if scopes is not None else ""
        console.print(f"key {info['key']}, expires {info['key_expires_at'][:19].replace('T', ' ')}{limited}")
        table("Grants", ["role", "scope"], [(g["role"], g["scope"]) for g in info["grants"]])

    @app.command()
    @reports_errors
    def serve(
        ward: Annotated[
            Path | None, typer.Option("--ward", help="Ward folder to serve (default: the global --ward).")
        ] = None,
        catalog: Annotated[
            str | None,
            typer.Option(
                "--catalog",
                envvar="DATAWARD_CATALOG",
                help="Serve the ward whose catalog is this database URL (postgresql+psycopg://USER@HOST/DB; "
                "the password from PGPASSWORD or ~/.pgpass), with --store and --signing-key, instead of a folder.",
            ),
        ] = None,
        store: Annotated[
            str | None, typer.Option("--store", help="The ward's object store: a folder or an fsspec URL (s3://...).")
        ] = None,
        signing_key: Annotated[
            Path | None,
            typer.Option("--signing-key", help="The ward's Ed25519 signing key (PEM), owner-readable only."),
        ] = None,
        state_dir: Annotated[
            Path | None,
            typer.Option(
                "--state",
                help="With --catalog: the server's private working folder (jobs, uploads, sessions, checkpoints; "
                "default ~/.local/state/dataward/WARD_ID).",
            ),
        ] = None,
        host: Annotated[str, typer.Option(help="Address to listen on; put a TLS proxy in front.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
        scheduler: Annotated[
            str | None,
            typer.Option(
                help="Dask scheduler address (tls://HOST:8786) the gates score contributions on "
                "(default: $DATAWARD_SCHEDULER; unset: in the server's process)."
            ),
        ] = None,
        allow_insecure_scheduler: Annotated[
            bool,
            typer.Option(
                help="Accept a plain tcp:// scheduler on another host: whoever reaches it can forge verdicts and "
                "run code in the server. Default: $DATAWARD_ALLOW_INSECURE_SCHEDULER."
            ),
        ] = False,
        max_upload_mb: Annotated[int, typer.Option(min=1, help="Largest accepted upload, in MiB.")] = 512,
        max_request_kb: Annotated[int, typer.Option(min=1, help="Largest accepted JSON request, in KiB.")] = 1024,
        console_session_minutes: Annotated[
            int, typer.Option(min=1, max=24 * 60, help="How long a console sign-in lasts (never past its key).")
        ] = 60,
        auth_cache_seconds: Annotated[
            float,
            typer.Option(
                min=0,
                max=3600,
                help="How long a worker remembers a verified key (0: never); a revocation still takes "
                "effect on the next request.",
            ),
        ] = 30.0,
        forwarded_allow_ips: Annotated[
            str | None,
            typer.Option(
                help="The reverse proxy's address(es), comma-separated, whose X-Forwarded-For is trusted for the "
                "client address (rate limits, logs). Default: none, every forwarding header is ignored.",
            ),
        ] = None,
        max_pending_uploads: Annotated[
            int, typer.Option(min=1, help="Uploads one principal may hold at once, not yet used by a contribution.")
        ] = 8,
        max_pending_upload_mb: Annotated[
            int, typer.Option(min=1, help="MiB of uploads one principal may hold at once (at least --max-upload-mb).")
        ] = 2048,
        job_workers: Annotated[
            int, typer.Option(min=1, help="Threads per worker process running jobs (gate runs, verify, ...).")
        ] = 2,
        max_jobs_per_principal: Annotated[
            int, typer.Option(min=1, help="Jobs one principal may hold queued or running at once (then 429).")
        ] = 4,
        max_jobs_per_owner: Annotated[
            int,
            typer.Option(
                min=1, help="Jobs one accountable human may hold queued or running at once with all their bots."
            ),
        ] = 8,
        max_running_jobs_per_owner: Annotated[
            int,
            typer.Option(
                min=1,
                help="Job threads of a worker process one accountable human's jobs (and their bots') may hold "
                "at once; below --job-workers, one is always left for everyone else.",
            ),
        ] = 1,
        max_queued_jobs: Annotated[
            int, typer.Option(min=1, help="Jobs waiting for a thread in one worker process, everyone's (then 503).")
        ] = 64,
        limit_concurrency: Annotated[
            int,
            typer.Option(
                min=2,
                help="Connections held per worker; at the limit a new one replaces the one waiting longest for "
                "its request head (capped below the process's open-file limit).",
            ),
        ] = 1000,
        header_timeout: Annotated[
            float, typer.Option(min=0.1, max=300, help="Seconds a client has to send a whole request head.")
        ] = 10.0,
        body_timeout: Annotated[
            float, typer.Option(min=1, max=3600, help="Seconds a started request body may send nothing before 408.")
        ] = 60.0,
        body_deadline: Annotated[
            float,
            typer.Option(
                min=1,
                max=86400,
                help="Seconds a request body other than an upload has to arrive whole, however steadily, "
                "before 408 (an upload then keeps to --min-upload-rate).",
            ),
        ] = 120.0,
        min_upload_rate: Annotated[
            float,
            typer.Option(
                min=0,
                help="Bytes per second an upload must average after its first --body-deadline seconds, "
                "before 408 (0: no minimum).",
            ),
        ] = 4096.0,
        write_timeout: Annotated[
            float,
            typer.Option(
                min=1,
                max=3600,
                help="Seconds an answer may make no write progress (its client not reading) before the "
                "connection is closed.",
            ),
        ] = 30.0,
        timeout_keep_alive: Annotated[
            int, typer.Option(min=1, max=300, help="Seconds an idle kept-alive connection stays open.")
        ] = 5,
        backlog: Annotated[
            int, typer.Option(min=16, help="Connections the kernel queues before they are accepted.")
        ] = 511,
        max_header_kb: Annotated[
            int, typer.Option(min=1, max=1024, help="Largest request head (request line and headers), in KiB.")
        ] = 16,
        trust_skops_type: Annotated[
            list[str] | None,
            typer.Option(
                "--trust-skops-type",
                help="A type outside skops' trusted set that a release gate request may let a .skops file "
                "rebuild on this server (repeatable; none by default: each runs in this process).",
            ),
        ] = None,
    ) -> None:
        """Serve the ward's use cases under /api/v1 (OpenAPI at /api/v1/openapi.json).

        The signing key and the catalog stay in this process; clients hold only API keys
        (`DATAWARD_URL=http://HOST:PORT DATAWARD_KEY=dw_... dataward ...`). Speaks plain HTTP: terminate
        TLS at a reverse proxy in front of it (docs/server.md)."""
        import uvicorn

        from dataward.server.assembly import assemble_ward, hidden_password
        from dataward.server.connections import HEADER_TIMEOUT_ENV
        from dataward.server.settings import ServerSettings, witness_allow_from
        from dataward.service.checkpoints import WITNESS_ALLOW_ENV
        from dataward.service.config import locate_ward
        from dataward.service.ward import Ward

        if max_pending_upload_mb < max_upload_mb:
            raise InputError(
                "--max-pending-upload-mb is below --max-upload-mb: no upload of the largest size could be held",
                hint=f"give --max-pending-upload-mb {max_upload_mb} or more",
            )
        limits = {
            "max_pending_uploads": max_pending_uploads,
            "max_pending_upload_bytes": max_pending_upload_mb << 20,
            "body_idle_timeout_s": body_timeout,
            "body_deadline_s": body_deadline,
            "min_upload_rate": min_upload_rate,
            "write_timeout_s": write_timeout,
            "max_upload_bytes": max_upload_mb << 20,
            "max_json_bytes": max_request_kb << 10,
            "console_session_s": console_session_minutes * 60.0,
            "auth_cache_s": auth_cache_seconds,
            "job_workers": job_workers,
            "max_jobs_per_principal": max_jobs_per_principal,
            "max_jobs_per_owner": max_jobs_per_owner,
            "max_running_jobs_per_owner": max_running_jobs_per_owner,
            "max_queued_jobs": max_queued_jobs,
            "skops_trusted": tuple(trust_skops_type or ()),
            # The operator's bound on where an admin may point the witness (docs/operations.md).
            "witness_allow": witness_allow_from(os.environ.get(WITNESS_ALLOW_ENV, "")),
        }
        if catalog is not None:
            if ward is not None:
                raise InputError("pass either --ward or --catalog, not both")
            if store is None or signing_key is None:
                raise InputError("--catalog needs --store and --signing-key", hint="see `dataward serve --help`")
            # Fail here, readably, rather than in every worker (wrong key, no ward, unreachable database);
            # migrations run once.
            opened = assemble_ward(catalog, store, signing_key, state_dir)
            warnings = opened.state_warnings()
            opened.db.dispose()
            settings = ServerSettings(
                ward=opened.folder,
                catalog=catalog,
                store=store,
                signing_key=signing_key.resolve(),
                **limits,
            )
            what = f"ward {opened.ward_id} (catalog {hidden_password(catalog)}, store {store})"
        else:
            if store is not None or signing_key is not None or state_dir is not None:
                raise InputError(
                    "--store, --signing-key and --state go with --catalog", hint="or serve a folder: --ward"
                )
            folder = locate_ward(ward if ward is not None else state.ward_path)
            if not (folder / "ward.json").exists():
                raise InputError(f"{folder} is not a ward", hint="create one with `dataward init`")
            opened = Ward.open(folder)  # fail here, readably, rather than in every worker: migrations run once
            warnings = opened.state_warnings()
            opened.db.dispose()
            settings = ServerSettings(ward=folder.resolve(), **limits)
            what = str(folder)
        check_listening_address(host, port)
        _choose_scheduler(scheduler, allow_insecure_scheduler)
        os.environ.update(settings.to_environment())
        os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout)
        for warning in warnings:
            # Loud: a new, empty --state folder means a restored or cut catalog is not refused.
            err_console.print(f"[bold red]warning:[/] {safe(warning)}")
        err_console.print(f"serving {what} on http://{host}:{port}/api/v1 with {workers} worker(s)")
        uvicorn.run(
            "dataward.server.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **connection_options(
                forwarded_allow_ips=forwarded_allow_ips,
                limit_concurrency=limit_concurrency,
                timeout_keep_alive=timeout_keep_alive,
                backlog=backlog,
                max_header_bytes=max_header_kb << 10,
            ),
            server_header=False,
            log_level="info",
            # A worker imports the whole server before it answers the supervisor's first health check:
            # 9 to 12 s on a busy two-core host, where uvicorn's default 5 s killed every worker in a loop
            # with no more than "Child process died" in the log.
            timeout_worker_healthcheck=WORKER_START_SECONDS,
        )
