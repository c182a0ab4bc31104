"""The record index in blocks: ids found where they were written, never confused, and checked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import text

from dataward.catalog import record_index
from dataward.catalog.database import CatalogDatabase
from dataward.domain.idarrays import binary_to_ids, ids_to_binary


def _digests(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


@pytest.fixture
def db(tmp_path: Path) -> CatalogDatabase:
    database = CatalogDatabase.for_folder(tmp_path)
    database.migrate()
    return database


def _chunk(conn, name: str) -> int:  # type: ignore[no-untyped-def]
    conn.execute(text("INSERT INTO chunks (digest) VALUES (:d)"), {"d": name})
    return int(conn.execute(text("SELECT id FROM chunks WHERE digest = :d"), {"d": name}).scalar_one())


def test_hex_ids_round_trip_and_bad_ids_are_marked_invalid() -> None:
    digests = _digests(5)
    ids = binary_to_ids(digests)
    assert ids.to_pylist() == [bytes(d).hex() for d in digests]
    mixed = pa.array([ids[0].as_py(), "zz" * 32, None, ids[3].as_py().upper(), ids[4].as_py()[:-1], ids[1].as_py()])
    binary, valid = ids_to_binary(mixed)
    assert valid.tolist() == [True, False, False, False, False, True]
    assert (binary[0] == digests[0]).all() and (binary[5] == digests[1]).all() and not binary[1].any()
    sliced, ok = ids_to_binary(ids.slice(2, 2))
    assert ok.all() and (sliced == digests[2:4]).all()


def test_one_index_row_per_prefix_not_per_record(db: CatalogDatabase) -> None:
    digests = _digests(20_000)
    bits = record_index.bits_for(20_000)
    with db.transaction() as conn:
        written = record_index.add_chunk(conn, _chunk(conn, "b3:one"), digests)
        record_index.add_chunk(conn, _chunk(conn, "b3:small"), _digests(40, 9))
    assert bits == 7 and written == len(np.unique(record_index.prefixes(digests, bits)))
    assert 20_000 / written < 2 * record_index.BLOCK_TARGET
    with db.reading() as conn:
        assert record_index.count(conn) == 20_040
        rows = conn.execute(text("SELECT count(*) FROM record_blocks")).scalar_one()
        chunk_of, row_of = record_index.locate(conn, digests[[7, 19_999, 3]])
        # One id is looked up in one block per width: about 256 ids read, not the whole index.
        assert len(record_index.read_blocks(conn, digests[[7]])) < 2 * record_index.BLOCK_TARGET
    assert rows == written + 1  # a chunk of 40 records is one block
    assert row_of.tolist() == [7, 19_999, 3] and len(set(chunk_of.tolist())) == 1
    # Blocks are grouped on the first three bytes: the same prefixes as lookups take, at every width.
    for width in (0, 1, 7, 12, 16, 17, 23, record_index.MAX_BITS):
        assert record_index._short_prefixes(digests, width).tolist() == record_index.prefixes(digests, width).tolist()


@pytest.mark.parametrize("n", [1, 40, 20_000])
def test_blocks_cut_from_the_ids_in_order_hold_the_same_entries(db: CatalogDatabase, n: int) -> None:
    """A chunk indexed from its rows in id order (what the import has from its dedup sort) gets the same
    blocks, prefix for prefix, with the same (id, row) pairs, as one grouped on prefixes; an order that
    does not sort the ids is refused."""
    digests = _digests(n, 11)
    order = np.lexsort(tuple(digests[:, i] for i in range(31, -1, -1)))
    with db.transaction() as conn:
        grouped = record_index.add_chunk(conn, _chunk(conn, "b3:grouped"), digests)
        cut = record_index.add_chunk(conn, _chunk(conn, "b3:cut"), digests, order)
        if n > 1:
            with pytest.raises(ValueError, match="does not sort"):
                record_index.add_chunk(conn, _chunk(conn, "b3:bad"), digests, order[::-1].copy())
    assert grouped == cut
    with db.reading() as conn:
        blocks: dict[int, dict[tuple[int, int], set[tuple[bytes, int]]]] = {}
        for bits, prefix, chunk, entries in record_index.iter_blocks(conn):
            assert entries is not None
            pairs = {(row.tobytes(), int(r)) for row, r in zip(entries.binary, entries.rows, strict=True)}
            blocks.setdefault(chunk, {})[(bits, prefix)] = pairs
        a, b = sorted(blocks)
        assert blocks[a] == blocks[b]
        chunk_of, row_of = record_index.locate(conn, digests)
    assert row_of.tolist() == list(range(n)) and set(chunk_of.tolist()) == {a}


@pytest.mark.parametrize("n", [0, 1, 300, 20_000])
def test_blocks_from_ids_given_in_order_are_the_blocks_of_the_order(n: int) -> None:
    """An import hands ``chunk_blocks`` its sorted distinct ids instead of a second sorted copy: the
    blocks are byte for byte those worked out from the order alone; ids given that do not sort, too few,
    or not the chunk's, are refused."""
    digests = _digests(n, 5)
    order = np.lexsort(tuple(digests[:, i] for i in range(31, -1, -1))).astype(np.int64)
    taken = record_index.chunk_blocks(digests, order)
    given = record_index.chunk_blocks(digests, order, np.take(digests, order, axis=0))
    assert taken.values(7) == given.values(7) and len(taken) == len(given)
    assert bytes(given.ids) == np.take(digests, order, axis=0).tobytes()
    if n > 1:
        with pytest.raises(ValueError, match="does not sort"):
            record_index.chunk_blocks(digests, order, digests[::-1].copy())
        with pytest.raises(ValueError, match="ids in order"):
            record_index.chunk_blocks(digests, order, np.take(digests, order[1:], axis=0))
        # Sorted ids that are not the chunk's (another chunk's, or the chunk's with one replaced).
        others = np.take(_digests(n, 6), np.lexsort(tuple(_digests(n, 6)[:, i] for i in range(31, -1, -1))), axis=0)
        with pytest.raises(ValueError, match="not the chunk's ids"):
            record_index.chunk_blocks(digests, order, others)


def test_lookups_find_the_first_written_chunk_and_miss_absent_or_invalid_ids(db: CatalogDatabase) -> None:
    first, second, absent = _digests(300, 1), _digests(50, 2), _digests(4, 3)
    with db.transaction() as conn:
        a = _chunk(conn, "b3:a")
        b = _chunk(conn, "b3:b")
        record_index.add_chunk(conn, a, first)
        # The index should never hold an id twice; if it does, the first writer wins.
        record_index.add_chunk(conn, b, np.concatenate([second, first[:1]]))
    query = np.concatenate([first[[10, 0]], second[[49]], absent[[0]], first[[11]]])
    valid = np.array([True, True, True, True, False])
    with db.reading() as conn:
        chunk_of, row_of = record_index.locate(conn, query, valid)
    assert chunk_of.tolist() == [a, a, b, -1, -1]
    assert row_of.tolist() == [10, 0, 49, -1, -1]


def test_ids_sharing_their_first_eight_bytes_are_told_apart(db: CatalogDatabase) -> None:
    digests = _digests(6, 4)
    digests[1, :8] = digests[0, :8]  # same sort key, different ids
    twin = digests[0].copy()
    twin[31] ^= 0xFF
    with db.transaction() as conn:
        record_index.add_chunk(conn, _chunk(conn, "b3:c"), digests)
    with db.reading() as conn:
        _, rows = record_index.locate(conn, np.stack([digests[1], digests[0], twin]))
    assert rows.tolist() == [1, 0, -1]
    repeated = np.stack([digests[0], digests[1], digests[0], twin, digests[1]])
    assert record_index.first_occurrences(repeated).tolist() == [True, True, False, True, False]


def test_the_added_ids_hash_is_the_hash_of_the_ids_joined_by_newlines(monkeypatch: pytest.MonkeyPatch) -> None:
    """``joined_ids_hash`` (what a contribution's content hash commits to) hashes in blocks: the same
    value as hashing the joined text at once, whatever the block boundaries, slices and odd ids."""
    from dataward.domain.hashing import content_hash
    from dataward.service import recordstore

    monkeypatch.setattr(recordstore, "_HASH_BLOCK", 4)
    ids = binary_to_ids(_digests(9, 2))
    for part in (ids, ids.slice(1), ids.slice(0, 8), ids.slice(3, 1), pa.array(["ab", "cd"])):
        assert recordstore.joined_ids_hash(part) == content_hash("\n".join(part.to_pylist()).encode())


def test_a_block_whose_rows_do_not_pair_with_its_ids_finds_nothing(db: CatalogDatabase) -> None:
    digests = _digests(3, 5)
    # Three records: one block (0 prefix bits).
    with db.transaction() as conn:
        record_index.add_chunk(conn, _chunk(conn, "b3:d"), digests)
        conn.execute(text("UPDATE record_blocks SET rows = :r"), {"r": os.urandom(4)})
    with db.reading() as conn:
        chunk_of, _ = record_index.locate(conn, digests)
        damaged = [entries for _, _, _, entries in record_index.iter_blocks(conn)]
    assert (chunk_of == -1).all() and damaged == [None]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_match_finds_each_query_as_a_lookup_by_whole_id_would(seed: int) -> None:
    """``match`` sorts the queries to search them and compares ids as 64-bit words: every answer must
    still be the first stored row equal in all 32 bytes, in the queries' own order."""
    rng = np.random.default_rng(seed)
    stored = _digests(3000, seed)
    stored[1000:1040, :8] = stored[0, :8]  # many share their sort key
    stored[2000:2010] = stored[7]  # repeats: the first row wins
    queries = [stored[rng.integers(0, len(stored), 2000)]]
    for byte in range(32):  # a stored id changed in one byte only, wherever that byte is
        near = stored[rng.integers(0, len(stored))].copy()
        near[byte] ^= 1 << int(rng.integers(0, 8))
        queries.append(near[None, :])
    queries.append(_digests(50, seed + 100))  # absent
    query = np.concatenate(queries)[rng.permutation(sum(len(q) for q in queries))]
    valid = rng.random(len(query)) > 0.05
    first_row: dict[bytes, int] = {}
    for row, digest in enumerate(stored):
        first_row.setdefault(digest.tobytes(), row)
    want = [first_row.get(q.tobytes(), -1) if ok else -1 for q, ok in zip(query, valid, strict=True)]
    assert record_index.match(stored, query, valid).tolist() == want
    assert record_index.match(stored, query).tolist() == [first_row.get(q.tobytes(), -1) for q in query]
