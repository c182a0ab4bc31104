"""API key material: generation, parsing, hashing, checking, rotation and revocation.

A key reads ``dw_<id>_<secret>``: ``dw_`` so secret scanners recognise a leaked key, an 8-character
public id (base32, the catalog lookup id), and a 52-character base32 secret of 32 random bytes.
Only an HMAC-SHA256 of the secret, keyed by a per-key random salt and bound to the key id, is
stored. The secret has 256 bits of entropy, so a fast keyed hash is enough (a slow password hash
protects guessable secrets, which these are not), and checking stays cheap on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from dataward.access.authorize import ApiKey, Principal, require_aware
from dataward.domain.errors import (
    AuthenticationError,
    Conflict,
    InputError,
    KeyExpired,
    KeyRevoked,
    PrincipalSuspended,
)

KEY_PREFIX = "dw_"
KEY_ID_LENGTH = 8  # 5 random bytes in base32: 40 bits, enough to look keys up, not to guess them
SECRET_BYTES = 32
SECRET_LENGTH = 52  # 32 bytes in unpadded base32
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
    """

    max_ttl_days: int = 365
    default_ttl_days: int = 90
    rotation_age_days: int = 90
    stale_after_days: int = 30
    near_expiry_days: int = 14
    max_overlap_days: int = 7

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
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
        )

    def to_dict(self) -> dict[str, int]:
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
                f"a key lifetime of {ttl.days} days exceeds the ward's maximum of {self.max_ttl_days} days",
                hint=f"issue it for at most {self.max_ttl_days} days and rotate it before it expires",
            )
        return now + ttl


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


def hash_secret(key_id: str, secret: str, *, salt: bytes | None = None) -> str:
    """The stored form of a secret: ``hmac-sha256$<salt hex>$<digest hex>``.

    Binding the key id into the MAC means a hash copied onto another key record does not verify.
    """
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hmac.new(salt, f"{key_id}:{secret}".encode(), hashlib.sha256).hexdigest()
    return f"{HASH_SCHEME}${salt.hex()}${digest}"


def verify_secret(stored: str, key_id: str, secret: str) -> bool:
    """Constant-time check of ``secret`` against a stored hash. Unknown schemes never verify."""
    scheme, _, rest = stored.partition("$")
    salt_hex, _, digest = rest.partition("$")
    if scheme != HASH_SCHEME or not digest:
        return False
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    expected = hmac.new(salt, f"{key_id}:{secret}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest)


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
) -> tuple[str, ApiKey]:
    """A fresh key for ``principal_id``: the plaintext (show it once) and the record to store.

    ``ttl`` defaults to the policy's default lifetime and may not exceed its maximum. ``scopes``
    narrows the key (see :class:`~dataward.access.authorize.KeyScopes`); check it against the
    principal's grants with :func:`~dataward.access.authorize.validate_key_scopes` before issuing.
    The caller must make sure ``record.id`` is not already taken (40 random bits rarely collide).
    """
    expires_at = policy.expiry_for(now, ttl)
    plaintext, key_id, secret = _new_key_text()
    record = ApiKey(
        id=key_id,
        principal_id=principal_id,
        prefix=KEY_PREFIX + key_id,
        hash=hash_secret(key_id, secret),
        scopes=None if scopes is None else tuple(scopes),
        created_at=now,
        expires_at=expires_at,
    )
    return plaintext, record


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
    """
    require_aware(now, "now")
    parsed = parse_key(plaintext)
    refused = AuthenticationError(
        f"API key {parsed.prefix}… is not recognised",
        hint="check that DATAWARD_KEY holds the whole key, or ask an admin for a new one",
    )
    if record is None or record.id != parsed.key_id:
        raise refused
    if not verify_secret(record.hash, record.id, parsed.secret):
        raise refused
    if principal is None or principal.id != record.principal_id:
        raise AuthenticationError(f"API key {record.display} has no principal")
    refusal = record.refusal(now)
    if refusal is not None:
        kind, message = refusal
        if kind == "revoked":
            raise KeyRevoked(message, hint="ask an admin or the key's owner for a new key")
        if kind == "rotated":
            raise KeyExpired(message, hint=f"use its successor {KEY_PREFIX}{record.successor_id}…")
        raise KeyExpired(message, hint="rotate keys before they expire: `dataward key rotate`")
    if not principal.is_active:
        raise PrincipalSuspended(
            f"principal {principal.name!r} is {principal.status.value}; its keys are refused",
            hint="an admin can re-enable it or transfer its work",
        )
    if owner is not None and not owner.is_active:
        raise PrincipalSuspended(
            f"service principal {principal.name!r} is refused: its owner {owner.name!r} is {owner.status.value}",
            hint="an admin can transfer it to an active human: `dataward principal transfer`",
        )


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
) -> tuple[str, ApiKey, ApiKey]:
    """Issue the successor of ``old`` with the same principal and scopes.

    Returns ``(plaintext, new_record, updated_old)``: ``updated_old`` keeps working until
    ``now + overlap`` (never past its own expiry) and is refused after.
    """
    require_aware(now, "now")
    if not isinstance(overlap, timedelta) or overlap < timedelta(0):
        raise InputError(f"a rotation overlap must be a non-negative duration, got {overlap!r}")
    if overlap > timedelta(days=policy.max_overlap_days):
        raise InputError(
            f"a rotation overlap of {overlap} exceeds the ward's maximum of {policy.max_overlap_days} days"
        )
    if old.successor_id is not None:
        raise Conflict(
            f"key {old.display} was already rotated",
            hint=f"rotate its successor {KEY_PREFIX}{old.successor_id}…",
        )
    refusal = old.refusal(now)
    if refusal is not None:
        raise Conflict(f"cannot rotate: {refusal[1]}", hint="issue a new key instead")
    plaintext, new = generate_key(old.principal_id, now=now, ttl=ttl, policy=policy, scopes=old.scopes)
    updated_old = replace(old, rotated_at=now, successor_id=new.id, overlap_until=min(now + overlap, old.expires_at))
    return plaintext, new, updated_old
