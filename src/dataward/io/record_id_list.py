"""``read_record_ids``: the list of records a contribution removes.

Either a text file with one record id per line (blank lines and ``#`` comments are skipped), or a
CSV, JSON Lines or Parquet file with a ``record_id`` column (other columns are ignored).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

import pyarrow as pa

from dataward.domain.errors import what_path_is
from dataward.domain.limits import DEFAULT_LIMITS, InputLimits
from dataward.domain.schema import RECORD_ID
from dataward.io.bounded import check_file_size
from dataward.io.location import Unit, input_error, missing_file
from dataward.io.text_input import physical_lines, strip_bom
from dataward.store.tables import read_parquet_bytes

_RECORD_ID = re.compile(r"^[0-9a-f]{64}$")


def _decode(path: Path, data: bytes) -> str:
    try:
        return strip_bom(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise input_error(path, "is not UTF-8 text", unit="line", where=line, hint="save it as UTF-8") from None


def _from_text(path: Path, text: str) -> Iterable[tuple[int, object]]:
    for number, line in enumerate(physical_lines(text), start=1):
        value = line.strip()
        if value and not value.startswith("#"):
            yield number, value


def _from_csv(path: Path, text: str) -> Iterable[tuple[int, object]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header or RECORD_ID not in header:
            raise input_error(path, "the header has no record_id column", unit="line", where=1, column=RECORD_ID)
        index = header.index(RECORD_ID)
        start = reader.line_num + 1
        for record in reader:
            if record:
                if index >= len(record):
                    raise input_error(path, "no record id on this line", unit="line", where=start, column=RECORD_ID)
                yield start, record[index]
            start = reader.line_num + 1
    except csv.Error as exc:
        raise input_error(path, f"does not parse as CSV ({exc})", unit="line", where=reader.line_num) from None


def _from_jsonl(path: Path, text: str) -> Iterable[tuple[int, object]]:
    for number, line in enumerate(physical_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise input_error(path, f"the line is not valid JSON ({exc.msg})", unit="line", where=number) from None
        except RecursionError:
            raise input_error(path, "the line is JSON nested too deeply to read", unit="line", where=number) from None
        if not isinstance(record, dict) or RECORD_ID not in record:
            raise input_error(
                path,
                "the line is not an object with a record_id",
                unit="line",
                where=number,
                column=RECORD_ID,
            )
        yield number, record[RECORD_ID]


def _from_parquet(path: Path, data: bytes) -> Iterable[tuple[int, object]]:
    try:
        table = read_parquet_bytes(data)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise input_error(path, f"is not a readable Parquet file ({exc})") from None
    if RECORD_ID not in table.column_names:
        raise input_error(path, "the file has no record_id column", column=RECORD_ID)
    yield from enumerate(table.column(RECORD_ID).to_pylist(), start=1)


def read_record_ids(path: str | PathLike[str], limits: InputLimits = DEFAULT_LIMITS) -> list[str]:
    """The record ids listed in ``path``, validated (64 hex characters) and without repeats, in
    file order. Ids are compared in lowercase. A file over ``max_file_bytes`` is refused unread."""
    source = Path(path)
    if not source.exists():
        raise missing_file(source)
    if (kind := what_path_is(source)) is not None:
        if kind == "a folder":
            raise input_error(source, "is a folder, not a file", hint="give the file of record ids")
        raise input_error(source, f"is not a regular file: it is {kind}", hint="save the record ids to a file first")
    check_file_size(source, source.stat().st_size, limits)
    data = source.read_bytes()
    suffix = source.suffix.lower()
    unit: Unit = "line"
    entries: Iterable[tuple[int, object]]
    if suffix in (".parquet", ".pq"):
        entries, unit = _from_parquet(source, data), "row"
    elif suffix == ".csv":
        entries = _from_csv(source, _decode(source, data))
    elif suffix in (".jsonl", ".ndjson"):
        entries = _from_jsonl(source, _decode(source, data))
    else:
        entries = _from_text(source, _decode(source, data))
    ids: dict[str, None] = {}
    for where, value in entries:
        text = value.strip().lower() if isinstance(value, str) else None
        if text is None or not _RECORD_ID.match(text):
            raise input_error(
                source,
                f"{value!r} is not a record id",
                unit=unit,
                where=where,
                column=None if suffix not in (".csv", ".jsonl", ".ndjson", ".parquet", ".pq") else RECORD_ID,
                hint="a record id is 64 hexadecimal characters",
            )
        ids[text] = None
    if not ids:
        raise input_error(source, "lists no record ids", hint="write one record id per line")
    return list(ids)
