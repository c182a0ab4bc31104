"""Who owned a bot while the key it acted with was live, read from the signed ledger.

A key an admin issued for a service principal keeps working when the bot is handed to another human
(docs/access.md, "Offboarding"), so its former owner may still hold it and act as the bot. Separation of
duties therefore puts on the side of what a bot did every human who owned it from the issue of the key
it acted with to the act, besides its owner at the act and its owner now. The hand-overs and the keys'
origins come from ``principal.transferred``, ``principal.disabled``, ``key.issued`` and ``key.rotated``
events, each re-hashed and its signature checked (``checked_events``), never from catalog rows alone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from dataward.access.sides import OWNERSHIP_TYPES, OwnerHistory, owner_history
from dataward.service.approval_standing import checked_events


def read_owner_history(conn: Connection, public_key_b64: str) -> OwnerHistory:
    """The ledger's hand-overs of bots and the origins of keys (``dataward.access.sides.OwnerHistory``)."""
    events = checked_events(conn, public_key_b64, OWNERSHIP_TYPES, consequence="the side a bot acted for is unknown")
    return owner_history(events)


def submitter_earlier_owners(history: OwnerHistory, c: Any) -> frozenset[str]:
    """The owners contribution ``c``'s submitting bot had while the key it was submitted with was live, other
    than its owner at submission (``submitter_owner``): empty for a human or a bot never handed on."""
    if c.submitter_owner is None:
        return frozenset()
    return history.owners_while(c.submitted_by, c.key_id, c.created_at) - {c.submitter_owner}


__all__ = ["read_owner_history", "submitter_earlier_owners"]
