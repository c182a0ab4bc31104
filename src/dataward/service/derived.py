"""Records made from suspect records by transformations, for containment and forward trace.

A quarantine must follow a poisoned record through every step that made records from it (a relabel,
an augmentation, a dedup into another dataset): those derived records are held out too, in whatever
dataset the step wrote them to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from dataward.catalog.tables import contributions, transformations, versions
from dataward.provenance.taint import Step, derived_from
from dataward.service.holders import held_by_any
from dataward.service.idsets import id_set
from dataward.service.recordstore import parquet_to_table
from dataward.service.transformations import read_lineage
from dataward.store.base import ObjectStore

if TYPE_CHECKING:
    from dataward.service.guard import SignedCheck

_lineages: dict[str, list[dict[str, Any]]] = {}
_LINEAGE_CACHE = 4096
"""Parsed lineage objects kept per process (they are immutable: named by their content hash)."""


def lineage_of(store: ObjectStore, digest: str | None) -> list[dict[str, Any]]:
    """The rows ``{record_id, parent_id, note}`` of a lineage object, parsed once per process."""
    if not digest:
        return []
    found = _lineages.get(digest)
    if found is None:
        found = read_lineage(parquet_to_table(store.get(digest)))
        if len(_lineages) >= _LINEAGE_CACHE:
            _lineages.clear()
        _lineages[digest] = found
    return found


@dataclass(frozen=True)
class LineageIndex:
    """A lineage object's rows grouped by output record and by parent record, for walking it."""

    by_child: dict[str, list[dict[str, Any]]]
    by_parent: dict[str, list[dict[str, Any]]]


_indexes: dict[str, LineageIndex] = {}
_EMPTY_INDEX = LineageIndex({}, {})


def lineage_index(store: ObjectStore, digest: str | None) -> LineageIndex:
    """:func:`lineage_of` grouped both ways, built once per process and object."""
    if not digest:
        return _EMPTY_INDEX
    found = _indexes.get(digest)
    if found is None:
        by_child: dict[str, list[dict[str, Any]]] = {}
        by_parent: dict[str, list[dict[str, Any]]] = {}
        for row in lineage_of(store, digest):
            by_child.setdefault(row["record_id"], []).append(row)
            by_parent.setdefault(row["parent_id"], []).append(row)
        found = LineageIndex(by_child, by_parent)
        if len(_indexes) >= _LINEAGE_CACHE:
            _indexes.clear()
        _indexes[digest] = found
    return found


def clear() -> None:
    """Forget the parsed lineage (benchmarks measure a cold process with it)."""
    _lineages.clear()
    _indexes.clear()


def step_rows(conn: Connection, check: SignedCheck | None = None, what: str = "what transformations made") -> list[Any]:
    """Every transformation row of the catalog, oldest first.

    With ``check`` (a quarantine's blast radius, the loader's and promotion's refusal, a trace), each
    row is checked against the signed ledger and one the ledger recorded that the catalog lacks is
    refused (``IntegrityViolation``, see ``SignedCheck.whole``): a step's lineage cleared, its inputs
    pointed elsewhere or its row deleted behind the ledger's back would otherwise let what it made from
    a quarantined record escape the quarantine. Without, the rows as they stand (for information).
    ``what`` names what a refusal refuses (``wine@v2``, ``wine#1``)."""
    found = conn.execute(select(transformations).order_by(transformations.c.created_at, transformations.c.id)).all()
    return found if check is None else check.whole("transformations", found, what)


def transformation_steps(
    store: ObjectStore, conn: Connection, only: set[str] | None = None, *, rows: Sequence[Any] | None = None
) -> list[Step]:
    """Every recorded transformation's record lineage, oldest first (only the steps whose output
    contribution is in ``only``, when given: the others' lineage is not read). ``rows``: the
    transformation rows to read (``step_rows``, checked), when the caller has them; else the catalog's."""
    return [
        Step(contribution_id=t.contribution_id, dataset_id=t.dataset_id, links=lineage_of(store, t.lineage_object))
        for t in (step_rows(conn) if rows is None else rows)
        if only is None or t.contribution_id in only
    ]


@dataclass
class Taint:
    """What a set of suspect contributions touched: the records they added, and every record made from
    those by a transformation (with the steps' output contributions that carry them)."""

    seeds: set[str]
    derived: dict[str, set[str]]
    step_contributions: set[str] = field(default_factory=set)
    """Output contributions of transformation steps (their additions vouch for nothing suspect)."""
    copied_by: set[str] = field(default_factory=set)
    """Step contributions whose output holds a suspect record as it was (a dedup's survivor)."""

    @property
    def records(self) -> set[str]:
        """Seeds and derived records together."""
        return self.seeds | set(self.derived)

    def carriers(self) -> set[str]:
        """The step contributions that carry a suspect record: one made from it, or a copy of it."""
        return self.copied_by | {c for cs in self.derived.values() for c in cs}


def taint_of(
    store: ObjectStore,
    conn: Connection,
    suspects: Iterable[Any],
    *,
    complete: bool = True,
    reading: set[str] | None = None,
    copies: bool = True,
    check: SignedCheck | None = None,
    rows: Sequence[Any] | None = None,
    what: str = "what transformations made",
) -> Taint:
    """The taint of the contribution rows ``suspects``: their added records and what was made of them.

    With ``complete=False`` (for ``trace``) only the steps that read a version holding one of them
    (or the output of such a step) are followed, and the seeds are only the records those steps read
    or wrote: enough to find the derived records and the steps that carry them, without listing every
    record added. ``reading``: ``steps_reading`` of the suspects, when the caller has it already.

    ``check``: what the steps are read from is checked against the signed ledger (the transformation
    rows, the versions a trace walks, the step outputs' contribution rows), as every use that decides
    on the taint needs (see ``step_rows``; ``what`` names the subject in a refusal). ``rows``:
    ``step_rows`` already read with that check."""
    suspects = list(suspects)
    seeds: set[str] = set()
    if rows is None:
        rows = step_rows(conn, check, what)
    if complete:
        steps = transformation_steps(store, conn, rows=rows)
        for c in suspects:
            seeds.update(id_set(store, c.added_object).ids())
    else:
        # Only the lineage of the steps that can carry a suspect record is read, and the holder index
        # is asked only about the records those steps name.
        if reading is None:
            reading = steps_reading(conn, {c.id for c in suspects}, rows=rows, check=check, what=what)
        steps = transformation_steps(store, conn, only=reading, rows=rows)
        linked = sorted({r for step in steps for link in step.links for r in (link["record_id"], link["parent_id"])})
        # Which of those the suspects added: one batched lookup in the holder index, not the suspects'
        # id lists (a key's trace would otherwise read every list it submitted).
        found = held_by_any(conn, store, [c.added_object for c in suspects], linked)
        seeds = {r for r, hit in zip(linked, found.tolist(), strict=True) if hit}
    # A step recorded without lineage (a split or copy into another dataset) names no record, but its
    # output may hold suspect records as they were: it carries them all the same, so a quarantine rolls
    # back its dataset and a trace shows it, as the reads that refuse those records already do.
    bare = {}
    if copies:
        bare = _bare_copies(store, conn, [s for s in steps if not s.links], suspects, seeds, complete, check)
    seeds |= {r for found in bare.values() for r in found}
    derived = derived_from(seeds, steps) if steps and seeds else {}
    suspect = seeds | set(derived)
    return Taint(
        seeds=seeds,
        derived=derived,
        step_contributions={s.contribution_id for s in steps},
        copied_by={s.contribution_id for s in steps if any(link["record_id"] in suspect for link in s.links)}
        | set(bare),
    )


def _bare_copies(
    store: ObjectStore,
    conn: Connection,
    bare: list[Step],
    suspects: list[Any],
    seeds: set[str],
    complete: bool,
    check: SignedCheck | None = None,
) -> dict[str, set[str]]:
    """For each step of ``bare`` (recorded without lineage) whose output contribution added records the
    ``suspects`` added, those records, by the step's output contribution. With ``complete`` the seeds are
    every record the suspects added; otherwise the holder index is asked about the step's records. With
    ``check``, the outputs' contribution rows (their id lists) are checked against the signed ledger."""
    if not bare:
        return {}
    wanted = sorted({s.contribution_id for s in bare})
    if check is not None:
        # An id list swapped, or the row deleted, would hide what the copy carried: refused instead.
        added = {cid: c.added_object for cid, c in check.by_id("contributions", wanted).items()}
    else:
        query = select(contributions.c.id, contributions.c.added_object).where(contributions.c.id.in_(wanted))
        added = dict(conn.execute(query).all())
    out: dict[str, set[str]] = {}
    for step in bare:
        digest = added.get(step.contribution_id)
        if not digest:
            continue
        ids = sorted(id_set(store, digest).ids())
        if complete:
            found = {r for r in ids if r in seeds}
        else:
            hits = held_by_any(conn, store, [c.added_object for c in suspects], ids)
            found = {r for r, hit in zip(ids, hits.tolist(), strict=True) if hit}
        if found:
            out[step.contribution_id] = found
    return out


def steps_reading(
    conn: Connection,
    contribution_ids: set[str],
    *,
    rows: Sequence[Any] | None = None,
    check: SignedCheck | None = None,
    what: str = "what transformations made",
) -> set[str]:
    """Output contributions of the transformation steps that read a version listing one of
    ``contribution_ids``, or listing the output of such a step, transitively. ``rows``: the
    transformation rows (``step_rows``). With ``check``, the version rows (which contributions each
    lists) and the transformation rows (which versions each read) are checked against the signed
    ledger, a row the catalog lost included; without, the catalog's rows as they stand."""
    if check is None:
        found = conn.execute(select(versions.c.id, versions.c.contributions)).all()
    else:
        found = check.whole("versions", conn.execute(select(versions)).all(), what)
    listed = {v.id: set(json.loads(v.contributions)) for v in found}
    steps = [
        (t.contribution_id, [i["version"] for i in json.loads(t.inputs)])
        for t in (step_rows(conn, check, what) if rows is None else rows)
    ]
    reach, taken = set(contribution_ids), set()
    changed = True
    while changed:
        changed = False
        for output, inputs in steps:
            if output not in taken and any(listed.get(v, set()) & reach for v in inputs):
                taken.add(output)
                reach.add(output)
                changed = True
    return taken


def clean_vouched(store: ObjectStore, conn: Connection, kept: Iterable[str], taint: Taint) -> set[str]:
    """Records that contributions ``kept`` vouch for: everything an ordinary contribution added, and what
    a transformation's output added except records made from suspect ones or suspect themselves."""
    out: set[str] = set()
    for cid in kept:
        c = conn.execute(select(contributions.c.added_object).where(contributions.c.id == cid)).one()
        added = id_set(store, c.added_object).ids()
        if cid in taint.step_contributions:
            out.update(r for r in added if r not in taint.records)
        else:
            out.update(added)
    return out


def versions_carrying(conn: Connection, dataset_id: str, contribution_ids: set[str]) -> list[Any]:
    """Versions of a dataset that list any of ``contribution_ids``, oldest first."""
    return [
        v
        for v in conn.execute(select(versions).where(versions.c.dataset_id == dataset_id).order_by(versions.c.number))
        if contribution_ids & set(json.loads(v.contributions))
    ]


__all__ = [
    "LineageIndex",
    "Taint",
    "clean_vouched",
    "clear",
    "lineage_index",
    "step_rows",
    "steps_reading",
    "taint_of",
    "transformation_steps",
    "versions_carrying",
]
