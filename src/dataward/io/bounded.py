"""Reading input files within their limits: in chunks, hashed as they arrive, refused early.

A file is never read past the point where it breaks a limit: its size is checked before the first
byte is read, and a text line longer than ``max_record_bytes`` stops the read at that line. What
the parsers then see is bounded by those limits.
"""

from __future__ import annotations

import io
from os import PathLike
from pathlib import Path
from typing import Any

import blake3
import numpy as np

from dataward.domain.errors import InputError
from dataward.domain.hashing import HASH_PREFIX
from dataward.domain.limits import InputLimits, limit_problem
from dataward.io.location import limit_exceeded
from dataward.io.text_input import UTF8_BOM

CHUNK_BYTES = 1 << 22
"""Files are read and hashed 4 MiB at a time."""

_NEWLINE = 0x0A
_OPEN = (0x5B, 0x7B)  # "[", "{"
_CLOSE = (0x5D, 0x7D)  # "]", "}"


def check_file_size(path: str | PathLike[str], size: int, limits: InputLimits) -> None:
    """Refuse a file over ``max_file_bytes`` before reading any of it."""
    if size > limits.max_file_bytes:
        raise limit_exceeded(
            path,
            "max_file_bytes",
            limit_problem("max_file_bytes", limits.max_file_bytes, size, what="the file"),
        )


def hash_file(path: Path) -> str:
    """The content hash of a file, read in chunks (the same value as ``content_hash`` of its bytes)."""
    hasher = blake3.blake3()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            hasher.update(chunk)
    return HASH_PREFIX + hasher.hexdigest()


def count_newlines(data: bytes) -> int:
    """How many ``\n`` bytes ``data`` holds: numpy compares ``CHUNK_BYTES`` at a time, several times
    faster than ``bytes.count`` of one byte, with at most that many bytes of mask alive."""
    array = np.frombuffer(data, dtype=np.uint8)
    return sum(int(np.count_nonzero(array[i : i + CHUNK_BYTES] == _NEWLINE)) for i in range(0, len(array), CHUNK_BYTES))


def _check_lines(path: Path, chunk: bytes, line: int, line_length: int, limit: int) -> tuple[int, int]:
    """Continue the line count over ``chunk``; refuse the first line longer than ``limit`` bytes."""
    first = chunk.find(b"\n")
    if first >= 0 and len(chunk) <= limit:
        # No line inside the chunk can be over the limit: only the one it continues and the one it
        # starts can, so no array of the chunk's size is made (it would double the reader's memory).
        if line_length + first > limit:
            raise _line_too_long(path, line, line_length + first, limit)
        tail = len(chunk) - chunk.rfind(b"\n") - 1
        return line + count_newlines(chunk), tail
    newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == _NEWLINE)
    if newlines.size == 0:
        line_length += len(chunk)
        if line_length > limit:
            raise _line_too_long(path, line, None, limit)
        return line, line_length
    # Lengths of the lines that end in this chunk (the first continues the previous chunk's line).
    ends = newlines
    starts = np.concatenate(([0], newlines[:-1] + 1))
    lengths = ends - starts
    lengths[0] += line_length
    over = np.flatnonzero(lengths > limit)
    if over.size:
        first = int(over[0])
        raise _line_too_long(path, line + first, int(lengths[first]), limit)
    tail = len(chunk) - int(newlines[-1]) - 1
    if tail > limit:
        raise _line_too_long(path, line + int(newlines.size), None, limit)
    return line + int(newlines.size), tail


def _line_too_long(path: Path, line: int, length: int | None, limit: int) -> Exception:
    return limit_exceeded(
        path,
        "max_record_bytes",
        limit_problem("max_record_bytes", limit, length, what="the line"),
        unit="line",
        where=line,
    )


_NOT_STRUCTURE = bytes(i for i in range(256) if i not in (*_OPEN, *_CLOSE, _NEWLINE))
# Each structural byte as its step in depth, read as int8: +1 for an opening, -1 (0xff) for a closing.
_DEPTH_STEP = bytes(1 if i in _OPEN else 0xFF if i in _CLOSE else 0 for i in range(256))


def bracket_depth_within(data: bytes, limit: int) -> bool:
    """True when no line of ``data`` opens more than ``limit`` JSON brackets without closing them.

    Brackets inside strings are counted too, so this can only overestimate the depth: a False
    answer means "parse this carefully", never "refuse".
    """
    # Only brackets and line breaks matter: dropping every other byte first (in C) leaves a few
    # bytes per line for numpy to count.
    structure = data.translate(None, _NOT_STRUCTURE)
    start = 0
    while start < len(structure):
        # Chunks end at a line break, so a line is never split between two chunks.
        end = structure.find(b"\n", start + CHUNK_BYTES)
        end = len(structure) if end < 0 else end + 1
        chunk = structure[start:end]
        if not _chunk_within(chunk, limit):
            return False
        start = end
    return True


def _chunk_within(chunk: bytes, limit: int) -> bool:
    b = np.frombuffer(chunk, dtype=np.uint8)
    depth = np.cumsum(np.frombuffer(chunk.translate(_DEPTH_STEP), dtype=np.int8), dtype=np.int32)
    line_starts = np.concatenate(([0], np.flatnonzero(b == _NEWLINE) + 1))
    line_starts = line_starts[line_starts < b.size]
    if line_starts.size == 0:
        return True
    deepest = np.maximum.reduceat(depth, line_starts)
    before = np.concatenate(([0], depth[line_starts[1:] - 1]))
    return bool(np.all(deepest - before <= limit))


def every_line_opens_an_object(data: bytes) -> bool:
    """True when every line of ``data`` starts with ``{`` or is empty.

    pyarrow's JSON reader crashes the process (a segmentation fault, not an exception) on some
    inputs that do not start with an object, such as a first line ``null``; only files of which
    every line starts with ``{`` are given to it. Anything else is read line by line, which names
    the line that is not an object.
    """
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + CHUNK_BYTES)
        end = len(data) if end < 0 else end + 1
        b = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
        starts = np.concatenate(([0], np.flatnonzero(b == _NEWLINE) + 1))
        starts = starts[starts < b.size]
        first = b[starts]
        after = b[np.minimum(starts + 1, b.size - 1)]
        blank = (first == _NEWLINE) | ((first == 0x0D) & (after == _NEWLINE) & (starts + 1 < b.size))
        if not np.all((first == _OPEN[1]) | blank):
            return False
        start = end
    return True


class CheckedStream(io.RawIOBase):
    """A text input file read as a stream: hashed, size- and line-checked as its bytes arrive.

    The parsers read from this instead of from the whole file in memory. A leading UTF-8 byte-order
    mark is hashed (``raw_hash`` is of the file as it is) but not passed on. When a limit is broken
    the stream stops (reads return nothing) and keeps the error in ``error``: the parser then fails
    or ends early, and the caller raises ``error`` first, so that a parser's own complaint about a
    cut-short file never hides the limit. The line breaks are counted as they pass, so that the
    common case (one record a line) needs no second read to number the records.
    """

    def __init__(self, path: Path, limits: InputLimits) -> None:
        super().__init__()
        check_file_size(path, path.stat().st_size, limits)
        self.path = path
        self.limits = limits
        self.error: Exception | None = None
        self._handle = path.open("rb")
        self._hasher = blake3.blake3()
        self._total = 0
        self._line = 1
        self._line_length = 0
        self._first = True
        self.newlines = 0
        self.returns = 0  # "\r" bytes
        self.crlf = 0  # "\r\n" pairs
        self.passed = 0  # bytes passed on (after the byte-order mark)
        self.last_byte = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def read(self, size: int | None = -1) -> bytes:
        if self.error is not None or self.closed:
            return b""
        wanted = CHUNK_BYTES if size is None or size < 0 else max(size, 1)
        chunk = self._handle.read(wanted)
        if self._first and chunk:
            self._first = False
            # The byte-order mark is checked whole, even when the first read is shorter than it.
            while len(chunk) < len(UTF8_BOM) and UTF8_BOM.startswith(chunk):
                more = self._handle.read(len(UTF8_BOM) - len(chunk))
                if not more:
                    break
                chunk += more
            if not self._take(chunk):
                return b""
            chunk = chunk.removeprefix(UTF8_BOM)
            if not chunk:  # the mark alone: an empty answer would read as the end of the file
                return self.read(size)
        elif not chunk or not self._take(chunk):
            return b""
        if b"\r" in chunk:  # most files hold none: one quick scan instead of two counts
            self.returns += chunk.count(b"\r")
            self.crlf += chunk.count(b"\r\n")
        self.crlf += self.last_byte == b"\r" and chunk[:1] == b"\n"
        self.passed += len(chunk)
        self.last_byte = chunk[-1:]
        return chunk

    def _take(self, chunk: bytes) -> bool:
        """Check and hash ``chunk``; False (and ``error`` set) when it breaks a limit."""
        try:
            self._total += len(chunk)
            # The file may grow while it is read: the limit holds for what is read, not what stat said.
            check_file_size(self.path, self._total, self.limits)
            line = self._line
            self._line, self._line_length = _check_lines(
                self.path, chunk, line, self._line_length, self.limits.max_record_bytes
            )
        except InputError as exc:
            self.error = exc
            return False
        # The line count went up by the chunk's line breaks: counted once, not again by ``read``.
        self.newlines += self._line - line
        self._hasher.update(chunk)
        return True

    def raise_error(self) -> None:
        """Raise the limit this stream stopped at, if any."""
        if self.error is not None:
            raise self.error

    def simple_line_numbers(self, records: int, first: int) -> np.ndarray | None:
        """As :func:`dataward.io.text_input.simple_line_numbers`, from the counts of the read."""
        if self.returns != self.crlf:
            return None
        lines = self.newlines + (0 if self.last_byte in (b"\n", b"") else 1)
        if lines != records + first - 1:
            return None
        return np.arange(first, first + records, dtype=np.int64)

    @property
    def raw_hash(self) -> str:
        """The content hash of every byte read so far (the whole file once it is read to the end)."""
        return HASH_PREFIX + self._hasher.hexdigest()

    def close(self) -> None:
        self._handle.close()
        super().close()


def read_whole(path: Path, limits: InputLimits) -> bytes:
    """The whole file without its byte-order mark, for explaining an error (never on success)."""
    with CheckedStream(path, limits) as stream:
        parts = []
        while chunk := stream.read(CHUNK_BYTES):
            parts.append(chunk)
        stream.raise_error()
    return b"".join(parts)
