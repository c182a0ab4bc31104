"""What a merge leaves out, read from the signed ledger.

A merge holds back: the merged contribution's own records not accepted in review; any record of the
dataset rejected in review or with its contribution (ids are content hashes, so re-sending a rejected
record must not sneak it back in); records flagged and still pending review, or rejected, in another
contribution of the *same side* (the submitter, its owner then or now, another bot of that owner), in
any dataset: the side's word on those records is awaited or was "no", and a copy under another of its
names is not a second opinion; and every record of a quarantined contribution of any dataset.

The review items, the contributions' status, dataset, submitter and id lists are taken from the signed
ledger's changes, never from the catalog alone: a review item set to ``accepted`` in the catalog
behind the ward's back would otherwise let a rejected record through the merge.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Connection

from dataward.access.sides import same_side, side_of
from dataward.service.guard import owners_now, refuse_unheld_quarantines, signed_review_items, signed_rows
from dataward.service.removal_list import listed_removals


@dataclasses.dataclass(frozen=True)
class SideHold:
    """Records held back because another contribution of the merged one's side flagged them."""

    contribution: str
    """``DATASET#N`` of that contribution."""
    dataset_id: str
    status: str
    """Its items' review status: ``pending`` or ``rejected``."""
    records: frozenset[str]


@dataclasses.dataclass(frozen=True)
class HeldBasis:
    """What decides which records a merge leaves out; compared before and after the merge's object
    work (a review decision in between makes the merge run again)."""

    held: frozenset[str]
    """Ids held back by review: the contribution's own, the dataset's rejected, the side's flagged."""
    quarantined: tuple[str, ...]
    """The id lists (object digests) of every quarantined contribution of the ward."""
    side: tuple[SideHold, ...]
    """The part of ``held`` the side's other contributions account for, for ``held_back_by``."""
    quarantined_in: tuple[tuple[str, str | None], ...] = ()
    """``(id list, dataset id)`` of each of ``quarantined``, with the dataset its records belong to
    (``None`` when neither the signed rows nor the list of removals say): near copies of them, the same
    once normalized (``service.near_copies``), are held back too, compared in that dataset's encoding."""


def held_basis(ward: Any, conn: Connection, dataset_id: str, contribution_id: str) -> HeldBasis:
    """The :class:`HeldBasis` of merging contribution ``contribution_id`` of dataset ``dataset_id``, from
    the signed ledger (its chain checked, see ``guard.signed_rows``)."""
    contribs = {r["id"]: r for r in signed_rows(ward, conn, "contributions")}
    names = {r["id"]: r.get("name") for r in signed_rows(ward, conn, "datasets")}
    items = signed_review_items(ward, conn)
    me = contribs.get(contribution_id, {})
    flagged = {i.contribution for i in items if i.contribution != contribution_id and i.status != "accepted"}
    submitters = {str(contribs[c]["submitted_by"]) for c in flagged if c in contribs}
    owners = owners_now(ward, conn, submitters | {str(me.get("submitted_by"))})

    def side(row: dict[str, Any]) -> frozenset[str]:
        who = str(row.get("submitted_by"))
        return side_of(who, row.get("submitter_owner"), owners.get(who))

    mine = side(me) if me else frozenset()
    held: set[str] = set()
    by_side: dict[tuple[str, str], set[str]] = {}
    for i in items:
        row = contribs.get(i.contribution, {})
        if i.contribution == contribution_id:
            if i.status != "accepted":
                held.add(i.record)
        elif (i.status == "pending" or i.rejected_in_review or i.rejected_with_contribution) and (
            row and mine and same_side(side(row), mine)
        ):
            # A withdrawal or a quarantine also closes items as rejected: a withdrawal judged nothing,
            # and a quarantine holds every record of its contribution already (``quarantined``).
            held.add(i.record)
            by_side.setdefault((i.contribution, i.status), set()).add(i.record)
        elif i.status == "rejected" and row.get("dataset_id") == dataset_id:
            held.add(i.record)
    holds = tuple(
        SideHold(
            f"{names.get(contribs[cid]['dataset_id'], contribs[cid]['dataset_id'])}#{contribs[cid]['number']}",
            str(contribs[cid]["dataset_id"]),
            status,
            frozenset(found),
        )
        for (cid, status), found in sorted(by_side.items())
    )
    # Quarantined as signed, or as the ward's list of removals holds it (the catalog predates it, or even
    # the contribution: the list keeps the id list of the records it added).
    listed = listed_removals(conn)
    # One whose id list the store lacks (deleted, or an older store's backup put back) is refused, never
    # taken for holding nothing back; one left is of another encoding than this dataset's.
    doing = f"merge into {names.get(dataset_id, dataset_id)}"
    refuse_unheld_quarantines(conn, ward.store, listed, dataset_id, doing, known=set(contribs))
    located = {
        (str(r["added_object"]), str(r["dataset_id"]) if r.get("dataset_id") else None)
        for r in contribs.values()
        if (r.get("status") == "quarantined" or r["id"] in listed.quarantined) and r.get("added_object")
    } | {
        (d, listed.quarantined_in.get(cid))
        for cid, d in listed.quarantined_lists.items()
        if cid not in contribs and ward.store.exists(d)
    }
    quarantined = {d for d, _ in located} | {d for d in listed.quarantined_lists.values() if ward.store.exists(d)}
    return HeldBasis(
        frozenset(held), tuple(sorted(quarantined)), holds, tuple(sorted(located, key=lambda p: (p[0], p[1] or "")))
    )


__all__ = ["HeldBasis", "SideHold", "held_basis"]
