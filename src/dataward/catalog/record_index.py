"""The record index: where each stored record lives (its chunk and row), in blocks, not one row per record.

Record ids are BLAKE3 digests, so they spread evenly over any prefix. The index keeps, for every chunk,
one ``record_blocks`` row per id prefix that the chunk holds: the 32-byte binary ids of the chunk's
records with that prefix, and their rows in the chunk. The prefix is as long as it takes for a block
to hold about ``BLOCK_TARGET`` ids (``bits``, chosen per chunk: 0 bits for a chunk of 256 records or
fewer, 12 for a million), so a 1,000,000-record import writes 4,096 rows instead of a million, and
looking an id up reads one block of about 256 ids per chunk, whatever the size of the ward. All the
work on ids is done column-wise with numpy: no Python object per record.

Ids are hex strings everywhere else in the ward; here they are ``(n, 32)`` uint8 arrays
(``dataward.domain.idarrays`` converts whole columns both ways).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, Table, bindparam, func, insert, select
from sqlalchemy.exc import DBAPIError

from dataward.catalog.tables import record_blocks
from dataward.domain.idarrays import ID_BYTES, binary_to_ids, distinct_order, find_ids, first_words, ids_to_binary

BLOCK_TARGET = 256
"""About how many ids an index block holds: a chunk of n records is split on its ids' first
``bits_for(n)`` bits."""
MAX_BITS = 24
_IN_BATCH = 500


def bits_for(records: int) -> int:
    """The prefix length, in bits, that splits a chunk of ``records`` ids into blocks of about
    ``BLOCK_TARGET`` (at most ``BLOCK_TARGET`` on average)."""
    return min(MAX_BITS, ((max(records, 1) - 1) // BLOCK_TARGET).bit_length())


def prefixes(binary: np.ndarray, bits: int) -> np.ndarray:
    """The ``bits``-bit prefix of each digest (0 for every digest when ``bits`` is 0)."""
    return _key_prefixes(first_words(binary), bits)


def _key_prefixes(keys: np.ndarray, bits: int) -> np.ndarray:
    """``prefixes`` from the digests' ``_keys``."""
    if bits == 0:
        return np.zeros(len(keys), dtype=np.int64)
    return (keys >> np.uint64(64 - bits)).astype(np.int64)


def first_occurrences(binary: np.ndarray) -> np.ndarray:
    """A mask of the rows whose id has not appeared in an earlier row (``idarrays.distinct_order``)."""
    return distinct_order(binary)[1]


@dataclass(frozen=True)
class Entries:
    """Index entries: ``binary[i]`` is in chunk ``chunks[i]`` (a ``chunks.id``) at row ``rows[i]``."""

    binary: np.ndarray
    chunks: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.chunks)


def _entries(blocks: list[tuple[int, bytes, bytes]]) -> Entries:
    if not blocks:
        return Entries(np.zeros((0, ID_BYTES), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    # A block whose ids and rows do not pair up (damaged or edited) is left out: its records are then
    # not found, which reads refuse and ``verify`` reports.
    whole = [b for b in blocks if _pairs_up(b[1], b[2])]
    ids = np.frombuffer(b"".join(bytes(b[1]) for b in whole), dtype=np.uint8).reshape(-1, ID_BYTES)
    rows = np.frombuffer(b"".join(bytes(b[2]) for b in whole), dtype="<u4").astype(np.int64)
    counts = [len(b[1]) // ID_BYTES for b in whole]
    chunks = np.repeat(np.array([b[0] for b in whole], dtype=np.int64), counts)
    return Entries(ids, chunks, rows)


def _pairs_up(ids: bytes, rows: bytes) -> bool:
    return len(ids) % ID_BYTES == 0 and len(rows) % 4 == 0 and len(ids) // ID_BYTES == len(rows) // 4


@dataclass(frozen=True)
class ChunkBlocks:
    """A chunk's index rows, worked out before the chunk has a catalog id (``chunk_blocks``): block
    ``i`` holds the ids ``ids[starts[i]:stops[i]]`` (32 bytes each) with prefix ``prefixes[i]`` at
    ``bits`` bits, and their rows in the chunk ``rows[starts[i]:stops[i]]`` (4 bytes each)."""

    bits: int
    prefixes: list[int]
    starts: list[int]
    stops: list[int]
    ids: memoryview
    rows: memoryview

    def __len__(self) -> int:
        return len(self.prefixes)

    def values(self, chunk_id: int) -> list[tuple[int, int, int, memoryview, memoryview]]:
        """The rows of ``record_blocks`` for the chunk ``chunk_id``."""
        return list(self.iter_values(chunk_id))

    def iter_values(self, chunk_id: int) -> Iterator[tuple[int, int, int, memoryview, memoryview]]:
        """``values``, one row at a time (what ``insert_chunk_blocks`` writes)."""
        return block_rows(self.bits, self.prefixes, self.starts, self.stops, chunk_id, self.ids, self.rows)


def block_rows(
    bits: int,
    prefixes_: list[int],
    starts: list[int],
    stops: list[int],
    owner: int,
    ids: memoryview,
    values: memoryview,
) -> Iterator[tuple[int, int, int, memoryview, memoryview]]:
    """Block rows ``(bits, prefix, owner, ids, values)``, one a prefix: block ``i`` holds the ids
    ``ids[starts[i]:stops[i]]`` (32 bytes each) and their 4-byte values (rows or tags), slices of the
    two buffers given. Made one at a time: a million records' 4,096 rows of two slices each, held in a
    list until written, were enough objects to set off a full pass of Python's garbage collector
    (0.07 CPU-s with the GIL held, inside the write transaction) in a third of the imports."""
    for prefix, a, b in zip(prefixes_, starts, stops, strict=True):
        yield (bits, prefix, owner, ids[a * ID_BYTES : b * ID_BYTES], values[a * 4 : b * 4])


def chunk_blocks(
    binary: np.ndarray, order: np.ndarray | None = None, in_order: np.ndarray | None = None
) -> ChunkBlocks:
    """The index blocks of a chunk whose row ``row`` holds the id ``binary[row]``.

    ``order``, when the caller has it, lists the chunk's rows by id (ascending, as
    ``idarrays.distinct_order`` gives it): the blocks are then cut where the sorted ids' prefix changes
    instead of grouping every row on its prefix (a block's rows are then in id order rather than row
    order; either is a valid block). ``in_order``, with ``order``, is ``binary`` taken in that order,
    when the caller has it already (an import's distinct ids, sorted): it spares a copy of every id.
    """
    if len(binary) >= 2**32:
        raise ValueError("a chunk holds at most 2**32 - 1 records")
    bits = bits_for(len(binary))
    if order is not None:
        if len(order) != len(binary):
            raise ValueError(f"an order of {len(order)} rows for a chunk of {len(binary)}")
        order = np.asarray(order, dtype=np.int64)
        given = in_order is not None
        if in_order is None:
            in_order = np.take(binary, order, axis=0)
        elif in_order.shape != binary.shape:
            raise ValueError(f"{len(in_order)} ids in order for a chunk of {len(binary)}")
        keys = first_words(in_order)
        if len(keys) > 1 and (keys[1:] < keys[:-1]).any():
            raise ValueError("the order given does not sort the chunk's ids")
        # Ids handed over must be the chunk's, in that order: checked on their first 8 bytes (a gather
        # of 8 bytes a row, where taking them again would copy 32).
        if given and not np.array_equal(keys, first_words(binary)[order]):
            raise ValueError("the ids given in order are not the chunk's ids in that order")
        ordered = _key_prefixes(keys, bits)
    else:
        groups = _short_prefixes(binary, bits)
        order = np.argsort(groups, kind="stable")  # rows ascending within each prefix (a radix sort)
        ordered = groups[order]
        in_order = np.take(binary, order, axis=0)
    cuts = np.flatnonzero(np.diff(ordered)) + 1
    starts = np.concatenate(([0], cuts)) if len(order) else cuts
    stops = np.concatenate((cuts, [len(order)])) if len(order) else cuts
    # Each block's ids and rows are slices of one sorted copy: the SQLite driver takes them as they are.
    return ChunkBlocks(
        bits,
        ordered[starts].tolist(),
        starts.tolist(),
        stops.tolist(),
        memoryview(np.ascontiguousarray(in_order).reshape(-1)).cast("B"),
        memoryview(order.astype("<u4")).cast("B"),
    )


def insert_chunk_blocks(conn: Connection, chunk_id: int, blocks: ChunkBlocks) -> int:
    """Write the blocks of ``chunk_blocks`` for the chunk ``chunk_id``; returns how many rows."""
    if len(blocks):
        insert_blocks(conn, record_blocks, ("bits", "prefix", "chunk", "ids", "rows"), blocks.iter_values(chunk_id))
    return len(blocks)


def add_chunk(conn: Connection, chunk_id: int, binary: np.ndarray, order: np.ndarray | None = None) -> int:
    """Index the records of a chunk: ``binary[row]`` is the id of the chunk's row ``row``.

    ``order``: see ``chunk_blocks``. Returns the number of index rows written (one per id prefix
    present, at ``bits_for`` bits).
    """
    if len(binary) == 0:
        return 0
    return insert_chunk_blocks(conn, chunk_id, chunk_blocks(binary, order))


def insert_blocks(conn: Connection, table: Table, names: tuple[str, ...], values: Iterable[tuple[Any, ...]]) -> None:
    """Insert block rows ``values`` (each in the order of ``names``, its last two entries memoryviews),
    taken one at a time on SQLite (``block_rows``)."""
    if conn.dialect.name == "sqlite":
        # The driver's own executemany takes the memoryviews as they are, skips Core's compilation per
        # row, and takes the rows from an iterator (Core's wants them in a list): each row is let go once
        # written. Errors are raised as Core raises them, so that the transaction names them the same way.
        columns, marks = ", ".join(names), ", ".join("?" * len(names))
        statement = f"INSERT INTO {table.name} ({columns}) VALUES ({marks})"
        dbapi = conn.dialect.loaded_dbapi
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(statement, values)
        except dbapi.Error as exc:
            raise DBAPIError.instance(statement, None, exc, dbapi.Error, dialect=conn.dialect) from exc
        finally:
            cursor.close()
    else:
        conn.execute(
            insert(table),
            [dict(zip(names, (*v[:-2], bytes(v[-2]), bytes(v[-1])), strict=True)) for v in values],
        )


def _short_prefixes(binary: np.ndarray, bits: int) -> np.ndarray:
    """``prefixes(binary, bits)`` from the first three bytes (``bits`` is at most 24), as uint16 or
    uint32: what the block grouping sorts on."""
    if bits == 0:
        return np.zeros(len(binary), dtype=np.uint16)
    head = binary[:, 0].astype(np.uint32) << 16 | binary[:, 1].astype(np.uint32) << 8 | binary[:, 2]
    head >>= np.uint32(24 - bits)
    return head.astype(np.uint16) if bits <= 16 else head


def read_blocks(conn: Connection, wanted: np.ndarray | None = None) -> Entries:
    """The index entries in the blocks that could hold the digests ``wanted`` (every entry for
    ``None``), oldest chunk first."""
    query = select(record_blocks.c.chunk, record_blocks.c.ids, record_blocks.c.rows)
    if wanted is None:
        found = list(conn.execute(query.order_by(record_blocks.c.chunk, record_blocks.c.bits, record_blocks.c.prefix)))
        return _entries([(int(r[0]), r[1], r[2]) for r in found])
    found = []
    widths = conn.execute(select(record_blocks.c.bits).distinct()).scalars().all()
    for bits in sorted(int(b) for b in widths):
        listed = np.unique(prefixes(wanted, bits)).tolist()
        if len(listed) * 4 > 1 << bits:
            # Most blocks of this width are wanted: one scan of them costs less than listing them.
            found.extend(conn.execute(query.where(record_blocks.c.bits == bits)))
            continue
        stmt = query.where(record_blocks.c.bits == bits, record_blocks.c.prefix.in_(bindparam("p", expanding=True)))
        for start in range(0, len(listed), _IN_BATCH):
            found.extend(conn.execute(stmt, {"p": listed[start : start + _IN_BATCH]}))
    found.sort(key=lambda r: r[0])  # stable: the first-written chunk's entry comes first
    return _entries([(int(r[0]), r[1], r[2]) for r in found])


def iter_blocks(conn: Connection) -> Iterator[tuple[int, int, int, Entries | None]]:
    """Every block as ``(bits, prefix, chunk id, entries)``, oldest chunk first (for verification);
    ``entries`` is None for a block whose ids and rows do not pair up."""
    c = record_blocks.c
    query = select(c.bits, c.prefix, c.chunk, c.ids, c.rows).order_by(c.chunk, c.bits, c.prefix)
    for bits, prefix, chunk, ids, rows in conn.execute(query):
        ids, rows = bytes(ids), bytes(rows)
        entries = _entries([(int(chunk), ids, rows)]) if _pairs_up(ids, rows) else None
        yield int(bits), int(prefix), int(chunk), entries


def locate(conn: Connection, binary: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(chunk ids, rows)`` of the records ``binary``; chunk id -1 where a record is not stored.

    Rows of ``binary`` where ``valid`` is false are never found. When the index holds an id twice
    (it should not), the entry of the first-written chunk wins.
    """
    n = len(binary)
    chunk_of = np.full(n, -1, dtype=np.int64)
    row_of = np.full(n, -1, dtype=np.int64)
    ok = np.ones(n, dtype=bool) if valid is None else valid.copy()
    if not ok.any():
        return chunk_of, row_of
    stored = read_blocks(conn, binary if ok.all() else np.compress(ok, binary, axis=0))
    if len(stored) == 0:
        return chunk_of, row_of
    at = match(stored.binary, binary, ok)
    hits = np.flatnonzero(at >= 0)
    chunk_of[hits] = stored.chunks[at[hits]]
    row_of[hits] = stored.rows[at[hits]]
    return chunk_of, row_of


def match(stored: np.ndarray, query: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """For each digest of ``query``, the index of the first equal digest of ``stored``, or -1
    (``idarrays.find_ids``)."""
    return find_ids(stored, query, valid)


def count(conn: Connection) -> int:
    """How many records the index holds."""
    total = conn.execute(select(func.sum(func.length(record_blocks.c.ids)))).scalar()
    return int(total or 0) // ID_BYTES


__all__ = [
    "ID_BYTES",
    "ChunkBlocks",
    "Entries",
    "add_chunk",
    "binary_to_ids",
    "bits_for",
    "block_rows",
    "chunk_blocks",
    "count",
    "first_occurrences",
    "ids_to_binary",
    "insert_chunk_blocks",
    "iter_blocks",
    "locate",
    "match",
    "prefixes",
    "read_blocks",
]
