"""BLAKE3 of every value of a binary column, and record ids between hex and 32-byte digests.

Hashing is BLAKE3 from a well-kept library, never code of the ward's own: a record id is exactly
``blake3(encoding).hexdigest()`` wherever it is computed. With the optional ``fast`` extra
(``polars-hash``, the ``blake3`` crate over an Arrow column in Rust) a column is hashed in one call,
with no Python work per value: about a quarter of the CPU of the per-value path for a million short
records. Without it, the ``blake3`` package is called once per value over a slice of one copy of the
column's bytes. Both give the same digests (``tests/domain/test_digests.py``). The hex conversions
are one ``binascii`` pass over the whole column; reading hex falls back to a numpy table look-up,
which marks the rows that are not lowercase hex, when some row is not.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from functools import cache
from itertools import pairwise

import blake3
import numpy as np

DIGEST_BYTES = 32


def digests(data: object, offsets: np.ndarray) -> bytes:
    """The 32-byte BLAKE3 digests, end to end, of ``data[offsets[i]:offsets[i + 1]]`` for every ``i``.

    ``data`` is any contiguous buffer (an Arrow buffer, bytes, a numpy array); ``offsets`` rise within it.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.shape[0] < 2:
        return b""
    view = memoryview(data).cast("B")  # type: ignore[arg-type]
    if offsets[0] < 0 or offsets[-1] > len(view) or (np.diff(offsets) < 0).any():
        raise ValueError("offsets must rise within the data")
    start = int(offsets[0])
    relative = offsets - start
    if offsets.shape[0] - 1 >= BATCH_MIN_VALUES and (column_hasher := _column_hasher()) is not None:
        # Handed over in place: the column hasher reads the buffer, no copy of it is needed.
        return column_hasher(view[start : int(offsets[-1])], relative)
    # Slices of one bytes copy of the span hashed: a bytes slice costs the binding less per call than a
    # memoryview slice (about 15% of the hashing for short values), for one copy of the span.
    span = view[start : int(offsets[-1])].tobytes()
    bounds = relative.tolist()
    hasher = blake3.blake3
    return b"".join([hasher(span[a:b]).digest() for a, b in pairwise(bounds)])


BATCH_MIN_VALUES = 256
"""Below this many values the per-value calls cost less than handing the column over."""


SPOT_CHECKS = 16
"""Values of each column whose digests from the column hasher are recomputed with the ``blake3`` package
(at spread positions, the first and the last among them): a hasher that returned its digests in another
order, or of other bytes, is caught before any id is used."""


def _spot_checked(span: bytes | memoryview, offsets: np.ndarray, binary: bytes) -> bytes:
    n = offsets.shape[0] - 1
    if len(binary) != n * DIGEST_BYTES:
        raise RuntimeError(f"the column hasher returned {len(binary)} bytes for {n} digests")
    for i in np.unique(np.linspace(0, n - 1, min(n, SPOT_CHECKS)).astype(np.int64)).tolist():
        expected = blake3.blake3(span[int(offsets[i]) : int(offsets[i + 1])]).digest()
        if binary[i * DIGEST_BYTES : (i + 1) * DIGEST_BYTES] != expected:
            raise RuntimeError(f"the column hasher's digest of value {i} is not its BLAKE3")
    return binary


@cache
def _column_hasher() -> Callable[[bytes | memoryview, np.ndarray], bytes] | None:
    """One call hashing every value of a column, when the ``fast`` extra is installed (else None):
    polars-hash's BLAKE3, which returns the digests as hex. Looked up once per process: without the
    extra, a failed import would search the path on every batch."""
    try:
        import polars as pl
        import polars_hash  # noqa: F401  (registers the ``chash`` namespace)
        import pyarrow as pa
    except ImportError:
        return None

    def hash_column(span: bytes | memoryview, offsets: np.ndarray) -> bytes:
        n = offsets.shape[0] - 1
        column = pa.Array.from_buffers(
            pa.large_binary(), n, [None, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(span)]
        )
        hexes = pl.from_arrow(column).to_frame("v").select(pl.col("v").chash.blake3()).to_series().to_arrow()
        hexes = hexes.cast(pa.large_string()) if hexes.type != pa.large_string() else hexes
        if hexes.null_count or len(hexes) != n:
            raise RuntimeError("the column hasher returned nulls or the wrong number of digests")
        _, hex_offsets, chars = hexes.buffers()
        bounds = np.frombuffer(hex_offsets, dtype=np.int64)[hexes.offset : hexes.offset + n + 1]
        if (np.diff(bounds) != 2 * DIGEST_BYTES).any():
            raise RuntimeError("the column hasher returned a digest of the wrong length")
        # One C pass over the whole hex text, read in place (``bytes.fromhex`` would first need it as a
        # str: about twice the time); every digest has its 64 characters, and any byte that is not hex raises.
        text = memoryview(chars)[int(bounds[0]) : int(bounds[-1])]
        try:
            binary = binascii.unhexlify(text)
        except binascii.Error as exc:
            raise RuntimeError("the column hasher returned a digest that is not hex") from exc
        return _spot_checked(span, offsets, binary)

    return hash_column


_PAIRS = np.array([f"{i:02x}".encode() for i in range(256)]).view(np.uint16)
"""Byte value -> its two lowercase hex characters, as one uint16 in memory order."""
_FROM_PAIRS = np.full(1 << 16, -1, dtype=np.int16)
_FROM_PAIRS[_PAIRS] = np.arange(256, dtype=np.int16)


def hex_text(binary: np.ndarray) -> bytes:
    """Lowercase hex of every byte of a uint8 array, end to end (row after row)."""
    binary = np.ascontiguousarray(binary, dtype=np.uint8)
    # One C pass straight to the bytes an Arrow string column takes (about the table look-up's time).
    return binascii.hexlify(memoryview(binary).cast("B")) if binary.size else b""


def from_hex(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(binary, valid)`` of a ``(n, 2w)`` uint8 array of characters: the ``(n, w)`` bytes of each row
    that is lowercase hex (zero elsewhere), and which rows were."""
    text = np.ascontiguousarray(text, dtype=np.uint8)
    n, chars = text.shape
    width = chars // 2
    if n == 0 or width == 0:
        return np.zeros((n, width), dtype=np.uint8), np.ones(n, dtype=bool)
    if chars % 2 == 0:
        # The usual case, every row lowercase hex: binascii decodes in one C pass, and writing the
        # bytes back must give the same text, which refuses upper case (and anything unhexlify let by).
        # Compared by numpy: ``bytes == memoryview`` goes byte by byte, slower than the rest together.
        try:
            raw = binascii.unhexlify(memoryview(text).cast("B"))
        except binascii.Error:
            raw = None
        if raw is not None and np.array_equal(np.frombuffer(binascii.hexlify(raw), dtype=np.uint8), text.ravel()):
            return np.frombuffer(raw, dtype=np.uint8).reshape(n, width).copy(), np.ones(n, dtype=bool)
    values = _FROM_PAIRS[text.view(np.uint16)]
    valid = (values >= 0).all(axis=1)
    out = np.zeros((n, width), dtype=np.uint8)
    out[valid] = values[valid].astype(np.uint8)
    return out, valid
