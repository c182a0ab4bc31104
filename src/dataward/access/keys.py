"""API key material: generation, parsing, hashing, checking, rotation and revocation.

A key reads ``dw_<id>_<secret>``: ``dw_`` so secret scanners recognise a leaked key, an 8-character
public id (base32, the catalog lookup id), and a 52-character base32 secret of 32 random bytes.
Only an HMAC-SHA256 of the secret, keyed by a per-key random salt and bound to the key id, is
stored. The secret has 256 bits of entropy, so a fast keyed hash is enough (a slow password hash
protects guessable secrets, which these are not), and checking stays cheap on every request.

An unknown key id costs the same work as a known id with a wrong secret: the secret is checked
against a dummy salted hash, so the answer's timing does not tell which ids exist.

**Lineage.** A key minted with another key (a principal issuing a key for itself or for its own
service principal: the acting key is the only authority) records that key as its ``parent_id``. It
never expires after its parent, is never wider than it, and is revoked with it: see
:func:`bound_expiry` and :func:`descendants`. A rotation's successor takes its predecessor's place
(same parent); ``minted_with`` names the key that made a key, and revoking that key revokes it too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from dataward.access.authorize import ApiKey, KeyScopes, Principal, PrincipalKind, require_aware
from dataward.domain.errors import (
    AuthenticationError,
    Conflict,
    InputError,
    KeyExpired,
    KeyRevoked,
    PolicyViolation,
    PrincipalSuspended,
)
from dataward.domain.key_shape import FULL_KEY_SHAPE, KEY_ID_LENGTH, KEY_PREFIX, SECRET_LENGTH
from dataward.ledger.events import format_time

SECRET_BYTES = 32
HASH_SCHEME = "hmac-sha256"

_KEY_TEXT = re.compile(rf"^{KEY_PREFIX}([a-z2-7]{{{KEY_ID_LENGTH}}})_([a-z2-7]{{{SECRET_LENGTH}}})$")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


@dataclass(frozen=True)
class KeyPolicy:
    """The ward's rules for key lifetimes, in days. No key lives longer than ``max_ttl_days``.

    ``rotation_age_days``: the access review asks to rotate keys older than this.
    ``stale_after_days``: the access review lists keys unused for this long.
    ``near_expiry_days``: the access review warns this long before a key expires.
    ``max_overlap_days``: the longest a rotated key may keep working beside its successor.
    ``allow_self_issued_keys``: whether a service principal may mint keys for itself (issue or rotate
    its own keys). Off by default: a bot's keys come from its owner or an admin, so a leaked bot key
    cannot renew itself.
    """

    max_ttl_days: int = 365
    default_ttl_days: int = 90
    rotation_age_days: int = 90
    stale_after_days: int = 30
    near_expiry_days: int = 14
    max_overlap_days: int = 7
    allow_self_issued_keys: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SWITCHES:
                if not isinstance(value, bool):
                    raise InputError(f"keys.{f.name} must be true or false, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"keys.{f.name} must be a non-negative whole number of days, got {value!r}")
        if self.max_ttl_days < 1:
            raise InputError("keys.max_ttl_days must be at least 1: every key needs a lifetime")
        if not 1 <= self.default_ttl_days <= self.max_ttl_days:
            raise InputError(
                f"keys.default_ttl_days ({self.default_ttl_days}) must be between 1 and "
                f"keys.max_ttl_days ({self.max_ttl_days})"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: KeyPolicy | None = None) -> KeyPolicy:
        """A policy from a mapping of overrides on ``base`` (the defaults when None)."""
        if not isinstance(data, Mapping):
            raise InputError(f"keys must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise InputError(
                f"unknown key policy setting(s): {', '.join(unknown)}",
                hint=f"known settings: {', '.join(sorted(known))}",
            )
        base = base or cls()
        overrides = dict(data)
        # Lowering only the maximum carries the default down with it rather than failing.
        if "max_ttl_days" in overrides and "default_ttl_days" not in overrides:
            max_ttl = overrides["max_ttl_days"]
            if isinstance(max_ttl, int) and not isinstance(max_ttl, bool) and max_ttl >= 1:
                overrides["default_ttl_days"] = min(base.default_ttl_days, max_ttl)
        return replace(base, **overrides)

    def tightened_by(self, other: KeyPolicy) -> KeyPolicy:
        """The stricter of the two policies, setting by setting (for per-dataset overrides)."""
        max_ttl = min(self.max_ttl_days, other.max_ttl_days)
        return KeyPolicy(
            max_ttl_days=max_ttl,
            default_ttl_days=min(self.default_ttl_days, other.default_ttl_days, max_ttl),
            rotation_age_days=min(self.rotation_age_days, other.rotation_age_days),
            stale_after_days=min(self.stale_after_days, other.stale_after_days),
            near_expiry_days=max(self.near_expiry_days, other.near_expiry_days),
            max_overlap_days=min(self.max_overlap_days, other.max_overlap_days),
            allow_self_issued_keys=self.allow_self_issued_keys and other.allow_self_issued_keys,
        )

    def to_dict(self) -> dict[str, int | bool]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def expiry_for(self, now: datetime, ttl: timedelta | None) -> datetime:
        """When a key issued at ``now`` with lifetime ``ttl`` (None: the default) expires."""
        require_aware(now, "now")
        if ttl is None:
            return now + timedelta(days=self.default_ttl_days)
        if not isinstance(ttl, timedelta):
            raise InputError(f"a key lifetime must be a duration, got {ttl!r}")
        if ttl <= timedelta(0):
            raise InputError(f"a key lifetime must be positive, got {ttl}")
        if ttl > timedelta(days=self.max_ttl_days):
            raise InputError(
                # The limit may be a dataset policy's, which tightens the ward's for keys scoped to it:
                # "the ward's maximum" sent a user to the ward's settings for a dataset's rule.
                f"a key lifetime of {ttl.days} days exceeds the key policy's maximum of {self.max_ttl_days} days "
                "(the ward's, or that of a dataset the key is scoped to)",
                hint=f"issue it for at most {self.max_ttl_days} days, and issue a new key before it expires",
            )
        return now + ttl


_SWITCHES = frozenset({"allow_self_issued_keys"})

DEFAULT_KEY_POLICY = KeyPolicy()


@dataclass(frozen=True)
class ParsedKey:
    """A key split into its public id and its secret. The secret never appears in ``repr``."""

    key_id: str
    secret: str

    @property
    def prefix(self) -> str:
        return KEY_PREFIX + self.key_id

    def __repr__(self) -> str:
        return f"ParsedKey(key_id={self.key_id!r}, secret=<hidden>)"


def parse_key(text: str) -> ParsedKey:
    """Split ``dw_<id>_<secret>``; an InputError says what is wrong without echoing the secret."""
    if not isinstance(text, str):
        raise InputError("an API key must be text")
    text = text.strip()
    match = _KEY_TEXT.match(text)
    if match is None:
        shown = text[: len(KEY_PREFIX) + KEY_ID_LENGTH] + "…" if text else "an empty string"
        raise InputError(
            f"malformed API key ({shown})",
            hint=f"a dataward key reads {KEY_PREFIX}<8 characters>_<{SECRET_LENGTH} characters>, "
            "lower-case letters a-z and digits 2-7; copy it again in full",
        )
    return ParsedKey(match.group(1), match.group(2))


def without_secret(ref: str) -> str:
    """``ref`` as a key name: the id ``dw_<id>`` of a whole key (its secret dropped), anything else
    as given. Commands that name a key (trace, rotate, revoke) take either; a user pasting the key
    that ``key issue`` printed must not have its secret sent on, logged or echoed."""
    match = FULL_KEY_SHAPE.fullmatch(ref.strip()) if isinstance(ref, str) else None
    return KEY_PREFIX + match.group(1).lower() if match else ref


def hash_secret(key_id: str, secret: str, *, salt: bytes | None = None) -> str:
    """The stored form of a secret: ``hmac-sha256$<salt hex>$<digest hex>``.

    Binding the key id into the MAC means a hash copied onto another key record does not verify.
    """
    salt = secrets.token_bytes(16) if salt is None else salt
    return f"{HASH_SCHEME}${salt.hex()}${_mac(salt, key_id, secret)}"


def _mac(salt: bytes, key_id: str, secret: str) -> str:
    """The keyed hash of one secret: the only expensive step of checking a key."""
    return hmac.new(salt, f"{key_id}:{secret}".encode(), hashlib.sha256).hexdigest()


# Checked instead when a key id is unknown or its stored hash unreadable, so that every refusal of a
# well-formed key costs one HMAC and one constant-time comparison, whatever the id.
_DUMMY_HASH = hash_secret("a" * KEY_ID_LENGTH, "a" * SECRET_LENGTH)


def verify_secret(stored: str, key_id: str, secret: str) -> bool:
    """Constant-time check of ``secret`` against a stored hash. Unknown schemes never verify.

    The work done is the same whether or not ``stored`` is readable: one HMAC, one comparison.
    """
    scheme, _, rest = stored.partition("$")
    salt_hex, _, digest = rest.partition("$")
    readable = scheme == HASH_SCHEME and bool(digest)
    try:
        salt = bytes.fromhex(salt_hex) if readable else b""
    except ValueError:
        readable = False
    if not readable:
        _, _, rest = _DUMMY_HASH.partition("$")
        salt_hex, _, digest = rest.partition("$")
        salt = bytes.fromhex(salt_hex)
    matches = hmac.compare_digest(_mac(salt, key_id, secret), digest)
    return readable and matches


def _new_key_text() -> tuple[str, str, str]:
    key_id = _b32(secrets.token_bytes(5))
    secret = _b32(secrets.token_bytes(SECRET_BYTES))
    return f"{KEY_PREFIX}{key_id}_{secret}", key_id, secret


def generate_key(
    principal_id: str,
    *,
    now: datetime,
    ttl: timedelta | None = None,
    policy: KeyPolicy = DEFAULT_KEY_POLICY,
    scopes: Iterable[str] | None = None,
    parent: ApiKey | None = None,
) -> tuple[str, ApiKey]:
    """A fresh key for ``principal_id``: the plaintext (show it once) and the record to store.

    ``ttl`` defaults to the policy's default lifetime and may not exceed its maximum. ``scopes``
    narrows the key (see :class:`~dataward.access.authorize.KeyScopes`); check it against the
    principal's grants with :func:`~dataward.access.authorize.validate_key_scopes` before issuing.
    ``parent`` is the key minting this one (see :func:`bound_expiry` and :func:`check_within`): the
    new key is refused when it would be wider than its parent or, with an explicit ``ttl``, outlive
    it; without a ``ttl`` its lifetime is cut to end with the parent's.
    The caller must make sure ``record.id`` is not already taken (40 random bits rarely collide).
    """
    expires_at = policy.expiry_for(now, ttl)
    if parent is not None:
        check_within(parent, scopes)
        expires_at = bound_expiry(expires_at, [parent], explicit=ttl is not None)
    plaintext, key_id, secret = _new_key_text()
    record = ApiKey(
        id=key_id,
        principal_id=principal_id,
        prefix=KEY_PREFIX + key_id,
        hash=hash_secret(key_id, secret),
        scopes=None if scopes is None else tuple(scopes),
        created_at=now,
        expires_at=expires_at,
        parent_id=None if parent is None else parent.id,
        minted_with=None if parent is None else parent.id,
    )
    return plaintext, record


def key_end(key: ApiKey) -> datetime:
    """When ``key`` stops working at the latest: its expiry, or the end of its rotation overlap."""
    return key.expires_at if key.overlap_until is None else min(key.expires_at, key.overlap_until)


def bound_expiry(expires_at: datetime, bounds: Iterable[ApiKey], *, explicit: bool) -> datetime:
    """``expires_at`` for a key minted under ``bounds`` (its parent, and the key minting it).

    A minted key never outlives a key it depends on. An ``explicit`` lifetime that would is refused
    (PolicyViolation: the attempt is recorded as a refusal); a default lifetime is cut to fit.
    """
    for bound in bounds:
        end = key_end(bound)
        if expires_at <= end:
            continue
        if explicit:
            raise PolicyViolation(
                f"a key minted with {bound.display} cannot outlive it: {bound.display} ends at "
                f"{format_time(end)}, the new key would expire at {format_time(expires_at)}",
                hint=f"ask for a lifetime ending by {format_time(end)} (or none: it is then cut to fit), "
                "or have an admin issue the key",
                key_id=bound.id,
            )
        expires_at = end
    return expires_at


def ended_with(end: datetime, minted: Iterable[ApiKey]) -> list[ApiKey]:
    """The keys of ``minted`` (every key minted through a key whose end moved earlier, to ``end``: a
    rotation's overlap) that would outlive it, cut to end then: a minted key never outlives the key it
    was minted with. Revoked keys and keys ending by ``end`` are left as they are."""
    require_aware(end, "end")
    # A key cannot end before it began: one minted this very instant ends a microsecond later.
    return [
        replace(k, expires_at=max(end, k.created_at + timedelta(microseconds=1)))
        for k in minted
        if k.revoked_at is None and key_end(k) > end
    ]


def check_within(parent: ApiKey, scopes: Iterable[str] | None) -> None:
    """Refuse scopes wider than ``parent``'s: a minted key can do nothing its parent cannot."""
    if parent.scopes is None:
        return
    if scopes is None or not KeyScopes.parse(scopes).within(parent.key_scopes):
        raise PolicyViolation(
            f"a key minted with {parent.display} cannot be wider than it; it is limited to {', '.join(parent.scopes)}",
            hint="give the new key scopes within the minting key's, or have an admin issue it",
            key_id=parent.id,
        )


def descendants(key_id: str, keys: Iterable[ApiKey]) -> list[ApiKey]:
    """Every key minted through ``key_id``, transitively: its children (``parent_id``) and the keys it
    made (``minted_with``, a rotation's successor included), then theirs. Revoked ones are included
    (their own descendants are still walked); ``key_id`` itself is not. Breadth-first order."""
    by_link: dict[str, list[ApiKey]] = {}
    for k in keys:
        for link in {k.parent_id, k.minted_with} - {None}:
            by_link.setdefault(str(link), []).append(k)
    seen = {key_id}
    out: list[ApiKey] = []
    frontier = [key_id]
    while frontier:
        nxt: list[str] = []
        for current in frontier:
            for child in sorted(by_link.get(current, ()), key=lambda k: (k.created_at, k.id)):
                if child.id not in seen:
                    seen.add(child.id)
                    out.append(child)
                    nxt.append(child.id)
        frontier = nxt
    return out


def check_secret(record: ApiKey | None, plaintext: str) -> ParsedKey:
    """The parsed key when its secret matches ``record`` (looked up by the parsed key id).

    Raises InputError (malformed) or AuthenticationError (no such key, or wrong secret: the same
    message and the same work for both, one HMAC and one constant-time comparison, so neither the
    answer nor its timing tells whether the id exists).
    """
    parsed = parse_key(plaintext)
    known = record is not None and record.id == parsed.key_id
    stored = record.hash if known and record is not None else _DUMMY_HASH
    if not verify_secret(stored, parsed.key_id, parsed.secret) or not known:
        raise AuthenticationError(
            f"API key {parsed.prefix}… is not recognised",
            hint="check that DATAWARD_KEY holds the whole key, or ask an admin for a new one",
        )
    return parsed


def _enable_hint(principal: Principal) -> str:
    """How a principal that is not active acts again: the admin's command, and a new key, since the
    keys it held were revoked when it was disabled or suspended and enabling never revives them."""
    owner = " (once an active human owns it: `dataward principal transfer` first if not)"
    return (
        f"an admin can enable it again: `dataward principal enable {principal.name}`"
        + (owner if principal.kind is PrincipalKind.SERVICE else "")
        + ", then issue it a new key"
    )


KeyLookup = Callable[[str], ApiKey | None]
"""The stored key of an id, or None: how the rotation chain is followed to name a usable successor."""


def live_successor(record: ApiKey, lookup: KeyLookup, now: datetime) -> ApiKey | None:
    """The key that stands in for rotated ``record`` at ``now``: the newest key of its rotation chain
    (a successor rotated in turn is followed to its own), or None when that key is revoked, expired or
    past its own overlap window, so that no one is sent to a key that would be refused too."""
    require_aware(now, "now")
    current, seen = record, {record.id}
    while current.successor_id is not None and current.successor_id not in seen:
        successor = lookup(current.successor_id)
        if successor is None:
            return None
        current = successor
        seen.add(current.id)
    if current is record or current.refusal(now) is not None:
        return None
    return current


def _rotated_hint(record: ApiKey, lookup: KeyLookup | None, now: datetime) -> str:
    if lookup is None:
        return f"use its successor {KEY_PREFIX}{record.successor_id}…, or ask an admin or the key's owner for a new key"
    live = live_successor(record, lookup, now)
    if live is None:
        return "its successor cannot be used either (revoked or expired); ask an admin or the key's owner for a new key"
    return f"use its successor {live.display}"


def _already_rotated_hint(old: ApiKey, lookup: KeyLookup | None, now: datetime) -> str:
    if lookup is None:
        return f"rotate its successor {KEY_PREFIX}{old.successor_id}…"
    live = live_successor(old, lookup, now)
    if live is None:
        return "its successor cannot be used either (revoked or expired); issue a new key instead"
    return f"rotate its successor {live.display}"


def check_usable(
    record: ApiKey,
    principal: Principal | None,
    now: datetime,
    *,
    owner: Principal | None = None,
    lookup: KeyLookup | None = None,
) -> None:
    """After :func:`check_secret`: raise KeyRevoked, KeyExpired (past expiry, or a rotated key past its
    overlap window) or PrincipalSuspended (the principal, or the given ``owner`` of a service
    principal, is not active). These refusals concern a genuine key: its secret was right. With
    ``lookup``, a rotated key's hint names its live successor (see :func:`live_successor`), or says to
    ask for a new key when there is none."""
    require_aware(now, "now")
    if principal is None or principal.id != record.principal_id:
        raise AuthenticationError(f"API key {record.display} has no principal")
    refusal = record.refusal(now)
    if refusal is not None:
        kind, message = refusal
        if kind == "revoked":
            raise KeyRevoked(message, hint="ask an admin or the key's owner for a new key")
        if kind == "rotated":
            raise KeyExpired(message, hint=_rotated_hint(record, lookup, now))
        # Rotation never extends a key's life (a successor expires with its predecessor): a new one is
        # the only way on.
        raise KeyExpired(
            message,
            hint="ask an admin or the key's owner for a new key (rotating a key replaces its secret, never "
            "its expiry: a successor expires when the rotated key would have)",
        )
    if not principal.is_active:
        raise PrincipalSuspended(
            f"principal {principal.name!r} is {principal.status.value}; its keys are refused",
            hint=_enable_hint(principal),
        )
    if owner is not None and not owner.is_active:
        raise PrincipalSuspended(
            f"service principal {principal.name!r} is refused: its owner {owner.name!r} is {owner.status.value}",
            hint="an admin can transfer it to an active human: `dataward principal transfer`",
        )


def check_key(
    record: ApiKey | None,
    plaintext: str,
    principal: Principal | None,
    now: datetime,
    *,
    owner: Principal | None = None,
) -> None:
    """Authenticate ``plaintext`` against its stored ``record`` (looked up by the parsed key id).

    Raises, in this order: InputError (malformed), AuthenticationError (no such key, or wrong
    secret: the same message for both, so the id alone reveals nothing), KeyRevoked, KeyExpired
    (past expiry, or a rotated key past its overlap window), PrincipalSuspended (the principal, or
    the given ``owner`` of a service principal, is not active). Returns None when the key is good.
    Only plain AuthenticationError means the secret did not match; its subclasses concern a genuine key.
    """
    require_aware(now, "now")
    check_secret(record, plaintext)
    assert record is not None  # check_secret refused otherwise
    check_usable(record, principal, now, owner=owner)


def touch(record: ApiKey, now: datetime) -> ApiKey:
    """The record with ``last_used_at`` set to ``now`` (call after a successful check)."""
    require_aware(now, "now")
    return replace(record, last_used_at=now)


def revoke(record: ApiKey, now: datetime) -> ApiKey:
    """The record revoked at ``now``: refused from the very next request."""
    require_aware(now, "now")
    if record.revoked_at is not None:
        raise Conflict(f"key {record.display} is already revoked")
    return replace(record, revoked_at=now)


def rotate(
    old: ApiKey,
    now: datetime,
    overlap: timedelta,
    *,
    policy: KeyPolicy = DEFAULT_KEY_POLICY,
    ttl: timedelta | None = None,
    parent: ApiKey | None = None,
    minted_with: ApiKey | None = None,
    lookup: KeyLookup | None = None,
) -> tuple[str, ApiKey, ApiKey]:
    """Issue the successor of ``old`` with the same principal and scopes (``lookup``: see
    :func:`check_usable`; it names the live successor of a key already rotated).

    Returns ``(plaintext, new_record, updated_old)``: ``updated_old`` keeps working until
    ``now + overlap`` (never past its own expiry) and is refused after.

    Rotation replaces the secret and never extends a key's life: the successor expires when ``old``
    does at the latest (``old.expires_at`` is the ceiling, carried down the whole rotation chain, since
    every successor's expiry is at most its predecessor's), and no later than ``ttl`` from ``now``
    (None: the policy's default lifetime), so a tightened policy also shortens it. A longer life is
    given only by issuing a new key, which needs the authority to issue one for that principal.

    The successor takes ``old``'s place in the lineage: it has the same parent (``parent``, the record
    of ``old.parent_id``) and never outlives it. ``minted_with`` is the key making the rotation when it
    acts on the own-keys rule (None when an admin's grant is the authority): revoking it revokes the
    successor, which never outlives it either, unless it is ``old`` itself (a key renewing itself).
    """
    require_aware(now, "now")
    if not isinstance(overlap, timedelta) or overlap < timedelta(0):
        raise InputError(f"a rotation overlap must be a non-negative duration, got {overlap!r}")
    if overlap > timedelta(days=policy.max_overlap_days):
        raise InputError(
            f"a rotation overlap of {overlap} exceeds the ward's maximum of {policy.max_overlap_days} days"
        )
    if old.successor_id is not None:
        raise Conflict(f"key {old.display} was already rotated", hint=_already_rotated_hint(old, lookup, now))
    refusal = old.refusal(now)
    if refusal is not None:
        raise Conflict(f"cannot rotate: {refusal[1]}", hint="issue a new key instead")
    if (None if parent is None else parent.id) != old.parent_id:
        raise ValueError(f"rotate needs the record of {old.display}'s parent {old.parent_id!r}")
    plaintext, new = generate_key(old.principal_id, now=now, ttl=ttl, policy=policy, scopes=old.scopes)
    bounds = [k for k in (parent, minted_with) if k is not None and k.id != old.id]
    if minted_with is not None and minted_with.id != old.id:
        check_within(minted_with, old.scopes)
    # The rotated key's own expiry is the successor's ceiling: rotating never renews a key.
    expires_at = bound_expiry(min(new.expires_at, old.expires_at), bounds, explicit=False)
    if expires_at <= now:
        raise Conflict(
            f"cannot rotate {old.display}: the key it depends on has ended",
            hint="issue a new key with a key that is still valid",
        )
    new = replace(
        new,
        expires_at=expires_at,
        parent_id=old.parent_id,
        minted_with=None if minted_with is None else minted_with.id,
    )
    updated_old = replace(old, rotated_at=now, successor_id=new.id, overlap_until=min(now + overlap, old.expires_at))
    return plaintext, new, updated_old
