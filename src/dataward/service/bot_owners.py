"""Who owned a bot while the key it acted with was live, read from the signed ledger.

A key an admin issued for a service principal keeps working when the bot is handed to another human
(docs/access.md, "Offboarding"), so its former owner may still hold it and act as the bot. Separation of
duties therefore puts on the side of what a bot did every human who owned it from the issue of the key
it acted with to the act, besides its owner at the act and its owner now. The hand-overs and the keys'
origins come from ``principal.transferred``, ``principal.disabled``, ``key.issued`` and ``key.rotated``
events, as the guard's state of the signed ledger folds them (``guard.signed_ownership``): the whole
chain checked (hashes, links, signatures) and every event folded once per process, then only newer
events. Never from catalog rows alone, and not by re-reading and re-checking every key event on each
request: a ward issuing short-lived bot keys holds tens of thousands, and that made every approval,
merge and promotion cost seconds.

Every event is folded, not only those a search by type finds, so an event deleted or retyped before the
process read the ledger breaks the chain check, and one edited after changes nothing the process holds.
The history must still account for the keys and principals the chain-checked identity
(``service/signed_identity.py``) holds: every service principal's hand-overs lead from the owner it was
created with to its owner there, and every key of a bot handed on has its issue in the history.
Otherwise the answer is ``IntegrityViolation``, not a shorter side.
"""

from __future__ import annotations

from typing import Any, NoReturn

from sqlalchemy import Connection

from dataward.access.sides import OwnerHistory
from dataward.catalog import ledger_store
from dataward.domain.errors import IntegrityViolation
from dataward.ledger.signing import SignatureVerifier
from dataward.service.approval_standing import check_event
from dataward.service.guard import signed_ownership
from dataward.service.signed_identity import signed_identity

_CONSEQUENCE = "the side a bot acted for is unknown"


def read_owner_history(conn: Connection, public_key_b64: str) -> OwnerHistory:
    """The ledger's hand-overs of bots and the origins of keys (``dataward.access.sides.OwnerHistory``),
    refused (``IntegrityViolation``) when it does not account for the signed identity's bots and keys."""
    ward_id = ledger_store.ward_id(conn)
    history, created = signed_ownership(conn, public_key_b64, ward_id)
    _check_complete(signed_identity(conn, public_key_b64, ward_id).tables, created, history)
    return history


def _check_complete(tables: Any, created: dict[str, Any], history: OwnerHistory) -> None:
    bots = {pid: row for (pid,), row in tables["principals"].items() if row.get("kind") == "service"}
    for pid, row in bots.items():
        owner = created.get(pid, _MISSING)
        for _, _, before, after in history.moves.get(pid, ()):
            if before != owner:
                break
            owner = after
        if owner != row.get("owner_id"):
            _refuse(f"the hand-overs of service principal {row.get('name')!r} in the ledger do not lead to its owner")
    for (key_id,), row in tables["api_keys"].items():
        if row.get("principal_id") in history.moves and key_id not in history.keys:
            _refuse(f"the ledger holds no issue of key dw_{key_id} of a service principal")


_MISSING = object()


def _refuse(what: str) -> NoReturn:
    raise IntegrityViolation(
        f"{what}: events were deleted or altered, and {_CONSEQUENCE}",
        hint="run `dataward verify` to see everything that was altered; restore the catalog from a backup",
    )


def act_seq(history: OwnerHistory, bot: str, table: str, row_id: str) -> int:
    """The seq of the signed event that inserted row ``row_id`` of ``table``, an act of ``bot``: a bot's
    side is taken in ledger order, not by times (``OwnerHistory``). Refused (``IntegrityViolation``) when
    the bot was handed on and no event inserted the row; 0 when the bot never changed hands (no span
    to place the act in)."""
    if bot not in history.moves:
        return 0
    seq = history.act_seq(table, row_id)
    if seq is None:
        _refuse(f"the ledger holds no event making {table} row {row_id} of a service principal handed on")
    return seq


def owner_then(history: OwnerHistory, bot: str, table: str, row_id: str) -> str | None:
    """``bot``'s owner when it made row ``row_id`` of ``table``, when it was handed on since (else None:
    its owner then is its owner now), in ledger order (``OwnerHistory.owner_at``)."""
    if bot not in history.moves:
        return None
    return history.owner_at(bot, act_seq(history, bot, table, row_id))


def submitter_earlier_owners(history: OwnerHistory, c: Any) -> frozenset[str]:
    """The owners contribution ``c``'s submitting bot had while the key it was submitted with was live, other
    than its owner at submission (``submitter_owner``): empty for a human or a bot never handed on."""
    if c.submitter_owner is None or c.submitted_by not in history.moves:
        return frozenset()
    until = act_seq(history, c.submitted_by, "contributions", c.id)
    return history.owners_while(c.submitted_by, c.key_id, until) - {c.submitter_owner}


def acting_earlier_owners(history: OwnerHistory, caller: Any) -> frozenset[str]:
    """The humans who owned the calling bot while the key it acts with was live, other than its owner now:
    an approver, reviewer or overrider bot handed on keeps its admin-issued keys, which its former owner
    may hold (empty for a human, or a bot never handed on while that key was live)."""
    principal = caller.principal
    if principal.owner_id is None:
        return frozenset()
    # Every hand-over so far counts (the act is now).
    return history.owners_while(principal.id, caller.key.id, None) - {principal.owner_id}


_MAKING = ("contribution.merged", "contribution.quarantined", "records.contained")
"""The events that make a version (a merge; a quarantine's or a containment's rollback version)."""


def maker_earlier_owners(conn: Connection, public_key_b64: str, history: OwnerHistory, version: Any) -> frozenset[str]:
    """The humans who owned the bot that made ``version`` (a ``versions`` row) while the key it made it
    with was live, up to the making: empty for a human maker, or a bot never handed on. The key is the
    actor key of the signed event that inserted the version's row (the row does not name it); none found
    is refused (``IntegrityViolation``), not read as no key."""
    return _owners_while_making(
        conn,
        public_key_b64,
        history,
        version.created_by,
        _MAKING,
        version.dataset_id,
        "versions",
        version.id,
        time=version.created_at,
        what=f"version {version.id}",
    )


_REQUESTED = "gate.override.requested"


def requester_earlier_owners(
    conn: Connection, public_key_b64: str, history: OwnerHistory, request: Any
) -> frozenset[str]:
    """The humans who owned the bot that made block-override request ``request`` (a ``gate_overrides`` row)
    while the key it made it with was live, up to the request: empty for a human requester, or a bot never
    handed on. An override takes two people, and a bot handed on since may have asked for its former
    owner. The key is the actor key of the signed event that inserted the row; none found is refused
    (``IntegrityViolation``), not read as no key."""
    return _owners_while_making(
        conn,
        public_key_b64,
        history,
        request.principal_id,
        (_REQUESTED,),
        request.contribution_id,
        "gate_overrides",
        request.id,
        time=None,
        what=f"override request {request.id}",
    )


def _owners_while_making(
    conn: Connection,
    public_key_b64: str,
    history: OwnerHistory,
    maker: str,
    types: tuple[str, ...],
    mentioning: str,
    table: str,
    row_id: str,
    *,
    time: str | None,
    what: str,
) -> frozenset[str]:
    """The owners ``maker`` had while the key of the signed event (of one of ``types``, mentioning
    ``mentioning``, at ``time`` when given) that inserted row ``row_id`` of ``table`` was live, up to that
    event. Empty when ``maker`` was never handed on; refused when no such event by ``maker`` is found."""
    if maker not in history.moves:
        return frozenset()
    verifier = SignatureVerifier(public_key_b64)
    ward_id = ledger_store.ward_id(conn)
    for event in ledger_store.read_events(conn, types=types, mentioning=[mentioning]):
        if event.type not in types or (time is not None and event.time != time):
            continue
        if any(
            c.table == table and c.op == "insert" and c.key.get("id") == row_id
            for c in ledger_store.event_changes(event)
        ):
            check_event(event, verifier, ward_id, _CONSEQUENCE)
            if event.actor.get("principal") != maker:
                break
            return history.owners_while(maker, event.actor.get("key"), event.seq)
    _refuse(f"the ledger holds no event making {what} by its maker")


__all__ = [
    "act_seq",
    "acting_earlier_owners",
    "maker_earlier_owners",
    "owner_then",
    "read_owner_history",
    "requester_earlier_owners",
    "submitter_earlier_owners",
]
