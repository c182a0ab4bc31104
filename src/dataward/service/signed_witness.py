"""The witness location that counts: the one named by the newest signed ``ward.witness_set`` event.

``ward.json`` holds a copy of it (written with the event, for people reading the folder), but that
file lives in the folder whose writers the witness guards against. Someone without the key who rolls
the catalog back, deletes the newer kept checkpoints and removes or repoints the witness there must
not switch the anchor off. So every reader of the witness (``verify``, writing checkpoints, showing
it) takes the location from the ledger, ``verify`` reports a ``ward.json`` that disagrees, and a
witness the ledger names but that cannot be read, or that holds no checkpoint since it was set, fails
the anchored check instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection

from dataward.catalog import ledger_store
from dataward.ledger.checkpoint import Checkpoint

WITNESS_EVENT = "ward.witness_set"
"""The signed event that sets (``witness``: a location), moves or stops (``witness``: null) the witness."""

_REMEDY = (
    "if it is only down for a while, run verify again once it is back; if it is gone for good, an admin "
    "moves it (`dataward checkpoint witness LOCATION`) or stops it (`dataward checkpoint witness --off`), "
    "which the ledger records"
)


@dataclass(frozen=True)
class SignedWitness:
    """Where the ledger says witness copies go, and the event that said so."""

    location: str | None
    """The location (None: never set, or stopped)."""
    seq: int
    """The ``ward.witness_set`` event that set or stopped it (0: none in the ledger)."""

    def named(self) -> str:
        """The location as problems name it."""
        return self.location or "none"

    def origin(self) -> str:
        """The event as problems name it."""
        return f"the signed {WITNESS_EVENT} event #{self.seq}" if self.seq else f"the ledger (no {WITNESS_EVENT})"


def signed_witness(conn: Connection) -> SignedWitness:
    """The witness named by the newest ``ward.witness_set`` event in the catalog's ledger.

    The event's payload is covered by the hash chain and its signatures: an edit of it is reported by
    ``verify`` as an altered event, so what is read here is what an admin set (or a rollback of the
    whole ledger to an older, still signed setting, which the witness itself then catches)."""
    for event in ledger_store.read_events(conn, types=[WITNESS_EVENT], newest_first=True, limit=1):
        if event.type != WITNESS_EVENT:  # the type filter matches by prefix
            continue
        payload = event.payload if isinstance(event.payload, dict) else {}
        value = payload.get("witness")
        return SignedWitness(value if isinstance(value, str) and value else None, event.seq)
    return SignedWitness(None, 0)


def disagreement(signed: SignedWitness, configured: str | None) -> str | None:
    """Why ``ward.json``'s witness differs from the signed one (None when they agree).

    The signed one is used either way; the difference is reported because only ``checkpoint witness``
    (an admin, recorded in the ledger) writes it, so another value means the file was edited."""
    if (configured or None) == signed.location:
        return None
    return (
        f"ward.json names the witness {configured or 'none'}, but {signed.origin()} names "
        f"{signed.named()}; the signed location is the one checked and written to, ward.json was edited "
        "outside `dataward checkpoint witness` (restore it by having an admin set the witness again)"
    )


def unreachable(signed: SignedWitness, why: str) -> str:
    """The problem of a witness the ledger names that could not be read."""
    return (
        f"the witness {signed.named()} (set by {signed.origin()}) could not be read: {why}; the checkpoint "
        f"check against it failed, so a cut of the newest events cannot be ruled out. {_REMEDY}"
    )


def uncovered(signed: SignedWitness, copies: Iterable[Checkpoint]) -> str | None:
    """The problem of a witness that holds no valid checkpoint at or after the event that set it.

    The ward checkpoints right after every ``ward.witness_set`` and sends the copy there, so a witness
    in use always holds one; an empty one was emptied, is another folder than the one set, or never
    received that copy (it was unreachable then)."""
    if any(cp.seq >= signed.seq for cp in copies):
        return None
    return (
        f"the witness {signed.named()} (set by {signed.origin()}) holds no valid checkpoint of this ward "
        f"at or after event #{signed.seq}: it was emptied or replaced, or was unreachable when set; once "
        "it is reachable, make one with `dataward checkpoint` and verify again"
    )
