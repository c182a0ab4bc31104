"""Shared steps for text formats (CSV, JSON Lines): UTF-8 decoding and line numbering."""

from __future__ import annotations

import json
from collections.abc import Callable
from os import PathLike
from pathlib import Path

import numpy as np

from dataward.domain.errors import InputError
from dataward.io.location import input_error

UTF8_BOM = b"\xef\xbb\xbf"

# Longest first: a UTF-32 little-endian mark starts with the UTF-16 one.
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)", "UTF-32"),
    (b"\xff\xfe", "UTF-16 (little-endian)", "UTF-16"),
    (b"\xfe\xff", "UTF-16 (big-endian)", "UTF-16"),
)

WIDE_SAMPLE = 64
"""Bytes of the file's start looked at for a UTF-16 or UTF-32 encoding."""


def strip_bom(data: bytes) -> bytes:
    """The bytes without a leading UTF-8 byte-order mark (spreadsheets often write one)."""
    return data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data


def wide_encoding_problem(path: str | PathLike[str], head: bytes, fmt: str) -> InputError | None:
    """An ``InputError`` when the file starting with ``head`` is UTF-16 or UTF-32 rather than UTF-8.

    Spreadsheets save "Unicode text" as UTF-16. Read as UTF-8 its byte-order mark is undecodable and
    every other byte a NUL: the refusal then named a column such as ``'\\udcff\\udcfet\\x00e\\x00'``,
    or a missing label column, instead of the encoding. Found by the byte-order mark, or without one
    by a NUL byte after (little-endian) or before (big-endian) most characters and none between.
    """
    for bom, name, iconv_name in _WIDE_BOMS:
        if head.startswith(bom):
            what = f"it is {name} text, as its byte-order mark ({bom.hex(' ').upper()}) says"
            return _wide_error(path, what, iconv_name, fmt)
    sample = head[: len(head) // 2 * 2]
    if len(sample) >= 4:
        even, odd = sample[0::2], sample[1::2]
        for nuls, chars, order in ((odd, even, "little"), (even, odd, "big")):
            # Most characters of a header are ASCII or Latin-1, whose UTF-16 high byte is NUL.
            if nuls.count(0) * 4 >= len(nuls) * 3 and 0 not in chars:
                what = f"it looks like UTF-16 ({order}-endian) text: a NUL byte is next to every character"
                return _wide_error(path, what, "UTF-16" + ("LE" if order == "little" else "BE"), fmt)
    return None


def _wide_error(path: str | PathLike[str], what: str, iconv_name: str, fmt: str) -> InputError:
    name = Path(path)
    converted = name.with_name(f"{name.stem}.utf8{name.suffix}").name
    hint = f"convert it to UTF-8 and import it again: iconv -f {iconv_name} -t UTF-8 {name.name} > {converted}"
    if fmt == "csv":
        hint += " (a spreadsheet writes UTF-8 when saving as 'CSV UTF-8')"
    return input_error(path, f"is not UTF-8: {what}", hint=hint)


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
