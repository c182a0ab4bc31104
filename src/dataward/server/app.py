"""The FastAPI application of ``dataward serve``: the ward's use cases under ``/api/v1``.

The server holds the ward (its catalog, object store and signing key); a client holds only an API
key, sent as ``Authorization: Bearer dw_...`` on every request. Each request acts through
``Ward.as_key(key)``, so the service authenticates and authorizes it exactly as it does a CLI
command against a folder, and records every refusal in the ledger.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dataward import __version__
from dataward.access import parse_key
from dataward.api import WardAPI
from dataward.domain.errors import AuthenticationError, DatawardError, InputError
from dataward.domain.surrogates import lone_surrogate
from dataward.domain.transport_errors import PayloadTooLarge, RateLimited
from dataward.server.connections import AUTHENTICATED, quiet_accept_errors
from dataward.server.jobs import Job, JobFunction, JobStore, error_body, internal_error_body
from dataward.server.security import (
    CredentialMisplaced,
    FailureLimiter,
    RedactKeys,
    bearer_key,
    key_in_path,
    misplaced_in_path,
    refuse_credentials_outside_header,
)
from dataward.server.settings import ServerSettings, open_served_ward
from dataward.server.uploads import UploadArea
from dataward.service.heap import settle_startup_heap

if TYPE_CHECKING:
    from dataward.service.ward import Ward

log = logging.getLogger("dataward.server")

API = "/api/v1"
UPLOAD_PATH = f"{API}/uploads"


class DocumentResponse(JSONResponse):
    """JSON rendered exactly as the CLI's ``--json`` renders it (``default=str``), so that a document
    reads the same whether it came from an embedded or a served ward."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, ensure_ascii=False).encode("utf-8")


def error_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> DocumentResponse:
    """An error answer: the JSON error document, never a traceback."""
    return DocumentResponse(body, status_code=status, headers=headers)


def has_body(scope: Scope) -> bool:
    """Whether the request carries a body (a non-zero ``Content-Length``, or ``Transfer-Encoding``)."""
    headers = dict(scope["headers"])
    declared = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (declared is not None and declared.strip() not in (b"", b"0"))


class BodyLimit:
    """ASGI middleware: bound a request body's size and the time it takes to arrive.

    Size: a body over the limit is refused (413), by its declared length at once, and by counting
    what arrives otherwise. Uploads have their own, larger, limit.

    Time (408 ``request_timeout``): a body whose client sends nothing for ``idle_s`` while it is
    incomplete ends the request; so does a body other than an upload still incomplete ``deadline_s``
    after the request began, however steadily it trickles. An upload may take longer, as long as it
    keeps up ``min_upload_rate`` bytes per second on average after its first ``deadline_s`` seconds.
    A slow client holds no request open for long.

    An answer that starts before the body has arrived whole (a refusal, a 408) closes the connection:
    the rest of the body is never read, nor waited for."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_json: int,
        max_upload: int,
        idle_s: float = 60.0,
        deadline_s: float = 120.0,
        min_upload_rate: float = 4096.0,
    ) -> None:
        self.app = app
        self.max_json = max_json
        self.max_upload = max_upload
        self.idle_s = idle_s
        self.deadline_s = deadline_s
        self.min_upload_rate = min_upload_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["path"] == UPLOAD_PATH
        limit = self.max_upload if upload else self.max_json
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            too_large = PayloadTooLarge(
                f"the request body exceeds the server's limit of {limit} bytes", limit=limit, hint=None
            )
            await error_response(error_body(too_large), 413, {"Connection": "close"})(scope, receive, send)
            return
        began = time.monotonic()
        seen = 0
        complete = not has_body(scope)

        def time_left() -> float:
            """Seconds until the body is too late (the deadline, or an upload's rate)."""
            if not upload:
                return began + self.deadline_s - time.monotonic()
            if self.min_upload_rate <= 0:
                return math.inf
            return began + self.deadline_s + seen / self.min_upload_rate - time.monotonic()

        def too_slow() -> HTTPException:
            # An HTTPException: FastAPI passes it on while reading a body (anything else becomes 400).
            if upload:
                return HTTPException(
                    408,
                    f"the upload arrived too slowly: below {self.min_upload_rate:g} bytes per second on average "
                    f"after its first {self.deadline_s:g} seconds",
                )
            return HTTPException(408, f"the request body did not arrive whole within {self.deadline_s:g} seconds")

        async def counted() -> Message:
            nonlocal seen, complete
            if complete:  # only the disconnect is left to hear of, however late
                return await receive()
            left = time_left()
            if left <= 0:
                raise too_slow()
            try:
                with anyio.fail_after(min(self.idle_s, left)):
                    message = await receive()
            except TimeoutError:
                if left < self.idle_s:
                    raise too_slow() from None
                raise HTTPException(
                    408, f"the request body stalled: nothing arrived for {self.idle_s:g} seconds"
                ) from None
            if message["type"] == "http.request":
                complete = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"the request body exceeds the server's limit of {limit} bytes", limit=limit)
            return message

        async def closing_early(message: Message) -> None:
            if message["type"] == "http.response.start" and not complete:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, counted, closing_early)


class KeyBeforeBody:
    """ASGI middleware: an ``/api/v1`` request that carries a body is authenticated before any of it
    is read. A request without a genuine key (none, malformed, made up, revoked, expired, or from a
    client over the failed-authentication limit) is answered its 401 (or 429) at once, as the route
    would have answered it, and its connection closed; a keyless client cannot hold a connection by
    trickling a body. A request whose key is verified is marked so in its scope (``AUTHENTICATED``),
    which the connection layer reads when it must close a connection for a new one."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API + "/") or not has_body(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = await self.state.refusal_before_input(request)
        if refusal is not None:
            await self.state.refusal_response(request, refusal)(scope, receive, send)
            return
        scope[AUTHENTICATED] = True
        await self.app(scope, receive, send)


TRACEBACK_FRAMES = 40
"""How many of an unexpected failure's innermost frames the server's log keeps: a recursion that ran
out of stack has a thousand, and a request that can cause one must not write megabytes each time."""


def log_unexpected(exc: BaseException) -> None:
    """Log an unexpected failure once, with the innermost ``TRACEBACK_FRAMES`` frames of its traceback."""
    text = "".join(traceback.format_exception(exc, limit=-TRACEBACK_FRAMES)).rstrip()
    log.error("unhandled error (innermost %d frames)\n%s", TRACEBACK_FRAMES, text)


class InternalErrors:
    """ASGI middleware: an unexpected failure of a route becomes the 500 error document, logged once;
    a client that disconnected before its request was read ends it with one line in the log.

    Starlette's outermost error middleware answers it too, but then raises it again for the server to
    log: every such request would leave its traceback in the log twice. A failure after the answer has
    begun (a stream cut short) is left to go on up: the connection is all that can still end it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except ClientDisconnect:
            # The client left (or its connection was closed for a new one) before its request was
            # read: nobody is there to answer, and there is nothing to report but this line.
            log.info("%s %s: the client disconnected before its request was read", scope["method"], scope["path"])
        except Exception as exc:
            if started:
                raise
            log_unexpected(exc)
            await error_response(internal_error_body(), 500)(scope, receive, send)


class KeyInPathGuard:
    """ASGI middleware: refuse, before anything else, a request whose path holds a whole key
    (``credential_misplaced``, as for a key in the query string or a cookie), on every route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and key_in_path(scope):
            headers = {"WWW-Authenticate": 'Bearer realm="dataward"'}
            await error_response(error_body(misplaced_in_path()), 401, headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def redact_keys_in_logs() -> None:
    """Blank the secret of any whole key in uvicorn's log lines (once per process)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactKeys) for f in logger.filters):
            logger.addFilter(RedactKeys())


# A JSON escape of a UTF-16 surrogate (``\ud800`` to ``\udfff``): two in a row are one character,
# one alone is none, yet Python's JSON decoder accepts it into a string.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


async def text_only_body(request: Request) -> None:
    """Refuse a JSON body with a string holding a lone UTF-16 surrogate: it is no text, and nothing can
    store, sign or answer it as UTF-8 (a job's document or the ledger's seal failed on it, as a server
    error). Uploads are the file's bytes, not JSON, and are never read here."""
    if request.url.path == UPLOAD_PATH:
        return
    body = await request.body()  # the route has read it already (within the JSON limit); this is its copy
    if not _SURROGATE_ESCAPE.search(body):
        return
    try:
        document = json.loads(body)
    except ValueError:
        return  # not JSON: the route's own validation answers
    where = lone_surrogate(document, "body")
    if where is not None:
        problem = "a string holds a lone UTF-16 surrogate, which is no Unicode character"
        raise InputError(
            f"malformed request: {where}: {problem}",
            hint="send text as UTF-8; a \\u escape above U+FFFF is a pair of surrogates, high then low",
            problems=[{"where": where, "problem": problem}],
        )


def client_address(request: Request) -> str:
    """The client's address (behind a proxy, uvicorn's --forwarded-allow-ips makes it the real one)."""
    return request.client.host if request.client else "unknown"


class ServerState:
    """What every request of one worker process shares."""

    def __init__(self, settings: ServerSettings, ward: Ward) -> None:
        self.settings = settings
        self.ward = ward
        server_dir = Path(ward.folder) / "server"
        self.jobs = JobStore(server_dir / "jobs", workers=settings.job_workers, limits=settings.job_limits())
        self.uploads = UploadArea(
            server_dir / "uploads",
            max_bytes=settings.max_upload_bytes,
            ttl_s=settings.upload_ttl_s,
            max_pending=settings.max_pending_uploads,
            max_pending_bytes=settings.max_pending_upload_bytes,
        )
        self.limiter = FailureLimiter(
            settings.auth_failures_per_key, settings.auth_failures_per_address, settings.auth_window_s
        )

    def precheck(self, request: Request) -> None:
        """What every ``/api/v1`` request passes before its body is even read or validated: no key in
        the URL or a cookie, a well-formed bearer key, and not rate-limited. (Whether the key is
        genuine, unexpired and unrevoked is the service's check, on every use case.)"""
        refuse_credentials_outside_header(request)
        key = bearer_key(request)
        self.limiter.check(key, client_address(request))
        try:
            parse_key(key)
        except InputError as exc:
            raise AuthenticationError(exc.message, hint=exc.hint) from None
        request.state.prechecked = True

    async def precheck_dependency(self, request: Request) -> None:
        """``precheck`` as a route dependency, run on the event loop: it is a few string checks and a
        counter lookup, not worth a trip through the thread pool on every request."""
        self.precheck(request)

    async def refusal_before_input(self, request: Request) -> AuthenticationError | None:
        """Why the request's key does not authenticate, for a request about to be answered with a
        problem in its input (a malformed body, a bad field) before the service has checked the key;
        None when it does. A made-up key learns nothing of the API's schemas, and its requests count
        as failed authentications like any other (``dataward_error`` counts them)."""
        if not request.url.path.startswith(API + "/"):
            return None  # the console answers its own forms
        try:
            self.precheck(request)
            await run_in_threadpool(self.ward.as_key(bearer_key(request)).whoami)
        except AuthenticationError as exc:
            return exc
        except DatawardError:
            return None  # not about the key (busy, say): the input's problem is the answer
        return None

    def refusal_response(self, request: Request, exc: DatawardError) -> Response:
        """The error answer to ``exc``; a failed authentication is counted against the request's key id
        and client address (``FailureLimiter``)."""
        if isinstance(exc, AuthenticationError) and not isinstance(exc, RateLimited | CredentialMisplaced):
            header = request.headers.get("authorization", "")
            credential = header.partition(" ")[2].strip() or None
            self.limiter.failed(credential, client_address(request))
        headers = {"WWW-Authenticate": 'Bearer realm="dataward"'} if exc.http_status == 401 else {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.details.get("retry_after", 60))
        elif exc.http_status in (429, 503) and "retry_after" in exc.details:  # the job limits
            headers["Retry-After"] = str(exc.details["retry_after"])
        return error_response(error_body(exc), exc.http_status, headers)

    def caller(self, request: Request) -> WardAPI:
        """The ward acting as the request's key: the only way a route reaches the service."""
        if not getattr(request.state, "prechecked", False):  # a route outside the checked router
            self.precheck(request)
        return self.ward.as_key(bearer_key(request))

    def verifier(self, request: Request) -> str:
        """The principal id of the request's key, authenticated as ``verify`` authenticates it: on a ward
        whose ledger went backwards every other use case is refused, and ``verify`` must still answer
        (``Ward.verifier_id``)."""
        if not getattr(request.state, "prechecked", False):
            self.precheck(request)
        return self.ward.as_key(bearer_key(request)).verifier_id()

    @staticmethod
    def key_id(request: Request) -> str:
        """The id of the request's key, as its bearer credential names it: the key's own id once a use
        case has authenticated the request (which every caller of this has done). Jobs and uploads are
        bound to it: only the key that made one may read or use it."""
        return parse_key(bearer_key(request)).key_id

    def submit_job(
        self,
        request: Request,
        kind: str,
        owner: str,
        fn: JobFunction,
        *,
        cleanup: Callable[[], None] | None = None,
    ) -> Job:
        """Queue ``fn`` as a job of ``owner`` (the request's principal) that only the request's key may
        read, counted against the human accountable for it too (a service principal's owner); refused at
        once past the server's job limits (``JobStore.submit``), ``cleanup`` then run."""
        try:
            accountable = self.ward.as_key(bearer_key(request)).accountable_id()
        except Exception:  # any failure: the job's uploads are let go with it
            if cleanup is not None:
                cleanup()
            raise
        return self.jobs.submit(kind, owner, fn, key=self.key_id(request), cleanup=cleanup, accountable=accountable)

    def scratch(self) -> Path:
        """A private temporary folder outside the ward (export refuses paths inside the ward's files)."""
        return Path(tempfile.mkdtemp(prefix="dataward-serve-"))


def create_app(settings: ServerSettings, *, ward: Ward | None = None, settle_heap: bool = False) -> FastAPI:
    """The application serving the ward of ``settings`` (or the already open ``ward``).

    ``settle_heap``: once started, exempt the start-up heap from later full garbage collections
    (``service.heap``); for the process that serves, as ``dataward serve``'s workers do."""
    opened = ward if ward is not None else open_served_ward(settings)
    if settings.auth_cache_s > 0:
        # Keys and hot catalog reads are remembered for the same time; both are checked on every
        # request against what the catalog says now (the auth epoch, the ledger head).
        opened.remember_callers(ttl_s=settings.auth_cache_s)
        opened.remember_reads(ttl_s=settings.auth_cache_s)
    # Once per worker: removals the witness holds stay in force even if removals.jsonl was deleted
    # with a rolled-back catalog (service/removal_list.py).
    if (lost := opened.take_witnessed_removals()) > 0:
        log.warning("%d access removal(s) held by the witness are missing from removals.jsonl; run verify", lost)
    state = ServerState(settings, opened)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        quiet_accept_errors()  # "too many open files" once every few seconds, not per failed accept
        state.uploads.sweep()
        _app.state.console.sessions.sweep()
        if settle_heap:
            settle_startup_heap()
        yield
        state.jobs.shutdown()
        if ward is None:
            # The catalog this app opened is closed as a command closes its own: a folder's SQLite log is
            # copied into the database and removed now, not left on disk for the next process. (A job
            # still running opens a connection again if it needs one.) A ward handed in is its caller's.
            opened.close()

    app = FastAPI(
        title="dataward",
        version=__version__,
        summary="A governed, tamper-evident registry and poisoning gate for ML training data.",
        description=(
            "Every use case of a ward. Authenticate with `Authorization: Bearer dw_...` (a key in the "
            "URL or a cookie is refused). Errors are JSON documents `{error, message, hint, details, "
            "exit_code}`. Long operations answer 202 with a job to poll at `/api/v1/jobs/{id}`."
        ),
        lifespan=lifespan,
        # No interactive page: FastAPI's loads Swagger UI's scripts from a CDN, which would run on the
        # console's origin. The OpenAPI document is served; any OpenAPI viewer reads it.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url=f"{API}/openapi.json",
        default_response_class=DocumentResponse,
        responses={
            401: {"model": _error_model(), "description": "No valid key."},
            403: {"model": _error_model(), "description": "Access or policy refused."},
            404: {"model": _error_model(), "description": "Not found (or not visible to the caller)."},
            409: {"model": _error_model(), "description": "Conflicts with the ward's state."},
            413: {"model": _error_model(), "description": "Request body or upload too large."},
            422: {"model": _error_model(), "description": "Malformed input."},
            429: {
                "model": _error_model(),
                "description": "Too many failed authentications, pending uploads or jobs (`Retry-After`).",
            },
            503: {"model": _error_model(), "description": "Busy: the catalog's lock, or the job queue is full."},
            507: {"model": _error_model(), "description": "The server could not write the job's state (a full disk)."},
        },
    )
    app.state.dataward = state
    app.add_middleware(KeyBeforeBody, state=state)  # no body is read for a request without a genuine key
    app.add_middleware(InternalErrors)  # it sees what the routes and the key check raise
    app.add_middleware(
        BodyLimit,
        max_json=settings.max_json_bytes,
        max_upload=settings.max_upload_bytes,
        idle_s=settings.body_idle_timeout_s,
        deadline_s=settings.body_deadline_s,
        min_upload_rate=settings.min_upload_rate,
    )
    app.add_middleware(KeyInPathGuard)  # outermost: a key in the path goes no further
    redact_keys_in_logs()
    _install_error_handlers(app, state)

    from dataward.server.routes import build_router

    app.include_router(build_router(state), prefix=API)
    from dataward.server.model_routes import build_model_router

    app.include_router(build_model_router(state), prefix=API)

    from dataward.server.console import install_console

    app.state.console = install_console(app, state)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> DocumentResponse:
        # For load balancers: says only that the process answers, nothing about the ward.
        return DocumentResponse({"status": "ok"})

    return app


def _error_model() -> type:
    from dataward.server.models import ErrorBody

    return ErrorBody


def _install_error_handlers(app: FastAPI, state: ServerState) -> None:
    @app.exception_handler(DatawardError)
    async def dataward_error(request: Request, exc: DatawardError) -> Response:
        if isinstance(exc, InputError):
            exc = await state.refusal_before_input(request) or exc
        return state.refusal_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        refusal = await state.refusal_before_input(request)
        if refusal is not None:  # an unknown key learns nothing of the request's schema
            return await dataward_error(request, refusal)
        # Name the fields, never echo the values (a body could hold a secret).
        problems = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"where": "body", "problem": "invalid"}
        err = InputError(
            f"malformed request: {first['where']}: {first['problem']}",
            hint="see the OpenAPI document at /api/v1/openapi.json",
            problems=problems,
        )
        return error_response(error_body(err), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body that does not parse: a problem in the input, as a 422 is
            refusal = await state.refusal_before_input(request)
            if refusal is not None:
                return await dataward_error(request, refusal)
        code = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout"}.get(exc.status_code, "http_error")
        body = {
            "error": code,
            "message": "no such endpoint" if exc.status_code == 404 else str(exc.detail),
            "hint": "see the OpenAPI document at /api/v1/openapi.json",
            "details": {},
            "exit_code": 3 if exc.status_code == 404 else 1,
        }
        return error_response(body, exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        # What ``InternalErrors`` did not catch (a failure in a middleware outside it).
        log_unexpected(exc)
        return error_response(internal_error_body(), 500)


def app_from_environment() -> FastAPI:
    """The uvicorn factory of ``dataward serve``: each worker process builds the app from the
    ``DATAWARD_SERVER_*`` environment the command set."""
    return create_app(ServerSettings.from_environment(), settle_heap=True)
