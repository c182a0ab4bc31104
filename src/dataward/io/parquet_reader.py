"""Parquet input: image columns as binary, embeddings as lists of numbers; rows counted from 1."""

from __future__ import annotations

import io
import re
from os import PathLike

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataward.domain.schema import Schema
from dataward.io.columns import canonical_column
from dataward.io.header import check_columns
from dataward.io.location import ValueProblem, input_error

_PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")


def read_parquet(path: str | PathLike[str], data: bytes, schema: Schema) -> tuple[pa.Table, np.ndarray]:
    """Canonical table (without record ids) and the 1-based row number of each record."""
    try:
        parsed = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise input_error(path, f"is not a readable Parquet file ({exc})") from None
    # pandas stores its index as an extra column; it is not data.
    names = [n for n in parsed.column_names if not _PANDAS_INDEX.match(n)]
    check_columns(path, names, schema)
    if parsed.num_rows == 0:
        raise input_error(path, "the file holds no rows", hint="write at least one record")
    rows = np.arange(1, parsed.num_rows + 1, dtype=np.int64)
    arrays = []
    for name in schema.arrow_schema(with_record_id=False).names:
        try:
            arrays.append(canonical_column(schema, name, parsed.column(name), "parquet"))
        except ValueProblem as problem:
            raise input_error(path, problem.problem, unit="row", where=problem.index + 1, column=name) from None
    return pa.Table.from_arrays(arrays, schema=schema.arrow_schema(with_record_id=False)), rows
