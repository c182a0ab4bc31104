"""Whether a model version was withdrawn, as the signed ledger says, and the refusal to serve one.

A withdrawal is a ``model.withdrawn`` event whose change sets the model version's stage to
``withdrawn``. Whether a version is withdrawn is read from the signed ledger's own rows (the guard's
replay, its chain checked), never from the catalog's ``stage`` column alone: a catalog row set back
to ``released`` must not make the files servable again (``verify`` reports the edit). Who withdrew it,
when and why are read from the event itself, its hash and signature checked.

The ward also puts every withdrawal on its list of access removals (``service/removal_list.py``) and
checkpoints after it (``CHECKPOINT_AFTER``): a catalog restored from a backup taken before the
withdrawal (its ledger and rows consistent, so the replay says released) is refused by every process
while a kept checkpoint is newer than its ledger, and once those are moved aside the list (and the
witness's copies of it) still holds the withdrawal.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from dataward.domain.errors import PolicyViolation
from dataward.service import rows
from dataward.service.approval_standing import checked_events
from dataward.service.guard import SignedCheck
from dataward.service.removal_list import listed_removals

WITHDRAWN = "model.withdrawn"
"""The ledger event that withdraws a released model version."""


def withdrawn_in_ledger(ward: Any, conn: Connection, mv: Any) -> bool:
    """Whether the signed ledger made model version row ``mv`` ``withdrawn``, or the ward's list of
    access removals holds its withdrawal (whatever its catalog row says now)."""
    signed = SignedCheck(ward, conn, doing="serve").state.tables["model_versions"].get((mv.id,))
    if signed is not None and signed.get("stage") == "withdrawn":
        return True
    return listed_removals(conn).withdrawal(mv.id) is not None


def withdrawal_of(ward: Any, conn: Connection, mv_id: str) -> dict[str, Any] | None:
    """Who withdrew model version ``mv_id``, with which key, when and why (``by``, ``key``, ``at``,
    ``reason``), from its checked ``model.withdrawn`` event; None when no event withdrew it."""
    events = checked_events(
        conn, ward.signer.public_key_b64, [WITHDRAWN], consequence="the withdrawal it records cannot be read"
    )
    for event in reversed(events):
        if event.subject.get("model_version") == mv_id:
            principal = event.actor.get("principal")
            key = event.actor.get("key")
            return {
                "by": rows.principal_name(conn, principal) if principal else None,
                "key": f"dw_{key}" if key else None,
                "at": event.time,
                "reason": str(event.payload.get("reason", "")),
            }
    fact = listed_removals(conn).withdrawal(mv_id)
    if fact is not None:
        # The catalog predates the withdrawal (a restored backup, a cut ledger): the list's signed line
        # says which event withdrew it and when; who and why were in the event the catalog lost.
        return {
            "by": None,
            "key": None,
            "at": fact.time,
            "reason": f"event #{fact.seq}, which the ward's list of access removals holds; the catalog predates it "
            "(a restored backup, or a cut ledger): run `dataward verify`",
        }
    return None


def described(withdrawal: dict[str, Any] | None) -> str:
    """``withdrawn by pat at 2026-...: the reason``, for messages."""
    if withdrawal is None:
        return "withdrawn"
    by = f" by {withdrawal['by']}" if withdrawal.get("by") else ""
    return f"withdrawn{by} at {withdrawal['at']}: {withdrawal['reason']}"


def refuse_withdrawn(ward: Any, conn: Connection, mv: Any, *, doing: str) -> None:
    """Refuse (``PolicyViolation``, exit 6, recorded as ``access.denied``) to ``doing`` a model version
    the signed ledger says was withdrawn, naming who withdrew it, when and why."""
    if not withdrawn_in_ledger(ward, conn, mv):
        return
    ref = f"{mv.model}@v{mv.number}"
    raise PolicyViolation(
        f"refusing to {doing} {ref}: it was {described(withdrawal_of(ward, conn, mv.id))}; a withdrawn model is "
        "never served",
        hint=f"release another version of {mv.model} (dataward model list {mv.model})",
        model=ref,
    )


__all__ = ["WITHDRAWN", "described", "refuse_withdrawn", "withdrawal_of", "withdrawn_in_ledger"]
