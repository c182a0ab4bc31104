"""Queries on a list of values of any length: one ``IN (...)`` per batch of values.

A value list bound into one ``IN (...)`` costs one statement variable per value, and the drivers refuse
beyond their limit: SQLite 32,766 variables as built upstream (999 before 3.32; some distributions raise
it), PostgreSQL 65,535. Lists that grow with the data (every quarantine the ward's list of removals ever
recorded, the contributions of a version, the carriers of a taint) go through these helpers instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, not_

T = TypeVar("T")

IN_BATCH = 900
"""Values bound in one ``IN (...)``: well below every driver's limit, with room for the statement's
other parameters."""


def in_batches(values: Iterable[T], size: int = IN_BATCH) -> Iterator[list[T]]:
    """``values`` (in their order) in lists of at most ``size``; none when ``values`` is empty."""
    listed = values if isinstance(values, Sequence) else list(values)
    for start in range(0, len(listed), size):
        yield list(listed[start : start + size])


def rows_in(conn: Connection, query: Any, column: Any, values: Iterable[Any], *, otherwise: Any = None) -> list[Any]:
    """The rows of ``query`` whose ``column`` is one of ``values``, one statement per :data:`IN_BATCH`
    values (none when there are none), as ``query.where(column.in_(values))`` finds them.

    With ``otherwise`` (a condition that is never NULL, such as ``status == "quarantined"``): the rows
    where it holds or ``column`` is one of ``values``, each once, as
    ``query.where(otherwise | column.in_(values))`` finds them (the rows where it holds first).

    A ``query.order_by`` holds within each statement only: callers that need one order sort the rows."""
    rows: list[Any] = []
    if otherwise is not None:
        rows.extend(conn.execute(query.where(otherwise)))
    # Distinct values: the same value in two batches would find its rows twice.
    wanted = sorted(set(values))
    for batch in in_batches(wanted):
        found = column.in_(batch) if otherwise is None else column.in_(batch) & not_(otherwise)
        rows.extend(conn.execute(query.where(found)))
    return rows


__all__ = ["IN_BATCH", "in_batches", "rows_in"]
