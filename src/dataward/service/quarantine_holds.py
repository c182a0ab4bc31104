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
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.batched import rows_in
from dataward.catalog.projection import RowChange
from dataward.catalog.tables import contributions, quarantine
from dataward.domain.errors import Conflict
from dataward.service.core import closed_item
from dataward.service.ledger_kept import LedgerKept
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
    kept = _kept.get(conn, ward.store, (ward.signer.public_key_b64, ward.ward_id), _Lists.of)
    lists = dict(kept.signed)
    # The list of removals is a file beside the catalog, not the ledger: read on each call (a stat while
    # it is unchanged), so a quarantine it holds and the catalog lost is found whatever was kept.
    listed = listed_removals(conn)
    located = listed.quarantined_in
    for cid, digest in listed.quarantined_lists.items():
        if cid not in lists and ward.store.exists(digest):
            lists[cid] = (digest, located.get(cid))
    found: dict[str, Holder] = {}
    for cid, (digest, dataset_id) in sorted(lists.items()):
        hit = wanted.intersection(kept.ids(ward.store, digest)) - found.keys()
        if hit:
            # Named from the catalog on each call, never kept: what a reader is shown is what it holds now.
            holder = Holder(cid, dataset_id, contribution_ref(conn, cid))
            found.update(dict.fromkeys(hit, holder))
    return found


@dataclasses.dataclass
class _Lists:
    """The quarantined contributions at one ledger head (``ledger_kept``): those the signed ledger holds,
    each with its id list and dataset, and the record ids of every id list read at that head so far.

    Kept because ``quarantined_holders`` runs on every gate recording and every ``review list``, and
    read each quarantined contribution's id list every time. Which contributions are quarantined is the
    signed ledger's word at that head, and an id list is content addressed, so a later call at the same
    head would read the same; any event (a new quarantine) moves the head and the next call reads afresh.
    A contribution row edited in the catalog alone changes nothing here, kept or not: its status and id
    list are taken from the signed ledger (``verify`` reports the edit). An id list deleted or altered in
    the store after it was read is not refused here until the next event, as ``rejected_copies`` does
    with lineage: the ids kept are those it was written with, so the hold is the same (``verify`` reports
    the object). Each ``review list`` in a long-lived process (a server, the Python API) at an unchanged
    head gains; a gate recording always follows events of its own, so it reads the lists afresh."""

    signed: dict[str, tuple[str, str | None]]
    _ids: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @classmethod
    def of(cls, state: Any) -> _Lists:
        """The quarantined contributions of the signed ledger's ``state`` (``guard._signed``)."""
        return cls(
            {
                str(r["id"]): (str(r["added_object"]), str(r["dataset_id"]) if r.get("dataset_id") else None)
                for r in state.tables["contributions"].values()
                if r.get("status") == "quarantined" and r.get("added_object")
            }
        )

    def ids(self, store: Any, digest: str) -> frozenset[str]:
        """The record ids of id list ``digest``, read from ``store`` (which re-hashes it) the first time."""
        with self._lock:
            found = self._ids.get(digest)
        if found is None:
            found = frozenset(read_ids(store, digest))
            with self._lock:
                self._ids[digest] = found
        return found


_kept: LedgerKept[_Lists] = LedgerKept()
"""Per ward (its public key, id, catalog and store): its quarantined contributions at its latest head."""


def forget_kept() -> None:
    """Drop what every ward kept (a benchmark's cold read)."""
    _kept.forget()


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
    "forget_kept",
    "held_items",
    "quarantined_holders",
    "refuse_accepting_held",
]
