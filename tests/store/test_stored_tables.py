"""Stored tables keep record ids as 32-byte digests and give them back as the same hex strings."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataward.domain.idarrays import binary_to_ids, ids_to_binary
from dataward.domain.schema import RECORD_ID
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
