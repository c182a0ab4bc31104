"""Catalog rows as projections of ledger events.

Every event that changes state carries its row changes in ``payload["changes"]``; the service applies
them in the same transaction as the append, and ``verify`` replays them from the ledger to rebuild
what the catalog must hold. A row edited behind the ledger's back therefore shows up as a mismatch.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Table, and_, insert, select, update

from dataward.catalog.tables import PROJECTED_TABLES, ward_meta

TABLES: dict[str, Table] = {t.name: t for t in PROJECTED_TABLES}

AUTH_TABLES = frozenset({"api_keys", "principals", "grants"})
"""The tables authentication and authorization read: a change to any of them changes the auth epoch."""
AUTH_EPOCH = "auth_epoch"
"""The ``ward_meta`` entry naming the current auth epoch: a random token replaced, in the same
transaction, by every change to a key, a principal or a grant (a revocation, a rotation, a suspension,
a grant taken away). A process that remembers verified keys reads it on every request and trusts what
it remembers only under the same epoch, so such a change takes effect on the very next request in
every worker. Random rather than counted, so that a catalog restored from a backup never matches an
epoch remembered from after it."""

AUTH_EPOCH_QUERY = select(ward_meta.c.value).where(ward_meta.c.key == AUTH_EPOCH)


@dataclass(frozen=True)
class RowChange:
    """Insert a row, or update the row identified by ``key`` with ``values``."""

    table: str
    op: Literal["insert", "update"]
    key: Mapping[str, Any]
    values: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "op": self.op, "key": dict(self.key), "values": dict(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowChange:
        return cls(data["table"], data["op"], dict(data["key"]), dict(data["values"]))


def insert_row(table: str, **values: Any) -> RowChange:
    """A change inserting a row of ``table`` (its key taken from ``values``)."""
    key_cols = [c.name for c in TABLES[table].primary_key.columns]
    return RowChange(table, "insert", {k: values[k] for k in key_cols}, values)


def update_row(table: str, key: Mapping[str, Any], **values: Any) -> RowChange:
    """A change updating the row of ``table`` identified by ``key``."""
    return RowChange(table, "update", dict(key), values)


def bump_auth_epoch(conn: Connection) -> str:
    """Replace the auth epoch (inside the caller's write transaction, which holds the ward's write lock)."""
    epoch = secrets.token_hex(16)
    if conn.execute(update(ward_meta).where(ward_meta.c.key == AUTH_EPOCH).values(value=epoch)).rowcount == 0:
        conn.execute(insert(ward_meta).values(key=AUTH_EPOCH, value=epoch))
    return epoch


def apply_changes(conn: Connection, changes: Iterable[RowChange]) -> None:
    """Write the changes to the catalog (inside the caller's transaction); a change to a key, a
    principal or a grant also replaces the auth epoch (``AUTH_EPOCH``)."""
    changes = list(changes)
    if any(change.table in AUTH_TABLES for change in changes):
        bump_auth_epoch(conn)
    for change in changes:
        table = TABLES[change.table]
        if change.op == "insert":
            conn.execute(insert(table).values(**{**change.values, **change.key}))
        else:
            cond = and_(*(table.c[k] == v for k, v in change.key.items()))
            result = conn.execute(update(table).where(cond).values(**change.values))
            if result.rowcount != 1:
                raise RuntimeError(f"update of {change.table} {dict(change.key)} matched {result.rowcount} rows")


def replay(changes: Iterable[RowChange]) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Rebuild every projected table in memory from a stream of changes: table -> key -> row."""
    return _replay((c.table, c.op, c.key, c.values) for c in changes)


def replay_stored(changes: Iterable[Any]) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """:func:`replay` over changes as an event's payload holds them (``RowChange.to_dict`` parsed
    back from JSON), without making a ``RowChange`` of each. An entry that is not such a change
    (possible only in a ledger row the chain check reports as altered) is left out."""

    def parts() -> Iterator[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]:
        for change in changes:
            if type(change) is not dict:
                continue
            table, op, key, values = change.get("table"), change.get("op"), change.get("key"), change.get("values")
            if table in TABLES and op in ("insert", "update") and type(key) is dict and type(values) is dict:
                yield table, op, key, values

    return _replay(parts())


@dataclass(frozen=True)
class _Shape:
    key_cols: tuple[str, ...]
    key_set: frozenset[str]
    empty: dict[str, Any]


_SHAPES = {
    name: _Shape(
        tuple(c.name for c in table.primary_key.columns),
        frozenset(c.name for c in table.primary_key.columns),
        {c.name: None for c in table.columns},
    )
    for name, table in TABLES.items()
}


def fold_change(
    rows: dict[tuple[Any, ...], dict[str, Any]], table: str, op: str, key: Mapping[str, Any], values: Mapping[str, Any]
) -> None:
    """Apply one change to ``rows`` (one table of a :func:`replay` state) as :func:`replay` does, but
    replacing each row it changes with a new dict instead of changing the row in place: a row dict
    another reader holds never changes."""
    shape = _SHAPES[table]
    if op == "insert":
        row = {**shape.empty, **values, **key}
        with contextlib.suppress(TypeError):  # a key value that cannot be a key: not a sealed change
            rows[tuple([row[k] for k in shape.key_cols])] = row
    elif key.keys() == shape.key_set:
        try:
            ident = tuple([key[k] for k in shape.key_cols])
        except TypeError:
            return
        if ident in rows:
            rows[ident] = {**rows[ident], **values}
    else:
        for ident, row in list(rows.items()):
            if all(k in row and row[k] == v for k, v in key.items()):
                rows[ident] = {**row, **values}


def _replay(
    changes: Iterable[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]],
) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    state: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {name: {} for name in TABLES}
    for table, op, key, values in changes:
        shape = _SHAPES[table]
        rows = state[table]
        if op == "insert":
            row = shape.empty.copy()
            row.update(values)
            row.update(key)
            try:
                rows[tuple([row[k] for k in shape.key_cols])] = row
            except TypeError:  # a key value that cannot be a key: not a sealed change
                continue
        elif key.keys() == shape.key_set:
            try:
                found = rows.get(tuple([key[k] for k in shape.key_cols]))
            except TypeError:
                continue
            if found is not None:
                found.update(values)
        else:
            for row in rows.values():
                if all(k in row and row[k] == v for k, v in key.items()):
                    row.update(values)
    return state
