"""JSON Lines input: one JSON object per line; images as base64 strings, embeddings as lists.

pyarrow's JSON reader handles the common case fast. It infers types from the data (a column of
dates becomes timestamps, a label column may mix numbers and strings), so whenever its result
cannot be canonicalized exactly the file is read again line by line with ``json``, which keeps
every value as written and names the line of any problem.
"""

from __future__ import annotations

import io
import json
from os import PathLike
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from dataward.domain.errors import InputError
from dataward.domain.limits import DEFAULT_LIMITS, InputLimits, limit_problem
from dataward.domain.schema import RECORD_ID, ColumnKind, Schema
from dataward.io.bounded import bracket_depth_within, every_line_opens_an_object
from dataward.io.columns import canonical_column
from dataward.io.header import check_columns
from dataward.io.location import ValueProblem, input_error, limit_exceeded, value_error
from dataward.io.text_input import (
    decode_utf8,
    json_key_with_undecodable,
    physical_lines,
    simple_line_numbers,
    strip_bom,
)

_BLOCK_SIZE = 1 << 24

_DECLARED_TYPES = {
    ColumnKind.TEXT: pa.large_string(),
    ColumnKind.CATEGORICAL: pa.string(),
    ColumnKind.NUMERIC: pa.float64(),
    ColumnKind.IMAGE: pa.string(),
    ColumnKind.EMBEDDING: pa.list_(pa.float64()),
}


class _Retry(Exception):
    """The fast reader's result is not exact; read the file line by line."""


def _fast(data: bytes, schema: Schema) -> pa.Table:
    # Declaring the input columns' types stops pyarrow from turning text into timestamps.
    declared = pa.schema([pa.field(c.name, _DECLARED_TYPES[c.kind]) for c in schema.inputs])
    options = pajson.ParseOptions(explicit_schema=declared, unexpected_field_behavior="infer")
    try:
        return pajson.read_json(
            io.BytesIO(data), read_options=pajson.ReadOptions(block_size=_BLOCK_SIZE), parse_options=options
        )
    except pa.ArrowException:
        raise _Retry from None


def _convert(
    path: str | PathLike[str],
    schema: Schema,
    columns: dict[str, Any],
    rows: np.ndarray,
    limits: InputLimits,
    *,
    exact: bool,
) -> pa.Table:
    arrays = []
    for name in schema.arrow_schema(with_record_id=False).names:
        try:
            arrays.append(canonical_column(schema, name, columns[name], "jsonl", limits))
        except ValueProblem as problem:
            if not exact and problem.limit is None:
                raise _Retry from None
            raise value_error(path, problem, unit="line", where=int(rows[problem.index]), column=name) from None
    return pa.Table.from_arrays(arrays, schema=schema.arrow_schema(with_record_id=False))


def _depth_within(value: Any, limit: int) -> bool:
    """True when ``value`` (a parsed JSON value) nests no deeper than ``limit`` (an object is 1)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def _too_deep(path: str | PathLike[str], number: int, limit: int) -> InputError:
    return limit_exceeded(
        path,
        "max_depth",
        limit_problem("max_depth", limit, what="the nesting of this line's JSON", bytes_=False),
        unit="line",
        where=number,
    )


def _line_by_line(
    path: str | PathLike[str], text: str, schema: Schema, limits: InputLimits
) -> tuple[pa.Table, np.ndarray]:
    declared = set(schema.columns) | {RECORD_ID}
    columns: dict[str, list[Any]] = {name: [] for name in schema.columns}
    seen: set[str] = set()
    rows: list[int] = []
    for number, line in enumerate(physical_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise input_error(
                path,
                f"the line is not valid JSON ({exc.msg} at character {exc.colno})",
                unit="line",
                where=number,
            ) from None
        except RecursionError:
            # Python's parser gives up somewhere below a thousand levels; the limit is far lower.
            raise _too_deep(path, number, limits.max_depth) from None
        if not _depth_within(record, limits.max_depth):
            raise _too_deep(path, number, limits.max_depth)
        if not isinstance(record, dict):
            raise input_error(
                path,
                f"the line is a JSON {type(record).__name__}, not an object",
                unit="line",
                where=number,
                hint='write one object per line, e.g. {"text": "...", "label": "..."}',
            )
        for key in record:
            if key not in declared:
                raise input_error(
                    path,
                    "the column is not in the dataset schema",
                    unit="line",
                    where=number,
                    column=key,
                    hint="declare it in the dataset schema or drop it from the file",
                )
        seen.update(record)
        if len(rows) >= limits.max_rows:
            raise _too_many(path, len(rows) + 1, limits)
        rows.append(number)
        for name in schema.columns:
            columns[name].append(record.get(name))
    if not rows:
        raise input_error(path, "the file holds no records", hint="write one JSON object per line")
    check_columns(path, sorted(seen), schema)
    line_numbers = np.asarray(rows, dtype=np.int64)
    return _convert(path, schema, columns, line_numbers, limits, exact=True), line_numbers


def _too_many(path: str | PathLike[str], count: int, limits: InputLimits) -> InputError:
    at_least = "at least " if count == limits.max_rows + 1 else ""
    return limit_exceeded(
        path,
        "max_rows",
        limit_problem("max_rows", limits.max_rows, what=f"the number of records ({at_least}{count:,})", bytes_=False),
    )


def read_jsonl(
    path: str | PathLike[str], data: bytes, schema: Schema, limits: InputLimits = DEFAULT_LIMITS
) -> tuple[pa.Table, np.ndarray]:
    """Canonical table (without record ids) and the line number of each record.

    Lines longer than ``max_record_bytes`` are refused while the file is read (see
    :mod:`dataward.io.bounded`); here a line nested deeper than ``max_depth`` and more than
    ``max_rows`` records are refused.
    """
    data = strip_bom(data)
    # Decoded here to name the line of any byte that is not UTF-8; the text is kept only when the
    # file has to be read line by line, so the fast path never holds bytes, text and table at once.
    text = decode_utf8(path, data, json_key_with_undecodable)
    if not text or text.isspace():
        raise input_error(path, "the file is empty", hint="write one JSON object per line")
    del text
    try:
        # pyarrow's JSON parser recurses without a bound (deep enough nesting crashes the process)
        # and crashes on some lines that are not objects: only a file whose bracket count proves it
        # shallow, and whose every line opens an object, is given to it.
        if not bracket_depth_within(data, limits.max_depth) or not every_line_opens_an_object(data):
            raise _Retry
        parsed = _fast(data, schema)
        if parsed.num_rows > limits.max_rows:
            raise _too_many(path, parsed.num_rows, limits)
        if parsed.num_rows == 0 or set(parsed.column_names) - set(schema.columns) - {RECORD_ID}:
            raise _Retry
        rows = simple_line_numbers(data, parsed.num_rows, first=1)
        if rows is None:
            raise _Retry
        # A declared column that no line holds comes back all null: the exact pass names it.
        missing = [
            name
            for name in schema.columns
            if name not in parsed.column_names or parsed.column(name).null_count == parsed.num_rows
        ]
        if missing:
            raise _Retry
        columns = {name: parsed.column(name) for name in schema.columns}
        return _convert(path, schema, columns, rows, limits, exact=False), rows
    except _Retry:
        return _line_by_line(path, data.decode("utf-8"), schema, limits)
