"""Records made from suspect records by transformations, for containment and forward trace.

A quarantine must follow a poisoned record through every step that made records from it (a relabel,
an augmentation, a dedup into another dataset): those derived records are held out too, in whatever
dataset the step wrote them to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.tables import contributions, transformations, versions
from dataward.provenance.taint import Step, derived_from
from dataward.service.recordstore import parquet_to_table, read_ids
from dataward.service.transformations import read_lineage
from dataward.store.base import ObjectStore


def transformation_steps(store: ObjectStore, conn: Connection) -> list[Step]:
    """Every recorded transformation's record lineage, oldest first."""
    out = []
    for t in conn.execute(select(transformations).order_by(transformations.c.created_at)):
        links = read_lineage(parquet_to_table(store.get(t.lineage_object))) if t.lineage_object else []
        out.append(Step(contribution_id=t.contribution_id, dataset_id=t.dataset_id, links=links))
    return out


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


def taint_of(store: ObjectStore, conn: Connection, suspects: Iterable[Any]) -> Taint:
    """The taint of the contribution rows ``suspects``: their added records and what was made of them."""
    seeds: set[str] = set()
    for c in suspects:
        seeds.update(read_ids(store, c.added_object))
    steps = transformation_steps(store, conn)
    derived = derived_from(seeds, steps) if steps else {}
    suspect = seeds | set(derived)
    return Taint(
        seeds=seeds,
        derived=derived,
        step_contributions={s.contribution_id for s in steps},
        copied_by={s.contribution_id for s in steps if any(link["record_id"] in suspect for link in s.links)},
    )


def clean_vouched(store: ObjectStore, conn: Connection, kept: Iterable[str], taint: Taint) -> set[str]:
    """Records that contributions ``kept`` vouch for: everything an ordinary contribution added, and what
    a transformation's output added except records made from suspect ones or suspect themselves."""
    out: set[str] = set()
    for cid in kept:
        c = conn.execute(select(contributions.c.added_object).where(contributions.c.id == cid)).one()
        added = read_ids(store, c.added_object)
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


__all__ = ["Taint", "clean_vouched", "taint_of", "transformation_steps", "versions_carrying"]
