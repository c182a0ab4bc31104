"""The console's sign-in sessions: an API key exchanged for a short-lived session.

The browser holds only a session cookie ``SID.SECRET`` (hex). The server keeps one small JSON file per
session in the ward's ``server/sessions/`` folder (so that every worker process answers for every
session), holding the API key *encrypted with the cookie's secret* (AES-GCM, the session id as
associated data). Neither half alone yields the key: the server's disk has no key in the clear, and
the cookie is not a key (the API refuses keys in cookies; this cookie is not one and opens nothing
outside the console). Each console request decrypts the key and acts through the WardAPI with it,
so the service authenticates it on every request and a revoked key ends the session at once.

Any key that authenticates may sign in, a key with no grant at all included, and each sign-in writes a
file: a principal holds at most ``max_per_principal`` live sessions (signing in once more ends its
oldest), and each sign-in deletes the expired ones first, so that no key can fill the server's disk
with sessions (they were kept, unbounded, until the server restarted).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_COOKIE = re.compile(r"^([0-9a-f]{32})\.([0-9a-f]{64})$")
MAX_SESSIONS_PER_PRINCIPAL = 20
"""Live console sessions one principal may hold (browsers, tabs signed in anew); the oldest ends first."""


@dataclass(frozen=True)
class Session:
    """One signed-in browser: its id, the key it acts with, its CSRF token and when it ends."""

    id: str
    key: str
    csrf: str
    principal: str
    expires_at: float


class SessionStore:
    """Sessions as files, each readable only with the secret its cookie carries."""

    def __init__(self, folder: Path, *, lifetime_s: float, max_per_principal: int = MAX_SESSIONS_PER_PRINCIPAL) -> None:
        self.folder = folder
        self.lifetime_s = lifetime_s
        self.max_per_principal = max_per_principal
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, sid: str) -> Path:
        return self.folder / f"{sid}.json"

    def create(self, key: str, principal: str, *, key_expires_at: float | None = None) -> tuple[Session, str]:
        """A new session for ``key``; returns it and the cookie value (shown to the browser only).

        Expired sessions are deleted first, and the principal's oldest live ones beyond
        ``max_per_principal - 1``, so that the new one keeps the principal within its bound."""
        self._make_room(principal)
        sid = secrets.token_hex(16)
        secret = secrets.token_bytes(32)
        nonce = secrets.token_bytes(12)
        expires = time.time() + self.lifetime_s
        if key_expires_at is not None:
            # A session never outlives the key it was made from.
            expires = min(expires, key_expires_at)
        sealed = AESGCM(secret).encrypt(nonce, key.encode("utf-8"), sid.encode("ascii"))
        csrf = secrets.token_urlsafe(32)
        document = {
            "principal": principal,
            "created_at": time.time(),
            "expires_at": expires,
            "csrf": csrf,
            "nonce": nonce.hex(),
            "sealed": sealed.hex(),
        }
        path = self._path(sid)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f)
        os.replace(tmp, path)
        return Session(sid, key, csrf, principal, expires), f"{sid}.{secret.hex()}"

    def load(self, cookie: str | None) -> Session | None:
        """The live session a cookie opens, or None (malformed, unknown, expired or forged)."""
        match = _COOKIE.match(cookie or "")
        if not match:
            return None
        sid, secret = match.group(1), bytes.fromhex(match.group(2))
        try:
            document = json.loads(self._path(sid).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if float(document.get("expires_at", 0)) <= time.time():
            self.end(sid)
            return None
        try:
            key = AESGCM(secret).decrypt(
                bytes.fromhex(document["nonce"]), bytes.fromhex(document["sealed"]), sid.encode("ascii")
            )
        except (InvalidTag, KeyError, ValueError):
            return None
        return Session(
            sid, key.decode("utf-8"), str(document["csrf"]), str(document["principal"]), document["expires_at"]
        )

    def end(self, sid: str) -> None:
        """Forget a session (sign-out, revoked key, expiry)."""
        with contextlib.suppress(FileNotFoundError):
            self._path(sid).unlink()

    def sweep(self) -> None:
        """Delete expired sessions' files."""
        self._live()

    def _live(self) -> list[tuple[Path, dict[str, Any]]]:
        """The live sessions' files and documents; expired (or unreadable) ones are deleted on the way."""
        now = time.time()
        out = []
        for path in self.folder.glob("*.json"):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
                if float(document.get("expires_at", 0)) > now:
                    out.append((path, document))
                    continue
            except OSError:
                continue  # ended meanwhile (by another worker), or not ours to judge
            except (ValueError, TypeError, AttributeError):
                pass  # not a session document: it opens nothing
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return out

    def _make_room(self, principal: str) -> None:
        """Delete expired sessions, and ``principal``'s oldest ones beyond ``max_per_principal - 1``."""
        mine = sorted(
            (
                (float(document.get("created_at") or document.get("expires_at") or 0), path)
                for path, document in self._live()
                if document.get("principal") == principal
            ),
            key=lambda pair: pair[0],
        )
        for _created, path in mine[: max(len(mine) - self.max_per_principal + 1, 0)]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
