"""Small catalog queries shared by the use cases (reads only; writes go through ``UseCase.emit``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, false, func, select

from dataward.catalog.tables import contributions, datasets, principals, versions
from dataward.domain import names
from dataward.domain.errors import Conflict, InputError, NotFound
from dataward.domain.schema import Schema
from dataward.service.concealment import missing_contribution, missing_dataset

STAGES = ("candidate", "training", "retired")


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid name for a ``kind``, else ``InputError`` (see :mod:`dataward.domain.names`)."""
    return names.check_name(kind, name)


def check_unique_name(kind: str, name: str, existing: Iterable[str]) -> None:
    """Refuse a new ``kind`` name that exists (``Conflict``) or that an existing one equals once case and
    confusable characters are folded (``InputError``): ``Wine`` or ``wіne`` (Cyrillic ``і``) beside
    ``wine`` would be read as it."""
    existing = list(existing)
    if name in existing:
        raise Conflict(f"a {kind} named {name!r} already exists")
    clash = names.clashing_name(name, existing)
    if clash is not None:
        raise InputError(
            f"{kind} name {name!r} is too close to the existing {kind} {clash!r}: the two read as the same "
            "name once case and look-alike characters are folded",
            hint=f"choose a name that does not read as {clash!r}",
        )


def dataset_row(conn: Connection, name: str) -> Row[Any]:
    """A dataset by name, or ``NotFound`` with a hint."""
    row = conn.execute(select(datasets).where(datasets.c.name == name)).first()
    if row is None:
        raise missing_dataset(name)
    return row


def dataset_schema(row: Row[Any]) -> Schema:
    """The schema of a dataset row."""
    return Schema.from_dict(json.loads(row.schema))


def principal_row(conn: Connection, ref: str) -> Row[Any]:
    """A principal by id or by name; the id first, should a name (of an older ward) have an id's shape."""
    row = conn.execute(select(principals).where(principals.c.id == ref)).first()
    if row is None:
        row = conn.execute(select(principals).where(principals.c.name == ref)).first()
    if row is None:
        raise NotFound(f"no principal {ref!r}", hint="list them with `dataward principal list`")
    return row


def principal_name(conn: Connection, principal_id: str | None) -> str | None:
    """A principal's name for people (its id when unknown)."""
    if principal_id is None:
        return None
    row = conn.execute(select(principals.c.name).where(principals.c.id == principal_id)).first()
    return row.name if row else principal_id


MAX_NUMBER = 2**31 - 1
"""The largest contribution, version or model version number the catalog holds (its ``number`` columns
are 32-bit integers on PostgreSQL). A reference to a larger one names nothing."""


def number_is(column: Any, number: int) -> ColumnElement[bool]:
    """``column == number``; no row's when ``number`` is beyond any the catalog holds (the database
    driver fails on such a parameter, as a server error, instead of finding nothing)."""
    return column == number if -MAX_NUMBER <= number <= MAX_NUMBER else false()


PREFIX_MIN = 6
"""The shortest id prefix looked up (``c_3f2a``): a shorter one is more likely a typo than a choice."""

CANDIDATES_SHOWN = 5


def id_prefix(ref: str) -> str | None:
    """The id prefix ``ref`` stands for (an id cut in a table ends with ``…``), or None when too short."""
    prefix = ref.strip().rstrip("…")
    return prefix if len(prefix) >= PREFIX_MIN else None


def ambiguous_prefix(what: str, ref: str, candidates: list[str]) -> InputError:
    """The error for an id prefix that matches several ids, naming them (the first few)."""
    shown = ", ".join(sorted(candidates)[:CANDIDATES_SHOWN])
    more = f" and {len(candidates) - CANDIDATES_SHOWN} more" if len(candidates) > CANDIDATES_SHOWN else ""
    return InputError(
        f"{ref!r} is the start of {len(candidates)} {what} ids: {shown}{more}",
        hint="give more characters of the id",
        candidates=sorted(candidates),
    )


def contribution_row(conn: Connection, ref: str) -> Row[Any]:
    """A contribution by id (``c_...``) or by ``DATASET#N``."""
    if "#" in ref:
        name, _, number = ref.rpartition("#")
        ds = dataset_row(conn, name)
        try:
            num = int(number)
        except ValueError as exc:
            raise InputError(f"contribution reference {ref!r} is not DATASET#NUMBER") from exc
        row = conn.execute(
            select(contributions).where(contributions.c.dataset_id == ds.id, number_is(contributions.c.number, num))
        ).first()
    else:
        row = conn.execute(select(contributions).where(contributions.c.id == ref)).first()
        if row is None and (prefix := id_prefix(ref)) is not None:
            # A unique start of an id will do (a table may show ids cut, or a person type a few digits).
            found = conn.execute(
                select(contributions).where(contributions.c.id.startswith(prefix, autoescape=True)).limit(50)
            ).all()
            if len(found) > 1:
                raise ambiguous_prefix("contribution", ref, [r.id for r in found])
            row = found[0] if found else None
    if row is None:
        raise missing_contribution(ref)
    return row


def next_number(conn: Connection, table: Any, dataset_id: str) -> int:
    """The next per-dataset number of ``table`` (contributions, versions)."""
    current = conn.execute(select(func.max(table.c.number)).where(table.c.dataset_id == dataset_id)).scalar()
    return int(current or 0) + 1


def latest_version(conn: Connection, dataset_id: str) -> Row[Any] | None:
    """The dataset's newest version, or None."""
    return conn.execute(
        select(versions).where(versions.c.dataset_id == dataset_id).order_by(versions.c.number.desc()).limit(1)
    ).first()


def version_row(conn: Connection, dataset_id: str, dataset_name: str, ref: str | None) -> Row[Any]:
    """Resolve a version reference: ``latest`` (default), ``training``, ``vN``/``N``, or an id prefix."""
    ref = (ref or "latest").strip()
    query = select(versions).where(versions.c.dataset_id == dataset_id)
    if ref == "latest":
        row = conn.execute(query.order_by(versions.c.number.desc()).limit(1)).first()
    elif ref in STAGES:
        row = conn.execute(query.where(versions.c.stage == ref).order_by(versions.c.number.desc()).limit(1)).first()
    elif re.fullmatch(r"v?\d+", ref):
        row = conn.execute(query.where(number_is(versions.c.number, int(ref.lstrip("v"))))).first()
    else:
        prefix = ref if ref.startswith("b3:") else "b3:" + ref
        matches = conn.execute(query.where(versions.c.id.like(prefix + "%"))).all()
        if len(matches) > 1:
            raise InputError(f"version reference {ref!r} is ambiguous in {dataset_name!r}", hint="give more digits")
        row = matches[0] if matches else None
    if row is None:
        raise NotFound(
            f"dataset {dataset_name!r} has no version {ref!r}",
            hint=f"list them with `dataward versions {dataset_name}`",
        )
    return row


def key_id_of(ref: str) -> str:
    """The key id in ``dw_ID``, ``dw_ID…`` or a whole ``dw_ID_SECRET`` key."""
    return ref.removeprefix("dw_").split("_", 1)[0].rstrip("…")


def split_ref(ref: str) -> tuple[str, str | None]:
    """``DATASET@VERSION`` -> (dataset, version or None)."""
    name, sep, version = ref.partition("@")
    return name, (version if sep else None)


def current_owner(conn: Connection, c: Any) -> str | None:
    """The accountable owner of the submitting principal now, when it differs from the owner at
    submission (a bot transferred since): the new owner answers for the bot too, so may not approve,
    override or review what it submitted before the transfer either."""
    owner = conn.execute(select(principals.c.owner_id).where(principals.c.id == c.submitted_by)).scalar()
    return owner if owner is not None and owner != c.submitter_owner else None


def contribution_ref(conn: Connection, contribution_id: str) -> str:
    """``DATASET#N`` of a contribution, as a reason or a listing names it (its id when the catalog lacks it)."""
    c = conn.execute(select(contributions).where(contributions.c.id == contribution_id)).first()
    if c is None:
        return contribution_id
    name = conn.execute(select(datasets.c.name).where(datasets.c.id == c.dataset_id)).scalar()
    return f"{name or c.dataset_id}#{c.number}"
