"""Parquet input: image columns as binary, embeddings as lists of numbers; rows counted from 1.

The file is streamed: its footer is checked against the limits (rows, nesting, decompressed size)
before any column data is read, then the schema's columns are read a batch at a time and each batch
is canonicalized before the next is decompressed, so the raw file is never held whole.
"""

from __future__ import annotations

import re
from os import PathLike

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dataward.domain.limits import DEFAULT_LIMITS, InputLimits, limit_problem
from dataward.domain.schema import Schema
from dataward.io.columns import canonical_column
from dataward.io.header import check_columns
from dataward.io.location import ValueProblem, input_error, limit_exceeded, value_error

PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")
"""The name of a column pandas writes its index to (``pa.Table.from_pandas``): not data."""

BATCH_ROWS = 65_536
"""Rows decompressed and canonicalized at a time."""


def _type_depth(typ: pa.DataType) -> int:
    """How deeply a type nests: 1 for a plain value, 2 for a list of values, and so on."""
    depth, stack = 0, [(typ, 1)]
    while stack:
        current, level = stack.pop()
        depth = max(depth, level)
        stack.extend((current.field(i).type, level + 1) for i in range(current.num_fields))
    return depth


def _is_text_or_binary(typ: pa.DataType) -> bool:
    return (
        pa.types.is_string(typ)
        or pa.types.is_large_string(typ)
        or pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
    )


def _row_sizes(batch: pa.RecordBatch) -> np.ndarray:
    """The approximate decoded size of each row: value bytes of text and binary, 8 per number."""
    sizes = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        typ = column.type
        if pa.types.is_dictionary(typ):
            column, typ = column.dictionary_decode(), typ.value_type
        if (
            pa.types.is_string(typ)
            or pa.types.is_large_string(typ)
            or pa.types.is_binary(typ)
            or pa.types.is_large_binary(typ)
        ):
            sizes += pc.binary_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        elif pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
            lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
            sizes += 8 * lengths.astype(np.int64)
        else:
            sizes += 8
    return sizes


def _open(path: str | PathLike[str], limits: InputLimits) -> pq.ParquetFile:
    try:
        parquet = pq.ParquetFile(path)
        meta = parquet.metadata
        arrow_schema = parquet.schema_arrow
        declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    # A damaged footer shows up as Arrow errors, I/O errors or names that are not UTF-8 (ValueError).
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise input_error(path, f"is not a readable Parquet file ({exc})") from None
    if meta.num_rows > limits.max_rows:
        raise limit_exceeded(
            path,
            "max_rows",
            limit_problem("max_rows", limits.max_rows, meta.num_rows, what="the number of rows", bytes_=False),
        )
    if declared > limits.max_decompressed_bytes:
        raise limit_exceeded(
            path,
            "max_decompressed_bytes",
            limit_problem(
                "max_decompressed_bytes", limits.max_decompressed_bytes, declared, what="the decompressed data"
            ),
        )
    for field in arrow_schema:
        if _type_depth(field.type) > limits.max_depth:
            raise limit_exceeded(
                path,
                "max_depth",
                limit_problem("max_depth", limits.max_depth, what="the nesting of this column's type", bytes_=False),
                column=field.name,
            )
    return parquet


def read_parquet(
    path: str | PathLike[str], schema: Schema, limits: InputLimits = DEFAULT_LIMITS
) -> tuple[pa.Table, np.ndarray]:
    """Canonical table (without record ids) and the 1-based row number of each record."""
    parquet = _open(path, limits)
    # pandas stores its index as an extra column; it is not data.
    names = [n for n in parquet.schema_arrow.names if not PANDAS_INDEX.match(n)]
    check_columns(path, names, schema)
    if parquet.metadata.num_rows == 0:
        raise input_error(path, "the file holds no rows", hint="write at least one record")
    target = schema.arrow_schema(with_record_id=False)
    chunks: dict[str, list[pa.Array]] = {name: [] for name in target.names}
    offset = 0
    decompressed = 0
    try:
        # Optional columns of the language-model kinds may be absent: they read as missing values.
        present = [name for name in target.names if name in names]
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=present):
            # The footer's sizes are the writer's word: the data actually decoded is counted too.
            decompressed += batch.nbytes
            if decompressed > limits.max_decompressed_bytes:
                raise limit_exceeded(
                    path,
                    "max_decompressed_bytes",
                    limit_problem(
                        "max_decompressed_bytes",
                        limits.max_decompressed_bytes,
                        what="the decompressed data",
                    ),
                    unit="row",
                    where=offset + batch.num_rows,
                )
            sizes = _row_sizes(batch)
            over = np.flatnonzero(sizes > limits.max_record_bytes)
            if over.size:
                index = int(over[0])
                raise limit_exceeded(
                    path,
                    "max_record_bytes",
                    limit_problem("max_record_bytes", limits.max_record_bytes, int(sizes[index]), what="the row"),
                    unit="row",
                    where=offset + index + 1,
                )
            for name in target.names:
                try:
                    values = batch.column(name) if name in present else [None] * batch.num_rows
                    canonical = canonical_column(schema, name, values, "parquet", limits)
                except ValueProblem as problem:
                    raise value_error(
                        path, problem, unit="row", where=offset + problem.index + 1, column=name
                    ) from None
                if isinstance(canonical, pa.ChunkedArray):
                    chunks[name].extend(canonical.chunks)
                else:
                    chunks[name].append(canonical)
            offset += batch.num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise input_error(path, f"is not a readable Parquet file ({exc})", unit="row", where=offset + 1) from None
    if offset > limits.max_rows:  # the footer's row count is the writer's word too
        raise limit_exceeded(
            path,
            "max_rows",
            limit_problem("max_rows", limits.max_rows, offset, what="the number of rows", bytes_=False),
        )
    rows = np.arange(1, offset + 1, dtype=np.int64)
    arrays = [pa.chunked_array(chunks[field.name], type=field.type) for field in target]
    return pa.Table.from_arrays(arrays, schema=target), rows


__all__ = ["BATCH_ROWS", "read_parquet"]
