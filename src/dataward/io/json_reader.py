"""``.json`` input: a top-level JSON array of record objects, or JSON Lines under a ``.json`` name.

Many tools write a JSON array of objects (``json.dump(records, f)``, pandas' ``orient="records"``),
and some write JSON Lines to a ``.json`` file (Hugging Face ``Dataset.to_json``). The first character
that is not whitespace decides: ``[`` is an array, anything else is read as JSON Lines.

An array is read as a stream, one element at a time, and each element goes through the same checks
as a JSON Lines line (object, columns, nesting depth, surrogates, ``max_rows``), so the input limits
apply as to every import; an element longer than ``max_record_bytes`` is refused as it is read. A
record's place is the line its element starts on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

import numpy as np
import pyarrow as pa

from dataward.domain.errors import InputError
from dataward.domain.limits import DEFAULT_LIMITS, InputLimits, limit_problem
from dataward.domain.schema import Schema
from dataward.io.bounded import CheckedStream
from dataward.io.jsonl_reader import _blocks, _decoded, _line_by_line, _too_deep, read_jsonl
from dataward.io.location import input_error, limit_exceeded

_WHITESPACE = " \t\r\n"
_PEEK_BYTES = 1 << 16


def read_json(
    path: str | PathLike[str], schema: Schema, limits: InputLimits = DEFAULT_LIMITS
) -> tuple[pa.Table, np.ndarray, str]:
    """As :func:`~dataward.io.jsonl_reader.read_jsonl`: the canonical table, each record's line and the
    file's content hash, from a JSON array of objects or from JSON Lines."""
    source = Path(path)
    if not _holds_an_array(source):
        return read_jsonl(source, schema, limits)
    hashed: list[str] = []
    table, rows = _line_by_line(source, _array_elements(source, limits, hashed), schema, limits)
    return table, rows, hashed[0]


def _holds_an_array(path: Path) -> bool:
    """True when the file's first character past a byte-order mark and whitespace is ``[``."""
    with path.open("rb") as handle:
        while head := handle.read(_PEEK_BYTES):
            text = head.removeprefix(b"\xef\xbb\xbf").lstrip(_WHITESPACE.encode())
            if text:
                return text.startswith(b"[")
    return False


class _Elements:
    """The text of a JSON array being split into its elements, with the line each one starts on."""

    def __init__(self, path: Path, blocks: Iterator[str], limits: InputLimits) -> None:
        self.path, self.blocks, self.limits = path, blocks, limits
        self.buf, self.pos = "", 0
        # Lines are counted up to ``counted`` once, so that naming each element's line stays linear.
        self.line, self.counted = 1, 0

    def more(self) -> bool:
        """Append the next block (keeping the unread text); False at the end of the file."""
        self.line = self.here()
        self.buf, self.pos, self.counted = self.buf[self.pos :], 0, 0
        block = next(self.blocks, None)
        if block is None:
            return False
        self.buf += block
        return True

    def next_char(self) -> str | None:
        """The next character that is not whitespace (not consumed), or None at the end."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return None

    def here(self) -> int:
        """The line of the current position."""
        self.line += self.buf.count("\n", self.counted, self.pos)
        self.counted = self.pos
        return self.line

    def error(self, problem: str) -> InputError:
        return input_error(
            self.path,
            problem,
            unit="line",
            where=self.here(),
            hint='write a JSON array of objects, e.g. [{"text": "...", "label": "..."}], or one object per line',
        )


def _array_elements(path: Path, limits: InputLimits, hashed: list[str]) -> Iterator[tuple[int, str]]:
    """Each element of the file's top-level array as (its first line, its JSON text); the file's
    content hash is appended to ``hashed`` once it has been read to the end."""
    decoder = json.JSONDecoder()
    with CheckedStream(path, limits) as stream:
        text = _Elements(path, (_decoded(path, b, limits) for b, _ in _blocks(stream)), limits)
        text.more()
        text.buf = text.buf.removeprefix("\ufeff")
        text.next_char()
        text.pos += 1  # the "[" that _holds_an_array saw
        expect_element = True
        while (char := text.next_char()) != "]":
            if char is None:
                raise text.error("the JSON array is not closed: the file ends before its ']'")
            if not expect_element:
                if char != ",":
                    raise text.error(f"expected ',' or ']' between the array's elements, found {char!r}")
                text.pos += 1
                expect_element = True
                continue
            yield _one_element(text, decoder)
            expect_element = False
        text.pos += 1
        if text.next_char() is not None:
            raise text.error("there is more after the JSON array's closing ']'")
        stream.raise_error()
        hashed.append(stream.raw_hash)


def _element_too_large(text: _Elements) -> Exception:
    """The refusal of an array element longer than ``max_record_bytes``, naming where it starts."""
    return limit_exceeded(
        text.path,
        "max_record_bytes",
        limit_problem("max_record_bytes", text.limits.max_record_bytes, what="this array element"),
        unit="line",
        where=text.here(),
    )


def _one_element(text: _Elements, decoder: json.JSONDecoder) -> tuple[int, str]:
    """The element at the current position, consumed: read more of the file until it is complete."""
    while True:
        try:
            _, end = decoder.raw_decode(text.buf, text.pos)
        except RecursionError:
            raise _too_deep(text.path, text.here(), text.limits.max_depth) from None
        except json.JSONDecodeError as exc:
            if len(text.buf) - text.pos > text.limits.max_record_bytes:
                raise _element_too_large(text) from None
            # An element cut by the end of a block is complete once the next block is read.
            if text.more():
                continue
            raise text.error(f"the array element is not valid JSON ({exc.msg})") from None
        if end - text.pos > text.limits.max_record_bytes:
            raise _element_too_large(text)
        element = (text.here(), text.buf[text.pos : end])
        text.pos = end
        return element
