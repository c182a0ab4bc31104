"""The review console: server-rendered pages beside ``/api/v1`` in the same application.

A person signs in with their API key, which is exchanged for a short-lived session (see
``sessions``). Every page and every action then goes through the ``WardAPI`` acting as that key,
exactly the call the HTTP API would make, so the console can do nothing the key could not do over
the API, and each refusal is the service's own (recorded in the ledger as any other). The key is
re-authenticated on every request: once it is revoked or expires, the session ends.

Forms are plain HTML posts carrying the session's CSRF token; the cookies are ``Secure``,
``HttpOnly`` and ``SameSite=Strict``; pages carry a strict Content-Security-Policy (scripts and
styles only from ``/console/static``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from dataward.domain.errors import AuthenticationError, DatawardError
from dataward.ledger.events import parse_time
from dataward.server.connections import AUTHENTICATED
from dataward.server.console import evidence, lineage
from dataward.server.console.report_pages import ReportPages
from dataward.server.console.sessions import Session, SessionStore
from dataward.server.security import CredentialMisplaced, refuse_credentials_in_query

if TYPE_CHECKING:
    from fastapi import FastAPI

    from dataward.api import WardAPI
    from dataward.server.app import ServerState

PREFIX = "/console"
SESSION_COOKIE = "__Host-dataward-session"
SIGNIN_COOKIE = "__Host-dataward-signin"
NOTE_COOKIE = "__Host-dataward-note"
"""A notice for the next page (signed out, a decision recorded), set by the server itself: a page
never shows text from its URL as a notice, or any link to the console could show its own message in
the console's notice style (phishing for keys). The ``__Host-`` prefix keeps other sites and
subdomains from setting it."""
NOTE_MAX_CHARS = 300
HERE = Path(__file__).parent
PAGE_SIZE = 20
LEDGER_LIMITS = (50, 200, 1000)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The gate's report is a self-contained page with its own inline styles and data: plots, no scripts.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class Refused(Exception):
    """A request the console refuses itself (a form without its CSRF token, posted from another
    origin, a key in the URL)."""

    def __init__(self, message: str, status: int = 403, code: str = "csrf", hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.hint = hint


class Console:
    """The console's pages and actions over one served ward."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.sessions = SessionStore(
            Path(state.ward.folder) / "server" / "sessions", lifetime_s=state.settings.console_session_s
        )
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(quote=lambda s: quote(str(s), safe=""), prefix=PREFIX)
        self.templates.env.filters["when"] = _when
        self.reports = ReportPages()

    # --- sessions ---------------------------------------------------------------------------------

    def api(self, session: Session) -> WardAPI:
        """The ward acting as the session's key: the only way the console reaches the service."""
        return self.state.ward.as_key(session.key)

    async def signed_in(self, request: Request) -> tuple[Session, WardAPI, dict[str, Any]]:
        """The request's session, its WardAPI and ``whoami``; the key is authenticated right now."""
        session = self.sessions.load(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise SignInRequired()
        api = self.api(session)
        try:
            me = await run_in_threadpool(api.whoami)
        except AuthenticationError as exc:
            # Revoked, expired, suspended: the session ends with the key.
            self.sessions.end(session.id)
            raise SignInRequired(f"Your session ended: {exc.message}.") from None
        # A signed-in form's connection counts as authenticated, as an API request with a verified key
        # does: under connection pressure it is not closed before an anonymous one.
        request.scope[AUTHENTICATED] = True
        return session, api, me

    @staticmethod
    def check_same_origin(request: Request) -> None:
        """Refuse a form the browser says another origin posted (``Sec-Fetch-Site`` other than
        ``same-origin``). Cookies do not tell ports apart, and ``SameSite`` counts every port of a host
        as the same site: a page served on another port of the console's host could set the sign-in
        form's cookie itself and post the form with its own token and key (login CSRF: the reviewer then
        works in the attacker's session). A client that sends no such header (not a browser, or an old
        one) is judged by its CSRF token alone."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            raise Refused(
                f"The form came from another origin ({site}); open the console's own page and post it from there."
            )

    @staticmethod
    async def form(request: Request) -> dict[str, str]:
        """An urlencoded form's fields (the first value of each). The body limit applies."""
        body = (await request.body()).decode("utf-8", errors="replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    @staticmethod
    def check_csrf(form: dict[str, str], expected: str) -> None:
        """Refuse a form whose CSRF token is missing or not the session's."""
        given = form.get("csrf", "")
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Refused("The form's CSRF token is missing or wrong; reload the page and try again.")

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A rendered page with the console's security headers."""
        flashed = request.cookies.get(NOTE_COOKIE)
        context.setdefault("note", unquote(flashed)[:NOTE_MAX_CHARS] if flashed else None)
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        if flashed:  # shown once
            response.delete_cookie(NOTE_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return secured(response)

    async def action(self, request: Request, run: Callable[[WardAPI, dict[str, str]], tuple[str, str]]) -> Response:
        """A form post: session, CSRF token, then ``run(api, form)`` (the WardAPI call); answers with a
        redirect to the page ``run`` names, with the notice it gives, or the refusal on an error page."""
        self.check_same_origin(request)
        session, api, me = await self.signed_in(request)
        form = await self.form(request)
        self.check_csrf(form, session.csrf)
        try:
            target, note = await run_in_threadpool(run, api, form)
        except DatawardError as exc:
            return self.error(request, exc, session=session, me=me)
        response = RedirectResponse(target, status_code=303)
        _flash(response, note)
        return secured(response)

    def error(
        self, request: Request, exc: DatawardError, *, session: Session | None = None, me: dict[str, Any] | None = None
    ) -> HTMLResponse:
        """The service's refusal shown as a page, with the status the API would answer."""
        return self.page(
            request,
            "error.html",
            status=exc.http_status,
            error=exc.code,
            message=exc.message,
            hint=exc.hint,
            csrf=session.csrf if session else None,
            me=me,
        )

    async def view(
        self, request: Request, template: str, load: Callable[[WardAPI, dict[str, Any]], dict[str, Any]]
    ) -> Response:
        """A page: session, then ``load(api, me)`` (WardAPI reads) rendered into ``template``."""
        session, api, me = await self.signed_in(request)
        try:
            context = await run_in_threadpool(load, api, me)
        except DatawardError as exc:
            return self.error(request, exc, session=session, me=me)
        return self.page(request, template, csrf=session.csrf, me=me, **context)


def secured(response: Response) -> Response:
    """Headers every console answer carries: no caching, no framing, a strict CSP."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _when(value: Any) -> str:
    try:
        return parse_time(str(value)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(value or "")


def _flash(response: Response, note: str) -> None:
    """Have the next page the browser loads show ``note`` (once)."""
    _cookie(response, NOTE_COOKIE, quote(note[:NOTE_MAX_CHARS], safe=""), 60)


def _cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict")


def install_console(app: FastAPI, state: ServerState) -> Console:
    """Mount the console (pages, actions, static files) on ``app``."""
    console = Console(state)
    router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(_no_key_in_url)])
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="console-static")

    @app.exception_handler(SignInRequired)
    async def to_sign_in(request: Request, exc: SignInRequired) -> Response:
        target = f"{PREFIX}/sign-in"
        query = {}
        if request.method == "GET" and request.url.path != f"{PREFIX}/sign-in":
            query["next"] = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(target + (f"?{urlencode(query)}" if query else ""), status_code=303)
        if exc.message:
            _flash(response, exc.message)
        if request.cookies.get(SESSION_COOKIE):
            # Only a cookie that was sent and opens no session is deleted. A request without one is
            # often a cross-site link or frame (a SameSite=Strict cookie is not sent then): deleting
            # the cookie there would sign the reviewer out from any other site.
            response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return secured(response)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return console.page(
            request, "error.html", status=exc.status, error=exc.code, message=exc.message, hint=exc.hint, me=None
        )

    # --- sign in and out --------------------------------------------------------------------------

    @router.get("/sign-in")
    async def sign_in_form(request: Request) -> Response:
        token = secrets.token_hex(32)
        response = console.page(
            request, "sign_in.html", csrf=token, next=_safe_next(request.query_params.get("next")), me=None
        )
        _cookie(response, SIGNIN_COOKIE, token, 600)
        return response

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        console.check_same_origin(request)
        # Nobody's key vouches for this form: what can be refused without it is refused before it is
        # read (its time and size are bounded by ``BodyLimit``, its connection may be closed first
        # under connection pressure).
        expected = request.cookies.get(SIGNIN_COOKIE)
        if expected is None and request.url.scheme != "https":
            # The console's cookies are Secure (``__Host-``): over plain HTTP a client keeps none of them,
            # and "reload the page" would never help.
            raise Refused(
                "The console signs in over HTTPS only (its cookies are Secure, and this request came over "
                "plain HTTP without the sign-in cookie): serve it behind a TLS proxy, or open it on localhost "
                "in a browser."
            )
        if expected is None:  # no form's token can match
            console.check_csrf({}, secrets.token_hex(32))
        form = await console.form(request)
        # Login CSRF: the form's token must match the cookie set with the form (double submit).
        console.check_csrf(form, expected or secrets.token_hex(32))
        key = form.get("key", "").strip()
        address = _address(request)
        try:
            state.limiter.check(key, address)
            api = state.ward.as_key(key)
            me = await run_in_threadpool(api.whoami)
        except DatawardError as exc:
            if isinstance(exc, AuthenticationError):
                state.limiter.failed(key, address)
            token = secrets.token_hex(32)
            response = console.page(
                request,
                "sign_in.html",
                status=exc.http_status,
                csrf=token,
                next=_safe_next(form.get("next")),
                failure=exc.message,
                me=None,
            )
            _cookie(response, SIGNIN_COOKIE, token, 600)
            return response
        expires = me.get("key_expires_at")
        session, cookie = console.sessions.create(
            key, str(me["principal"]), key_expires_at=parse_time(expires).timestamp() if expires else None
        )
        response = secured(RedirectResponse(_safe_next(form.get("next")) or f"{PREFIX}/", status_code=303))
        _cookie(response, SESSION_COOKIE, cookie, int(session.expires_at - _now()))
        response.delete_cookie(SIGNIN_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        sent = request.cookies.get(SESSION_COOKIE)
        response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
        if not sent:
            # No session cookie came: nothing to end, and nothing to delete (a cross-site post sends
            # none, and must not sign anyone out).
            return secured(response)
        session = console.sessions.load(sent)
        if session is not None:
            console.check_same_origin(request)
            console.check_csrf(await console.form(request), session.csrf)
            console.sessions.end(session.id)
        _flash(response, "You are signed out.")
        response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return secured(response)

    # --- pages ------------------------------------------------------------------------------------

    @router.get("/")
    async def home(request: Request) -> Response:
        await console.signed_in(request)
        return secured(RedirectResponse(f"{PREFIX}/datasets", status_code=303))

    @router.get("/datasets")
    async def datasets(request: Request) -> Response:
        def load(api: WardAPI, _me: dict[str, Any]) -> dict[str, Any]:
            rows = []
            for d in api.datasets():
                try:
                    versions = api.versions(d["name"])
                except DatawardError:
                    versions = []
                rows.append({**d, "versions": versions})
            return {"datasets": rows}

        return await console.view(request, "datasets.html", load)

    @router.get("/datasets/{name}/contributions")
    async def contributions(request: Request, name: str) -> Response:
        # Paged on the server as the review queue is: a dataset with thousands of contributions drew every
        # row, and read every gated one's report for its reasons, on each visit.
        offset = _int(request.query_params.get("offset"), 0)

        def load(api: WardAPI, _me: dict[str, Any]) -> dict[str, Any]:
            listed = api.contributions(name)[::-1]
            rows = []
            for c in listed[offset : offset + PAGE_SIZE]:
                reasons: list[str] = []
                if c.get("gate_verdict"):
                    try:
                        reasons = list(api.gate_report(c["ref"]).get("reasons") or [])
                    except DatawardError:
                        reasons = []
                rows.append({**c, "reasons": reasons})
            return {
                "dataset": name,
                "contributions": rows,
                "total": len(listed),
                "offset": offset,
                "page_size": PAGE_SIZE,
            }

        return await console.view(request, "contributions.html", load)

    @router.get("/contributions/{ref}")
    async def contribution(request: Request, ref: str) -> Response:
        def load(api: WardAPI, _me: dict[str, Any]) -> dict[str, Any]:
            c = api.contribution(ref)
            report = None
            if c.get("gate_verdict"):
                try:
                    report = api.gate_report(ref)
                except DatawardError:
                    report = None
            trace = api.trace(ref)
            mine = (trace.get("contributions") or [{}])[0]
            pending = api.review_list(contribution=ref)
            return {
                "c": c,
                "report": report,
                "approvals": mine.get("approvals") or [],
                "pending": len(pending),
                "pending_held": sum(1 for item in pending if item.get("held_back")),
            }

        return await console.view(request, "contribution.html", load)

    @router.get("/contributions/{ref}/report")
    async def gate_report(request: Request, ref: str) -> Response:
        session, api, me = await console.signed_in(request)
        try:
            report = await run_in_threadpool(api.gate_report, ref)
        except DatawardError as exc:
            return console.error(request, exc, session=session, me=me)
        # Drawn in a thread (and kept): drawn here, on the event loop, it held the whole worker.
        html = await console.reports.page(report, title=f"Gate report: {ref}")
        response = secured(HTMLResponse(html))
        response.headers["Content-Security-Policy"] = REPORT_CSP
        return response

    @router.get("/review")
    async def review(request: Request) -> Response:
        offset = _int(request.query_params.get("offset"), 0)
        contribution = request.query_params.get("contribution") or None
        dataset = request.query_params.get("dataset") or None

        def load(api: WardAPI, _me: dict[str, Any]) -> dict[str, Any]:
            queue = api.review_list(dataset, contribution=contribution)
            items = []
            for item in queue[offset : offset + PAGE_SIZE]:
                try:
                    shown = api.review_show(item["id"])
                except DatawardError as exc:
                    shown = {**item, "record": None, "triggers": [], "neighbours": [], "hidden": exc.message}
                # ``review_show`` does not say it; the queue does (``quarantine_holds.held_items``).
                shown["held_back"] = item.get("held_back")
                triggers = list(shown.get("triggers") or [])
                record = shown.get("record") or {}
                shown["fields"] = [
                    (n, kind, evidence.highlighted(v, triggers) if kind == "text" else v)
                    for n, kind, v in evidence.record_fields(record)
                ]
                shown["patches"] = evidence.patches(triggers)
                shown["neighbours"] = [
                    {**n, "text": evidence.highlighted(n.get("text") or "", triggers)}
                    for n in shown.get("neighbours") or []
                ]
                items.append(shown)
            return {
                "items": items,
                "total": len(queue),
                # Items left pending on records a quarantine holds back: counted over the whole queue,
                # as ``review list`` counts them.
                "held": sum(1 for item in queue if item.get("held_back")),
                "offset": offset,
                "page_size": PAGE_SIZE,
                "contribution": contribution,
                "dataset": dataset,
            }

        return await console.view(request, "review.html", load)

    @router.get("/lineage")
    async def lineage_page(request: Request) -> Response:
        ref = (request.query_params.get("ref") or "").strip()

        def load(api: WardAPI, _me: dict[str, Any]) -> dict[str, Any]:
            if not ref:
                return {"ref": "", "svg": None, "edges": []}
            graph = lineage.build_graph(api.trace(ref))
            return {
                "ref": ref,
                "svg": lineage.render_svg(graph, title=f"Lineage of {ref}"),
                "edges": lineage.edge_list(graph),
            }

        return await console.view(request, "lineage.html", load)

    @router.get("/access")
    async def access(request: Request) -> Response:
        def load(api: WardAPI, _me: dict[str, Any]) -> dict[str, Any]:
            return {"rows": api.access_review()}

        return await console.view(request, "access.html", load)

    @router.get("/ledger")
    async def ledger(request: Request) -> Response:
        kind = (request.query_params.get("type") or "").strip()
        text = (request.query_params.get("q") or "").strip()
        limit = _int(request.query_params.get("limit"), LEDGER_LIMITS[0])
        limit = limit if limit in LEDGER_LIMITS else LEDGER_LIMITS[0]

        def load(api: WardAPI, _me: dict[str, Any]) -> dict[str, Any]:
            events = api.ledger(limit=limit, types=[kind] if kind else None)
            if text:
                needle = text.lower()
                events = [e for e in events if needle in _event_text(e)]
            return {"events": events, "type": kind, "q": text, "limit": limit, "limits": LEDGER_LIMITS}

        return await console.view(request, "ledger.html", load)

    # --- actions (each one WardAPI call, authorized by the service as over the API) -----------------

    @router.post("/review/decide")
    async def decide(request: Request) -> Response:
        def run(api: WardAPI, form: dict[str, str]) -> tuple[str, str]:
            decision = form.get("decision", "")
            api.review_decide([form.get("item", "")], decision, reason=form.get("reason", ""))
            back = form.get("back") or f"{PREFIX}/review"
            return _safe_next(back) or f"{PREFIX}/review", f"{form.get('item')}: {decision}ed"

        return await console.action(request, run)

    def contribution_action(verb: str) -> Callable[[Request, str], Any]:
        async def act(request: Request, ref: str) -> Response:
            def run(api: WardAPI, form: dict[str, str]) -> tuple[str, str]:
                reason = form.get("reason", "")
                if verb == "approve":
                    api.approve(ref, reason=reason)
                elif verb == "reject":
                    api.reject(ref, reason=reason)
                else:
                    api.merge(ref, message=reason)
                return f"{PREFIX}/contributions/{quote(ref, safe='')}", f"{ref}: {verb} recorded"

            return await console.action(request, run)

        return act

    for verb in ("approve", "reject", "merge"):
        router.add_api_route(f"/contributions/{{ref}}/{verb}", contribution_action(verb), methods=["POST"])

    app.include_router(router)
    return console


async def _no_key_in_url(request: Request) -> None:
    """Refuse a console request whose URL holds a whole key, as the API refuses one (``security``): a
    key pasted into the lineage form (a GET: ``?ref=dw_ID_SECRET``), or carried in ``next``, would be
    written into the proxy's logs and the browser's history, traced, shown back in the page, and sent
    on to the sign-in page in a redirect. Runs before the session is looked at; the key is not echoed.
    (Cookies are not judged here: a browser sends the console every cookie of its host, other
    applications' ``token`` included; the console reads only its own.)"""
    try:
        refuse_credentials_in_query(request)
    except CredentialMisplaced as exc:
        raise Refused(
            exc.message + ". Name a key by its id alone (dw_ID); rotate a key that was put in a URL.",
            status=401,
            code=exc.code,
            hint=exc.hint,
        ) from None


def _safe_next(target: str | None) -> str | None:
    """Only a path inside the console may be a redirect target (no open redirect)."""
    if target and target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _address(request: Request) -> str:
    from dataward.server.app import client_address

    return client_address(request)


def _int(value: str | None, default: int) -> int:
    try:
        return max(int(value or default), 0)
    except ValueError:
        return default


def _now() -> float:
    import time

    return time.time()


def _event_text(event: dict[str, Any]) -> str:
    import json

    return json.dumps({k: event.get(k) for k in ("type", "actor", "subject", "payload")}, default=str).lower()


__all__ = ["Console", "install_console"]
