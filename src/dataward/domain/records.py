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
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataward.domain.conversation import canonical_messages, is_messages_column, label_value
from dataward.domain.digests import digests
from dataward.domain.errors import InputError
from dataward.domain.hashing import blake3_hex
from dataward.domain.idarrays import ID_BYTES, binary_to_ids
from dataward.domain.missing import is_missing
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
    if is_missing(value):
        raise ValueError("the label is missing")
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isinf(f):
            # JSON's 1e400 (or Infinity) is no number a label can be: "inf" would stand for any of them.
            raise ValueError("the label is an infinite number; write it as a string if it is meant as text")
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("the label is empty")
        return text
    raise ValueError(f"a label must be a string or a number, not {type(value).__name__}")


def canonical_numeric(value: Any) -> float | None:
    if is_missing(value) or (isinstance(value, str) and value == ""):
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
    if is_missing(value):
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
    """Text as given; a missing value (``is_missing``: ``None``, pandas' NaN or ``NA``) is missing text."""
    if is_missing(value):
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
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError("the embedding is not a list of numbers") from exc
    if arr.ndim != 1 or (dim is not None and arr.shape[0] != dim):
        raise ValueError(f"expected an embedding of dimension {dim}, got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("the embedding holds a non-finite number")
    return arr.tolist()


def canonicalizer(schema: Schema, column: str) -> Callable[[Any], Any]:
    """The function that turns a raw value of ``column`` into its canonical Python value."""
    if column == schema.label:
        if schema.is_llm:
            return lambda v: canonical_label(label_value(schema, v))
        return canonical_label
    if is_messages_column(schema, column):
        return canonical_messages
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


# --- record ids, column at a time --------------------------------------------------------------
#
# ``record_ids`` builds exactly the bytes of ``encode_record`` for every row at once: per column, a
# 9-byte ``tag + length`` head made in numpy and the payload as an Arrow binary array, joined row-wise
# by Arrow, then one BLAKE3 per row over the joined buffer. Values the fast paths do not cover (an
# unusual Arrow type) go through the per-row encoders above, so the ids never depend on the path.

_BINARY = pa.large_binary()


def _empty() -> pa.Scalar:
    """The empty binary scalar, made on first use: ``pa.scalar`` imports pandas, which a process that
    never encodes a record (``dataward trace``, ``dataward ledger head``) should not pay for."""
    global _EMPTY_SCALAR
    if _EMPTY_SCALAR is None:
        _EMPTY_SCALAR = pa.scalar(b"", _BINARY)
    return _EMPTY_SCALAR


_EMPTY_SCALAR: pa.Scalar | None = None
_HEAD = 9  # tag (1 byte) + big-endian length (8 bytes)
_BATCH_BYTES = 16 << 20  # canonical bytes joined per batch: bounds the extra memory of the join
_TAGS: dict[ColumnKind, bytes] = {
    ColumnKind.TEXT: b"T",
    ColumnKind.CATEGORICAL: b"C",
    ColumnKind.NUMERIC: b"F",
    ColumnKind.IMAGE: b"I",
    ColumnKind.EMBEDDING: b"E",
}

_Encoded = tuple[list[pa.Array], np.ndarray]
"""The arrays whose row-wise concatenation is a column's TLV, and the byte size of each row's TLV."""


def _binary_rows(rows: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """Row ``i`` of the 2-D uint8 array ``rows``, cut to its first ``lengths[i]`` bytes."""
    width = rows.shape[1]
    data = rows.reshape(-1) if np.all(lengths == width) else rows[np.arange(width) < lengths[:, None]]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    return pa.LargeBinaryArray.from_buffers(_BINARY, len(lengths), buffers)


def _heads(tag: bytes, lengths: np.ndarray, missing: np.ndarray | None) -> pa.Array:
    """``tag + len(payload)`` per row; ``Z`` and length 0 where the value is missing."""
    rows = np.empty((len(lengths), _HEAD), dtype=np.uint8)
    rows[:, 0] = tag[0]
    rows[:, 1:] = lengths.astype(">u8").view(np.uint8).reshape(-1, 8)
    if missing is not None:
        rows[missing, 0] = _MISSING[0]
    return _binary_rows(rows, np.full(len(lengths), _HEAD, dtype=np.int64))


def _null_mask(col: pa.Array) -> np.ndarray | None:
    return col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None


def _string_like(tag: bytes, col: pa.Array) -> _Encoded | None:
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    typ = col.type
    if tag == b"I":
        fits = pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_fixed_size_binary(typ)
    else:
        fits = pa.types.is_string(typ) or pa.types.is_large_string(typ)
    if not fits:
        return None
    payload = pc.cast(col, _BINARY)
    missing = _null_mask(payload)
    lengths = pc.binary_length(payload).to_numpy(zero_copy_only=False)
    if missing is not None:
        payload = payload.fill_null(_empty())
        lengths = np.where(missing, 0, np.nan_to_num(lengths)).astype(np.int64)
    lengths = lengths.astype(np.int64, copy=False)
    return [_heads(tag, lengths, missing), payload], lengths + _HEAD


def _numeric(col: pa.Array) -> _Encoded | None:
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        return None
    # Nulls come back as NaN, and NaN is a missing value too.
    values = col.to_numpy(zero_copy_only=False).astype(np.float64)
    missing = np.isnan(values)
    values = np.where(values == 0.0, 0.0, values)  # -0.0 is 0.0
    rows = np.empty((len(values), _HEAD + 8), dtype=np.uint8)
    rows[:, :_HEAD] = np.frombuffer(b"F" + _LEN.pack(8), dtype=np.uint8)
    rows[:, _HEAD:] = values.astype(">f8").view(np.uint8).reshape(-1, 8)
    rows[missing, :_HEAD] = np.frombuffer(_MISSING, dtype=np.uint8)
    lengths = np.where(missing, _HEAD, _HEAD + 8).astype(np.int64)
    return [_binary_rows(rows, lengths)], lengths


def _embedding(col: pa.Array) -> _Encoded | None:
    typ = col.type
    is_list = pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)
    if not is_list or not pa.types.is_floating(typ.value_type):
        return None
    missing = _null_mask(col)
    sizes = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    sizes = (np.where(missing, 0, np.nan_to_num(sizes)) if missing is not None else sizes).astype(np.int64)
    values = col.flatten()  # the elements of non-null lists only, in order
    floats = values.to_numpy(zero_copy_only=False)
    if floats.dtype == np.float32:
        floats = floats.copy()
        nan = np.isnan(floats)
        # The reference path goes through Python floats, which quiets signalling NaNs.
        floats[nan] = floats[nan].astype(np.float64).astype(np.float32)
    else:
        floats = floats.astype(np.float64).astype(np.float32)
    if values.null_count:
        floats[values.is_null().to_numpy(zero_copy_only=False)] = np.float32("nan")
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes * 4, out=offsets[1:])
    data = pa.py_buffer(np.ascontiguousarray(floats.astype("<f4", copy=False)))
    payload = pa.LargeBinaryArray.from_buffers(_BINARY, len(sizes), [None, pa.py_buffer(offsets), data])
    return [_heads(b"E", sizes * 4, missing), payload], sizes * 4 + _HEAD


def _per_row(col: pa.Array, enc: Callable[[Any], bytes]) -> _Encoded:
    encoded = [enc(v) for v in col.to_pylist()]
    return [pa.array(encoded, type=_BINARY)], np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))


def _encode_column(tag: bytes, col: pa.Array, enc: Callable[[Any], bytes]) -> _Encoded:
    match tag:
        case b"F":
            fast = _numeric(col)
        case b"E":
            fast = _embedding(col)
        case _:
            fast = _string_like(tag, col)
    return fast if fast is not None else _per_row(col, enc)


def _batches(sizes: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges of about ``_BATCH_BYTES`` canonical bytes each (at least one row)."""
    ends = np.cumsum(sizes)
    ranges, start, before = [], 0, 0
    while start < len(sizes):
        stop = max(int(np.searchsorted(ends, before + _BATCH_BYTES, side="right")), start + 1)
        ranges.append((start, stop))
        before, start = int(ends[stop - 1]), stop
    return ranges


def _digests_joined(joined: pa.Array) -> bytes:
    """The 32-byte BLAKE3 digests of every value of a large-binary array, end to end
    (``dataward.domain.digests``: one ``blake3`` call per value over the array's own buffer)."""
    _, offsets_buffer, data_buffer = joined.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[joined.offset : joined.offset + len(joined) + 1]
    return digests(data_buffer if data_buffer is not None else b"", offsets)


def record_digest_array(schema: Schema, table: pa.Table) -> np.ndarray:
    """The record id of every row as its 32-byte digest: an ``(n, 32)`` uint8 array (the hex of row
    ``i`` is row ``i`` of ``record_id_array``)."""
    return RecordDigests(schema, table).result()


class RecordDigests:
    """The record ids of a table's rows (32-byte digests; ``record_digest_array`` waits for all of
    them), worked out in order on threads of their own from the moment this is made, so that a caller
    can begin work on the first rows (encoding them for storage) while later rows are still hashed.

    The rows are checked and cut into batches on the calling thread, so a table that cannot be encoded
    is refused here; an error met while hashing is raised by ``rows`` and ``result``. A table of one
    batch is hashed here, on the calling thread: a thread would only cost it time.
    """

    def __init__(self, schema: Schema, table: pa.Table) -> None:
        self.num_rows = table.num_rows
        self._out = np.empty((self.num_rows, ID_BYTES), dtype=np.uint8)
        self._done = 0
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        if self.num_rows == 0:
            return
        encoding = _RowEncoding(schema, table)
        ranges = _batches(encoding.sizes())
        if len(ranges) == 1:
            self._out[:] = np.frombuffer(_encoded_digests(encoding, 0, self.num_rows), dtype=np.uint8).reshape(
                -1, ID_BYTES
            )
            self._done = self.num_rows
            return
        # Not a daemon: an interpreter that exits waits for the hashing (seconds) rather than tearing
        # down Arrow under a running thread.
        threading.Thread(target=self._hash, args=(encoding, ranges), name="dataward-ids-order").start()

    def _hash(self, encoding: _RowEncoding, ranges: list[tuple[int, int]]) -> None:
        try:
            for (start, stop), joined in zip(ranges, _hashed_in_turn(encoding, ranges), strict=True):
                self._out[start:stop] = np.frombuffer(joined, dtype=np.uint8).reshape(-1, ID_BYTES)
                with self._changed:
                    self._done = stop
                    self._changed.notify_all()
        except BaseException as exc:  # handed to whoever waits for the rows
            with self._changed:
                self._error = exc
                self._changed.notify_all()

    def rows(self, start: int, stop: int) -> np.ndarray:
        """The digests of rows ``start`` to ``stop`` (a view), once they are worked out."""
        with self._changed:
            self._changed.wait_for(lambda: self._done >= stop or self._error is not None)
            if self._done < stop and self._error is not None:
                raise self._error
        return self._out[start:stop]

    def result(self) -> np.ndarray:
        """Every row's digest, an ``(n, 32)`` uint8 array (waits for the last rows)."""
        return self.rows(0, self.num_rows)


_HASH_THREADS = 2
"""Batches encoded and hashed at once, each on its own thread: a batch's columns are encoded, joined
row-wise by Arrow and hashed on the thread that hashes it, so that the encoding of one batch runs
beside the hashing of another (Arrow's join and, with the ``fast`` extra, the column hasher's BLAKE3
run without the GIL; the per-value path holds it for short values). Also bounds the joined batches
held at a time: ``_HASH_THREADS`` of about ``_BATCH_BYTES``."""


class _RowEncoding:
    """The canonical encoding of a table's rows (see ``encode_record``), a range of rows at a time:
    the columns in encoding order, each with its name's TLV (the encoding's magic before the first)."""

    def __init__(self, schema: Schema, table: pa.Table) -> None:
        tags = {c.name: _TAGS[c.kind] for c in schema.inputs} | {schema.label: b"L"}
        self.rows = table.num_rows
        self.columns: list[tuple[bytes, pa.ChunkedArray, Callable[[Any], bytes], pa.Scalar, int]] = []
        prefix = ENCODING_MAGIC
        for name, name_tlv, enc in _column_encoders(schema):
            if name not in table.column_names:
                raise InputError(f"the table has no column {name!r}")
            # Scalars are made here, on the calling thread (the first ``pa.scalar`` imports pandas).
            lead = pa.scalar(prefix + name_tlv, _BINARY)
            self.columns.append((tags[name], table.column(name), enc, lead, len(prefix + name_tlv)))
            prefix = b""
        _empty()

    def sizes(self) -> np.ndarray:
        """About how many canonical bytes each row takes (what ``_batches`` cuts on): exact for text,
        label, image and numeric columns, estimated from the Arrow buffers for other types."""
        sizes = np.zeros(self.rows, dtype=np.int64)
        for _, column, _, _, lead in self.columns:
            sizes += lead + _HEAD + _payload_sizes(column)
        return sizes

    def joined(self, start: int, stop: int) -> pa.Array:
        """Rows ``start`` to ``stop`` canonically encoded, as a large-binary array."""
        parts: list[pa.Array | pa.Scalar] = []
        for tag, column, enc, lead, _ in self.columns:
            sliced = column.slice(start, stop - start)
            col = sliced.chunk(0) if sliced.num_chunks == 1 else sliced.combine_chunks()
            arrays, _ = _encode_column(tag, col, enc)
            parts.append(lead)
            parts.extend(arrays)
        return pc.binary_join_element_wise(*parts, _empty())


def _payload_sizes(column: pa.ChunkedArray) -> np.ndarray | int:
    """Each value's payload size in bytes, for cutting batches (an estimate where it is not plain)."""
    typ = column.type
    try:
        if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_binary(typ) or typ == _BINARY:
            sizes = pc.binary_length(column)
        elif pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
            sizes = pc.multiply(pc.list_value_length(column), 4)
        else:
            return max(8, column.nbytes // max(len(column), 1))
        return (sizes.fill_null(0) if sizes.null_count else sizes).to_numpy().astype(np.int64)
    except (pa.ArrowException, TypeError, ValueError):
        return max(8, column.nbytes // max(len(column), 1))


def _hashed_in_turn(encoding: _RowEncoding, ranges: list[tuple[int, int]]) -> Iterator[bytes]:
    """The digests of each range of rows of ``encoding``, in order, each range encoded, joined and hashed
    on a thread of its own (``RecordDigests`` hashes a table of one range on the calling thread)."""
    with ThreadPoolExecutor(max_workers=_HASH_THREADS, thread_name_prefix="dataward-ids") as pool:
        pending: deque[Future[bytes]] = deque()
        for start, stop in ranges:
            pending.append(pool.submit(_encoded_digests, encoding, start, stop))
            if len(pending) > _HASH_THREADS:
                # A queued range holds nothing until it runs; waiting here keeps the futures few.
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _encoded_digests(encoding: _RowEncoding, start: int, stop: int) -> bytes:
    return _digests_joined(encoding.joined(start, stop))


def record_id_array(schema: Schema, table: pa.Table) -> pa.StringArray:
    """``record_ids`` as an Arrow string array, built without a Python string per record."""
    if table.num_rows == 0:
        return pa.array([], type=pa.string())
    return binary_to_ids(record_digest_array(schema, table))


def record_ids(schema: Schema, table: pa.Table) -> list[str]:
    """Ids of every row of a canonical table: ``record_id`` of each row, computed column-wise.

    Any Arrow width of a kind gives the same ids (``string``/``large_string``, ``binary``/
    ``large_binary``, ``list``/``fixed_size_list``), and chunked columns are fine.
    """
    if table.num_rows == 0:
        return []
    return record_id_array(schema, table).to_pylist()


def with_record_ids(schema: Schema, table: pa.Table) -> pa.Table:
    """The canonical table with a leading ``record_id`` column (replacing any present)."""
    if RECORD_ID in table.column_names:
        table = table.drop_columns([RECORD_ID])
    return table.add_column(0, RECORD_ID, record_id_array(schema, table))


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
