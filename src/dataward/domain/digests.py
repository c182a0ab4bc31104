"""BLAKE3 of every value of a binary column, and hex record ids, without a Python call per record.

The work is done by the compiled helper ``dataward.domain._native`` (plain C, built at install) with
the GIL released, over two threads for large columns. Where the helper is not built (a source tree
used without installing), the same results come from one ``blake3`` call per record and numpy.
"""

from __future__ import annotations

import threading
from itertools import pairwise

import blake3
import numpy as np

try:  # pragma: no branch - which one runs depends on the install
    from dataward.domain import _native
except ImportError:  # pragma: no cover - exercised only without the compiled helper
    _native = None

DIGEST_BYTES = 32
_SPLIT = 20_000
"""Columns of at least this many values are hashed by two threads, half each."""


def built() -> bool:
    """Whether the compiled helper is in use."""
    return _native is not None


def _digests_python(data: memoryview, offsets: np.ndarray) -> bytes:
    hasher = blake3.blake3
    bounds = offsets.tolist()
    return b"".join([hasher(data[a:b]).digest() for a, b in pairwise(bounds)])


def digests(data: object, offsets: np.ndarray) -> bytes:
    """The 32-byte BLAKE3 digests, end to end, of ``data[offsets[i]:offsets[i + 1]]`` for every ``i``.

    ``data`` is any contiguous buffer (an Arrow buffer, bytes, a numpy array); ``offsets`` rise within it.
    """
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    if n <= 0:
        return b""
    if _native is None:
        return _digests_python(memoryview(data).cast("B"), offsets)  # type: ignore[arg-type]
    if n < _SPLIT:
        return _native.digests(data, offsets)
    # The helper releases the GIL: the second half is hashed on another thread meanwhile.
    half = n // 2
    second: list[bytes] = []
    thread = threading.Thread(target=lambda: second.append(_native.digests(data, offsets[half:])))
    thread.start()
    try:
        first = _native.digests(data, offsets[: half + 1])
    finally:
        thread.join()
    if not second:
        # The thread failed (its error is already printed by threading): hash that half here.
        second.append(_native.digests(data, offsets[half:]))
    return first + second[0]


_PAIRS = np.array([f"{i:02x}".encode() for i in range(256)]).view(np.uint16)
"""Byte value -> its two lowercase hex characters, as one uint16 in memory order."""
_FROM_PAIRS = np.full(1 << 16, -1, dtype=np.int16)
_FROM_PAIRS[_PAIRS] = np.arange(256, dtype=np.int16)


def to_hex(binary: np.ndarray) -> np.ndarray:
    """Lowercase hex of a ``(n, w)`` uint8 array: an ``(n, 2w)`` uint8 array of characters."""
    binary = np.ascontiguousarray(binary, dtype=np.uint8)
    n, width = binary.shape
    if _native is None:
        return _PAIRS[binary].view(np.uint8).reshape(n, 2 * width)
    return np.frombuffer(_native.to_hex(binary), dtype=np.uint8).reshape(n, 2 * width)


def from_hex(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(binary, valid)`` of a ``(n, 2w)`` uint8 array of characters: the ``(n, w)`` bytes of each row
    that is lowercase hex (zero elsewhere), and which rows were."""
    text = np.ascontiguousarray(text, dtype=np.uint8)
    n, chars = text.shape
    width = chars // 2
    if n == 0 or width == 0:
        return np.zeros((n, width), dtype=np.uint8), np.ones(n, dtype=bool)
    if _native is None:
        values = _FROM_PAIRS[text.view(np.uint16)]
        valid = (values >= 0).all(axis=1)
        out = np.zeros((n, width), dtype=np.uint8)
        out[valid] = values[valid].astype(np.uint8)
        return out, valid
    binary, valid = _native.from_hex(text, width)
    return (
        np.frombuffer(binary, dtype=np.uint8).reshape(n, width),
        np.frombuffer(valid, dtype=np.uint8).astype(bool),
    )


Piece = bytes | tuple[object, np.ndarray]
"""A piece of every row: the same bytes in each, or ``(data, offsets)``, row ``i`` being
``data[offsets[i]:offsets[i + 1]]``."""


def row_digests(pieces: list[Piece], n: int) -> bytes:
    """The 32-byte BLAKE3 digests, end to end, of ``n`` rows, each the concatenation of its parts of
    ``pieces``. Needs the compiled helper (see ``built``)."""
    if _native is None:
        raise RuntimeError("dataward.domain._native is not built")
    pieces = [p if isinstance(p, bytes) else (p[0], np.ascontiguousarray(p[1], dtype=np.int64)) for p in pieces]
    if n < _SPLIT:
        return _native.row_digests(pieces, n)
    half = n // 2
    first_half = [p if isinstance(p, bytes) else (p[0], p[1][: half + 1]) for p in pieces]
    second_half = [p if isinstance(p, bytes) else (p[0], p[1][half:]) for p in pieces]
    second: list[bytes] = []
    thread = threading.Thread(target=lambda: second.append(_native.row_digests(second_half, n - half)))
    thread.start()
    try:
        first = _native.row_digests(first_half, half)
    finally:
        thread.join()
    if not second:
        second.append(_native.row_digests(second_half, n - half))
    return first + second[0]
