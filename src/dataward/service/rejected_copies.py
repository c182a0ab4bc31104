"""Records a transformation copied or made from rejected records: barred from training like them.

A reviewer's rejection bars a record in its dataset, and a contribution rejected as a unit bars its
flagged records in every dataset unless an independent contribution vouches for them
(``guard.barred_records``). A transformation's output contribution is not such a voucher: it is
declared by whoever ran the step, under the reserved ``transformation:NAME`` source, and its records
are the step's input records, or records made from them. Counted as an ordinary contribution, it
vouched for the very records it copied: a third principal's copy of a version holding a rejected
batch's records into another dataset was promoted and served them, and a copy or an augmentation of
records rejected in review was served there too.

So, as for a quarantine (``guard._made_from_quarantined``), records a step copied or made (its record
lineage followed transitively) from rejected records are barred in every version that holds them,
unless an ordinary contribution of that version added them itself (which the usual rules then judge).
Records rejected in review are followed from any dataset: a step that copies the same content out of
another dataset carries it all the same, and an owner who wants it may contribute it in their own
name, to be gated and vouched for as any contribution.

This runs on every guarded read of a version holding a step's output (``guard.barred_records``). The
steps' lineage, read from the store once every transformation row is checked against the signed ledger,
and what they made from the rejected records, are kept per ward for as long as the ledger's head is the
same event (:func:`_rejected_reasons`, ``ledger_kept``): a ward of 200 steps spent 3 ms of each 8 ms
read checking and reading them again (docs/benchmarks.md). Recording a step, as every other event,
moves the head, so the next read checks and reads them afresh.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.tables import transformations
from dataward.provenance.taint import Step, derived_from
from dataward.service.ledger_kept import LedgerKept
from dataward.service.rows import contribution_ref

REVIEW_REASON = "made by a transformation from records rejected in review"
"""Why a record a step copied or made from records a reviewer rejected is barred."""


def unit_reason(contribution_ref: str) -> str:
    """Why a record a step copied or made from the flagged records of a contribution rejected as a
    unit (``DATASET#N``) is barred."""
    return f"made by a transformation from records flagged in rejected contribution {contribution_ref}"


def step_outputs(conn: Connection, ledger: tuple[str, str] | None) -> set[str]:
    """The output contributions of every recorded transformation: those of the signed ledger (a step
    row deleted from the catalog would make its output pass for an ordinary contribution) and the
    catalog's (a row forged there only makes its contribution vouch for less)."""
    from dataward.service.guard import _signed

    found = set(conn.execute(select(transformations.c.contribution_id)).scalars())
    if ledger is not None:
        found |= {str(r.get("contribution_id")) for r in _signed(conn, *ledger).tables["transformations"].values()}
    return found


def made_from_rejected(
    conn: Connection,
    store: Any,
    members: AbstractSet[str],
    listed: list[Any],
    held: set[tuple[str, str]],
    ledger: tuple[str, str] | None,
    units: Mapping[str, Iterable[str]],
    rejected: Iterable[str],
    what: str,
) -> dict[str, str]:
    """Records of a version (``members``, made of the contribution rows ``listed``) that transformations
    copied or made from rejected records, and that no ordinary contribution of the version added
    itself, each with the reason.

    ``units``: the flagged records of each contribution rejected as a unit, by contribution id, of any
    dataset; ``rejected``: every record a reviewer rejected, in any dataset. ``held``: (contribution,
    record) pairs still held for review (they vouch for nothing). With ``ledger``, the steps (lineage,
    inputs, output contributions) are checked against the signed ledger, a deleted one included
    (``IntegrityViolation``), as the quarantine's check does. ``what`` names the version in a refusal."""
    from dataward.service.guard import _among, _quarantined_ids
    from dataward.service.recordstore import read_ids

    review = set(rejected)
    if not units and not review:
        return {}
    outputs = step_outputs(conn, ledger)
    if not outputs & {c.id for c in listed}:
        return {}  # only a step's output contribution can have brought them in unvouched
    reasons = _rejected_reasons(conn, store, ledger, units, review, what)
    suspect = set(_among(members, reasons))
    if not suspect:
        return {}
    quarantined = _quarantined_ids(conn, ledger)
    vouched: set[str] = set()
    for c in listed:
        if c.status == "quarantined" or c.id in quarantined:
            continue
        added = {r for r in read_ids(store, c.added_object) if (c.id, r) not in held}
        # A step's output vouches for nothing it copied or made from rejected records.
        vouched |= added - reasons.keys() if c.id in outputs else added
    return {rid: reasons[rid] for rid in sorted(suspect - vouched)}


@dataclass
class _Kept:
    """One ward's steps as read at one ledger head (``ledger_kept``), and the reasons derived from them
    so far, by the rejected records they were derived from."""

    steps: list[Step]
    reasons: dict[tuple[Any, ...], dict[str, str]] = field(default_factory=dict)


_kept: LedgerKept[_Kept] = LedgerKept()
"""Per ward (its public key, id, catalog and store): the steps read at its ledger's latest head."""
_reasons_lock = threading.Lock()
_KEPT_DERIVATIONS = 8
"""Reasons kept per ward and head: the rejected records are the ledger's too, so one set is the rule."""


def _rejected_reasons(
    conn: Connection,
    store: Any,
    ledger: tuple[str, str] | None,
    units: Mapping[str, Iterable[str]],
    review: set[str],
    what: str,
) -> dict[str, str]:
    """Every record rejected (``units``, ``review``) or made from one by a recorded step, with its reason.

    The steps are read with each transformation row checked against the signed ledger (a step the
    catalog lost, or one whose lineage or inputs were changed there, refused with ``IntegrityViolation``).
    With ``ledger``, what is read and derived is kept for the ward while the ledger's head is the same
    event (``ledger_kept``): the rows checked are those the signed ledger holds at that head and the
    lineage objects are content addressed, so a later read would read the same until an event is
    added. A transformation row changed in the catalog alone after that is then not refused here (the
    steps used remain the signed ones, so nothing more is served); ``verify`` reports it."""
    from dataward.service.derived import step_rows, transformation_steps
    from dataward.service.guard import SignedCheck

    if ledger is None:
        return _derive(conn, transformation_steps(store, conn, rows=step_rows(conn, None, what)), units, review)

    def read_steps(_state: Any) -> _Kept:
        check = SignedCheck(None, conn, doing="serve", ledger=ledger)
        return _Kept(transformation_steps(store, conn, rows=step_rows(conn, check, what)))

    kept = _kept.get(conn, store, ledger, read_steps)
    key = (tuple(sorted((cid, frozenset(seeds)) for cid, seeds in units.items())), frozenset(review))
    with _reasons_lock:
        found = kept.reasons.get(key)
    if found is None:
        found = _derive(conn, kept.steps, units, review)
        with _reasons_lock:
            if len(kept.reasons) >= _KEPT_DERIVATIONS:
                kept.reasons.clear()
            kept.reasons[key] = found
    return found


def _derive(
    conn: Connection, steps: list[Step], units: Mapping[str, Iterable[str]], review: set[str]
) -> dict[str, str]:
    """The rejected records and those ``steps`` made from them, transitively, each with its reason."""
    reasons: dict[str, str] = {}
    for cid, seeds in sorted(units.items()):
        group = set(seeds)
        for rid in sorted(group | set(derived_from(group, steps))):
            reasons.setdefault(rid, unit_reason(contribution_ref(conn, cid)))
    if review:
        for rid in sorted(review | set(derived_from(review, steps))):
            reasons.setdefault(rid, REVIEW_REASON)
    return reasons


def forget_kept() -> None:
    """Drop what every ward kept (a benchmark's cold read)."""
    _kept.forget()


__all__ = ["REVIEW_REASON", "forget_kept", "made_from_rejected", "step_outputs", "unit_reason"]
