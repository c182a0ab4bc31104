"""Sides: who answers for a contribution, and when another contribution is independent of it.

Separation of duties treats a service principal and its accountable human as one side (nobody
approves their own bot's work). The same holds for records: a suspect contribution (quarantined, or
rejected as a unit) cannot be vouched for by a copy of its records that its own side sent, under the
owner's name or another of the owner's bots, because that copy is the same decision-maker's word twice.
"""

from __future__ import annotations

from dataclasses import dataclass


def side_of(submitter_id: str, owner_then: str | None, owner_now: str | None) -> frozenset[str]:
    """The principals who answer for work submitted by ``submitter_id``: itself, and when it is a service
    principal its owner when the work was submitted and its owner now (a bot handed on keeps both)."""
    return frozenset({submitter_id} | {o for o in (owner_then, owner_now) if o is not None})


def same_side(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two sides (:func:`side_of`) share a principal: the same submitter, a bot and its owner
    (then or now), or two bots of one owner."""
    return bool(a & b)


@dataclass(frozen=True)
class Origin:
    """Where a contribution came from, as far as independence is concerned. ``number`` orders the
    contributions of one dataset (a later contribution has a higher one)."""

    contribution_id: str
    dataset_id: str
    number: int
    side: frozenset[str]
    source_uri: str | None


def vouches(copy: Origin, suspect: Origin) -> bool:
    """Whether ``copy`` (a contribution that added a record and is not itself suspect) vouches for that
    record although the contribution ``suspect`` (quarantined, or rejected) added it too.

    * A contribution of the same dataset submitted before the suspect one existed vouches whatever its
      side: the record was there first, the suspect contribution re-sent it (what the quarantine's
      rollback version keeps).
    * Otherwise only an independent one: another side (:func:`same_side`) and another declared source
      URI. A copy by the submitter, its owner or another bot of that owner, or from the same source, is
      the suspect contribution's records again, not a second opinion on them.
    """
    if copy.dataset_id == suspect.dataset_id and copy.number < suspect.number:
        return True
    if same_side(copy.side, suspect.side):
        return False
    return copy.source_uri != suspect.source_uri


__all__ = ["Origin", "same_side", "side_of", "vouches"]
