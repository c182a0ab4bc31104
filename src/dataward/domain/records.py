"""Canonical record encoding and record ids.

A record's id is the BLAKE3 hash of a canonical, type-tagged encoding of its schema columns, so the
same example has the same id whether it arrived in CSV, JSON Lines, Parquet or an image folder.

Encoding (version 1)::

    b"dataward/record/v1" + for each column, sorted by name:
        TLV(b"N", utf8(name)) + TLV(tag, payload)
    TLV(tag, payload) = tag (1 byte) + len(payload) (8 bytes, big-endian) + payload

Tags: ``T`` text (UTF-8), ``L`` label (UTF-8), ``C`` categorical (UTF-8), ``F`` numeric
(IEEE-754 float64, big-endian, -0.0 folded to 0.0), ``I`` image (raw bytes), ``E`` embedding
(float32 little-endian), ``Z`` missing value (empty payload).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from dataward.domain.errors import InputError
from dataward.domain.hashing import blake3_hex
from dataward.domain.schema import RECORD_ID, ColumnKind, Schema

ENCODING_MAGIC = b"dataward/record/v1"
_LEN = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_MISSING = b"Z" + _LEN.pack(0)


def _tlv(tag: bytes, payload: bytes) -> bytes:
    return tag + _LEN.pack(len(payload)) + payload


# --- canonical values -------------------------------------------------------------------------


def canonical_label(value: Any) -> str:
    """Labels are strings: ``3``, ``3.0`` and ``"3"`` are the same label in every file format."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError("the label is missing")
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("the label is empty")
        return text
    raise ValueError(f"a label must be a string or a number, not {type(value).__name__}")


def canonical_numeric(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool | np.bool_):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError as exc:
            raise ValueError(f"expected a number, got {value!r}") from exc
    if not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    f = float(value)
    if math.isnan(f):
        return None
    if math.isinf(f):
        raise ValueError("infinite numbers are not allowed")
    return 0.0 if f == 0.0 else f


def canonical_categorical(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    raise ValueError(f"expected a category, got {type(value).__name__}")


def canonical_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


def canonical_image(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise ValueError(f"expected image bytes, got {type(value).__name__}")


def canonical_embedding(value: Any, dim: int | None) -> list[float]:
    if value is None:
        raise ValueError("the embedding is missing")
    if isinstance(value, str):
        raise ValueError("expected a list of numbers for the embedding, got text")
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError("the embedding is not a list of numbers") from exc
    if arr.ndim != 1 or (dim is not None and arr.shape[0] != dim):
        raise ValueError(f"expected an embedding of dimension {dim}, got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("the embedding holds a non-finite number")
    return arr.tolist()


def canonicalizer(schema: Schema, column: str) -> Callable[[Any], Any]:
    """The function that turns a raw value of ``column`` into its canonical Python value."""
    if column == schema.label:
        return canonical_label
    col = schema.column(column)
    match col.kind:
        case ColumnKind.TEXT:
            return canonical_text
        case ColumnKind.NUMERIC:
            return canonical_numeric
        case ColumnKind.CATEGORICAL:
            return canonical_categorical
        case ColumnKind.IMAGE:
            return canonical_image
        case ColumnKind.EMBEDDING:
            return lambda v: canonical_embedding(v, col.dim)
    raise AssertionError(col.kind)


# --- encoding -------------------------------------------------------------------------------


def _encode_str(tag: bytes) -> Callable[[Any], bytes]:
    return lambda v: _MISSING if v is None else _tlv(tag, v.encode("utf-8"))


def _encode_float(v: Any) -> bytes:
    if v is None:
        return _MISSING
    f = float(v)
    return _MISSING if math.isnan(f) else _tlv(b"F", _F64.pack(0.0 if f == 0.0 else f))


def _encode_image(v: Any) -> bytes:
    return _MISSING if v is None else _tlv(b"I", bytes(v))


def _encode_embedding(v: Any) -> bytes:
    if v is None:
        return _MISSING
    return _tlv(b"E", np.asarray(v, dtype="<f4").tobytes())


_ENCODERS: dict[ColumnKind, Callable[[Any], bytes]] = {
    ColumnKind.TEXT: _encode_str(b"T"),
    ColumnKind.CATEGORICAL: _encode_str(b"C"),
    ColumnKind.NUMERIC: _encode_float,
    ColumnKind.IMAGE: _encode_image,
    ColumnKind.EMBEDDING: _encode_embedding,
}


def _column_encoders(schema: Schema) -> list[tuple[str, bytes, Callable[[Any], bytes]]]:
    encs = [(c.name, _ENCODERS[c.kind]) for c in schema.inputs] + [(schema.label, _encode_str(b"L"))]
    return [(name, _tlv(b"N", name.encode("utf-8")), enc) for name, enc in sorted(encs)]


def encode_record(schema: Schema, record: Mapping[str, Any]) -> bytes:
    """Canonical bytes of one record given as canonical values (see the module docstring)."""
    parts = [ENCODING_MAGIC]
    for name, name_tlv, enc in _column_encoders(schema):
        parts.append(name_tlv)
        parts.append(enc(record.get(name)))
    return b"".join(parts)


def record_id(schema: Schema, record: Mapping[str, Any]) -> str:
    """The id of one record: hex BLAKE3 of its canonical encoding."""
    return blake3_hex(encode_record(schema, record))


@@RECORD_IDS@@

def with_record_ids(schema: Schema, table: pa.Table) -> pa.Table:
    """The canonical table with a leading ``record_id`` column (replacing any present)."""
    if RECORD_ID in table.column_names:
        table = table.drop_columns([RECORD_ID])
    ids = pa.array(record_ids(schema, table), type=pa.string())
    return table.add_column(0, RECORD_ID, ids)


def canonical_table(schema: Schema, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Build a canonical Arrow table (with record ids) from rows of raw Python values.

    Raises ``InputError`` naming the row (1-based) and column of the first value that does not fit.
    """
    data: dict[str, list[Any]] = {name: [] for name in schema.columns}
    fns = {name: canonicalizer(schema, name) for name in schema.columns}
    for i, row in enumerate(rows, start=1):
        for name in schema.columns:
            try:
                data[name].append(fns[name](row.get(name)))
            except ValueError as exc:
                raise InputError(f"row {i}, column {name!r}: {exc}") from exc
    arrow_schema = schema.arrow_schema(with_record_id=False)
    table = pa.table({name: data[name] for name in arrow_schema.names}, schema=arrow_schema)
    return with_record_ids(schema, table)
