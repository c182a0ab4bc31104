"""Adapter between catalog rows and the pure access domain: who is calling, and may they."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, select, update

from dataward.access import (
    ApiKey,
    Decision,
    Grant,
    Principal,
    check_secret,
    check_usable,
    parse_key,
)
from dataward.access import (
    authorize as decide,
)
from dataward.access.roles import Action, Scope
from dataward.catalog.projection import AUTH_EPOCH_QUERY, RowChange, insert_row, update_row
from dataward.catalog.tables import api_keys, grants, principals
from dataward.domain.errors import (
    AuthenticationError,
    InputError,
    IntegrityViolation,
    KeyExpired,
    KeyRevoked,
    PrincipalSuspended,
)
from dataward.ledger.events import Actor, format_time, parse_time
from dataward.service.guard import checked_identity_rows


def _time(text: str | None, where: str = "catalog") -> Any:
    """A stored time; a value dataward never writes is reported as tampering, not a crash."""
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise IntegrityViolation(
            f"{where} holds a malformed time {text!r}", hint="run `dataward verify`; the catalog was edited"
        ) from None


def principal_from_row(row: Any) -> Principal:
    """The access-domain principal of a catalog row."""
    return Principal(row.id, row.name, row.kind, row.owner_id, row.status, parse_time(row.created_at))


def key_from_row(row: Any) -> ApiKey:
    """The access-domain key record of a catalog row."""
    return ApiKey(
        id=row.id,
        principal_id=row.principal_id,
        prefix=row.prefix,
        hash=row.hash,
        scopes=None if row.scopes is None else tuple(json.loads(row.scopes)),
        created_at=_time(row.created_at, f"key {row.id}"),
        expires_at=_time(row.expires_at, f"key {row.id}"),
        last_used_at=_time(row.last_used_at, f"key {row.id}"),
        revoked_at=_time(row.revoked_at, f"key {row.id}"),
        rotated_at=_time(row.rotated_at, f"key {row.id}"),
        successor_id=row.successor_id,
        overlap_until=_time(row.overlap_until, f"key {row.id}"),
        parent_id=row.parent_id,
        minted_with=row.minted_with,
    )


def grant_from_row(row: Any) -> Grant:
    """The access-domain grant of a catalog row."""
    return Grant(
        row.principal_id, row.role, row.scope_kind, row.scope_name, row.granted_by, parse_time(row.granted_at), row.id
    )


def key_insert(record: ApiKey, description: str = "", *, issued_by: str | None = None) -> RowChange:
    """The catalog row of a newly issued key (the secret's hash only, never the secret)."""
    return insert_row(
        "api_keys",
        id=record.id,
        principal_id=record.principal_id,
        prefix=record.prefix,
        hash=record.hash,
        scopes=None if record.scopes is None else json.dumps(list(record.scopes)),
        created_at=format_time(record.created_at),
        expires_at=format_time(record.expires_at),
        description=description,
        issued_by=issued_by,
        parent_id=record.parent_id,
        minted_with=record.minted_with,
    )


def key_update(record: ApiKey) -> RowChange:
    """Revocation, rotation and expiry fields of an existing key."""
    return update_row(
        "api_keys",
        {"id": record.id},
        expires_at=format_time(record.expires_at),
        revoked_at=format_time(record.revoked_at) if record.revoked_at else None,
        rotated_at=format_time(record.rotated_at) if record.rotated_at else None,
        successor_id=record.successor_id,
        overlap_until=format_time(record.overlap_until) if record.overlap_until else None,
    )


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of one request and the key it used."""

    principal: Principal
    key: ApiKey
    grants: tuple[Grant, ...] = field(default=())

    @property
    def principal_id(self) -> str:
        return self.principal.id

    @property
    def principal_name(self) -> str:
        return self.principal.name

    @property
    def key_id(self) -> str:
        return self.key.id

    @property
    def actor(self) -> Actor:
        return Actor(self.principal.id, self.key.id)


GENUINE_KEY_REFUSALS = (KeyRevoked, KeyExpired, PrincipalSuspended)
"""Authentication refusals raised only after the key's secret matched: they concern a genuine key."""

DIAGNOSTIC_ACTIONS = frozenset({Action.VERIFY})
"""Actions a caller may still take when the ledger itself does not verify, so that ``verify`` can say
what was altered: the caller's key, principal and grants cannot then be checked against the ledger and
are read from the catalog as they stand. Nothing they allow signs an event."""

ANONYMOUS = "anonymous"
"""The actor principal of a request that did not authenticate."""


def claimed_key_id(credential: str | None) -> str | None:
    """The key id a credential claims, when it is well formed."""
    try:
        return parse_key(credential).key_id if credential else None
    except InputError:
        return None


def refused_actor(conn: Connection, credential: str | None, exc: AuthenticationError) -> Actor:
    """The actor of a request whose key did not authenticate.

    Only a genuine key (right secret; revoked, expired or suspended) names its principal. A wrong
    secret presented with someone's key id proves nothing about who sent it, so the refusal is
    ``anonymous`` with no key: the claimed id goes in the event's payload, never in its actor.
    """
    key_id = claimed_key_id(credential)
    if isinstance(exc, GENUINE_KEY_REFUSALS) and key_id is not None:
        owner = conn.execute(select(api_keys.c.principal_id).where(api_keys.c.id == key_id)).scalar()
        if owner is not None:
            return Actor(owner, key_id)
    return Actor(ANONYMOUS, None)


def grant_rows(conn: Connection, principal_id: str | None = None) -> list[Any]:
    """Unrevoked grant rows, of one principal or of everyone."""
    query = select(grants).where(grants.c.revoked_at.is_(None))
    if principal_id is not None:
        query = query.where(grants.c.principal_id == principal_id)
    return list(conn.execute(query))


def load_grants(conn: Connection, principal_id: str | None = None) -> list[Grant]:
    """Unrevoked grants, of one principal or of everyone."""
    return [grant_from_row(r) for r in grant_rows(conn, principal_id)]


@dataclass
class _Remembered:
    caller: Caller
    owner: Principal | None
    epoch: str | None
    stored_at: float


class CallerCache:
    """Keys verified by recent requests of this process, so that a busy key is not looked up and
    checked again on every request. For a served ward (``Ward.remember_callers``).

    What is remembered is only ever used under the auth epoch it was verified at (see
    ``dataward.catalog.projection.AUTH_EPOCH``): each request reads the current epoch in its own
    transaction, and any change to a key, a principal or a grant (a revocation above all) replaces it,
    so a revoked key is refused on the very next request, in every worker process. Expiry, rotation
    overlaps and suspensions are re-checked against the request's time on every use, exactly as on
    a fresh lookup. Entries also lapse after ``ttl_s`` seconds (so that even a catalog edited behind
    the ledger's back is read again soon), and at most ``max_entries`` are kept.

    Entries are keyed by a SHA-256 digest of the whole credential: only the same key id with the same
    secret finds one, and the cache never holds a secret. Failed authentications are never
    remembered; they take the full path every time.
    """

    def __init__(self, *, ttl_s: float = 30.0, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[bytes, _Remembered] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _digest(credential: str) -> bytes:
        return hashlib.sha256(credential.encode("utf-8")).digest()

    def get(self, credential: str, epoch: str | None) -> _Remembered | None:
        """The entry verified for ``credential`` under ``epoch`` and not older than the TTL, or None."""
        digest = self._digest(credential)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry.epoch != epoch or self.clock() - entry.stored_at > self.ttl_s:
                del self._entries[digest]
                return None
            return entry

    def put(self, credential: str, epoch: str | None, caller: Caller, owner: Principal | None) -> None:
        digest = self._digest(credential)
        with self._lock:
            self._entries[digest] = _Remembered(caller, owner, epoch, self.clock())
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def touched(self, credential: str | None, when: datetime) -> None:
        """Note that the key's last-used time was written as ``when``."""
        if not credential:
            return
        digest = self._digest(credential)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                entry.caller = replace(entry.caller, key=replace(entry.caller.key, last_used_at=when))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def read_epoch(conn: Connection) -> str | None:
    """The catalog's current auth epoch (None before the first change of a key, principal or grant)."""
    return conn.execute(AUTH_EPOCH_QUERY).scalar()


def remembered_caller(credential: str, now: Any, cache: CallerCache, epoch: str | None) -> Caller | None:
    """The caller ``cache`` holds for ``credential`` under ``epoch`` (the auth epoch read in this
    request), with its key's expiry and its principal's and owner's status checked against ``now``
    (raising as a fresh lookup would); None when nothing usable is remembered."""
    remembered = cache.get(credential, epoch)
    if remembered is None or remembered.caller.key.refusal(now) is not None:
        # A refused key is looked up afresh: its refusal (a rotated key's successor) is told from the catalog.
        return None
    check_usable(remembered.caller.key, remembered.caller.principal, now, owner=remembered.owner)
    return remembered.caller


def authenticate(
    conn: Connection,
    credential: str | None,
    now: Any,
    *,
    ledger: tuple[str, str],
    cache: CallerCache | None = None,
    epoch: str | None = None,
    diagnosing: bool = False,
) -> Caller:
    """Check the API key on every request, so revocation takes effect on the very next one.

    Until the secret has matched, a known and an unknown key id cost the same work: one lookup, one
    HMAC, one constant-time comparison. Only a genuine key's principal is loaded.

    The rows the decision rests on (the key, its principal and that principal's owner, the principal's
    unrevoked grants) must be what the signed ledger made them: ``ledger`` is the ward's public key
    and id, and a row written or altered in the catalog alone is refused with ``IntegrityViolation``
    naming it (see ``guard.checked_identity_rows``). When the ledger itself does not verify, every
    request is refused, except one ``diagnosing`` it (an action of ``DIAGNOSTIC_ACTIONS``): its rows
    are then read from the catalog unchecked, and the caller is not remembered.

    With a ``cache``, ``epoch`` must be the auth epoch read in this same transaction *before* this
    call (``read_epoch``): a key verified under it is taken from the cache, with its expiry and its
    principal's and owner's status checked against ``now`` again; otherwise the key is looked up and
    checked in full, and remembered under ``epoch``.
    """
    if not credential:
        raise AuthenticationError(
            "no API key given", hint="set DATAWARD_KEY, or run inside a ward that has a local credentials file"
        )
    if cache is not None:
        remembered = remembered_caller(credential, now, cache, epoch)
        if remembered is not None:
            return remembered
    try:
        parsed = parse_key(credential)
    except InputError as exc:
        raise AuthenticationError(exc.message, hint=exc.hint) from None
    row = conn.execute(select(api_keys).where(api_keys.c.id == parsed.key_id)).first()
    record = key_from_row(row) if row else None
    check_secret(record, credential)
    assert record is not None  # check_secret refused otherwise
    assert row is not None
    person = conn.execute(select(principals).where(principals.c.id == record.principal_id)).first()
    boss = None
    if person is not None and person.owner_id:
        boss = conn.execute(select(principals).where(principals.c.id == person.owner_id)).first()
    held = grant_rows(conn, record.principal_id) if person is not None else []
    # The catalog alone does not say who may do what: someone who can write it without the signing key
    # could otherwise give herself a key, a grant or a wider one (docs/threat-model.md).
    checked, held = checked_identity_rows(
        conn, ledger, row, [p for p in (person, boss) if p is not None], held, diagnosing=diagnosing
    )
    principal = principal_from_row(person) if person is not None else None
    owner = principal_from_row(boss) if boss is not None else None
    check_usable(record, principal, now, owner=owner, lookup=partial(stored_key, conn))
    assert principal is not None  # check_usable refused otherwise
    # Writes nothing: a read must be able to authenticate inside a read transaction. The key's
    # last-used time is written separately and batched (see ``touch_due`` and ``touch``).
    caller = Caller(principal, record, tuple(grant_from_row(r) for r in held))
    if cache is not None and checked:
        cache.put(credential, epoch, caller, owner)
    return caller


TOUCH_INTERVAL = timedelta(minutes=1)
"""How stale a key's ``last_used_at`` may get before a request writes it again. Batching it keeps
reads from needing the write lock on every request; the time is used only to find unused keys, for
which a minute is plenty precise."""


def touch_due(caller: Caller, now: datetime) -> bool:
    """True when the caller's key's last-used time is older than ``TOUCH_INTERVAL`` (or unset)."""
    last = caller.key.last_used_at
    return last is None or now - last >= TOUCH_INTERVAL or now < last


def touch(conn: Connection, caller: Caller, now: datetime) -> None:
    """Record that the caller's key was used at ``now`` (inside a short write transaction)."""
    conn.execute(update(api_keys).where(api_keys.c.id == caller.key.id).values(last_used_at=format_time(now)))


def authorize(conn: Connection | None, caller: Caller, action: Action, scope: Scope, now: Any) -> Decision:
    """Deny by default; raises ``AccessDenied`` naming the missing role. (Decided on the caller's
    grants, loaded when it authenticated: ``conn`` is not read.)"""
    decision = decide(caller.principal, caller.key, caller.grants, action, scope, now)
    decision.raise_if_denied()
    return decision


def stored_key(conn: Connection, key_id: str) -> ApiKey | None:
    """The stored key ``key_id``, or None: only to name a rotated key's successor in a refusal's hint."""
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    return key_from_row(row) if row else None
