"""Shared steps for text formats (CSV, JSON Lines): UTF-8 decoding and line numbering."""

from __future__ import annotations

import json
from collections.abc import Callable
from os import PathLike

import numpy as np

from dataward.io.location import input_error

UTF8_BOM = b"\xef\xbb\xbf"


def strip_bom(data: bytes) -> bytes:
    """The bytes without a leading UTF-8 byte-order mark (spreadsheets often write one)."""
    return data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data


def decode_utf8(
    path: str | PathLike[str],
    data: bytes,
    find_column: Callable[[str, int], str | None],
) -> str:
    """The file's text, or an ``InputError`` naming the line and column of the first byte that is
    not UTF-8. ``find_column(text, line)`` names the column of a line decoded with
    ``surrogateescape`` (where undecodable bytes become lone surrogates)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        escaped = data.decode("utf-8", errors="surrogateescape")
        try:
            column = find_column(escaped, line)
        except Exception:  # naming the column is a courtesy; the line is what matters
            column = None
        raise input_error(
            path,
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start} cannot be decoded)",
            unit="line",
            where=line,
            column=column,
            hint="save the file with UTF-8 encoding and import it again",
        ) from None


def physical_lines(text: str) -> list[str]:
    """The file's lines split at ``\n`` only (with any ``\r`` before it removed).

    ``str.splitlines`` would also split at characters such as U+2028, which JSON allows inside
    strings, and would then disagree with the line numbers an editor shows.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def has_undecodable(value: str) -> bool:
    """True when ``value`` holds a byte that ``surrogateescape`` decoding could not read."""
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def simple_line_numbers(data: bytes, records: int, first: int) -> np.ndarray | None:
    """Line numbers ``first, first+1, ...`` when every physical line holds exactly one record
    (no blank lines, no line breaks inside values); ``None`` when a slower count is needed."""
    newlines = data.count(b"\n")
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None
    lines = newlines + (0 if data.endswith(b"\n") or not data else 1)
    if lines != records + first - 1:
        return None
    return np.arange(first, first + records, dtype=np.int64)


def json_key_with_undecodable(text: str, line: int) -> str | None:
    """The key of a JSON Lines record whose value holds undecodable bytes (for error messages)."""
    record = json.loads(physical_lines(text)[line - 1])
    if isinstance(record, dict):
        for key, value in record.items():
            if has_undecodable(json.dumps(value, ensure_ascii=False)) or has_undecodable(key):
                return str(key)
    return None
