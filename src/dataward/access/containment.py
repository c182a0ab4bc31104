"""After a quarantine: what still lets the cause act, and the commands that stop it.

Quarantining a key's, a principal's or a source's contributions holds out what they brought in; it does
not take away what let them bring it. A leaked bot whose contributions were quarantined keeps its keys
and grants, and its next submission is accepted (held back from merges, but gated and stored). Nothing
here revokes anything: revoking or suspending is a decision of its own (a bot's owner may need it back
with a fresh key), so the quarantine says what to run next, and the access review lists every active
principal with quarantined contributions that can still act (``quarantined_but_active``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from dataward.access.authorize import ApiKey, Grant, Principal


@dataclass(frozen=True)
class QuarantinedWork:
    """A principal's quarantined contributions (``DATASET#N``), for the access review."""

    principal_id: str
    contributions: tuple[str, ...]


def live_keys(keys: Iterable[ApiKey], principal_id: str, now: datetime) -> list[ApiKey]:
    """The principal's keys that can be used at ``now`` (not revoked, expired or rotated out)."""
    return [k for k in keys if k.principal_id == principal_id and k.refusal(now) is None]


def grants_of(grants: Iterable[Grant], principal_id: str) -> list[Grant]:
    """The principal's grants, by scope and role."""
    return sorted((g for g in grants if g.principal_id == principal_id), key=lambda g: (str(g.scope), g.role.value))


def _held(keys: list[ApiKey], grants: list[Grant]) -> str:
    shown = ", ".join(k.display for k in keys) or "none"
    roles = ", ".join(f"{g.role.value} on {g.scope}" for g in grants) or "none"
    return f"{len(keys)} usable key(s) ({shown}) and grants: {roles}"


def principal_next_steps(principal: Principal, keys: list[ApiKey], grants: list[Grant]) -> list[str]:
    """What to run after quarantining ``principal:NAME``, while it is active with ``keys`` or ``grants``
    (none: nothing left to stop). Disabling suspends a bot (or offboards a human) and revokes its keys."""
    if not principal.is_active or not (keys or grants):
        return []
    name = principal.name
    steps = [
        f"{name} can still act: {_held(keys, grants)}. If its credentials leaked or it misbehaved, suspend it "
        f"and revoke all its keys at once: dataward principal disable {name} --reason '...'"
    ]
    steps += [f"or revoke a key: dataward key revoke {k.prefix} --reason '...'" for k in keys]
    steps += [f"or take away a grant: dataward grant revoke {name} {g.role.value} --scope {g.scope}" for g in grants]
    return steps


def principal_next_steps_seen(principal: Principal, grants: list[Grant]) -> list[str]:
    """``principal_next_steps`` for a caller who may not list the ward's keys and grants (no
    ``ledger.read`` on the ward): ``grants`` are only those on datasets the caller can see, and no key
    of the principal is named or counted, nor whether it holds any, so the answer is the same whatever
    else it holds; an admin can list them. Nothing when the principal is no longer active."""
    if not principal.is_active:
        return []
    name = principal.name
    steps = [
        f"{name} can still act with any key of theirs still usable and any grant they hold (an admin can "
        f"list them: dataward key list {name}; dataward grant list). If its credentials leaked or it "
        f"misbehaved, suspend it and revoke all its keys at once: dataward principal disable {name} --reason '...'"
    ]
    steps += [f"or take away a grant: dataward grant revoke {name} {g.role.value} --scope {g.scope}" for g in grants]
    return steps


def key_next_steps(key: str, live: bool) -> list[str]:
    """What to run after quarantining what key ``key`` (``dw_…``) touched, while it is usable."""
    if not live:
        return []
    return [
        f"key {key} is still usable: revoke it, and every key minted through it: dataward key revoke {key} "
        "--reason '...'"
    ]


def quarantined_but_active(
    principal: Principal, work: QuarantinedWork, keys: list[ApiKey], grants: list[Grant]
) -> tuple[str, str] | None:
    """The access review's ``(detail, action)`` for an active principal with quarantined contributions
    that still holds usable keys or grants; None when nothing of it can act."""
    if not principal.is_active or not (keys or grants):
        return None
    shown = ", ".join(work.contributions[:5]) + (", ..." if len(work.contributions) > 5 else "")
    detail = (
        f"{principal.name} has {len(work.contributions)} quarantined contribution(s) ({shown}) yet is "
        f"{principal.status.value} with {_held(keys, grants)}"
    )
    action = (
        f"if the quarantine was for its credentials or conduct, suspend it and revoke its keys "
        f"(dataward principal disable {principal.name} --reason '...'), or revoke its keys one by one "
        "(dataward key revoke dw_…); otherwise confirm it may keep acting"
    )
    return detail, action


__all__ = [
    "QuarantinedWork",
    "grants_of",
    "key_next_steps",
    "live_keys",
    "principal_next_steps",
    "principal_next_steps_seen",
    "quarantined_but_active",
]
