"""Which earlier batches of the same sender a gate run judges a batch with, and the joint scan's inputs
(the judging rules are ``dataward.gates.earlier_batches``).

A sender is the submitting principal and, for a service principal, its accountable owner as it was at
submission and every owner it had while the key it was submitted with was live (``sender_of``): a person's
bots and the person are one sender, so a poison split across two bots of one owner is judged as one, and
so is one split across her bot and a bot she handed on whose admin-issued key she kept. Earlier batches
are read from the signed ledger's rows, not the catalog's: a catalog row edited to name another submitter
would otherwise take a batch out of the joint scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataward.access.sides import OwnerHistory
from dataward.domain.idarrays import without_records
from dataward.domain.schema import RECORD_ID, Schema
from dataward.ledger.events import format_time, parse_time
from dataward.service.bot_owners import read_owner_history, submitter_earlier_owners
from dataward.service.guard import SignedCheck
from dataward.service.recordstore import load_records, read_ids_and_rows

STATUSES = ("submitted", "gated", "merged", "rejected", "quarantined")
"""The earlier batches judged with a new one: pending and merged ones (whose records the baseline may hold
by now), and rejected and quarantined ones too (``SETTLED``): they never reach training, but their records
still tell whether the new batch carries the pattern they were caught with. A withdrawn batch is the
sender's own retraction, before any merge."""
SETTLED = ("rejected", "quarantined")
"""Earlier batches a person already decided against: poison the joint scan finds in them alone asks for
nothing more (``earlier_batches.joined``)."""
MAX_RECORDS = 50_000
"""The most earlier records a joint scan takes (the smallest batches first, see ``earlier_refs``): the second
scan costs about what the first does for a batch of that size."""
MIN_BASELINE = 50
"""Fewer trusted records than this once the sender's own are taken out, and no joint scan is run: there is
nothing left to judge against (the report says so)."""


@dataclass(frozen=True)
class EarlierBatches:
    """The sender's earlier records a joint scan judges with a batch: record id -> the contribution that
    sent it (``DATASET#N``), and those of their records the batch does not hold itself (canonical columns and
    ``row``, numbered after the batch's)."""

    refs: dict[str, str]
    """Every record of the sender's earlier batches taken out of the baseline, those the batch sends again
    included."""
    table: pa.Table | None
    """None when no joint scan is run: fewer than ``MIN_BASELINE`` trusted records are not the sender's."""
    baseline: pa.Table | None = None
    """The trusted baseline without the sender's records (``refs``): what the joint scan judges against; None
    with ``table``."""
    settled: frozenset[str] = frozenset()
    """The contributions of ``refs`` already rejected or quarantined (``SETTLED``)."""


def sender_of(history: OwnerHistory, c: Any) -> frozenset[str]:
    """Who sent contribution ``c`` (a contributions row): its submitter and, for a service principal, its
    owner at submission and every owner it had while the key it was submitted with was live. A key an admin
    issued for a bot keeps working when the bot is handed on, so its former owner may still hold it and send
    as the bot (docs/access.md, "Offboarding"): counted only by the owner at submission, the second half of
    her split poison, sent through a bot she handed on, was judged alone."""
    earlier = submitter_earlier_owners(history, c)
    return frozenset({c.submitted_by, c.submitter_owner, *earlier} - {None})


def earlier_refs(ward: Any, conn: Any, ds: Any, c: Any, days: int) -> tuple[dict[str, str], frozenset[str]]:
    """Record id -> contribution for the records of the sender's batches of dataset row ``ds`` sent in the
    ``days`` before contribution row ``c`` (numbered before it, of ``STATUSES``), at most ``MAX_RECORDS``
    of them, the smallest batches first; and which of those batches are ``SETTLED``. Empty when ``days``
    is 0."""
    if days <= 0:
        return {}, frozenset()
    since = format_time(parse_time(c.created_at) - timedelta(days=days))
    window = [
        r
        for r in SignedCheck(ward, conn, doing="gate").signed("contributions")
        if r["dataset_id"] == ds.id
        and r["id"] != c.id
        and r["status"] in STATUSES
        and int(r["number"]) < int(c.number)
        and r["created_at"] >= since
        and r.get("added_object")
    ]
    if not window:
        return {}, frozenset()
    # Who owned which bot when is read only when there is a batch to place (the ledger's hand-overs).
    history = read_owner_history(conn, ward.signer.public_key_b64)
    senders = sender_of(history, c)
    found = [
        r
        for r in window
        if sender_of(history, SimpleNamespace(**{"key_id": None, "submitter_owner": None, **r})) & senders
    ]
    refs: dict[str, str] = {}
    settled: set[str] = set()
    # The smallest batches first (the newest of equal size first), and a batch that does not fit is passed
    # over, not the end: a split poison travels in small batches, and a sender who sent one large clean
    # batch between two of them must not push the first out of the joint scan with it.
    for r in sorted(found, key=lambda r: (int(r.get("added_count") or 0), -int(r["number"]))):
        ids, _ = read_ids_and_rows(ward.store, r["added_object"])
        if len(refs) + len(ids) > MAX_RECORDS:
            continue
        ref = f"{ds.name}#{r['number']}"
        for i in ids:
            refs.setdefault(i, ref)
        if r["status"] in SETTLED:
            settled.add(ref)
    return refs, frozenset(settled)


def earlier_batches(
    ward: Any, conn: Any, ds: Any, c: Any, days: int, batch: pa.Table, schema: Schema, *, baseline: pa.Table
) -> EarlierBatches | None:
    """The sender's earlier batches for contribution row ``c`` (see ``earlier_refs``); None when there are
    none. Their records are read only when ``baseline`` keeps ``MIN_BASELINE`` records without them, and
    the records ``batch`` holds itself are not read again (they are scanned once, as the batch's)."""
    refs, settled = earlier_refs(ward, conn, ds, c, days)
    if not refs:
        return None
    # Records of an earlier batch that this one sends again stay in ``refs``: they leave the baseline like
    # the rest. Dropped from it, a sender who re-sent his first batch's carriers with the next kept those
    # carriers in the baseline, vouching for the new ones, and the joint scan passed the split poison.
    kept = without_records(baseline, refs)
    if kept.num_rows < MIN_BASELINE:
        return EarlierBatches(refs, None, settled=settled)
    held = set(batch.column(RECORD_ID).to_pylist())
    table = load_records(conn, ward.store, [i for i in refs if i not in held], schema)
    first = int(pc.max(batch.column("row")).as_py()) + 1
    table = table.append_column("row", pa.array(range(first, first + table.num_rows), pa.int64()))
    return EarlierBatches(refs, table.select(batch.column_names), baseline=kept, settled=settled)


def joint_inputs(batch: pa.Table, earlier: EarlierBatches, ref: str) -> tuple[pa.Table, pa.Table, dict[str, list[str]]]:
    """``(baseline, contribution, groups)`` of the joint scan: the baseline without the sender's earlier
    records (a sender never vouches for his own next batch), the batch followed by them, and each record's
    contribution."""
    assert earlier.table is not None and earlier.baseline is not None
    contribution = pa.concat_tables([batch, earlier.table])
    groups = {
        "contribution": [ref] * batch.num_rows + [earlier.refs[i] for i in earlier.table.column(RECORD_ID).to_pylist()]
    }
    return earlier.baseline, contribution, groups


__all__ = [
    "MAX_RECORDS",
    "MIN_BASELINE",
    "SETTLED",
    "STATUSES",
    "EarlierBatches",
    "earlier_batches",
    "earlier_refs",
    "joint_inputs",
    "sender_of",
]
