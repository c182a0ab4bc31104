"""Small builders for access-control tests: principals, grants and keys at a fixed time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dataward.access import (
    Grant,
    KeyPolicy,
    Principal,
    PrincipalKind,
    PrincipalStatus,
    Role,
    Scope,
    generate_key,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=400)


def human(pid: str, status: PrincipalStatus = PrincipalStatus.ACTIVE) -> Principal:
    return Principal(pid, pid, PrincipalKind.HUMAN, None, status, LONG_AGO)


def service(pid: str, owner_id: str, status: PrincipalStatus = PrincipalStatus.ACTIVE) -> Principal:
    return Principal(pid, pid, PrincipalKind.SERVICE, owner_id, status, LONG_AGO)


def grant(principal_id: str, role: Role, scope: Scope, *, at: datetime = LONG_AGO, by: str = "root") -> Grant:
    return Grant(principal_id, role, scope.kind, scope.name, by, at)


def key_for(principal_id: str, *, at: datetime = NOW, days: int = 90, scopes=None, policy=None):
    """``(plaintext, record)`` issued at ``at`` for ``days`` days."""
    return generate_key(principal_id, now=at, ttl=timedelta(days=days), scopes=scopes, policy=policy or KeyPolicy())
