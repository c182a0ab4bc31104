"""Tables as stored objects: Parquet bytes whose record ids are 32-byte digests, read back as hex.

Record chunks, contribution id lists and version manifests all hold a ``record_id`` column. In the
object it is ``fixed_size_binary(32)``, uncompressed and without a dictionary or statistics (digests
do not compress, and min/max of hashes prune nothing): half the bytes of the 64-character hex text,
and no string encoding to pay. Reading gives the ``record_id`` column as hex strings again, so callers
see the same table whichever form the object holds (objects written before hold the hex text).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataward.domain.idarrays import ID_BYTES, binary_to_ids, ids_to_binary
from dataward.domain.schema import RECORD_ID

ID_TYPE = pa.binary(ID_BYTES)


def binary_id_array(binary: np.ndarray) -> pa.FixedSizeBinaryArray:
    """``(n, 32)`` uint8 digests as a ``fixed_size_binary(32)`` array (no copy when contiguous)."""
    binary = np.ascontiguousarray(binary, dtype=np.uint8).reshape(-1, ID_BYTES)
    return pa.FixedSizeBinaryArray.from_buffers(ID_TYPE, len(binary), [None, pa.py_buffer(binary)])


def _stored_ids(column: pa.ChunkedArray | pa.Array, binary: np.ndarray | None) -> pa.Array | None:
    """The id column as digests, or None when it is not all well-formed ids (kept as it is then)."""
    if column.type == ID_TYPE:
        return None
    if binary is None:
        if column.null_count:
            return None
        binary, valid = ids_to_binary(column)
        if not valid.all():
            return None
    if len(binary) != len(column):
        raise ValueError(f"{len(binary)} digests for {len(column)} record ids")
    return binary_id_array(binary)


class EncodingStopped(Exception):
    """``table_to_parquet`` was told to stop (its ``stop`` was set) before it was done."""


class _StoppableSink(io.BytesIO):
    """A ``BytesIO`` that refuses the Parquet writer's next page once ``stop`` is set: the writer
    hands its pages over as it encodes them, so it gives up within a page."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self._stop = stop

    def write(self, data: object) -> int:  # type: ignore[override]
        if self._stop.is_set():
            raise EncodingStopped("the table's encoding was stopped")
        return super().write(data)  # type: ignore[arg-type]


ROW_GROUP_ROWS = 1 << 17
"""Rows per Parquet row group of a stored table. An import encodes its chunk a row group at a time as
the rows' ids become known (``records_to_parquet``), and a table encoded at once is cut the same way,
so that the bytes, and so the object's address, do not depend on which way it was written."""

IdSource = Callable[[int, int], np.ndarray]
"""``ids(start, stop)``: the ``(stop - start, 32)`` digests of rows ``start`` to ``stop``, waiting for them
if need be (``dataward.domain.records.RecordDigests.rows``)."""


def table_to_parquet(
    table: pa.Table, binary_ids: np.ndarray | None = None, *, stop: threading.Event | None = None
) -> bytes:
    """Parquet bytes (zstd) of a table, its ``record_id`` column stored as 32-byte digests.

    ``binary_ids`` are the digests of that column when the caller has them already (they are checked
    for count only: they must be the same ids). ``stop``: once set, the encoding gives up at its next
    page with ``EncodingStopped`` (the bytes are the same whether or not it is given)."""
    if RECORD_ID in table.column_names:
        stored = _stored_ids(table.column(RECORD_ID), binary_ids)
        if stored is not None:
            table = table.set_column(table.column_names.index(RECORD_ID), RECORD_ID, stored)
    rows = table.num_rows
    return _encode(table.schema, (table.slice(start, ROW_GROUP_ROWS) for start in _group_starts(rows)), stop)


def records_to_parquet(content: pa.Table, ids: IdSource, *, stop: threading.Event | None = None) -> bytes:
    """The bytes ``table_to_parquet`` gives for ``content`` with a leading ``record_id`` column of
    ``ids``, each row group encoded as soon as ``ids`` gives its rows' digests: the first rows are
    encoded while the ids of the last are still being worked out. ``stop`` as in ``table_to_parquet``."""
    if RECORD_ID in content.column_names:
        raise ValueError("the records already have a record_id column")
    rows = content.num_rows

    def group(start: int) -> pa.Table:
        end = min(start + ROW_GROUP_ROWS, rows)
        return content.slice(start, end - start).add_column(0, RECORD_ID, binary_id_array(ids(start, end)))

    schema = content.schema.insert(0, pa.field(RECORD_ID, ID_TYPE))
    return _encode(schema, (group(start) for start in _group_starts(rows)), stop)


def _group_starts(rows: int) -> range:
    # An empty table is still written once: its file holds the schema and one empty row group.
    return range(0, max(rows, 1), ROW_GROUP_ROWS)


def _encode(schema: pa.Schema, groups: Iterator[pa.Table], stop: threading.Event | None) -> bytes:
    """Parquet bytes of the tables ``groups`` (each of ``ROW_GROUP_ROWS`` rows but the last, all of
    ``schema``), one row group each, with the ward's encoding of each column."""
    others = [name for name in schema.names if name != RECORD_ID]
    compression: dict[str, str] = dict.fromkeys(others, "zstd")
    if RECORD_ID in schema.names:
        compression[RECORD_ID] = "none" if schema.field(RECORD_ID).type == ID_TYPE else "zstd"
    # Integer columns (the file rows of an id list) are delta-encoded: rising rows take a few bits each,
    # where a dictionary of a million distinct values is work for nothing.
    integers = [name for name in others if pa.types.is_integer(schema.field(name).type)]
    # Free text and image bytes (large_string, large_binary: the canonical types of text and image
    # columns) rarely repeat: a dictionary built for them is dropped at its page limit, work for
    # nothing (a fifth of a million short texts' encoding). Labels and other short values keep one.
    long_values = [name for name in others if _long_values(schema.field(name).type)]
    dictionary = [name for name in others if name not in integers and name not in long_values]
    sink = io.BytesIO() if stop is None else _StoppableSink(stop)
    with pq.ParquetWriter(
        sink,
        schema,
        compression=compression,
        use_dictionary=dictionary,
        write_statistics=others,
        column_encoding=dict.fromkeys(integers, "DELTA_BINARY_PACKED") or None,
    ) as writer:
        for group in groups:
            writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue()


def _long_values(type_: pa.DataType) -> bool:
    return pa.types.is_large_string(type_) or pa.types.is_large_binary(type_)


def hex_ids(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A ``record_id`` column as hex strings, whichever form it was stored in."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.type != ID_TYPE:
        return array
    if array.null_count:
        return pa.array([None if v is None else v.hex() for v in array.to_pylist()], pa.string())
    data = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    start = array.offset * ID_BYTES
    return binary_to_ids(data[start : start + len(array) * ID_BYTES].reshape(-1, ID_BYTES))


def read_parquet_bytes(data: bytes, columns: list[str] | None = None) -> pa.Table:
    """The table in Parquet bytes as stored (ids as they are), decoded on the calling thread.

    Arrow's thread pool is left out on purpose: a process that had decoded in-memory Parquet on it
    sometimes aborted at exit ("terminate called without an active exception", SIGABRT after the
    command had printed its result; apache/arrow#34314). Reproduced here in about one CLI run in five;
    with the decoding on the calling thread, in none of 48. ``ParquetFile.read`` rather than
    ``pq.read_table``: the latter goes through the dataset scanner, which starts Arrow's I/O thread
    pool even with ``use_threads=False`` (one more native thread alive at exit; CI still saw the abort
    once in a run of ``dataward verify`` that read chunks this way).
    """
    return pq.ParquetFile(pa.BufferReader(data)).read(columns=columns, use_threads=False)


def parquet_to_table(data: bytes, columns: list[str] | None = None) -> pa.Table:
    """The table in Parquet bytes, its ``record_id`` column (if any) as hex strings."""
    table = read_parquet_bytes(data, columns)
    if RECORD_ID in table.column_names and table.column(RECORD_ID).type == ID_TYPE:
        table = table.set_column(table.column_names.index(RECORD_ID), RECORD_ID, hex_ids(table.column(RECORD_ID)))
    return table


__all__ = [
    "ID_TYPE",
    "ROW_GROUP_ROWS",
    "EncodingStopped",
    "binary_id_array",
    "hex_ids",
    "parquet_to_table",
    "read_parquet_bytes",
    "records_to_parquet",
    "table_to_parquet",
]
