"""The grants a key made: what a leaked owner's or admin's key handed out stays after the key is revoked.

Revoking a key stops the key, and voids the approvals given with it, but a role it granted (to an
accomplice, to a bot of the thief's) is its own grant, made on the authority the key had then, and keeps
working. Revoking such grants is left to a person (an owner's key granting reviewers is an ordinary day's
work), so ``trace dw_KEY`` and ``quarantine dw_KEY`` name each one that still stands and the command that
takes it away.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.tables import ledger_events
from dataward.service import rows
from dataward.service.signed_identity import signed_identity


def grants_made_with(conn: Connection, ledger: tuple[str, str], key_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Every grant made in a request authenticated with one of ``key_ids``, oldest first, from the
    ledger's ``grant.created`` events: who received which role where, with which key, and whether it still
    stands (``stands``, as the signed ledger has it) with the command that revokes it."""
    keys = sorted(set(key_ids))
    if not keys:
        return []
    signed = signed_identity(conn, *ledger).tables["grants"]
    out = []
    for e in conn.execute(
        select(ledger_events.c.subject, ledger_events.c.payload, ledger_events.c.actor_key, ledger_events.c.time)
        .where(ledger_events.c.type == "grant.created", ledger_events.c.actor_key.in_(keys))
        .order_by(ledger_events.c.seq)
    ):
        subject, payload = json.loads(e.subject), json.loads(e.payload)
        grant = signed.get((subject.get("grant"),))
        name = rows.principal_name(conn, subject.get("principal")) or ""
        role, scope = payload.get("role"), payload.get("scope")
        stands = grant is not None and grant.get("revoked_at") is None
        out.append(
            {
                "grant": subject.get("grant"),
                "principal": name,
                "role": role,
                "scope": scope,
                "key": f"dw_{e.actor_key}",
                "at": e.time,
                "stands": stands,
                "revoke": f"dataward grant revoke {name} {role} --scope {scope}" if stands else None,
            }
        )
    return out


def grant_next_steps(made: list[dict[str, Any]]) -> list[str]:
    """A ``next:`` line for each grant of ``made`` (:func:`grants_made_with`) that still stands."""
    return [
        f"{g['principal']} still holds {g['role']} on {g['scope']}, granted with {g['key']} on {g['at']}: "
        f"revoke it if the key was not in its holder's hands then: {g['revoke']}"
        for g in made
        if g["stands"]
    ]


__all__ = ["grant_next_steps", "grants_made_with"]
