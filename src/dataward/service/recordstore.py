"""Records stored once: canonical tables as content-addressed Parquet chunks, indexed by record id.

A record's bytes live in exactly one chunk object, whatever number of contributions and versions hold
it; the record index (``dataward.catalog.record_index``) maps each record id to its chunk and row in
blocks of ids, not one catalog row per record. Versions are manifests of ids.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

import blake3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, insert, select

from dataward.catalog import record_index
from dataward.catalog.tables import chunks
from dataward.domain.digests import hex_text
from dataward.domain.errors import IntegrityViolation
from dataward.domain.hashing import HASH_PREFIX, content_hash, json_hash
from dataward.domain.idarrays import distinct_order, member_of, same_ids, sorted_distinct, strictly_ascending, take_ids
from dataward.domain.records import record_digest_array
from dataward.domain.schema import RECORD_ID, Schema
from dataward.store import ObjectStore
from dataward.store import tables as stored_tables

_BATCH = 5000
_HASH_BLOCK = 1 << 16
"""Ids hashed per block by ``joined_ids_hash`` (4 MiB of text)."""


def table_to_parquet(table: pa.Table, binary_ids: np.ndarray | None = None) -> bytes:
    """Parquet bytes (zstd) of a table, record ids stored as 32-byte digests (``dataward.store.tables``;
    ``binary_ids``, the digests of its ``record_id`` column when known, spare decoding the hex)."""
    return stored_tables.table_to_parquet(table, binary_ids)


def parquet_to_table(data: bytes) -> pa.Table:
    """The table in Parquet bytes, record ids as hex strings whichever form the object holds."""
    return stored_tables.parquet_to_table(data)


def _id_array(ids: Sequence[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(ids, pa.ChunkedArray):
        return ids.combine_chunks() if ids.num_chunks != 1 else ids.chunk(0)
    if isinstance(ids, pa.Array):
        return ids
    return pa.array(list(ids), type=pa.string())


def chunk_digests(conn: Connection, chunk_ids: Iterable[int]) -> dict[int, str]:
    """``chunk id -> digest`` for the catalog's chunk rows ``chunk_ids`` (ids it does not list are absent)."""
    wanted = sorted({int(c) for c in chunk_ids})
    found: dict[int, str] = {}
    for start in range(0, len(wanted), _BATCH):
        query = select(chunks.c.id, chunks.c.digest).where(chunks.c.id.in_(wanted[start : start + _BATCH]))
        found.update({int(r.id): r.digest for r in conn.execute(query)})
    return found


def locate_records(conn: Connection, ids: Sequence[str] | pa.Array | pa.ChunkedArray) -> dict[str, tuple[str, int]]:
    """``record_id -> (chunk digest, row)`` for the ids already stored (the others are absent)."""
    array = _id_array(ids)
    binary, valid = record_index.ids_to_binary(array)
    chunk_of, row_of = record_index.locate(conn, binary, valid)
    hits = np.flatnonzero(chunk_of >= 0)
    digests = chunk_digests(conn, chunk_of[hits].tolist())
    names = array.take(pa.array(hits, type=pa.int64())).to_pylist()
    return {rid: (digests[int(chunk_of[i])], int(row_of[i])) for rid, i in zip(names, hits.tolist(), strict=True)}


def _table_ids(table: pa.Table, binary: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row's binary id (see ``dataward.catalog.record_index``), which rows hold the first
    occurrence of their id, and the rows in id order (``idarrays.distinct_order``). ``binary``: the
    digests of the table's ``record_id`` column, when the caller has them (``ImportedTable.digests``),
    instead of decoding the hex."""
    if binary is None:
        binary, valid = record_index.ids_to_binary(table.column(RECORD_ID))
        if not valid.all():
            bad = int(np.flatnonzero(~valid)[0])
            raise ValueError(f"row {bad} of a canonical table has no valid record id")
    elif binary.shape != (table.num_rows, record_index.ID_BYTES):
        raise ValueError(f"{len(binary)} digests for a table of {table.num_rows} rows")
    order, first = distinct_order(binary)
    return binary, first, order


def _new_rows(conn: Connection, binary: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Rows holding the first occurrence of an id that is not stored yet."""
    stored, _ = record_index.locate(conn, binary, first)
    return np.flatnonzero(first & (stored < 0))


def _chunk_of(table: pa.Table, keep: np.ndarray) -> pa.Table:
    return table.take(pa.array(keep, type=pa.int64())) if len(keep) != table.num_rows else table


def _put_chunk(
    store: ObjectStore,
    table: pa.Table,
    keep: np.ndarray,
    binary: np.ndarray | None = None,
    bet: _Bet | None = None,
) -> str:
    """Store the rows ``keep`` of ``table``; ``binary`` (every row's digest) spares re-reading the hex ids.
    ``bet``: the chunk is written ahead of knowing it is wanted (``ChunkAhead``); it is stored only
    once the bet is won, and given up (``EncodingStopped``, nothing stored) once it is lost."""
    ids = take_ids(binary, keep) if binary is not None and len(keep) != table.num_rows else binary
    data = stored_tables.table_to_parquet(_chunk_of(table, keep), ids, stop=None if bet is None else bet.lost)
    return _store_chunk(store, data, bet)


def _store_chunk(store: ObjectStore, data: bytes, bet: _Bet | None) -> str:
    """Store a chunk's bytes, once its bet (if any) is won; ``EncodingStopped`` when it is lost."""
    if bet is not None and not bet.won():
        raise stored_tables.EncodingStopped("the chunk written ahead was not wanted")
    return store.put(data)


class _Bet:
    """Whether a chunk written ahead is wanted: ``lost`` is set when it is not (its encoding then
    stops at its next page), ``settled`` once that is known either way."""

    def __init__(self) -> None:
        self.lost, self.settled = threading.Event(), threading.Event()
        self._settling = threading.Lock()

    def settle(self, won: bool) -> None:
        """Say whether the chunk is wanted; only the first word counts."""
        with self._settling:
            if self.settled.is_set():
                return
            if not won:
                self.lost.set()
            self.settled.set()

    def won(self) -> bool:
        """Wait until the bet is settled; True when it was won."""
        self.settled.wait()
        return not self.lost.is_set()


class ChunkAhead:
    """The chunk of every row of a table, encoded on a pool thread before the staging has worked out
    which rows are new: a bet that all of them are (a first import of a file of distinct records),
    which takes the staging's sort and look-up off the import's critical path. It is stored only once
    the bet is won. When some row is not new, the bet is lost: the encoding stops at its next page,
    nothing is stored, and the chunk of the new rows is written as before. Either way the chunk stored
    is the same bytes (``_chunk_of`` every row is the table).

    ``stage_new_records`` begins one from the moment the table's ids are known; ``of_records`` begins
    one before, from the records and their ids as they are worked out (an import's
    ``RecordDigests``), a row group at a time."""

    def __init__(self, future: Future[str], bet: _Bet) -> None:
        self.future, self._bet = future, bet

    @classmethod
    def of_table(cls, pool: Executor, store: ObjectStore, table: pa.Table, binary: np.ndarray | None) -> ChunkAhead:
        """The chunk of ``table`` (``record_id`` column included; ``binary``, its digests when known)."""
        bet = _Bet()
        return cls(pool.submit(_put_chunk, store, table, np.arange(table.num_rows), binary, bet), bet)

    @classmethod
    def of_records(
        cls, pool: Executor, store: ObjectStore, content: pa.Table, ids: stored_tables.IdSource
    ) -> ChunkAhead:
        """The chunk of ``content`` (no ``record_id`` column) with the ids ``ids(start, stop)`` gives,
        each row group encoded once its rows' ids are given. The same bytes as ``of_table`` of
        ``content`` with those ids first."""
        bet = _Bet()
        return cls(pool.submit(_put_records_chunk, store, content, ids, bet), bet)

    def settle(self, won: bool) -> None:
        """Say whether the chunk is wanted (only the first word counts: a caller settles it lost on
        its way out whatever happened, after the staging settled it). A lost bet's outcome
        (``EncodingStopped``, or any error of the encoding) is nobody's concern: the future is left
        alone."""
        self._bet.settle(won)


def _put_records_chunk(store: ObjectStore, content: pa.Table, ids: stored_tables.IdSource, bet: _Bet) -> str:
    return _store_chunk(store, stored_tables.records_to_parquet(content, ids, stop=bet.lost), bet)


@dataclass(frozen=True)
class Staged:
    """What ``stage_new_records`` wrote for a table: the rows kept, the chunk (its digest, None when
    every record was stored already, or the future of its digest while a pool thread still writes it),
    and every row's binary id, first-occurrence flag and the rows in id order, the table's distinct ids
    sorted and the chunk's record-index blocks, so that none of them is worked out twice."""

    keep: np.ndarray
    chunk: str | Future[str] | None
    binary: np.ndarray
    first: np.ndarray
    order: np.ndarray
    distinct: np.ndarray
    blocks: record_index.ChunkBlocks | None

    @property
    def digest(self) -> str | None:
        """The chunk's digest, once it is written (waits for the pool thread; raises its error)."""
        return self.chunk.result() if isinstance(self.chunk, Future) else self.chunk

    def wait(self) -> None:
        """Wait until the chunk is written (raises the pool thread's error): callers do so before they
        take the write lock, which no other writer should wait on while a chunk is uploaded."""
        _ = self.digest


def stage_new_records(
    conn: Connection,
    store: ObjectStore,
    table: pa.Table,
    binary: np.ndarray | None = None,
    *,
    pool: Executor | None = None,
    ahead: ChunkAhead | None = None,
) -> Staged:
    """Write the chunk of the records of ``table`` not stored yet, before the write lock is taken.

    Runs in a read transaction: the chunk is content-addressed, so writing it early is harmless even
    if the submission is then refused. The result is for ``store_new_records`` with the same table.
    ``binary``: the digests of the table's record ids, when known (see ``_table_ids``). With ``pool``,
    the chunk is encoded and stored on one of its threads (Parquet encoding and the object write run
    without the GIL) while the distinct ids and the record index's blocks are worked out here; it may
    still be being written when this returns (``Staged.digest`` waits for it), so that the caller can
    go on with work that does not need it. The pool must outlive the use of the result. The chunk of
    every row is begun before the rows kept are known, and given up when some row is not new
    (``ChunkAhead``): the pool should have a thread free for it. ``ahead``: that chunk, begun by the
    caller already (``ChunkAhead.of_records``, from the same rows and ids), settled here.
    """
    # With a pool, the chunk of every row is begun at once, on the bet that every row is new (see
    # ``ChunkAhead``); it is given up as soon as the rows kept say otherwise, or anything fails here.
    if ahead is None and pool is not None and table.num_rows:
        ahead = ChunkAhead.of_table(pool, store, table, binary)
    won = False
    try:
        binary, first, order = _table_ids(table, binary)
        keep = _new_rows(conn, binary, first)
        won = len(keep) == table.num_rows
    finally:
        # Settled whatever happens here: the pool thread waits for it before storing the chunk.
        if ahead is not None:
            ahead.settle(won)
    if not won:
        ahead = None
    if not len(keep):
        return Staged(keep, None, binary, first, order, _distinct(binary, first, order), None)
    if pool is None and ahead is None:
        digest = _put_chunk(store, table, keep, binary)
        distinct, blocks = _index_work(binary, first, order, keep)
        return Staged(keep, digest, binary, first, order, distinct, blocks)
    putting = ahead.future if ahead is not None else pool.submit(_put_chunk, store, table, keep, binary)  # type: ignore[union-attr]
    distinct, blocks = _index_work(binary, first, order, keep)
    return Staged(keep, putting, binary, first, order, distinct, blocks)


def _distinct(binary: np.ndarray, first: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The distinct ids of a table, sorted, from ``_table_ids``."""
    return take_ids(binary, order[first[order]])


def _index_work(
    binary: np.ndarray, first: np.ndarray, order: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, record_index.ChunkBlocks]:
    """The table's distinct ids, sorted, and the record-index blocks of its chunk of rows ``keep``."""
    distinct = _distinct(binary, first, order)
    # When every distinct id is new, the chunk's ids in id order are the distinct ids: no second copy.
    return distinct, _chunk_blocks(binary, order, keep, distinct if len(keep) == len(distinct) else None)


def _chunk_blocks(
    binary: np.ndarray, order: np.ndarray, keep: np.ndarray, in_order: np.ndarray | None = None
) -> record_index.ChunkBlocks:
    """The record-index blocks of the chunk of the table's rows ``keep`` (``record_index.chunk_blocks``)."""
    whole = len(keep) == len(binary)
    return record_index.chunk_blocks(
        binary if whole else take_ids(binary, keep), _chunk_order(order, keep, whole), in_order
    )


def store_new_records(
    conn: Connection,
    store: ObjectStore,
    table: pa.Table,
    *,
    staged: Staged | None = None,
) -> tuple[str | None, int]:
    """Store the records of ``table`` that are not stored yet; returns ``(chunk digest, count)``.

    With ``staged`` (from ``stage_new_records``), the chunk already written and its index blocks are
    used when the same records are still new; when another submission stored some of them meanwhile,
    a chunk of what is left is written now. The record index gets one row per chunk and id prefix,
    not one per record.
    """
    binary, first, order = (staged.binary, staged.first, staged.order) if staged is not None else _table_ids(table)
    keep = _new_rows(conn, binary, first)
    if not len(keep):
        return None, 0
    if staged is not None and staged.blocks is not None and np.array_equal(keep, staged.keep) and staged.digest:
        digest, blocks = staged.digest, staged.blocks
    else:
        digest, blocks = _put_chunk(store, table, keep, binary), _chunk_blocks(binary, order, keep)
    chunk_id = conn.execute(select(chunks.c.id).where(chunks.c.digest == digest)).scalar()
    if chunk_id is None:
        chunk_id = conn.execute(insert(chunks).values(digest=digest)).inserted_primary_key[0]
    record_index.insert_chunk_blocks(conn, int(chunk_id), blocks)
    return digest, len(keep)


def _chunk_order(order: np.ndarray, keep: np.ndarray, whole: bool) -> np.ndarray:
    """The rows of the chunk of the table's rows ``keep`` (ascending) in id order, from ``order`` (the
    table's rows in id order): the chunk's row ``j`` is the table's row ``keep[j]``."""
    if whole:
        return order  # every row kept: the chunk's rows are the table's
    position = np.full(len(order), -1, dtype=np.int64)
    position[keep] = np.arange(len(keep), dtype=np.int64)
    at = position[order]
    return at[at >= 0]


_verified_chunks: set[tuple[str, str]] = set()
"""``(chunk digest, schema hash)`` of chunks whose every stored id was recomputed from its content in
this process; a digest names the bytes, so the answer holds for as long as the process runs."""


def _checked_chunk(store: ObjectStore, digest: str, schema: Schema, target: pa.Schema) -> tuple[pa.Table, np.ndarray]:
    """The chunk's records, once every one of them hashes to the id stored with it: its canonical
    columns but ``record_id`` (cast to ``target``), and its ids as ``(n, 32)`` uint8 digests. The ids
    stay digests (how the chunk stores them) for the caller's comparisons: turning them into hex and
    back cost a fifth of a read."""
    data = store.get(digest)  # the store re-hashes the object on read
    content = [name for name in target.names if name != RECORD_ID]
    try:
        stored_table = stored_tables.read_parquet_bytes(data)
        table = stored_table.select(content).cast(pa.schema([target.field(name) for name in content]))
        raw_ids = stored_table.column(RECORD_ID)
    except (KeyError, ValueError, pa.ArrowException) as exc:
        raise IntegrityViolation(
            f"chunk {digest} does not hold this dataset's columns ({exc})",
            hint="a record index entry points into another dataset's chunk; run `dataward verify`",
            chunk=digest,
        ) from None
    stored, valid = record_index.ids_to_binary(raw_ids)
    key = (digest, json_hash(schema.to_dict()))
    if key not in _verified_chunks:
        # Column-wise, as digests: no Python string per record (a million-record chunk's first read).
        computed = record_digest_array(schema, table)
        altered = np.flatnonzero(~(valid & same_ids(stored, computed)))
        if len(altered):
            bad = int(altered[0])
            value = raw_ids[bad].as_py()
            named = value.hex() if isinstance(value, bytes) else value
            raise IntegrityViolation(
                f"record {named} (row {bad} of chunk {digest}) does not match its content, "
                f"which hashes to {bytes(computed[bad]).hex()}: the record was altered",
                hint="run `dataward verify` to see what was altered",
                record=named,
                chunk=digest,
            )
        _verified_chunks.add(key)
    elif not valid.all():
        raise IntegrityViolation(f"chunk {digest} holds values that are not record ids", chunk=digest)
    return table, stored


def _rows_of(
    content: pa.Table, stored: np.ndarray, chunk: str, wanted: np.ndarray, expected: np.ndarray, located_by: str
) -> pa.Table:
    """Rows ``wanted`` of a checked chunk (``_checked_chunk``: its ``content`` and ``stored`` ids), each
    of which must hold the id ``expected`` at the same position (``IntegrityViolation`` naming
    ``located_by`` otherwise)."""
    outside = np.flatnonzero((wanted < 0) | (wanted >= content.num_rows))
    if len(outside):
        raise IntegrityViolation(
            f"{located_by} points at row {int(wanted[outside[0]])} of chunk {chunk}, which has {content.num_rows} rows",
            hint="run `dataward verify` to see what was altered",
            chunk=chunk,
        )
    found = take_ids(stored, wanted)
    bad = np.flatnonzero(~same_ids(found, expected))
    if len(bad):
        i = int(bad[0])
        named, held = bytes(expected[i]).hex(), bytes(found[i]).hex()
        raise IntegrityViolation(
            f"record {named} is located at row {int(wanted[i])} of chunk {chunk} by {located_by}, "
            f"which holds record {held}: {located_by} was altered",
            hint="run `dataward verify` to see what was altered",
            record=named,
            chunk=chunk,
        )
    if len(wanted) and int(wanted[-1]) - int(wanted[0]) == len(wanted) - 1 and bool((np.diff(wanted) == 1).all()):
        return content.slice(int(wanted[0]), len(wanted))  # a run of rows (a stream in storage order)
    return content.take(pa.array(wanted, type=pa.int64()))


class ChunkCursor:
    """Serves records asked chunk by chunk (a stream in storage order), holding only the last chunk
    read: each chunk is read, re-hashed where the process has not checked it yet, and parsed once per
    stream instead of once per batch. Every record served is checked against its id, as by
    ``serve_located``."""

    def __init__(self, store: ObjectStore, digests: dict[int, str], schema: Schema, *, located_by: str) -> None:
        self._store, self._digests, self._schema, self._located_by = store, digests, schema, located_by
        self._target = schema.arrow_schema()
        self._held: tuple[int, pa.Table, np.ndarray] | None = None
        self._left: set[int] = set()

    def serve(self, asked: np.ndarray, chunk_of: np.ndarray, row_of: np.ndarray) -> pa.Table:
        """The canonical table of the records ``asked``, in the order given. They must come chunk by
        chunk, over this call and the ones before: a chunk left behind is not read again (ValueError)."""
        if len(asked) == 0:
            return self._target.empty_table()
        return _with_ids(asked, self.content(asked, chunk_of, row_of), self._target)

    def content(self, asked: np.ndarray, chunk_of: np.ndarray, row_of: np.ndarray) -> pa.Table:
        """``serve`` without the ``record_id`` column (the records' other columns, in the order asked)."""
        cuts = (np.flatnonzero(np.diff(chunk_of)) + 1).tolist()
        pieces = []
        for start, stop in zip([0, *cuts], [*cuts, len(asked)], strict=True):
            index = int(chunk_of[start])
            if self._held is None or self._held[0] != index:
                if index in self._left:
                    raise ValueError("records must be asked chunk by chunk")
                if self._held is not None:
                    self._left.add(self._held[0])
                self._held = None  # the chunk before is let go before the next is read
                content, stored = _checked_chunk(self._store, self._digests[index], self._schema, self._target)
                self._held = (index, content, stored)
            _, content, stored = self._held
            chunk = self._digests[index]
            pieces.append(_rows_of(content, stored, chunk, row_of[start:stop], asked[start:stop], self._located_by))
        return pa.concat_tables(pieces)


def load_records(
    conn: Connection, store: ObjectStore, ids: Sequence[str] | pa.Array | pa.ChunkedArray, schema: Schema
) -> pa.Table:
    """The canonical table of ``ids`` in the order given (duplicates repeated).

    Every record served is re-checked: its content must hash to the id it is asked for, whatever the
    record index says (an index entry pointed at another record's row, or a chunk swapped for an
    edited copy, is an ``IntegrityViolation``, never a wrong record)."""
    array = _id_array(ids)
    if len(array) == 0:
        return schema.arrow_schema().empty_table()
    binary, valid = record_index.ids_to_binary(array)
    chunk_of, row_of, digests = locate_stored(conn, binary, valid, names=array)
    return serve_located(store, binary, chunk_of, row_of, digests, schema)


def locate_stored(
    conn: Connection, binary: np.ndarray, valid: np.ndarray, *, names: pa.Array | None = None
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Where the record index says each of ``binary`` (``(n, 32)`` digests; ``valid`` false for a
    value that is not an id) is stored: its chunk (a catalog chunk id) and row, and the digests of
    those chunks. Refused (``IntegrityViolation``) when any record is not stored or a chunk is not
    listed. ``names``: the ids as given, for the message."""
    chunk_of, row_of = record_index.locate(conn, binary, valid)
    absent = np.flatnonzero(chunk_of < 0)
    if len(absent):
        count = int(record_index.first_occurrences(binary[absent]).sum()) if valid[absent].all() else len(absent)
        example = names[int(absent[0])].as_py() if names is not None else bytes(binary[absent[0]]).hex()
        raise IntegrityViolation(
            f"{count} record(s) are listed but not stored, e.g. {example}",
            hint="run `dataward verify` to see what was altered",
        )
    digests = chunk_digests(conn, np.unique(chunk_of).tolist())
    unknown = sorted(set(np.unique(chunk_of).tolist()) - set(digests))
    if unknown:
        raise IntegrityViolation(
            f"the record index points into chunk #{unknown[0]}, which the catalog does not list",
            hint="run `dataward verify` to see what was altered",
        )
    return chunk_of, row_of, digests


def serve_located(
    store: ObjectStore,
    asked: np.ndarray,
    chunk_of: np.ndarray,
    row_of: np.ndarray,
    digests: dict[int, str],
    schema: Schema,
    *,
    located_by: str = "the record index",
) -> pa.Table:
    """The canonical table of the records ``asked`` (``(n, 32)`` uint8 digests) in their order, record
    ``i`` read from row ``row_of[i]`` of chunk ``digests[chunk_of[i]]``: each chunk's records re-hashed
    at its first read in the process, and every record served checked against the id asked
    (``IntegrityViolation``, naming ``located_by``, what gave the locations)."""
    target = schema.arrow_schema()
    if len(asked) == 0:
        return target.empty_table()
    cursor = ChunkCursor(store, digests, schema, located_by=located_by)
    # Asked chunk by chunk already (a version of one chunk, or of chunks in turn): the pieces are then in
    # the asked order, and neither the asked ids nor the result are copied into another order.
    if bool((chunk_of[1:] >= chunk_of[:-1]).all()):
        return _with_ids(asked, cursor.content(asked, chunk_of, row_of), target)
    order = np.argsort(chunk_of, kind="stable")
    combined = cursor.content(take_ids(asked, order), chunk_of[order], row_of[order])
    # ``order`` lists the asked positions chunk by chunk, as ``combined`` holds them: invert it.
    back = np.empty(len(order), dtype=np.int64)
    back[order] = np.arange(len(order), dtype=np.int64)
    return _with_ids(asked, combined.take(pa.array(back)), target)


def chunks_holding(conn: Connection, binary: np.ndarray) -> list[str]:
    """The digests of the chunks where the record index says the records ``binary`` (``(n, 32)``
    digests) are stored, sorted (records it does not index add none)."""
    if not len(binary):
        return []
    chunk_of, _ = record_index.locate(conn, binary)
    return sorted(set(chunk_digests(conn, np.unique(chunk_of[chunk_of >= 0]).tolist()).values()))


def records_in_chunks(
    store: ObjectStore, digests: Iterable[str], wanted: np.ndarray, schema: Schema
) -> tuple[pa.Table, np.ndarray]:
    """The records of ``wanted`` (``(n, 32)`` digests) that the chunks ``digests`` hold, found without
    the record index (a catalog restored from before them does not index them): their canonical
    columns but ``record_id``, each distinct record once, and row by row of ``wanted`` whether it was
    found. Every chunk is read verified by its digest (a chunk missing or altered is an
    ``IntegrityViolation``, ``problem`` ``missing`` or ``corrupted``) and every one of its records
    re-hashed against its stored id under ``schema`` (an ``IntegrityViolation`` too: a chunk of
    another encoding reads so)."""
    target = schema.arrow_schema()
    reference = sorted_distinct(wanted)
    pieces: list[pa.Table] = []
    seen = np.zeros((0, 32), dtype=np.uint8)
    for digest in digests:
        content, stored = _checked_chunk(store, digest, schema, target)
        keep = member_of(stored, reference)
        if len(seen):
            keep &= ~member_of(stored, seen)  # a record two chunks hold is counted once
        if keep.any():
            pieces.append(content.filter(pa.array(keep)))
            seen = sorted_distinct(np.concatenate([seen, stored[keep]]))
    found = member_of(wanted, seen) if len(seen) else np.zeros(len(wanted), dtype=bool)
    empty = pa.schema([f for f in target if f.name != RECORD_ID]).empty_table()
    return (pa.concat_tables(pieces) if pieces else empty), found


def _with_ids(asked: np.ndarray, content: pa.Table, target: pa.Schema) -> pa.Table:
    """The records served, ``content`` row for row, with their ids: every record is the one asked
    (checked by ``_rows_of``), so the ids served are the ids asked, turned into hex once."""
    ids = record_index.binary_to_ids(asked)
    columns = [ids if name == RECORD_ID else content.column(name) for name in target.names]
    return pa.Table.from_arrays(columns, schema=target)


def ids_table(
    ids: Iterable[str] | pa.Array | pa.ChunkedArray, rows: Iterable[int] | np.ndarray | None = None
) -> pa.Table:
    """A table of record ids (and their rows in the submitted file). Ids given as 32-byte digests
    (``dataward.store.tables.ID_TYPE``) stay digests: that is how the object stores them."""
    if isinstance(ids, pa.Array | pa.ChunkedArray):
        id_array = ids if ids.type == stored_tables.ID_TYPE else ids.cast(pa.string())
    else:
        id_array = pa.array(list(ids), pa.string())
    data: dict[str, Any] = {RECORD_ID: id_array}
    if rows is not None:
        data["row"] = pa.array(rows if isinstance(rows, np.ndarray) else list(rows), type=pa.int64())
    return pa.table(data)


def joined_ids_hash(ids: pa.Array | pa.ChunkedArray) -> str:
    """``content_hash`` of the ids (as hex) joined by newlines (what a contribution's content hash
    commits to), without a Python string per id. Ids may be hex strings or 32-byte digests
    (``stored_tables.ID_TYPE``, turned into hex a block at a time: no hex column is built)."""
    array = _id_array(ids)
    n = len(array)
    if array.type == stored_tables.ID_TYPE and not array.null_count:
        digests = np.frombuffer(array.buffers()[1], dtype=np.uint8)[array.offset * 32 : (array.offset + n) * 32]
        return _joined_hex_hash(n, lambda start, stop: hex_text(digests[start * 32 : stop * 32]))
    array = array.cast(pa.string())
    if n and not array.null_count:
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + n + 1]
        if offsets[-1] - offsets[0] == 64 * n and (np.diff(offsets) == 64).all():
            data = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
            return _joined_hex_hash(n, lambda start, stop: data[start * 64 : stop * 64])
    return content_hash("\n".join(array.to_pylist()).encode())


def _joined_hex_hash(n: int, hex_of: Callable[[int, int], Any]) -> str:
    """``content_hash`` of ``n`` ids of 64 hex characters joined by newlines, where ``hex_of(a, b)``
    gives the text of ids ``a`` to ``b`` end to end: hashed in blocks of ids, each with a newline
    column appended to its ``(k, 64)`` text (the last one cut before its final newline)."""
    hasher = blake3.blake3()
    text = np.empty((min(n, _HASH_BLOCK), 65), dtype=np.uint8)
    text[:, 64] = ord("\n")
    for start in range(0, n, _HASH_BLOCK):
        stop = min(n, start + _HASH_BLOCK)
        text[: stop - start, :64] = np.frombuffer(hex_of(start, stop), dtype=np.uint8).reshape(-1, 64)
        end = (stop - start) * 65 - (stop == n)
        hasher.update(memoryview(text.reshape(-1)[:end]))
    return HASH_PREFIX + hasher.hexdigest()


def read_ids(store: ObjectStore, digest: str | None) -> list[str]:
    """The record ids in an id-list object (none for no object)."""
    if digest is None:
        return []
    return parquet_to_table(store.get(digest)).column(RECORD_ID).to_pylist()


def no_ids() -> np.ndarray:
    """An empty ``(0, 32)`` uint8 digest array."""
    return np.zeros((0, record_index.ID_BYTES), dtype=np.uint8)


def stored_id_digests(store: ObjectStore, digest: str) -> tuple[np.ndarray, np.ndarray]:
    """``(binary, valid)`` of the ``record_id`` column of a stored object (a chunk, an id list, a
    manifest), in its order (``idarrays.ids_to_binary``); only that column is decoded, and the store
    re-hashes the object on read. An object without such a column is an ``IntegrityViolation``."""
    data = store.get(digest)
    try:
        column = stored_tables.read_parquet_bytes(data, [RECORD_ID]).column(RECORD_ID)
    except (KeyError, ValueError, pa.ArrowException) as exc:
        raise IntegrityViolation(
            f"object {digest} holds no record ids ({exc})", hint="run `dataward verify` to see what was altered"
        ) from None
    return record_index.ids_to_binary(column)


def read_id_digests(store: ObjectStore, digest: str | None) -> np.ndarray:
    """The record ids in an id-list object as ``(n, 32)`` uint8 digests, in its order (none for no
    object). A value that is not a record id is an ``IntegrityViolation``: the ward writes none."""
    if digest is None:
        return no_ids()
    binary, valid = stored_id_digests(store, digest)
    if not valid.all():
        raise IntegrityViolation(
            f"id list {digest} holds {int((~valid).sum())} value(s) that are not record ids",
            hint="run `dataward verify` to see what was altered",
        )
    return binary


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


def digests_hash(sorted_ids: np.ndarray) -> str:
    """``records_hash`` of ids given as sorted ``(n, 32)`` uint8 digests (their hex, in the same order)."""
    return joined_ids_hash(record_index.binary_to_ids(sorted_ids))


def version_identity(dataset_id: str, number: int, parent: str | None, sorted_ids: Sequence[str]) -> str:
    """A version's id: the hash of its dataset, number, parent and records."""
    return identity_of_records(dataset_id, number, parent, records_hash(sorted_ids))


def identity_of_records(dataset_id: str, number: int, parent: str | None, records: str) -> str:
    """``version_identity`` from the version's ``records_hash``."""
    return json_hash({"dataset": dataset_id, "number": number, "parent": parent, "records": records})


@dataclass(frozen=True)
class ManifestSummary:
    """What a version's manifest commits to, worked out column-wise: how many ids it lists, how many
    of them are distinct, and ``records_hash`` of its distinct ids in order. ``invalid`` counts values
    that are not record ids (lowercase hex of 32 bytes); the hash leaves them out."""

    listed: int
    distinct: int
    invalid: int
    records: str


def summarize_ids(ids: pa.Array | pa.ChunkedArray) -> ManifestSummary:
    """``ManifestSummary`` of a column of hex ids: the ids sorted as 32-byte digests (the order of their
    lowercase hex) and joined by ``joined_ids_hash``, without a Python string per id (sorting a million
    strings took about a second)."""
    binary, valid = record_index.ids_to_binary(_id_array(ids))
    return summarize_digests(binary, valid)


def summarize_digests(binary: np.ndarray, valid: np.ndarray) -> ManifestSummary:
    """``summarize_ids`` of ``(n, 32)`` uint8 digests and which of them are valid ids. A manifest the
    ward wrote lists its ids sorted and distinct already: that is checked in one pass, and only ids in
    any other order are sorted."""
    if valid.all() and strictly_ascending(binary):
        in_order = binary
    else:
        in_order = sorted_distinct(binary if valid.all() else np.compress(valid, binary, axis=0))
    return ManifestSummary(
        listed=len(binary),
        distinct=len(in_order),
        invalid=int((~valid).sum()),
        records=digests_hash(in_order),
    )


def manifest_ids(store: ObjectStore, digest: str) -> list[str]:
    """The record ids of a version manifest."""
    ids = parquet_to_table(store.get(digest)).column(RECORD_ID)
    return pc.cast(ids, pa.string()).to_pylist()
