"""Review items on records a quarantine already holds back: closed by the event that makes the hold.

A quarantine is never lifted, and every merge leaves out every record a quarantined contribution of the
ward added, whoever sends it again and in whichever contribution (``held_back.held_basis``). A review
item on such a record can change nothing a merge adds: accepting it would not let the record in, and
rejecting it keeps out what is out already. Left pending, it only stood between a merge and the records
of its contribution that can still reach a version: a trial's reviewer worked through 59 such items, the
flagged records of a batch sent again after its first copy was quarantined, before a merge that could
add nothing.

So such an item is closed as ``rejected`` inside the signed event that makes the hold, with the cause in
its ``decision_reason``:

* a quarantine closes the pending items of *other* contributions (any dataset) on the records it holds,
  as it already closes its own contribution's (``core.close_pending_reviews``);
* a gate run opens the item of a flagged record that a quarantine holds already as closed, never pending.

Closing never accepts anything, never rewrites an event, and is no reviewer's decision (the item has no
``review.*`` event, so no revoked key can void it into ``pending`` again). Only a quarantine's hold is
used: the other holds a merge applies can end (an item pending in another contribution of the same side
gets decided, a bot's owner changes and with it its side, a rejection is voided), so their items stay
for a reviewer, or a record could reach a version that no reviewer looked at. Exact copies only: a near
copy (the same text once normalized) stays in the queue, and the merge holds it back all the same.

A quarantine and a gate's recording are write transactions, one at a time, so neither misses the items
the other made. A pending item left from before
(a ward older than this, or a catalog restored from a backup older than the quarantine, which the ward's
list of removals still holds) is marked in ``review list`` (:func:`held_items`), and accepting it is refused
(:func:`refuse_accepting_held`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.batched import rows_in
from dataward.catalog.projection import RowChange
from dataward.catalog.tables import contributions, quarantine
from dataward.domain.errors import Conflict
from dataward.service.core import closed_item
from dataward.service.guard import signed_rows
from dataward.service.recordstore import read_ids
from dataward.service.removal_list import listed_removals
from dataward.service.rows import contribution_ref

HELD_BACK = "held back: "
"""How the ``decision_reason`` of an item closed so starts (what ``gate run`` counts them by)."""


@dataclasses.dataclass(frozen=True)
class Holder:
    """The quarantined contribution that holds a record back."""

    contribution_id: str
    dataset_id: str | None
    """Its dataset (None when neither the signed rows nor the list of removals say)."""
    ref: str
    """``DATASET#N``, or its id when the catalog lacks it."""


def quarantined_holders(ward: Any, conn: Connection, record_ids: Iterable[str]) -> dict[str, Holder]:
    """Each of ``record_ids`` that a quarantined contribution of the ward added, with that contribution
    (the first by id when several did): quarantined as the signed ledger has it, or as the ward's list of
    removals holds it (a restored catalog that predates the quarantine, or the contribution)."""
    wanted = set(record_ids)
    if not wanted:
        return {}
    lists: dict[str, tuple[str, str | None]] = {}
    for r in signed_rows(ward, conn, "contributions"):
        if r.get("status") == "quarantined" and r.get("added_object"):
            lists[str(r["id"])] = (str(r["added_object"]), str(r["dataset_id"]) if r.get("dataset_id") else None)
    listed = listed_removals(conn)
    located = listed.quarantined_in
    for cid, digest in listed.quarantined_lists.items():
        if cid not in lists and ward.store.exists(digest):
            lists[cid] = (digest, located.get(cid))
    found: dict[str, Holder] = {}
    for cid, (digest, dataset_id) in sorted(lists.items()):
        hit = wanted.intersection(read_ids(ward.store, digest)) - found.keys()
        if hit:
            holder = Holder(cid, dataset_id, contribution_ref(conn, cid))
            found.update(dict.fromkeys(hit, holder))
    return found


def closing_reason(holder: Holder, item_dataset_id: str, why: str | None = None) -> str:
    """The ``decision_reason`` of an item closed because ``holder`` holds its record. The quarantined
    contribution (and the quarantine's reason, ``why``) are named only to the item's own dataset: a
    reader of another dataset is not told what was quarantined where."""
    if holder.dataset_id == item_dataset_id:
        cause = f"quarantined contribution {holder.ref}" + (f" ({why})" if why else "")
    else:
        cause = "a contribution quarantined in another dataset"
    return f"{HELD_BACK}the record is in {cause}, and a quarantine is never lifted; closed without review"


def close_held_items(
    uc: Any, holder: Holder, added: Iterable[str], *, why: str, skip: Iterable[str] = ()
) -> list[RowChange]:
    """Changes closing, as ``rejected``, the pending review items of other contributions on the records
    ``added`` that the quarantine of ``holder`` now holds back; the contributions of ``skip`` (those the
    same quarantine closes as a unit, ``core.close_pending_reviews``) are left to it."""
    ids = sorted(set(added))
    if not ids:
        return []
    left_out = {holder.contribution_id, *skip}
    found = rows_in(uc.conn, select(quarantine).where(quarantine.c.status == "pending"), quarantine.c.record_id, ids)
    found = [q for q in found if q.contribution_id not in left_out]
    if not found:
        return []
    of = {
        r.id: r.dataset_id
        for r in rows_in(
            uc.conn,
            select(contributions.c.id, contributions.c.dataset_id),
            contributions.c.id,
            sorted({q.contribution_id for q in found}),
        )
    }
    return [
        closed_item(uc, q.id, closing_reason(holder, of.get(q.contribution_id, ""), why))
        for q in sorted(found, key=lambda q: q.id)
    ]


def held_items(ward: Any, conn: Connection, items: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """For each pending item of ``items`` (``quarantine`` rows) whose record a quarantine of *another*
    contribution holds back, ``{"why": "quarantined", "contribution": "DATASET#N" | None}`` by item id
    (the contribution named only when it is of the item's dataset, as ``closing_reason`` does)."""
    pending = [q for q in items if q.status == "pending"]
    holders = quarantined_holders(ward, conn, {q.record_id for q in pending})
    if not holders:
        return {}
    dataset_of = {
        r.id: r.dataset_id
        for r in rows_in(
            conn,
            select(contributions.c.id, contributions.c.dataset_id),
            contributions.c.id,
            sorted({q.contribution_id for q in pending}),
        )
    }
    marks: dict[str, dict[str, Any]] = {}
    for q in pending:
        holder = holders.get(q.record_id)
        if holder is None or holder.contribution_id == q.contribution_id:
            continue
        same = holder.dataset_id == dataset_of.get(q.contribution_id)
        marks[q.id] = {"why": "quarantined", "contribution": holder.ref if same else None}
    return marks


def refuse_accepting_held(marks: Mapping[str, dict[str, Any]], items: Iterable[Any]) -> None:
    """Refuse (``Conflict``) accepting review items whose record a quarantine holds back (``marks``, as
    :func:`held_items` gives them): the acceptance would read as letting the record in, which no decision
    can. Rejecting them is allowed: it records what the quarantine does already and clears the queue."""
    held = [q.id for q in items if q.id in marks]
    if not held:
        return
    named = {m["contribution"] for m in marks.values() if m["contribution"]}
    by = f"quarantine of {', '.join(sorted(named))}" if named else "a quarantine"
    raise Conflict(
        f"{len(held)} review item(s) hold records held back by {by}: a quarantine is never lifted, so accepting "
        f"them could not let the records in ({', '.join(held[:5])}{', ...' if len(held) > 5 else ''})",
        hint=f"reject them instead: dataward review reject {' '.join(held[:5])} --reason 'held back by {by}'",
        items=held,
    )


__all__ = [
    "HELD_BACK",
    "Holder",
    "close_held_items",
    "closing_reason",
    "held_items",
    "quarantined_holders",
    "refuse_accepting_held",
]
