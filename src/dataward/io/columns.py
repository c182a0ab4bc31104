"""Turn one parsed column into its canonical Arrow array.

Each column first takes a vectorized path in pyarrow. When that path meets a value it cannot
handle, the column is converted again value by value with the canonicalizers of
:mod:`dataward.domain.records`, which are the single definition of a canonical value: that pass
either gives the same result or stops at the first bad value, and its position is reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataward.domain.arrow_types import ARROW_TYPES, LABEL_ARROW_TYPE
from dataward.domain.conversation import canonical_messages, is_messages_column, label_value
from dataward.domain.errors import InputError
from dataward.domain.limits import DEFAULT_LIMITS, InputLimits
from dataward.domain.names import describe_character, hidden_character, shown_repr
from dataward.domain.records import (
    canonical_categorical,
    canonical_embedding,
    canonical_image,
    canonical_label,
    canonical_numeric,
    canonical_text,
)
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.io.images import ImageTooLarge, check_image, decode_base64_image
from dataward.io.location import ValueProblem

Source = Literal["csv", "jsonl", "parquet"]
"""Where the values come from: CSV gives text only; JSON Lines gives JSON types; Parquet, Arrow types."""

Values = pa.ChunkedArray | pa.Array | Sequence[Any]


class _UseSlowPath(Exception):
    """The vectorized path cannot decide this column; convert it value by value."""


def canonical_column(
    schema: Schema, name: str, values: Values, source: Source, limits: InputLimits = DEFAULT_LIMITS
) -> pa.Array | pa.ChunkedArray:
    """Canonical Arrow array for column ``name``; raises ``ValueProblem`` at the first bad value
    (with ``limit`` set when the value is over one of ``limits``)."""
    if name == schema.label:
        label = checked_label if not schema.is_llm else (lambda v: canonical_label(label_value(schema, v)))
        return _by_unique(name, values, label, LABEL_ARROW_TYPE)
    if is_messages_column(schema, name):
        return _slow(name, values, canonical_messages, pa.large_string())
    column = schema.column(name)
    match column.kind:
        case ColumnKind.TEXT:
            return _text(name, values)
        case ColumnKind.NUMERIC:
            return _numeric(name, values)
        case ColumnKind.CATEGORICAL:
            pre = _empty_is_missing if source == "csv" else None
            return _by_unique(name, values, _then(pre, canonical_categorical), ARROW_TYPES[column.kind])
        case ColumnKind.IMAGE:
            return _image(name, values, source, limits.max_image_pixels)
        case ColumnKind.EMBEDDING:
            return _embedding(name, values, column, source)
    raise AssertionError(column.kind)


def checked_label(value: Any) -> str:
    """``canonical_label`` of a label arriving in new data, refused (``ValueError``) when it holds a
    control, format (bidi, zero-width), line-separator or never-drawn character (a variation selector,
    a Hangul filler: ``hidden_character``): such a label looks like another one (``commands\\x1b[8m``
    or ``commands\\u034f`` like ``commands``) on every screen, and a reviewer who accepts it makes a
    second class that looks like the first. Labels already in a ward are read as they are."""
    label = canonical_label(value)
    if (problem := _label_problem(label)) is not None:
        raise ValueError(problem)
    return label


def refuse_hidden_labels(schema: Schema, table: pa.Table) -> None:
    """``checked_label``'s rule for records given as Python rows or a frame (the Python API, a
    transformation's output, a relabelling): ``InputError`` naming the row, the label and the character."""
    if schema.is_llm or schema.label not in table.column_names:
        return  # a language-model record's response is not a label in this sense
    for index, label in enumerate(table.column(schema.label).to_pylist()):
        if isinstance(label, str) and (problem := _label_problem(label)) is not None:
            raise InputError(f"row {index + 1}: {problem}", row=index + 1, column=schema.label)


def _label_problem(label: str) -> str | None:
    if (char := hidden_character(label)) is None:
        return None
    return (
        f"the label {shown_repr(label)} holds {describe_character(char)}: labels must be visible text "
        "(no control, format, bidirectional or never-drawn characters)"
    )


# --- helpers ----------------------------------------------------------------------------------


def _then(pre: Callable[[Any], Any] | None, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return fn if pre is None else (lambda v: fn(pre(v)))


def _empty_is_missing(value: Any) -> Any:
    # CSV has no null: an empty field is how a missing value is written.
    return None if value == "" else value


def _as_array(values: Values) -> pa.Array | pa.ChunkedArray | None:
    """Arrow values as they are (chunks are not copied together), or ``None`` for Python lists."""
    if isinstance(values, pa.ChunkedArray):
        if pa.types.is_dictionary(values.type):
            return pa.chunked_array([c.dictionary_decode() for c in values.chunks], values.type.value_type)
        return values
    if isinstance(values, pa.Array):
        return values.dictionary_decode() if pa.types.is_dictionary(values.type) else values
    return None


def _python_values(values: Values) -> list[Any]:
    array = _as_array(values)
    return list(values) if array is None else array.to_pylist()


def _slow(name: str, values: Values, fn: Callable[[Any], Any], target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    out = []
    for index, value in enumerate(_python_values(values)):
        try:
            out.append(fn(value))
        except ValueError as exc:
            raise ValueProblem(index, name, str(exc)) from None
    return pa.array(out, type=target)


def _is_stringlike(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)


def _is_number(typ: pa.DataType) -> bool:
    return pa.types.is_integer(typ) or pa.types.is_floating(typ)


# --- per kind ---------------------------------------------------------------------------------


def _by_unique(name: str, values: Values, fn: Callable[[Any], Any], target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """Canonicalize each distinct value once, then spread the results: labels and categories have
    few distinct values, so this is exact and nearly free."""
    array = _as_array(values)
    if array is None:
        return _slow(name, values, fn, target)
    try:
        distinct = pc.unique(array)
        canonical = [fn(v) for v in distinct.to_pylist()]
        positions = pc.index_in(array, value_set=distinct)
        if positions.null_count:  # a value not found again (e.g. NaN): let the exact pass decide
            raise _UseSlowPath
    except (ValueError, pa.ArrowException, _UseSlowPath):
        return _slow(name, array, fn, target)
    return pa.array(canonical, type=target).take(positions)


def _text(name: str, values: Values) -> pa.Array | pa.ChunkedArray:
    array = _as_array(values)
    if array is not None and (_is_stringlike(array.type) or pa.types.is_null(array.type)):
        return pc.cast(array, pa.large_string())
    return _slow(name, values, canonical_text, pa.large_string())


def _numeric(name: str, values: Values) -> pa.Array | pa.ChunkedArray:
    array = _as_array(values)
    try:
        if array is None:
            raise _UseSlowPath
        if _is_stringlike(array.type):
            trimmed = pc.utf8_trim_whitespace(array)
            blank = pc.equal(trimmed, "")
            floats = pc.cast(pc.if_else(blank, pa.scalar(None, trimmed.type), trimmed), pa.float64())
        elif _is_number(array.type) or pa.types.is_null(array.type):
            # Unsafe cast: rounds big integers to the nearest float64, as Python's float() does.
            floats = pc.cast(array, pa.float64(), safe=False)
        else:
            raise _UseSlowPath
        if pc.any(pc.is_inf(floats)).as_py():
            raise _UseSlowPath
        floats = pc.if_else(pc.is_nan(floats), pa.scalar(None, pa.float64()), floats)
        # Adding +0.0 folds -0.0 into 0.0 and leaves every other value unchanged.
        return pc.add(floats, 0.0)
    except (pa.ArrowException, _UseSlowPath):
        return _slow(name, values, canonical_numeric, pa.float64())


def _image(name: str, values: Values, source: Source, max_pixels: int) -> pa.Array:
    array = _as_array(values)
    if (
        source == "parquet"
        and array is not None
        and (pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type))
    ):
        images = array.to_pylist()
        convert: Callable[[Any], Any] = canonical_image
    else:
        images = _python_values(values)
        convert = canonical_image if source == "parquet" else _then(decode_base64_image, canonical_image)
    out: list[bytes | None] = []
    for index, value in enumerate(images):
        try:
            data = convert(value)
            if data is not None:
                check_image(data, max_pixels)
        except ImageTooLarge as exc:
            raise ValueProblem(index, name, str(exc), limit="max_image_pixels") from None
        except ValueError as exc:
            raise ValueProblem(index, name, str(exc)) from None
        out.append(data)
    return pa.array(out, type=pa.large_binary())


def _parse_json_list(value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise ValueError("the embedding is not a JSON list of numbers such as [0.1, 0.2]") from None
    except RecursionError:
        # Nested thousands deep: Python's parser gives up; it is not an embedding either way.
        raise ValueError("the embedding is not a JSON list of numbers: it is nested too deeply") from None


def _embedding(name: str, values: Values, column: Column, source: Source) -> pa.Array | pa.ChunkedArray:
    dim = int(column.dim or 0)
    target = pa.list_(pa.float32(), dim)
    slow = _then(_parse_json_list if source == "csv" else None, lambda v: canonical_embedding(v, dim))
    array = _as_array(values)
    if array is None or not (
        pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type)
    ):
        return _slow(name, values, slow, target)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    try:
        if array.null_count or not _is_number(array.type.value_type):
            raise _UseSlowPath
        lengths = pc.list_value_length(array)
        bounds = pc.min_max(lengths).as_py()
        if len(array) and (bounds["min"] != dim or bounds["max"] != dim):
            raise _UseSlowPath
        flat = pc.cast(array.flatten(), pa.float32(), safe=False)
        if flat.null_count or not np.isfinite(flat.to_numpy(zero_copy_only=False)).all():
            raise _UseSlowPath
        return pa.FixedSizeListArray.from_arrays(flat, dim)
    except (pa.ArrowException, _UseSlowPath):
        return _slow(name, values, slow, target)
