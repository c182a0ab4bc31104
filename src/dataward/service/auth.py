"""Authentication and authorization of the caller of a use case, on catalog rows."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from dataward.access.roles import PERMISSIONS, Action, Role, Scope, ScopeKind
from dataward.catalog.tables import api_keys, grants, principals
from dataward.domain.errors import (
    AccessDenied,
    AuthenticationError,
    KeyExpired,
    KeyRevoked,
    PrincipalSuspended,
)
from dataward.domain.hashing import blake3_hex
from dataward.ledger.events import Actor, format_time, parse_time

KEY_PREFIX = "dw_"


@dataclass(frozen=True)
class Caller:
    principal_id: str
    principal_name: str
    kind: str
    key_id: str | None

    @property
    def actor(self) -> Actor:
        return Actor(self.principal_id, self.key_id)


def new_key_material() -> tuple[str, str, str]:
    """``(key_id, plaintext, secret_hash)`` of a fresh API key."""
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}", blake3_hex(secret.encode())


def _split(credential: str) -> tuple[str, str]:
    if not credential.startswith(KEY_PREFIX) or credential.count("_") < 2:
        raise AuthenticationError("the API key is malformed", hint="keys look like dw_<id>_<secret>")
    key_id, _, secret = credential[len(KEY_PREFIX) :].partition("_")
    return key_id, secret


def anonymous_actor(credential: str | None) -> Actor:
    key_id = None
    if credential:
        try:
            key_id = _split(credential)[0]
        except AuthenticationError:
            key_id = None
    return Actor("anonymous", key_id)


def authenticate(conn: Connection, credential: str | None, now: datetime) -> Caller:
    if not credential:
        raise AuthenticationError(
            "no API key given", hint="set DATAWARD_KEY or use the ward's credentials file"
        )
    key_id, secret = _split(credential)
    key = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    if key is None or not hmac.compare_digest(key.secret_hash, blake3_hex(secret.encode())):
        raise AuthenticationError("the API key is not valid")
    principal = conn.execute(select(principals).where(principals.c.id == key.principal_id)).one()
    if principal.status != "active":
        raise PrincipalSuspended(f"principal {principal.name!r} is {principal.status}")
    if key.revoked_at is not None:
        raise KeyRevoked(f"API key dw_{key_id} was revoked at {key.revoked_at}")
    if parse_time(key.expires_at) <= now:
        raise KeyExpired(f"API key dw_{key_id} expired at {key.expires_at}", hint="ask for a new key")
    if key.overlap_until is not None and parse_time(key.overlap_until) <= now:
        raise KeyExpired(f"API key dw_{key_id} was rotated; its overlap ended at {key.overlap_until}")
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=format_time(now)))
    return Caller(principal.id, principal.name, principal.kind, key_id)


def authorize(conn: Connection, caller: Caller, action: Action, scope: Scope, now: datetime) -> None:
    rows = conn.execute(
        select(grants).where(grants.c.principal_id == caller.principal_id, grants.c.revoked_at.is_(None))
    ).all()
    perm = PERMISSIONS[action]
    for g in rows:
        gscope = Scope(ScopeKind(g.scope_kind), g.scope_name)
        if not gscope.covers(scope):
            continue
        if g.role == Role.ADMIN.value or (Role(g.role) in perm.roles and scope.kind in perm.scope_kinds):
            return
    raise AccessDenied(f"{caller.principal_name!r} may not {action.value} on {scope}")
