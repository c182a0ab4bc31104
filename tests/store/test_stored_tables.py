"""Stored tables keep record ids as 32-byte digests and give them back as the same hex strings."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataward.domain.idarrays import binary_to_ids, ids_to_binary
from dataward.domain.schema import RECORD_ID
from dataward.store import tables as stored_tables
from dataward.store.tables import ID_TYPE, parquet_to_table, table_to_parquet


def _ids(n: int, seed: int = 0) -> pa.Array:
    return binary_to_ids(np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8))


def test_ids_are_stored_as_digests_and_read_back_as_hex() -> None:
    table = pa.table({RECORD_ID: _ids(1000), "row": pa.array(range(1, 1001), pa.int64())})
    data = table_to_parquet(table)
    stored = pq.read_table(io.BytesIO(data))
    assert stored.schema.field(RECORD_ID).type == ID_TYPE
    assert parquet_to_table(data).equals(table)
    # Several row groups and a sliced read come back whole and in order.
    sink = io.BytesIO()
    pq.write_table(stored, sink, row_group_size=300)
    assert parquet_to_table(sink.getvalue()).equals(table)
    # Readers that take the digests directly see the same ids.
    binary, valid = ids_to_binary(stored.column(RECORD_ID).slice(10))
    assert valid.all()
    assert binary_to_ids(binary).equals(table.column(RECORD_ID).combine_chunks().slice(10))


def test_digests_given_by_the_caller_must_count_the_rows() -> None:
    ids = _ids(10)
    binary, _ = ids_to_binary(ids)
    assert (
        parquet_to_table(table_to_parquet(pa.table({RECORD_ID: ids}), binary))
        .column(RECORD_ID)
        .equals(pa.chunked_array([ids]))
    )
    try:
        table_to_parquet(pa.table({RECORD_ID: ids}), binary[:9])
    except ValueError as exc:
        assert "9 digests for 10 record ids" in str(exc)
    else:
        raise AssertionError("a short digest array was accepted")


def test_a_column_that_is_not_all_ids_and_old_hex_objects_stay_text() -> None:
    odd = pa.table({RECORD_ID: pa.array(["not-an-id", _ids(1)[0].as_py().upper()])})
    data = table_to_parquet(odd)
    assert pq.read_table(io.BytesIO(data)).schema.field(RECORD_ID).type == pa.string()
    assert parquet_to_table(data).equals(odd)
    old = io.BytesIO()
    hex_table = pa.table({RECORD_ID: _ids(5, seed=1)})
    pq.write_table(hex_table, old, compression="zstd")  # how objects were written before
    assert parquet_to_table(old.getvalue()).equals(hex_table)


def test_records_encoded_as_their_ids_come_are_the_bytes_of_the_table_encoded_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An import encodes its chunk a row group at a time as the ids are worked out
    (``records_to_parquet``): the object is byte for byte the table encoded at once, so a record's
    chunk has the same address whichever way it was written, at every cut of the row groups."""
    monkeypatch.setattr(stored_tables, "ROW_GROUP_ROWS", 64)
    rng = np.random.default_rng(3)
    for n in (0, 1, 63, 64, 65, 128, 1000):
        binary = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        content = pa.table(
            {
                "text": pa.array([f"t{i} " * (i % 5) for i in range(n)], pa.large_string()),
                "label": [str(i % 3) for i in range(n)],
            }
        )
        asked: list[tuple[int, int]] = []

        def ids(start: int, stop: int, binary: np.ndarray = binary, asked: list = asked) -> np.ndarray:
            asked.append((start, stop))
            return binary[start:stop]

        streamed = stored_tables.records_to_parquet(content, ids)
        at_once = table_to_parquet(content.add_column(0, RECORD_ID, binary_to_ids(binary)))
        assert streamed == at_once, n
        # In order, a row group's rows at a time, each row once.
        assert [r for a, b in asked for r in range(a, b)] == list(range(n))
        assert all(b - a <= 64 for a, b in asked)
        assert pq.ParquetFile(io.BytesIO(streamed)).metadata.num_row_groups == max(1, -(-n // 64))
        assert parquet_to_table(streamed).equals(content.add_column(0, RECORD_ID, binary_to_ids(binary)))


def test_records_that_already_carry_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="already have a record_id column"):
        stored_tables.records_to_parquet(pa.table({RECORD_ID: _ids(3)}), lambda a, b: np.zeros((b - a, 32), np.uint8))
