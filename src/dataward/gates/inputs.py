"""Normalize what users hand to ``scan``: pandas or Arrow tables, raw values, ids and row numbers.

Columns are converted column-at-a-time with Arrow (no per-value Python for numbers and embeddings) to
the canonical types of ``Schema.arrow_schema``; image arrays become PNG bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from dataward.domain.conversation import canonical_messages, is_messages_column, label_value
from dataward.domain.errors import InputError
from dataward.domain.limits import InputLimits, limit_error, limit_problem
from dataward.domain.missing import is_missing
from dataward.domain.records import (
    canonical_categorical,
    canonical_label,
    canonical_numeric,
    canonical_text,
    record_ids,
)
from dataward.domain.schema import MESSAGES, RECORD_ID, ColumnKind, DatasetKind, Schema
from dataward.domain.wording import a_or_an
from dataward.gates.features.image import array_to_png, check_image_headers, image_to_png
from dataward.io.columns import checked_label

ROW = "row"
"""Optional column: the record's row number in the submitted file."""
PARTITIONED_SIDES = ("contribution", "baseline")
"""The sides ``scan`` also reads in partitions (``partitioned.partitions_of``), in the forms below."""
PARTITIONED_FORMS = (
    " (or, read in partitions: Parquet path(s) or URL(s), a pyarrow dataset or an iterator of record batches)"
)


@dataclass(frozen=True)
class Normalized:
    """One side of a scan: the canonical table (inputs + label), its labels as strings, ids and rows."""

    table: pa.Table
    labels: np.ndarray
    record_ids: list[str] | None
    rows: np.ndarray

    def __len__(self) -> int:
        return self.table.num_rows


def check_unique_columns(names: list[Any], what: str) -> None:
    """Refuse a table whose column names repeat: which of the two columns a detector would read is
    undefined (pandas hands back a frame, Arrow refuses the lookup), as it is for a file's header."""
    repeated = sorted(n for n, count in Counter(str(n) for n in names).items() if count > 1)
    if repeated:
        raise InputError(
            f"the {what} has more than one column named {', '.join(repr(n) for n in repeated)}",
            hint="give every column a distinct name",
        )


def _as_arrow(data: Any, what: str, schema: Schema) -> pa.Table:
    if isinstance(data, pa.Table | pa.RecordBatch):
        check_unique_columns(data.schema.names, what)
        return data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        check_unique_columns(list(data.columns), what)
        columns = {}
        for name in data.columns:
            series = data[name]
            kind = _kind_of(schema, str(name))
            if kind in (ColumnKind.EMBEDDING, ColumnKind.IMAGE) or series.dtype == object:
                columns[str(name)] = _object_column(series, kind, str(name), schema, what)
            else:
                columns[str(name)] = pa.array(series.to_numpy(), from_pandas=True)
        return pa.table(columns) if columns else pa.table({})
    also = PARTITIONED_FORMS if what in PARTITIONED_SIDES else ""
    hint = "for a list of record batches or tables, pass iter(...) of them" if isinstance(data, list | tuple) else None
    raise InputError(
        f"the {what} must be a pandas DataFrame or a pyarrow Table{also}, not {type(data).__name__}", hint=hint
    )


def _object_column(series: pd.Series, kind: ColumnKind | None, name: str, schema: Schema, what: str) -> pa.Array:
    """A pandas object column as Arrow. A label or categorical column mixing Python types (labels ``1``
    and ``"1"`` from two concatenated frames) has no one Arrow type; its values are then canonicalized
    one by one, as a frame given to a ward's ``contribute`` is (``1`` and ``"1"`` are one label)."""
    values = _python_values(series, kind, what, name)
    try:
        return pa.array(values, type=_loose_type(kind, series), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if name == schema.label and not schema.is_llm:
            canonical = canonical_label
        elif kind is ColumnKind.CATEGORICAL:
            canonical = canonical_categorical
        else:
            raise
        return pa.array([None if is_missing(v) else _checked(canonical, v, what, name) for v in values], pa.string())


def _kind_of(schema: Schema, name: str) -> ColumnKind | None:
    for col in schema.inputs:
        if col.name == name:
            return col.kind
    return None


def _python_values(series: pd.Series, kind: ColumnKind | None, what: str, name: str) -> list[Any]:
    values = series.tolist()
    if kind is ColumnKind.IMAGE:
        return [_image_value(v, what, name, row) for row, v in enumerate(values, start=1)]
    if kind is ColumnKind.EMBEDDING:
        return [np.asarray(v, dtype=np.float32) if v is not None else None for v in values]
    return values


def _image_value(value: Any, what: str, name: str, row: int) -> Any:
    """One value of a pandas image column as image bytes: bytes as they are, a pixel array or a PIL image
    (as Hugging Face datasets hand them out) encoded as PNG; else an ``InputError`` naming the side, the
    column and the row, and what an image column takes."""
    try:
        if is_missing(value) or isinstance(value, bytes | bytearray | memoryview):
            return value
        if isinstance(value, np.ndarray | list):
            return array_to_png(np.asarray(value))
        if isinstance(value, Image.Image):
            return image_to_png(value)
    except InputError as exc:
        raise InputError(f"the {what}'s image column {name!r}, row {row}: {exc.message}", hint=exc.hint) from None
    except ValueError as exc:  # a ragged list of pixel rows
        raise InputError(f"the {what}'s image column {name!r}, row {row}: not a pixel array ({exc})") from None
    raise InputError(
        f"the {what}'s image column {name!r}, row {row}: holds {a_or_an(type(value).__name__)}, where an image column "
        "takes encoded image bytes (PNG, JPEG, ...), a pixel array or a PIL image",
        hint="for image files, give their bytes (Path(file).read_bytes())" if isinstance(value, str) else None,
    )


def _loose_type(kind: ColumnKind | None, series: pd.Series) -> pa.DataType | None:
    if kind is ColumnKind.IMAGE:
        return pa.large_binary()
    if kind is ColumnKind.EMBEDDING:
        return pa.list_(pa.float32())
    return None


def _map_unique(column: pa.ChunkedArray, fn: Any, what: str, name: str) -> pa.Array:
    """Apply a canonicalizer to each distinct value only (labels and categories repeat a lot)."""
    encoded = column.combine_chunks().dictionary_encode()
    mapped = []
    for value in encoded.dictionary.to_pylist():
        try:
            mapped.append(fn(value))
        except ValueError as exc:
            raise InputError(f"the {what}'s column {name!r} holds {value!r}: {exc}") from exc
    if encoded.null_count:
        try:
            fn(None)
        except ValueError as exc:
            raise InputError(f"the {what}'s column {name!r} has a missing value: {exc}") from exc
    result = pa.array(mapped, type=pa.string()).take(encoded.indices)
    return result


def _column(table: pa.Table, name: str, kind: ColumnKind, dim: int | None, what: str) -> pa.Array | pa.ChunkedArray:
    col = table.column(name)
    typ = col.type
    try:
        if kind is ColumnKind.TEXT:
            held = typ.value_type if pa.types.is_dictionary(typ) else typ
            if pa.types.is_string(held) or pa.types.is_large_string(held) or pa.types.is_null(held):
                return col.cast(pa.large_string()).combine_chunks()
            # Numbers, bytes, lists were cast to their text ("5", "inf"), where a file's import refuses
            # them ("expected text, got int"): held to the same rule, value by value.
            return pa.array([_checked(canonical_text, v, what, name) for v in col.to_pylist()], type=pa.large_string())
        if kind is ColumnKind.NUMERIC:
            if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_null(typ):
                values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
                if np.any(np.isinf(values)):
                    raise InputError(f"the {what}'s numeric column {name!r} holds an infinite number")
                return pa.array(np.where(values == 0.0, 0.0, values), type=pa.float64(), from_pandas=True)
            return pa.array([_checked(canonical_numeric, v, what, name) for v in col.to_pylist()], type=pa.float64())
        if kind is ColumnKind.CATEGORICAL:
            return _map_unique(col, canonical_categorical, what, name)
        if kind is ColumnKind.IMAGE:
            if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
                return col.cast(pa.large_binary()).combine_chunks()
            if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
                return pa.array(
                    [array_to_png(np.asarray(v)) if v is not None else None for v in col.to_pylist()],
                    type=pa.large_binary(),
                )
            raise InputError(f"the {what}'s image column {name!r} must hold image bytes or pixel arrays, not {typ}")
        if kind is ColumnKind.EMBEDDING:
            return _embedding_column(col, name, dim, what)
    except pa.ArrowException as exc:
        raise InputError(f"the {what}'s column {name!r} does not fit its kind {kind.value}: {exc}") from exc
    raise AssertionError(kind)


def _embedding_column(col: pa.ChunkedArray, name: str, dim: int | None, what: str) -> pa.ChunkedArray:
    """Fixed-size float32 lists, chunk by chunk: already-canonical columns are kept without a copy."""
    from dataward.gates.features.embedding import embedding_matrix

    typ = col.type
    if not (pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)):
        raise InputError(f"the {what}'s embedding column {name!r} must hold lists of numbers, not {typ}")
    if col.null_count:
        raise InputError(f"the {what}'s embedding column {name!r} has a missing value")
    canonical = pa.types.is_fixed_size_list(typ) and typ.value_type == pa.float32() and typ.list_size == dim
    chunks = []
    for chunk in col.chunks:
        try:
            matrix = embedding_matrix(chunk, dim)
        except InputError as exc:  # "expected embeddings of dimension 4, got 5": of which side and column?
            raise InputError(f"the {what}'s embedding column {name!r}: {exc.message}", hint=exc.hint) from None
        if not np.all(np.isfinite(matrix)):
            raise InputError(f"the {what}'s embedding column {name!r} holds a non-finite number")
        if canonical:
            chunks.append(chunk)
        else:
            flat = pa.array(matrix.reshape(-1), type=pa.float32())
            chunks.append(pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1]))
    return pa.chunked_array(chunks, type=pa.list_(pa.float32(), dim or (chunks[0].type.list_size if chunks else 1)))


def _checked(fn: Any, value: Any, what: str, name: str) -> Any:
    try:
        return fn(value)
    except ValueError as exc:
        raise InputError(f"the {what}'s column {name!r} holds {value!r}: {exc}") from exc


def normalize(
    data: Any, schema: Schema, what: str, *, with_ids: bool = True, limits: InputLimits | None = None
) -> Normalized:
    """The canonical table of ``data`` with labels, record ids (given or computed) and row numbers.

    Anything that does not fit the schema is refused with an ``InputError`` naming the side
    (``what``) and the column, never with Arrow's or pandas' own exception. With ``limits`` (given
    for the untrusted side, the contribution), so is a table over ``limits.max_rows`` rows, an image
    over ``limits.max_image_pixels``, or images over ``limits.max_batch_pixels`` together, read from
    their headers before anything is decoded.
    """
    try:
        return _normalize(data, schema, what, with_ids=with_ids, limits=limits)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        # Arrow and pandas report values they cannot convert in many ways; all mean "malformed".
        raise InputError(f"the {what} cannot be read as a table of the schema: {exc}") from None


def _normalize(data: Any, schema: Schema, what: str, *, with_ids: bool, limits: InputLimits | None) -> Normalized:
    table = _as_arrow(data, what, schema)
    if limits is not None and table.num_rows > limits.max_rows:
        raise limit_error(
            "max_rows",
            limit_problem("max_rows", limits.max_rows, table.num_rows, what=f"the {what}'s row count", bytes_=False),
        )
    for name in sorted(schema.optional_columns - set(table.column_names)):
        # The language-model kinds' reserved label and optional fields may be left out of a table.
        table = table.append_column(name, pa.nulls(table.num_rows, pa.large_string()))
    if schema.label not in table.column_names:
        raise InputError(
            f"the {what} has no label column {schema.label!r}",
            hint=f"columns present: {', '.join(table.column_names) or 'none'}",
        )
    missing = [c.name for c in schema.inputs if c.name not in table.column_names]
    if missing:
        raise InputError(f"the {what} lacks the schema's input column(s): {', '.join(missing)}")
    arrays = {
        c.name: _column(table, c.name, c.kind, c.dim, what)
        for c in schema.inputs
        if not is_messages_column(schema, c.name)
    }
    counted = 0
    for c in schema.of_kind(ColumnKind.IMAGE) if limits is not None else ():
        counted = check_image_headers(
            arrays[c.name],
            what,
            c.name,
            limits.max_image_pixels,
            max_batch_pixels=limits.max_batch_pixels,
            counted=counted,
        )
    if schema.kind is DatasetKind.CHAT:
        arrays[MESSAGES] = pa.array(
            [_checked(canonical_messages, v, what, MESSAGES) for v in table.column(MESSAGES).to_pylist()],
            type=pa.large_string(),
        )
    # A contribution's labels are new data: visible text, as a file's are at import (a label with an ESC
    # or a zero-width character looks like another one). The trusted sides are read as they are.
    plain = checked_label if what == "contribution" else canonical_label
    label = plain if not schema.is_llm else (lambda v: canonical_label(label_value(schema, v)))
    labels = (
        _map_unique(table.column(schema.label), label, what, schema.label)
        if table.num_rows
        else (pa.array([], type=pa.string()))
    )
    arrays[schema.label] = labels
    arrow_schema = schema.arrow_schema(with_record_id=False)
    canonical = pa.table(
        [arrays[name] for name in arrow_schema.names],
        schema=pa.schema([f.with_type(arrays[f.name].type) for f in arrow_schema]),
    )
    ids = None
    if RECORD_ID in table.column_names:
        ids = [str(v) for v in table.column(RECORD_ID).to_pylist()]
    elif with_ids:
        ids = record_ids(schema, canonical)
    if ROW in table.column_names:
        if table.column(ROW).null_count:
            raise InputError(f"the {what}'s column {ROW!r} has a missing value: it gives each record's row number")
        rows = table.column(ROW).cast(pa.int64()).to_numpy(zero_copy_only=False)
    else:
        rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return Normalized(canonical, np.asarray(labels.to_pylist(), dtype=object), ids, rows)


def group_arrays(groups: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray]:
    """Validate per-row group keys (source, principal, contribution...) against the contribution size."""
    if groups is not None and not isinstance(groups, Mapping):
        raise InputError(
            f"groups must map a group name to one key per contribution row, not {type(groups).__name__}",
            hint='e.g. groups={"source": sources}, with sources one value per row',
        )
    out: dict[str, np.ndarray] = {}
    for key, values in (groups or {}).items():
        try:
            arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=object)
        except (TypeError, ValueError) as exc:
            raise InputError(f"group {key!r} is not a sequence of one key per contribution row: {exc}") from None
        if arr.shape != (n,):
            raise InputError(f"group {key!r} has {arr.shape[0] if arr.ndim else 0} entries for {n} contribution rows")
        out[str(key)] = np.array([str(v) for v in arr], dtype=object)
    return out


def take_rows(table: pa.Table, positions: np.ndarray) -> pa.Table:
    """``table.take(positions)`` batch by batch, so a large chunked table is never concatenated first."""
    positions = np.asarray(positions, dtype=np.int64)
    order = np.argsort(positions, kind="stable")
    sorted_positions = positions[order]
    batches = []
    start = 0
    for batch in table.to_batches():
        stop = start + batch.num_rows
        lo, hi = np.searchsorted(sorted_positions, [start, stop])
        if hi > lo:
            batches.append(batch.take(pa.array(sorted_positions[lo:hi] - start)))
        start = stop
    taken = pa.Table.from_batches(batches, schema=table.schema) if batches else table.slice(0, 0)
    if not np.all(order[:-1] < order[1:]):
        taken = taken.take(pa.array(np.argsort(order, kind="stable")))
    return taken
