"""Slow and idle clients at the connection level: what uvicorn does not bound by itself.

uvicorn closes a connection idle *between* requests (``timeout_keep_alive``), but waits forever for
the head of a request that never completes, and accepts connections until the process runs out of
file descriptors (then asyncio logs a traceback for every failed ``accept``). ``GuardedH11Protocol``
is uvicorn's h11 protocol with two additions:

- a request head (request line and headers) must arrive within ``header_timeout_s`` of its first
  byte (or of the connection's opening): a client trickling its headers is disconnected;
- fewer than ``limit_concurrency`` connections are held (so that uvicorn's own check, which answers
  503 once as many connections as the limit are open, never turns away a genuine request): at the
  cap, a new connection takes the place of another, in this order: the one that has been waiting
  longest for a request head (a slow or idle client); else, among those whose request body is still
  arriving, the slowest one not yet authenticated (a body nobody's key vouches for: the console's
  sign-in form, or an API request whose key is being checked); else the slowest authenticated body
  arriving below the minimum upload rate; else a connection whose answer its client does not read
  (writing paused, see below), unauthenticated first, the longest stalled first, then an
  authenticated one stalled for at least ``STALLED_EVICTABLE_S``. It is refused only when every
  connection is busy with a request that is being served, whose body arrives steadily, or whose
  answer is being read;
- an answer that makes no write progress for ``write_timeout_s`` closes the connection (abort): once
  the kernel's buffers and the transport's are full, uvicorn pauses writing and the request's task
  waits in ``send`` with no timeout of its own, so a client that never reads (a pipelined stream of
  requests for large public answers) would hold its connection, and one of uvicorn's
  ``limit_concurrency`` tasks, for as long as it likes. The clock starts when writing is paused and
  restarts whenever the transport's buffer has shrunk since the last look; an answer still buffered
  when uvicorn closes the connection (keep-alive timeout, ``Connection: close``) is timed the same
  way, since the connection is only let go once its buffer is flushed.

Pipelining needs nothing more: h11 reports a request that arrives before the answer to the previous
one is done as ``PAUSED`` and uvicorn stops reading the connection until that answer is complete, so
a client that does not read its answers holds one request (and one task) at a time.

A request counts as authenticated once the app marks its ASGI scope with ``AUTHENTICATED`` (the
app's key check does, before it reads any body). The body's rate is what this connection received
since the request head arrived, per second; a connection whose reading is paused because the app
has not taken what arrived (flow control) is the server's slowness, not the client's, and is left.

The head timeout comes from ``DATAWARD_SERVER_HEADER_TIMEOUT_S``, the minimum upload rate from
``DATAWARD_SERVER_MIN_UPLOAD_RATE`` and the write timeout from ``DATAWARD_SERVER_WRITE_TIMEOUT_S``
(``dataward serve`` sets them; uvicorn builds the protocol in each worker process).
``quiet_accept_errors`` condenses asyncio's "out of system resource" accept errors into one log
line every ten seconds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("dataward.server")

HEADER_TIMEOUT_ENV = "DATAWARD_SERVER_HEADER_TIMEOUT_S"
DEFAULT_HEADER_TIMEOUT_S = 10.0
MIN_UPLOAD_RATE_ENV = "DATAWARD_SERVER_MIN_UPLOAD_RATE"
DEFAULT_MIN_UPLOAD_RATE = 4096.0
"""Bytes per second (``ServerSettings.min_upload_rate``)."""
WRITE_TIMEOUT_ENV = "DATAWARD_SERVER_WRITE_TIMEOUT_S"
DEFAULT_WRITE_TIMEOUT_S = 30.0
"""Seconds an answer may make no write progress (``ServerSettings.write_timeout_s``)."""
STALLED_EVICTABLE_S = 2.0
"""Seconds without write progress after which an authenticated connection may give way to a new one
under connection pressure (an unauthenticated one may at once)."""

AUTHENTICATED = "dataward.authenticated"
"""The ASGI scope key the app sets (to True) once the request's key has been verified."""


def _setting(name: str, default: float | None) -> float | None:
    value = os.environ.get(name)
    return float(value) if value else default


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for request heads and a cap on held connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = _setting(HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT_S) or DEFAULT_HEADER_TIMEOUT_S
        self.max_connections = None if self.limit_concurrency is None else max(self.limit_concurrency - 1, 1)
        self.min_body_rate = _setting(MIN_UPLOAD_RATE_ENV, DEFAULT_MIN_UPLOAD_RATE) or 0.0
        self.head_started: float | None = None
        """When the head now awaited began (its first byte, or the connection's opening); None while
        a request is being served."""
        self.body_started: float | None = None
        """When the head of the request being served arrived (its body may still be arriving)."""
        self.body_received = 0
        """Bytes received since then (the body, and any pipelined bytes after it)."""
        self.write_timeout_s = _setting(WRITE_TIMEOUT_ENV, DEFAULT_WRITE_TIMEOUT_S) or DEFAULT_WRITE_TIMEOUT_S
        self.write_stalled: float | None = None
        """Since when the answer has made no write progress (writing paused, or the connection closing
        with bytes still buffered); None while writes flow."""
        self._write_buffered = 0
        """The transport's buffered bytes at the last look (progress: fewer)."""
        self._write_watch: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        full = self.max_connections is not None and len(self.connections) >= self.max_connections
        if full and not self._evict_slowest():
            self._refused = True
            transport.abort()  # every held connection is serving a request: no room
            return
        super().connection_made(transport)
        self.head_started = time.monotonic()
        self._arm(self.header_timeout_s)

    def _evict_slowest(self) -> bool:
        """Close the connection that has waited longest for a request head or, with none, the one whose
        body arrives slowest (unauthenticated first, then authenticated below the minimum upload
        rate); whether there was one."""
        guarded = [c for c in self.connections if isinstance(c, GuardedH11Protocol)]
        waiting = [c for c in guarded if c.head_started is not None]
        if waiting:
            slowest = min(waiting, key=lambda c: c.head_started or 0.0)
            slowest.drop("the connection limit is reached and it has not sent a request")
            return True
        now = time.monotonic()
        arriving = [(c, c.body_rate(now)) for c in guarded if c.body_arriving()]
        stalled = [(c, c.write_stalled) for c in guarded if c.write_stalled is not None]
        # Each tier in turn, its lowest measure first: the slowest body (bytes/s), the longest stalled
        # answer (the monotonic time its writes stopped progressing).
        tiers = (
            (
                [(c, rate) for c, rate in arriving if not c.authenticated()],
                "its unauthenticated request body is the slowest",
                lambda rate: f"{rate:.0f} bytes/s",
            ),
            (
                [(c, rate) for c, rate in arriving if c.authenticated() and rate < self.min_body_rate],
                "its request body arrives below the minimum rate",
                lambda rate: f"{rate:.0f} bytes/s",
            ),
            (
                [(c, since) for c, since in stalled if not c.authenticated()],
                "its client does not read its unauthenticated answer",
                lambda since: f"no progress for {now - since:.1f} s",
            ),
            (
                [(c, since) for c, since in stalled if c.authenticated() and now - since >= STALLED_EVICTABLE_S],
                "its client does not read its answer",
                lambda since: f"no progress for {now - since:.1f} s",
            ),
        )
        for candidates, why, measured in tiers:
            if candidates:
                chosen, measure = min(candidates, key=lambda pair: pair[1])
                chosen.drop(f"the connection limit is reached and {why} ({measured(measure)})")
                return True
        return False

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_writes()

    def resume_writing(self) -> None:
        super().resume_writing()
        if not (self.transport.is_closing() and self.transport.get_write_buffer_size()):
            self._stop_watching_writes()

    def _watch_writes(self) -> None:
        """Start timing the answer's write progress (if not timing it already)."""
        if self.write_stalled is None:
            self.write_stalled = time.monotonic()
            self._write_buffered = self.transport.get_write_buffer_size()
        if self._write_watch is None:
            self._write_watch = self.loop.call_later(self.write_timeout_s, self._check_writes)

    def _stop_watching_writes(self) -> None:
        self.write_stalled = None
        if self._write_watch is not None:
            self._write_watch.cancel()
            self._write_watch = None

    def _check_writes(self) -> None:
        self._write_watch = None
        if self.transport is None or self.write_stalled is None:
            return
        buffered = self.transport.get_write_buffer_size()
        closing_with_bytes = self.transport.is_closing() and buffered > 0
        if not (self.flow.write_paused or closing_with_bytes):
            self.write_stalled = None  # writes flow again
            return
        now = time.monotonic()
        if buffered < self._write_buffered:  # the client read some: progress
            self.write_stalled, self._write_buffered = now, buffered
        if now - self.write_stalled >= self.write_timeout_s:
            self.drop(f"its answer made no write progress for {self.write_timeout_s:g} s (the client does not read)")
            return
        self._write_watch = self.loop.call_later(self.write_timeout_s - (now - self.write_stalled), self._check_writes)

    def body_arriving(self) -> bool:
        """Whether this connection is serving a request whose body is still arriving, and reading it."""
        return (
            self.body_started is not None
            and self.conn.their_state is h11.SEND_BODY
            and not self.flow.read_paused
            and not self.transport.is_closing()
        )

    def body_rate(self, now: float) -> float:
        """Bytes per second received since the request's head arrived."""
        return self.body_received / max(now - (self.body_started or now), 1e-3)

    def authenticated(self) -> bool:
        """Whether the app has verified the key of the request being served."""
        return self.cycle is not None and bool(self.cycle.scope.get(AUTHENTICATED))  # type: ignore[call-overload]

    def drop(self, why: str) -> None:
        """Close this connection at once (a request it serves hears of a disconnected client)."""
        log.debug("closing a connection from %s: %s", self.client, why)
        self.head_started = None
        self.body_started = None
        self.connections.discard(self)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._stop_watching_writes()
        self.transport.abort()

    def _arm(self, delay: float) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(max(delay, 0.01), self._check_deadline)

    def _check_deadline(self) -> None:
        self._deadline = None
        if self.transport is None:
            return
        if self.transport.is_closing():
            if self.transport.get_write_buffer_size():
                self._watch_writes()  # closed by uvicorn, but held until its unread answer is flushed
            return
        if self.head_started is None:
            self._arm(self.header_timeout_s)  # serving: look again later
            return
        waited = time.monotonic() - self.head_started
        if waited >= self.header_timeout_s:
            self.drop(f"no complete request head within {self.header_timeout_s:g} s")
        else:
            self._arm(self.header_timeout_s - waited)

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if self.body_started is not None:
            self.body_received += len(data)
        super().data_received(data)
        if self.cycle is not cycle:  # a whole request head arrived: it is being served
            self.head_started = None
            self.body_started = time.monotonic()
            self.body_received = 0

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is not cycle:  # a pipelined request began: its body is arriving now
            self.body_started, self.body_received = time.monotonic(), 0
        else:
            # No pipelined request began: waiting for the next request head on a kept-alive
            # connection (uvicorn's keep-alive timer closes it when idle; this deadline bounds a
            # next head that arrives slowly).
            self.head_started = time.monotonic()
            self.body_started = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return  # never made: nothing of it to undo
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._stop_watching_writes()
        self.head_started = None
        self.body_started = None
        super().connection_lost(exc)


_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class AcceptErrorsCondensed:
    """An asyncio exception handler that logs failed ``accept`` calls for lack of resources (too many
    open files) once per ``every_s`` with a count, and passes anything else on."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.suppressed = 0
        self.last = float("-inf")

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
        log.warning("cannot accept connections: %s%s", exc.strerror or exc, more)
        self.last, self.suppressed = now, 0


def quiet_accept_errors() -> None:
    """Install ``AcceptErrorsCondensed`` on the running event loop."""
    asyncio.get_running_loop().set_exception_handler(AcceptErrorsCondensed())
