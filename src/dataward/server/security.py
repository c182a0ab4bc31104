"""The boundary's authentication rules: bearer keys only, never in a URL or a cookie, and failed
attempts rate-limited per claimed key id and per client address."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import unquote

from starlette.requests import Request
from starlette.types import Scope

from dataward.access.keys import FULL_KEY_SHAPE
from dataward.domain.errors import AuthenticationError
from dataward.domain.transport_errors import RateLimited
from dataward.service.auth import claimed_key_id

# A whole key (id and secret). Key ids alone (``dw_abcd1234``) are names, fine in a URL: `trace`,
# `key revoke` take them. A secret in a URL ends up in proxy logs and browser history.
_FULL_KEY = FULL_KEY_SHAPE
_CREDENTIAL_PARAMS = {"key", "api_key", "apikey", "token", "access_token", "auth", "authorization", "bearer"}


class CredentialMisplaced(AuthenticationError):
    """A key was sent where keys leak (a URL, a cookie). Not counted as a failed guess: the key may be
    genuine, and its owner should rotate it rather than be locked out."""

    code = "credential_misplaced"


def refuse_credentials_in_query(request: Request) -> None:
    """Refuse a request whose query string carries a key (or a parameter named as a credential)."""
    for name, value in request.query_params.multi_items():
        if name.lower() in _CREDENTIAL_PARAMS or _FULL_KEY.search(value):
            raise CredentialMisplaced(
                "an API key in the URL is refused",
                hint="send it only as `Authorization: Bearer dw_...`; rotate a key that was put in a URL",
            )


def refuse_credentials_outside_header(request: Request) -> None:
    """Refuse a request carrying a key in its query string or in a cookie, even next to a valid header:
    the key has leaked and should be rotated, and the request must not succeed as if nothing happened."""
    refuse_credentials_in_query(request)
    for name, value in request.cookies.items():
        if name.lower() in _CREDENTIAL_PARAMS or _FULL_KEY.search(value):
            raise CredentialMisplaced(
                "an API key in a cookie is refused",
                hint="send it only as `Authorization: Bearer dw_...`",
            )


def key_in_path(scope: Scope) -> bool:
    """Whether the request's path holds something shaped like a whole key (``/trace/dw_ID_SECRET``,
    ``/keys/dw_ID_SECRET/rotate``), as sent (percent-encoded) or decoded."""
    raw = scope.get("raw_path") or b""
    texts = [scope.get("path", ""), unquote(raw.decode("latin-1"))]
    return any(_FULL_KEY.search(text) for text in texts)


def misplaced_in_path() -> CredentialMisplaced:
    """The refusal of a key in the URL path (the same as in the query string)."""
    return CredentialMisplaced(
        "an API key in the URL is refused",
        hint="name a key by its id alone (dw_ID); send a key only as `Authorization: Bearer dw_...`, "
        "and rotate a key that was put in a URL",
    )


class RedactKeys(logging.Filter):
    """A logging filter blanking the secret of anything shaped like a whole key in a log record (the
    access log's request line): a refused request is still logged, and its key must not be."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _redacted(record.msg)
        return True


def _redacted(text: str) -> str:
    return _FULL_KEY.sub(lambda m: f"dw_{m.group(1)}_<redacted>", text) if "dw_" in text.lower() else text


def bearer_key(request: Request) -> str:
    """The key of ``Authorization: Bearer dw_...``; anything else is an ``AuthenticationError``."""
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationError("no API key given", hint="send `Authorization: Bearer dw_...` (DATAWARD_KEY)")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "the Authorization header is not `Bearer <key>`", hint="send `Authorization: Bearer dw_...`"
        )
    return token.strip()


class FailureLimiter:
    """Counts failed authentications in a sliding window per claimed key id and per client address.

    An address over its limit is answered 429 for every request, before the ward is consulted. A key
    id over its limit is answered 429 from the addresses that failed with it: guessing its secret
    gets slow everywhere the guessing came from, while its genuine holder, elsewhere, is not locked
    out by someone who merely knows the id (ids are not secret: they appear in the ledger). The
    counts live in this process; with several workers each keeps its own (the ward's own capped
    record of refusals in the ledger is shared)."""

    def __init__(
        self, per_key: int, per_address: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_key = per_key
        self.per_address = per_address
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._by_key: dict[str, deque[tuple[float, str]]] = {}
        self._by_address: dict[str, deque[tuple[float, str]]] = {}

    def _recent(self, table: dict[str, deque[tuple[float, str]]], name: str, now: float) -> deque[tuple[float, str]]:
        entries = table.get(name)
        if entries is None:
            return deque()
        while entries and now - entries[0][0] > self.window_s:
            entries.popleft()
        if not entries:
            del table[name]
        return entries

    def check(self, credential: str | None, address: str) -> None:
        """Raise ``RateLimited`` when this address, or this key id from this address, failed too often."""
        key_id = claimed_key_id(credential)
        now = self.clock()
        with self._lock:
            by_address = len(self._recent(self._by_address, address, now))
            key_failures = self._recent(self._by_key, key_id, now) if key_id else deque()
            key_limited = len(key_failures) >= self.per_key and any(a == address for _, a in key_failures)
        if by_address >= self.per_address or key_limited:
            raise RateLimited(
                "too many failed authentications; try again later",
                hint=f"wait up to {int(self.window_s)} seconds; check DATAWARD_KEY",
                retry_after=int(self.window_s),
            )

    def failed(self, credential: str | None, address: str) -> None:
        """Count one failed authentication."""
        key_id = claimed_key_id(credential)
        now = self.clock()
        with self._lock:
            self._by_address.setdefault(address, deque()).append((now, address))
            if key_id:
                self._by_key.setdefault(key_id, deque()).append((now, address))
            # Forget quiet names so that a scan of many ids cannot grow the tables without bound.
            if len(self._by_address) + len(self._by_key) > 100_000:
                for table in (self._by_address, self._by_key):
                    for name in list(table):
                        self._recent(table, name, now)
