"""JSON Lines input: one JSON object per line; images as base64 strings, embeddings as lists.

The file is streamed in blocks of whole lines (about ``_BLOCK_SIZE`` bytes each), hashed and
checked against the limits as it is read; it is never held whole, as bytes or as text. pyarrow's
JSON reader handles the common case fast, a block at a time. It infers types from the data (a
column of dates becomes timestamps, a label column may mix numbers and strings), so whenever its
result for a block cannot be canonicalized exactly the file is read again, still as a stream, line
by line with ``json``, which keeps every value as written and names the line of any problem.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from dataward.domain.errors import InputError
from dataward.domain.limits import DEFAULT_LIMITS, InputLimits, limit_problem
from dataward.domain.schema import RECORD_ID, ColumnKind, Schema
from dataward.domain.surrogates import lone_surrogate
from dataward.io.arrow_loan import ArrowLoan
from dataward.io.bounded import (
    CHUNK_BYTES,
    CheckedStream,
    bracket_depth_within,
    every_line_opens_an_object,
    read_whole,
)
from dataward.io.columns import canonical_column
from dataward.io.header import check_columns, undeclared_column_hint
from dataward.io.location import ValueProblem, input_error, limit_exceeded, value_error
from dataward.io.text_input import (
    decode_utf8,
    json_key_with_undecodable,
    physical_lines,
    simple_line_numbers,
)

_BLOCK_SIZE = 1 << 22
"""Bytes of whole lines parsed at a time (a block grows past this only to end at a line break)."""

_DECLARED_TYPES = {
    ColumnKind.TEXT: pa.large_string(),
    ColumnKind.CATEGORICAL: pa.string(),
    ColumnKind.NUMERIC: pa.float64(),
    ColumnKind.IMAGE: pa.string(),
    ColumnKind.EMBEDDING: pa.list_(pa.float64()),
}


class _Retry(Exception):
    """The fast reader's result is not exact; read the file line by line."""


class RepeatedKey(ValueError):
    """An object of the line gives a key more than once."""

    def __init__(self, key: str, count: int) -> None:
        super().__init__(key)
        self.key, self.count = key, count


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: the object as a dict, refusing a repeated key.

    ``json`` keeps the last of two values silently, and a record would then say something other than
    what another reader of the same line sees (pyarrow's reader refuses the line, others keep the
    first value). pyarrow's fast reader already refuses such a block, which sends it here.
    """
    record = dict(pairs)
    if len(record) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        key, count = next((k, n) for k, n in counts.items() if n > 1)
        raise RepeatedKey(key, count)
    return record


def _blocks(stream: CheckedStream) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines read from ``stream``, each with the number of its first line."""
    parts: list[bytes] = []
    size = 0
    line = 1
    while chunk := stream.read(CHUNK_BYTES):
        parts.append(chunk)
        size += len(chunk)
        if size >= _BLOCK_SIZE:
            data = b"".join(parts)
            cut = data.rfind(b"\n") + 1
            if cut:
                block = data[:cut]
                yield block, line
                line += block.count(b"\n")
                data = data[cut:]
            parts, size = [data], len(data)
            del data
    stream.raise_error()
    if size:
        yield b"".join(parts), line


def _decoded(path: Path, block: bytes, limits: InputLimits) -> str:
    """The block's text; a byte that is not UTF-8 is explained from the whole file (naming its line,
    offset and key), which is read again only for that."""
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        decode_utf8(path, read_whole(path, limits), json_key_with_undecodable)
        # Read again, the file decoded: it changed since the block was read.
        raise input_error(
            path, "the file changed while it was read", hint="import it again once it is complete"
        ) from None


def _fast(data: bytes, schema: Schema) -> pa.Table:
    # Declaring the input columns' types stops pyarrow from turning text into timestamps.
    declared = pa.schema([pa.field(c.name, _DECLARED_TYPES[c.kind]) for c in schema.inputs])
    options = pajson.ParseOptions(explicit_schema=declared, unexpected_field_behavior="infer")
    # Lent, then settled before the table or the error is passed on: see dataward.io.arrow_loan.
    loan = ArrowLoan(io.BytesIO(data))
    try:
        return pajson.read_json(
            loan.feed(), read_options=pajson.ReadOptions(block_size=_BLOCK_SIZE), parse_options=options
        )
    except pa.ArrowException:
        # Among others, a key given twice in an object ("Column(/label) was specified twice"): the
        # exact pass names it.
        raise _Retry from None
    finally:
        loan.settle()


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


def _loads(line: str) -> Any:
    """The line's JSON value; ``RepeatedKey`` when one of its objects gives a key twice.

    Checking every object costs a third more on a plain line, so the check runs only when it can
    find something: every key is followed by a colon, so a line with as many colons as its parsed
    object has keys holds no nested object and no repeated key. Others (nested objects, a colon
    inside a value, a repeated key) are parsed again, exactly.
    """
    value = json.loads(line)
    if isinstance(value, dict) and line.count(":") != len(value):
        value = json.loads(line, object_pairs_hook=unique_keys)
    return value


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


def _lines(path: Path, limits: InputLimits) -> Iterator[tuple[int, str]]:
    """The file's physical lines, numbered, read again as a stream."""
    with CheckedStream(path, limits) as stream:
        for block, first in _blocks(stream):
            yield from enumerate(physical_lines(_decoded(path, block, limits)), start=first)


def _line_by_line(
    path: str | PathLike[str], lines: Iterable[tuple[int, str]], schema: Schema, limits: InputLimits
) -> tuple[pa.Table, np.ndarray]:
    declared = set(schema.columns) | {RECORD_ID}
    columns: dict[str, list[Any]] = {name: [] for name in schema.columns}
    seen: set[str] = set()
    rows: list[int] = []
    for number, line in lines:
        if not line.strip():
            continue
        try:
            record = _loads(line)
        except RepeatedKey as repeated:
            raise input_error(
                path,
                f"the key appears {repeated.count} times in one object of the line",
                unit="line",
                where=number,
                column=repeated.key,
                hint="give every key of an object once",
            ) from None
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
        if "\\u" in line and (at := lone_surrogate(record, "")) is not None:
            raise input_error(
                path,
                f"{at.lstrip('.') or 'the line'} holds a lone UTF-16 surrogate (a \\u escape of half a pair), "
                "which is no text",
                unit="line",
                where=number,
                hint="write the file as UTF-8; a \\u escape above U+FFFF is a pair of surrogates, high then low",
            )
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
                    hint=undeclared_column_hint(schema),
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


def _too_many(path: str | PathLike[str], count: int, limits: InputLimits, *, partial: bool = False) -> InputError:
    at_least = "at least " if partial or count == limits.max_rows + 1 else ""
    return limit_exceeded(
        path,
        "max_rows",
        limit_problem("max_rows", limits.max_rows, what=f"the number of records ({at_least}{count:,})", bytes_=False),
    )


_EXACT_INTEGERS = float(1 << 53)
"""Every whole number below this in magnitude is a float64 exactly; from here on two differ as written
and may be the same float."""


def _exact_numbers(parsed: pa.Table, schema: Schema) -> None:
    """``_Retry`` unless every number pyarrow read as a float in a column whose type it inferred (the
    label's) is the number as written.

    pyarrow reads a whole number too large for an int64 (or any number in a column that also holds
    a fraction) as a float64: ``18446744073709551617`` and ``...616`` would both become the label
    ``18446744073709551616``, where ``json`` keeps either exactly. A float64 whose magnitude reaches
    2**53, or that is not finite, may not be what the line says: the exact pass reads it (and
    refuses a label that is not a finite number). Declared input columns are not inferred.
    """
    declared = {column.name for column in schema.inputs}
    for name in parsed.column_names:
        column = parsed.column(name)
        if name in declared or not pa.types.is_floating(column.type):
            continue
        magnitude = pc.max(pc.abs(column)).as_py()
        if magnitude is not None and not magnitude < _EXACT_INTEGERS:  # also NaN and infinity
            raise _Retry


def _fast_block(
    path: Path, block: bytes, first: int, schema: Schema, limits: InputLimits
) -> tuple[dict[str, Any], np.ndarray]:
    """One block by pyarrow's reader: its columns and line numbers, or ``_Retry``."""
    # pyarrow's JSON parser recurses without a bound (deep enough nesting crashes the process)
    # and crashes on some lines that are not objects: only a block whose bracket count proves it
    # shallow, and whose every line opens an object, is given to it.
    if not bracket_depth_within(block, limits.max_depth) or not every_line_opens_an_object(block):
        raise _Retry
    parsed = _fast(block, schema)
    if parsed.num_rows == 0 or set(parsed.column_names) - set(schema.columns) - {RECORD_ID}:
        raise _Retry
    rows = simple_line_numbers(block, parsed.num_rows, first=1)
    if rows is None:
        raise _Retry
    _exact_numbers(parsed, schema)
    # A declared column no line of this block holds reads as missing values here; one that no
    # line of the whole file holds is named by the exact pass.
    columns = {
        name: parsed.column(name) if name in parsed.column_names else pa.nulls(parsed.num_rows)
        for name in schema.columns
    }
    return columns, rows + (first - 1)


def read_jsonl(
    path: str | PathLike[str], schema: Schema, limits: InputLimits = DEFAULT_LIMITS
) -> tuple[pa.Table, np.ndarray, str]:
    """Canonical table (without record ids), the line number of each record and the file's
    content hash (of its bytes as read, byte-order mark included).

    The file is streamed: lines longer than ``max_record_bytes`` are refused as they are read (see
    :mod:`dataward.io.bounded`), more than ``max_rows`` records at the block where the count
    crosses the limit; a line nested deeper than ``max_depth`` is refused too.
    """
    source = Path(path)
    target = schema.arrow_schema(with_record_id=False)
    chunks: dict[str, list[pa.Array]] = {name: [] for name in target.names}
    row_parts: list[np.ndarray] = []
    present: set[str] = set()
    count = 0
    empty = True
    retry = False
    with CheckedStream(source, limits) as stream:
        for block, first in _blocks(stream):
            # Every block is decoded, even after the fast reader gave up, so that a byte that is not
            # UTF-8 is named before any other problem, as when the file was decoded whole.
            text = _decoded(source, block, limits)
            if not text or text.isspace():
                if text and not retry:
                    retry = True  # blank lines: numbering them takes the exact pass
                continue
            empty = False
            del text
            if retry:
                continue
            try:
                columns, rows = _fast_block(source, block, first, schema, limits)
                count += len(rows)
                if count > limits.max_rows:
                    stream.raise_error()
                    raise _too_many(path, count, limits, partial=True)
                table = _convert(path, schema, columns, rows, limits, exact=False)
            except _Retry:
                retry = True
                continue
            present.update(name for name in schema.columns if columns[name].null_count < len(rows))
            row_parts.append(rows)
            for name, column in zip(target.names, table.columns, strict=True):
                chunks[name].extend(column.chunks)
        stream.raise_error()
        raw_hash = stream.raw_hash
    if empty:
        raise input_error(path, "the file is empty", hint="write one JSON object per line")
    if retry or set(schema.columns) - present:
        del chunks, row_parts
        table, rows = _line_by_line(path, _lines(source, limits), schema, limits)
        return table, rows, raw_hash
    arrays = [pa.chunked_array(chunks[field.name], type=field.type) for field in target]
    return pa.Table.from_arrays(arrays, schema=target), np.concatenate(row_parts), raw_hash
