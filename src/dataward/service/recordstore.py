"""Records stored once: canonical tables as content-addressed Parquet chunks, indexed by record id.

A record's bytes live in exactly one chunk object, whatever number of contributions and versions hold
it; the ``records`` table maps each record id to its chunk and row. Versions are manifests of ids.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, insert, select

from dataward.catalog.tables import chunks, records
from dataward.domain.errors import IntegrityViolation
from dataward.domain.hashing import content_hash, json_hash
from dataward.domain.records import record_ids
from dataward.domain.schema import RECORD_ID, Schema
from dataward.store import ObjectStore

_BATCH = 5000


def table_to_parquet(table: pa.Table) -> bytes:
    """Parquet bytes (zstd) of a table."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def parquet_to_table(data: bytes) -> pa.Table:
    """The table in Parquet bytes."""
    return pq.read_table(io.BytesIO(data))


def existing_ids(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """``record_id -> (chunk, row)`` for the ids already stored."""
    found: dict[str, tuple[str, int]] = {}
    for start in range(0, len(ids), _BATCH):
        batch = list(ids[start : start + _BATCH])
        marks = ",".join("?" if conn.dialect.paramstyle == "qmark" else "%s" for _ in batch)
        rows = conn.exec_driver_sql(
            f"SELECT r.id, c.digest, r.row FROM records r JOIN chunks c ON c.id = r.chunk WHERE r.id IN ({marks})",
            tuple(batch),
        )
        for rid, chunk, row in rows:
            found[rid] = (chunk, int(row))
    return found


def _new_rows(conn: Connection, table: pa.Table) -> list[int]:
    """Rows of ``table`` whose record is not stored yet (the first of each id)."""
    ids = table.column(RECORD_ID).to_pylist()
    seen: set[str] = set(existing_ids(conn, list(dict.fromkeys(ids))))
    keep: list[int] = []
    for i, rid in enumerate(ids):
        if rid not in seen:
            seen.add(rid)
            keep.append(i)
    return keep


def _put_chunk(store: ObjectStore, table: pa.Table, keep: list[int]) -> str:
    chunk_table = table.take(pa.array(keep, type=pa.int64())) if len(keep) != table.num_rows else table
    return store.put(table_to_parquet(chunk_table))


def stage_new_records(conn: Connection, store: ObjectStore, table: pa.Table) -> tuple[tuple[int, ...], str | None]:
    """Write the chunk of the records of ``table`` not stored yet, before the write lock is taken.

    Runs in a read transaction: the chunk is content-addressed, so writing it early is harmless even
    if the submission is then refused. Returns ``(rows kept, chunk digest)`` for ``store_new_records``.
    """
    keep = _new_rows(conn, table)
    return tuple(keep), (_put_chunk(store, table, keep) if keep else None)


def store_new_records(
    conn: Connection,
    store: ObjectStore,
    table: pa.Table,
    *,
    staged: tuple[tuple[int, ...], str | None] | None = None,
) -> tuple[str | None, int]:
    """Store the records of ``table`` that are not stored yet; returns ``(chunk digest, count)``.

    With ``staged`` (from ``stage_new_records``), the chunk already written is used when the same
    records are still new; when another submission stored some of them meanwhile, a chunk of what is
    left is written now.
    """
    keep = _new_rows(conn, table)
    if not keep:
        return None, 0
    if staged is not None and staged[1] is not None and tuple(keep) == staged[0]:
        digest = staged[1]
    else:
        digest = _put_chunk(store, table, keep)
    chunk_table = table.take(pa.array(keep, type=pa.int64())) if len(keep) != table.num_rows else table
    chunk_id = conn.execute(select(chunks.c.id).where(chunks.c.digest == digest)).scalar()
    if chunk_id is None:
        chunk_id = conn.execute(insert(chunks).values(digest=digest)).inserted_primary_key[0]
    new_ids = chunk_table.column(RECORD_ID).to_pylist()
    # Sorted by id: inserts then append to the primary-key B-tree instead of landing at random pages.
    rows = sorted((rid, chunk_id, i) for i, rid in enumerate(new_ids))
    if conn.dialect.name == "sqlite":
        # The driver's executemany is several times faster than a Core insert for millions of rows.
        conn.exec_driver_sql("INSERT INTO records (id, chunk, row) VALUES (?, ?, ?)", rows)
    else:
        conn.execute(insert(records), [{"id": r, "chunk": c, "row": n} for r, c, n in rows])
    return digest, len(rows)


_verified_chunks: set[tuple[str, str]] = set()
"""``(chunk digest, schema hash)`` of chunks whose every stored id was recomputed from its content in
this process; a digest names the bytes, so the answer holds for as long as the process runs."""


def _checked_chunk(store: ObjectStore, digest: str, schema: Schema, target: pa.Schema) -> pa.Table:
    """The chunk's canonical table, once every record in it hashes to the id stored with it."""
    table = parquet_to_table(store.get(digest))  # the store re-hashes the object on read
    try:
        table = table.select(target.names).cast(target)
    except (KeyError, ValueError, pa.ArrowException) as exc:
        raise IntegrityViolation(
            f"chunk {digest} does not hold this dataset's columns ({exc})",
            hint="a record index entry points into another dataset's chunk; run `dataward verify`",
            chunk=digest,
        ) from None
    key = (digest, json_hash(schema.to_dict()))
    if key not in _verified_chunks:
        stored = table.column(RECORD_ID).to_pylist()
        computed = record_ids(schema, table)
        bad = next((i for i, (a, b) in enumerate(zip(stored, computed, strict=True)) if a != b), None)
        if bad is not None:
            raise IntegrityViolation(
                f"record {stored[bad]} (row {bad} of chunk {digest}) does not match its content, "
                f"which hashes to {computed[bad]}: the record was altered",
                hint="run `dataward verify` to see what was altered",
                record=stored[bad],
                chunk=digest,
            )
        _verified_chunks.add(key)
    return table


def load_records(conn: Connection, store: ObjectStore, ids: Sequence[str], schema: Schema) -> pa.Table:
    """The canonical table of ``ids`` in the order given (duplicates repeated).

    Every record served is re-checked: its content must hash to the id it is asked for, whatever the
    record index says (an index entry pointed at another record's row, or a chunk swapped for an
    edited copy, is an ``IntegrityViolation``, never a wrong record)."""
    unique = list(dict.fromkeys(ids))
    where = existing_ids(conn, unique)
    missing = [rid for rid in unique if rid not in where]
    if missing:
        raise IntegrityViolation(
            f"{len(missing)} record(s) are listed but not stored, e.g. {missing[0]}",
            hint="run `dataward verify` to see what was altered",
        )
    by_chunk: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for rid in unique:
        chunk, row = where[rid]
        by_chunk[chunk].append((rid, row))
    pieces = []
    target = schema.arrow_schema()
    for chunk, members in by_chunk.items():
        chunk_table = _checked_chunk(store, chunk, schema, target)
        wanted = [row for _, row in members]
        outside = next((row for row in wanted if not 0 <= row < chunk_table.num_rows), None)
        if outside is not None:
            raise IntegrityViolation(
                f"the record index points at row {outside} of chunk {chunk}, which has {chunk_table.num_rows} rows",
                hint="run `dataward verify` to see what was altered",
                chunk=chunk,
            )
        piece = chunk_table.take(pa.array(wanted, type=pa.int64()))
        for (rid, row), found in zip(members, piece.column(RECORD_ID).to_pylist(), strict=True):
            if found != rid:
                raise IntegrityViolation(
                    f"record {rid} is indexed at row {row} of chunk {chunk}, which holds record {found}: "
                    "the record index was altered",
                    hint="run `dataward verify` to see what was altered",
                    record=rid,
                    chunk=chunk,
                )
        pieces.append(piece)
    if not pieces:
        return target.empty_table()
    combined = pa.concat_tables(pieces)
    position = {rid: i for i, rid in enumerate(combined.column(RECORD_ID).to_pylist())}
    order = np.fromiter((position[rid] for rid in ids), dtype=np.int64, count=len(ids))
    return combined.take(pa.array(order))


def ids_table(ids: Iterable[str], rows: Iterable[int] | None = None) -> pa.Table:
    """A table of record ids (and their rows in the submitted file)."""
    data: dict[str, Any] = {RECORD_ID: pa.array(list(ids), type=pa.string())}
    if rows is not None:
        data["row"] = pa.array(list(rows), type=pa.int64())
    return pa.table(data)


def read_ids(store: ObjectStore, digest: str | None) -> list[str]:
    """The record ids in an id-list object (none for no object)."""
    if digest is None:
        return []
    return parquet_to_table(store.get(digest)).column(RECORD_ID).to_pylist()


def read_ids_and_rows(store: ObjectStore, digest: str | None) -> tuple[list[str], list[int]]:
    """Record ids and their file rows in a contribution's id-list object."""
    if digest is None:
        return [], []
    table = parquet_to_table(store.get(digest))
    rows = table.column("row").to_pylist() if "row" in table.column_names else list(range(1, table.num_rows + 1))
    return table.column(RECORD_ID).to_pylist(), rows


def records_hash(sorted_ids: Sequence[str]) -> str:
    """Hash of a sorted id list: what a version manifest commits to."""
    return content_hash("\n".join(sorted_ids).encode("ascii"))


def version_identity(dataset_id: str, number: int, parent: str | None, sorted_ids: Sequence[str]) -> str:
    """A version's id: the hash of its dataset, number, parent and records."""
    return json_hash({"dataset": dataset_id, "number": number, "parent": parent, "records": records_hash(sorted_ids)})


def manifest_ids(store: ObjectStore, digest: str) -> list[str]:
    """The record ids of a version manifest."""
    ids = parquet_to_table(store.get(digest)).column(RECORD_ID)
    return pc.cast(ids, pa.string()).to_pylist()
