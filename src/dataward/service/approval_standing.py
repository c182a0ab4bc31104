"""Read what the signed ledger says about approvals, their keys and their approvers since.

Merge, promotion and a model's release count approvals from catalog rows that the guard has checked against the ledger
(``service/guard.py``), but a row says nothing of the key an approval was given with, nor of a key
revoked or an approver disabled later. Those facts are read here from the ledger events themselves,
each re-hashed and its signature checked under the ward key, so that a payload edited in the catalog
(a revocation's key list shortened, an approval moved to another key) is refused, not believed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from dataward.access.policy import Approval
from dataward.access.sides import OwnerHistory
from dataward.access.standing import (
    Standing,
)
from dataward.catalog import ledger_store
from dataward.catalog.tables import principals
from dataward.domain.errors import IntegrityViolation
from dataward.ledger.events import Event
from dataward.ledger.signing import SignatureVerifier


def read_standing(conn: Connection, public_key_b64: str) -> Standing:
    """The ledger's approvals, review decisions, revocations and disablings (``dataward.access.standing``), with
    the keys and principals the ward's list of removals holds taken away (a catalog restored from before them).

    They come from the signed ledger's state the guard folds once per process (``guard.signed_standing``: the
    chain checked, hashes and signatures, then only newer events), not from the events read again by their
    type: an approval or review event retyped after a long-lived process checked the chain would drop out of
    what is read and a voided approval or decision count again; and a ward holds one review event per
    flagged record, so reading and checking them all made every approval, merge and promotion cost seconds
    on a ward of 10,000 decisions. Review decisions are each item's latest decision that set its status
    (``guard.signed_standing``)."""
    from dataward.service.guard import signed_standing
    from dataward.service.removal_list import listed_removals

    standing = signed_standing(conn, public_key_b64, ledger_store.ward_id(conn))
    return standing.with_listed(listed_removals(conn))


def checked_events(
    conn: Connection,
    public_key_b64: str,
    types: Iterable[str],
    *,
    consequence: str,
    mentioning: Iterable[str] | None = None,
) -> list[Event]:
    """The ledger's events of exactly ``types`` (whose subject names one of ``mentioning``, when given), in
    order, each checked: its hash over its body and its signature under ``public_key_b64``. One that fails
    is refused (``IntegrityViolation``) saying ``consequence``: what cannot be trusted without it."""
    wanted = tuple(types)
    ward_id = ledger_store.ward_id(conn)
    verifier = SignatureVerifier(public_key_b64)
    # read_events matches type prefixes: keep the exact types only.
    events = [e for e in ledger_store.read_events(conn, types=wanted, mentioning=mentioning) if e.type in wanted]
    for event in events:
        check_event(event, verifier, ward_id, consequence)
    return events


def check_event(event: Event, verifier: SignatureVerifier, ward_id: str, consequence: str) -> None:
    """Refuse (``IntegrityViolation``, saying ``consequence``) ``event`` when it does not match its hash, or
    its signature under ``verifier``'s key for ward ``ward_id``."""
    if event.computed_hash() != event.hash or not verifier.verify(event.signed_message(ward_id), event.sig or ""):
        raise IntegrityViolation(
            f"ledger event #{event.seq} ({event.type}) does not match its hash or signature: {consequence}",
            hint="run `dataward verify` to see everything that was altered; restore the catalog from a backup",
        )


def with_standing(
    approvals: Iterable[Approval], target: str, standing: Standing | None, history: OwnerHistory | None = None
) -> list[Approval]:
    """``approvals`` of ``target`` (a contribution or version id), each with ``void`` set when its
    approver was disabled or its key revoked since (unchanged without a ``standing``); given ``history``,
    with ``answered_by`` set to the owners a bot handed on had while the key it approved with was live,
    up to the approval (its signed event): one person and their bot count once, whoever owns it now."""
    if standing is None:
        return list(approvals)
    found = []
    for a in approvals:
        a = dataclasses.replace(a, void=standing.void_reason(a, target))
        act = standing.act_of(a, target)
        if history is not None and act is not None and a.approver_id in history.moves:
            a = dataclasses.replace(a, answered_by=history.owners_while(a.approver_id, act.key_id, act.seq))
        found.append(a)
    return found


def voided_decision(
    conn: Connection, standing: Standing, q: Any, contribution_status: str | None = None
) -> dict[str, Any] | None:
    """Why the review decision on item ``q`` (a ``quarantine`` row) no longer counts, as shown with the item
    (``{"was", "by", "at", "key", "why"}``), or None while its reviewer and key stand, or while undecided.
    None too for a contribution rejected or quarantined (``contribution_status``): none of its records is
    let in, so nothing of it waits for a decision."""
    if q.status not in ("accepted", "rejected") or contribution_status in ("rejected", "quarantined"):
        return None
    found = standing.review_void(q.id, q.decided_at)
    if found is None:
        return None
    act, why = found
    name = conn.execute(select(principals.c.name).where(principals.c.id == act.approver_id)).scalar()
    key = None if act.key_id is None else f"dw_{act.key_id}"
    return {"was": q.status, "by": name or act.approver_id, "at": act.time, "key": key, "why": why}


__all__ = ["check_event", "checked_events", "read_standing", "voided_decision", "with_standing"]
