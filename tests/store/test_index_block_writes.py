"""Writing the record index's and holder index's blocks (a million-record import writes 4,096 of each
under the write lock): one row at a time, failures named as the catalog names them, and the holder
index's blocks cut before the write the same as cut in it."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import IntegrityError

from dataward.catalog import holder_index, record_index
from dataward.catalog.database import CatalogDatabase
from dataward.catalog.tables import holder_blocks, record_blocks
from dataward.domain.idarrays import sorted_distinct

N = 200_000
"""Ids of the chunk and list written: 1,024 blocks of each index (``bits_for`` gives 10 bits)."""


def _digests(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


@pytest.fixture
def db(tmp_path: Path) -> CatalogDatabase:
    database = CatalogDatabase.for_folder(tmp_path)
    database.migrate()
    return database


def _chunk(conn: Connection, name: str) -> int:
    conn.execute(text("INSERT INTO chunks (digest) VALUES (:d)"), {"d": name})
    return int(conn.execute(text("SELECT id FROM chunks WHERE digest = :d"), {"d": name}).scalar_one())


@contextmanager
def _objects_half_way(conn: Connection, table: str, blocks: int) -> Iterator[list[int]]:
    """Python objects the garbage collector tracks, counted just before the body and when the
    ``blocks // 2``-th row of ``table`` is inserted (the driver's trace callback, one call a row); the
    collector is off meanwhile, so that only what is still referenced is counted."""
    driver = conn.connection.driver_connection
    counts: list[int] = []
    inserted = [0]

    def traced(statement: str) -> None:
        if statement.startswith(f"INSERT INTO {table} "):
            inserted[0] += 1
            if inserted[0] == blocks // 2:
                counts.append(len(gc.get_objects()))

    gc.collect()
    gc.disable()
    try:
        counts.append(len(gc.get_objects()))
        driver.set_trace_callback(traced)
        yield counts
    finally:
        driver.set_trace_callback(None)
        gc.enable()


def _assert_one_row_at_a_time(counts: list[int], blocks: int) -> None:
    # Rows held in a list until written (a tuple and two slices each) were 1.5 objects a block alive at
    # once: enough, in a million-record import, to set off a full pass of the collector (about 0.1 s)
    # inside the write transaction.
    assert len(counts) == 2, "the trace callback did not see the rows"
    assert counts[1] - counts[0] < blocks // 4, f"{counts[1] - counts[0]} more objects alive for {blocks} blocks"


def test_record_index_blocks_are_written_one_row_at_a_time(db: CatalogDatabase) -> None:
    digests = _digests(N, 1)
    order = np.lexsort(tuple(digests[:, i] for i in range(31, -1, -1))).astype(np.int64)
    blocks = record_index.chunk_blocks(digests, order)
    assert len(blocks) == 1024
    with db.transaction() as conn:
        chunk = _chunk(conn, "b3:a")
        with _objects_half_way(conn, record_blocks.name, len(blocks)) as counts:
            assert record_index.insert_chunk_blocks(conn, chunk, blocks) == len(blocks)
    _assert_one_row_at_a_time(counts, len(blocks))
    with db.reading() as conn:
        chunk_of, row_of = record_index.locate(conn, digests)
    assert (chunk_of == chunk).all() and row_of.tolist() == list(range(N))


def test_holder_index_blocks_are_written_one_row_at_a_time(db: CatalogDatabase) -> None:
    ids = sorted_distinct(_digests(N, 2))
    with db.transaction() as conn:
        # A first list, so that the statements around the blocks are compiled and cached beforehand.
        assert holder_index.add_list(conn, "b3:warm", "", sorted_distinct(_digests(10, 9)))
        with _objects_half_way(conn, holder_blocks.name, 1024) as counts:
            assert holder_index.add_list(conn, "b3:list", "", ids)
        assert len(conn.execute(select(holder_blocks.c.prefix).where(holder_blocks.c.bits == 10)).all()) == 1024
    _assert_one_row_at_a_time(counts, 1024)
    with db.reading() as conn:
        list_id = holder_index.listed(conn)[("b3:list", "")]
        assert holder_index.lookup(conn, ids[7].tobytes()) == [list_id * 2]


def test_a_failed_block_write_is_raised_as_the_catalog_names_it_and_writes_nothing(db: CatalogDatabase) -> None:
    """A block row the catalog refuses (here, the same chunk's blocks twice) is raised as SQLAlchemy's
    error, as every other statement's: the transaction's handling of lock and damage errors sees it."""
    digests = _digests(3000, 3)
    blocks = record_index.chunk_blocks(digests)
    with pytest.raises(IntegrityError), db.transaction() as conn:
        chunk = _chunk(conn, "b3:a")
        record_index.insert_chunk_blocks(conn, chunk, blocks)
        record_index.insert_chunk_blocks(conn, chunk, blocks)
    with db.reading() as conn:
        assert conn.execute(select(record_blocks.c.chunk)).first() is None


def _segment_blocks(conn: Connection) -> dict[int, list[tuple[int, int, bytes, list[int]]]]:
    """Each segment's blocks as ``(bits, prefix, ids, tags)``, in prefix order."""
    out: dict[int, list[tuple[int, int, bytes, list[int]]]] = {}
    for bits, prefix, segment, entries in holder_index.iter_blocks(conn):
        assert entries is not None
        out.setdefault(segment, []).append((bits, prefix, entries.binary.tobytes(), entries.tags.tolist()))
    return out


@pytest.mark.parametrize("n", [1, 300, 20_000])
def test_holder_blocks_cut_ahead_are_the_blocks_cut_in_the_write(db: CatalogDatabase, n: int) -> None:
    """An import cuts its list's blocks while it waits for its chunk (``cut_blocks``), not under the
    write lock: the blocks written are byte for byte those cut in the write. A cut of other ids (even
    as many) is never used for a list, nor is one given for a list with removals."""
    ids = sorted_distinct(_digests(n, 4))
    unsorted = ids[::-1].copy()
    other = sorted_distinct(_digests(n, 5))
    cut: Callable[[np.ndarray], holder_index.Cut] = holder_index.cut_blocks
    with db.transaction() as conn:
        lists = {
            "plain": holder_index.add_list(conn, "b3:plain", "", ids, merge_budget=0),
            "ahead": holder_index.add_list(conn, "b3:ahead", "", ids, merge_budget=0, cut=cut(ids)),
            "stale": holder_index.add_list(conn, "b3:stale", "", ids, merge_budget=0, cut=cut(other)),
            "unsorted": holder_index.add_list(conn, "b3:unsorted", "", unsorted, merge_budget=0, cut=cut(unsorted)),
        }
        assert all(lists.values())
        segments = _segment_blocks(conn)
        names = holder_index.listed(conn)
    assert len(segments) == 4
    tags = {name: names[(f"b3:{name}", "")] * 2 for name in lists}
    by_tag = {blocks[0][3][0]: blocks for blocks in segments.values()}
    plain = by_tag[tags["plain"]]
    assert sum(len(b[3]) for b in plain) == n
    for name in ("ahead", "stale"):
        assert [(b, p, i) for b, p, i, _ in by_tag[tags[name]]] == [(b, p, i) for b, p, i, _ in plain], name
        assert {t for *_, ts in by_tag[tags[name]] for t in ts} == {tags[name]}
    # Ids given in another order are cut into the same blocks of the same entries.
    for (bits, prefix, raw, _), (bits2, prefix2, raw2, _) in zip(plain, by_tag[tags["unsorted"]], strict=True):
        assert (bits, prefix) == (bits2, prefix2)
        assert sorted(np.frombuffer(raw, np.uint8).reshape(-1, 32).tolist()) == sorted(
            np.frombuffer(raw2, np.uint8).reshape(-1, 32).tolist()
        )
    # A list with removals is cut in the write, whatever cut is given.
    removed = sorted_distinct(_digests(10, 6))
    with db.transaction() as conn:
        assert holder_index.add_list(conn, "b3:change", "b3:plain", ids, removed, merge_budget=0, cut=cut(other))
    with db.reading() as conn:
        change = holder_index.listed(conn)[("b3:change", "b3:plain")] * 2
        assert holder_index.lookup(conn, ids[0].tobytes()) == sorted(
            [tags["plain"], tags["ahead"], tags["stale"], tags["unsorted"], change]
        )
        assert holder_index.lookup(conn, removed[0].tobytes()) == [change + holder_index.REMOVED]
        assert holder_index.lookup(conn, other[0].tobytes()) == []
