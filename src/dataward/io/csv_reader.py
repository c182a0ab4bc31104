"""CSV input: pyarrow parses, Python's csv module explains.

The file is streamed through pyarrow's CSV reader in blocks of ``_BLOCK_SIZE`` bytes, every column
as text, while it is hashed and checked against the limits (a file over ``max_rows`` stops at the
block where it crosses it). When parsing fails, the file is read again with the ``csv`` module,
which is slow but knows the line of each record, to say where and why. Quoted values may hold
commas, quotes and line breaks. Embeddings are written as JSON lists (``"[0.1, 0.2]"``) and images as base64 text.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from dataward.domain.errors import InputError
from dataward.domain.limits import DEFAULT_LIMITS, InputLimits, limit_problem
from dataward.domain.schema import ColumnKind, Schema
from dataward.io.arrow_loan import ArrowLoan
from dataward.io.bounded import CHUNK_BYTES, CheckedStream, read_whole
from dataward.io.columns import canonical_column
from dataward.io.header import check_columns
from dataward.io.location import ValueProblem, input_error, limit_exceeded, value_error
from dataward.io.text_input import decode_utf8, has_undecodable

_BLOCK_SIZE = 1 << 22
"""pyarrow parses in blocks; a record longer than a block (a big base64 image) needs a bigger one."""


_FIELD_LIMIT_LOCK = threading.RLock()


@contextmanager
def csv_field_limit(limit: int) -> Iterator[None]:
    """Let the ``csv`` module read fields up to ``limit`` characters, only inside this block.

    ``csv.field_size_limit`` is one setting for the whole process. Base64 images are far longer
    than its default, so it is raised to the record limit while this reader needs it and put back
    afterwards; the lock keeps two threads from restoring each other's value too early.
    """
    with _FIELD_LIMIT_LOCK:
        previous = csv.field_size_limit()
        csv.field_size_limit(limit)
        try:
            yield
        finally:
            csv.field_size_limit(previous)


def _reader(text: str) -> Any:
    return csv.reader(io.StringIO(text, newline=""), strict=True)


def _over_field_limit(exc: csv.Error) -> bool:
    return "field larger than field limit" in str(exc)


def _lines(stream: CheckedStream) -> Iterator[str]:
    """Decoded lines, one at a time, so that reading the header does not read the whole file."""
    parts: list[bytes] = []
    while chunk := stream.read(1 << 16):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            parts.append(chunk[start : end + 1])
            yield b"".join(parts).decode("utf-8")
            parts = []
            start = end + 1
        if start < len(chunk):
            parts.append(chunk[start:])
    stream.raise_error()
    if parts:
        yield b"".join(parts).decode("utf-8")


def _header(path: Path, limits: InputLimits) -> list[str]:
    with CheckedStream(path, limits) as stream:
        try:
            header = next(csv.reader(_lines(stream), strict=True), None)
        except csv.Error as exc:
            if _over_field_limit(exc):
                raise _field_too_long(path, 1) from None
            header = _header_from_text(path, read_whole(path, limits))
        except UnicodeDecodeError:
            header = _header_from_text(path, read_whole(path, limits))
    if not header or header == [""]:
        raise input_error(path, "the file is empty: no header line", hint="the first line names the columns")
    return header


def _field_too_long(path: str | PathLike[str], line: int) -> InputError:
    limit = csv.field_size_limit()
    return limit_exceeded(
        path,
        "max_record_bytes",
        limit_problem("max_record_bytes", limit, what="a value of the record"),
        unit="line",
        where=line,
    )


def _header_from_text(path: str | PathLike[str], data: bytes) -> list[str] | None:
    if True:
        # Old-style "\r" line ends or a bad byte: read again from the whole decoded text.
        text = decode_utf8(path, data, _column_with_bad_bytes)
        try:
            header = next(_reader(text), None)
        except csv.Error as exc:
            raise input_error(path, f"the header does not parse as CSV: {exc}", unit="line", where=1) from None
    if not header or header == [""]:
        raise input_error(path, "the file is empty: no header line", hint="the first line names the columns")
    return header


def _column_with_bad_bytes(text: str, line: int) -> str | None:
    reader = _reader(text)
    header = next(reader)
    start = reader.line_num + 1
    for record in reader:
        end = reader.line_num
        if start <= line <= end:
            for index, value in enumerate(record):
                if has_undecodable(value):
                    return header[index] if index < len(header) else None
            return None
        start = end + 1
    for index, name in enumerate(header):
        if has_undecodable(name):
            return header[index]
    return None


def _explain_parse_failure(path: str | PathLike[str], text: str, header: list[str], cause: str) -> InputError:
    """Find the record pyarrow could not parse, with the csv module, and name its line."""
    reader = _reader(text)
    start = 1
    try:
        next(reader)
        start = reader.line_num + 1
        for record in reader:
            if record and len(record) != len(header):
                if len(record) < len(header):
                    column = header[len(record)]
                    problem = f"found {len(record)} fields, expected {len(header)}: no value for this column"
                else:
                    column = None
                    problem = f"found {len(record)} fields but the header names {len(header)} columns"
                return input_error(
                    path,
                    problem,
                    unit="line",
                    where=start,
                    column=column,
                    hint="quote values that contain commas, quotes or line breaks",
                )
            start = reader.line_num + 1
    except csv.Error as exc:
        if _over_field_limit(exc):
            return _field_too_long(path, start)
        return input_error(
            path,
            f"the record does not parse as CSV ({exc})",
            unit="line",
            where=start,
            hint="check the quoting of this record",
        )
    return input_error(path, f"does not parse as CSV: {cause}")


def _line_numbers(path: Path, stream: CheckedStream, records: int, limits: InputLimits) -> np.ndarray:
    simple = stream.simple_line_numbers(records, first=2)
    if simple is not None:
        return simple
    # Values span lines: the csv module reads the file again, as a stream, to number the records.
    with CheckedStream(path, limits) as again:
        text = io.TextIOWrapper(io.BufferedReader(again, CHUNK_BYTES), encoding="utf-8", newline="")
        lines = _numbered(path, text, records)
        again.raise_error()
    return lines


def _numbered(path: Path, text: io.TextIOWrapper, records: int) -> np.ndarray:
    reader = csv.reader(text, strict=True)
    next(reader)
    start = reader.line_num + 1
    lines = []
    try:
        for record in reader:
            if record:  # blank lines hold no record, for pyarrow as for us
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        # pyarrow parsed the file, so only a value over the field limit stops the csv module here.
        if _over_field_limit(exc):
            raise _field_too_long(path, start) from None
        raise input_error(path, f"the record does not parse as CSV ({exc})", unit="line", where=start) from None
    if len(lines) != records:
        raise input_error(
            path,
            f"the CSV is ambiguous: it reads as {records} or as {len(lines)} records",
            hint="check for unbalanced quotes",
        )
    return np.asarray(lines, dtype=np.int64)


def _parse(
    path: Path, header: list[str], schema: Schema, block_size: int, limits: InputLimits
) -> tuple[pa.Table, np.ndarray, str]:
    """Stream the file through pyarrow a block at a time: the parsed records, their line numbers
    and the file's content hash. More than ``max_rows`` records stop the read at that block."""
    text_columns = {c.name for c in schema.of_kind(ColumnKind.TEXT)}
    types = {name: pa.large_string() if name in text_columns else pa.string() for name in header}
    with CheckedStream(path, limits) as stream:
        batches, arrow_schema = _batches(path, stream, block_size, types, limits)
        stream.raise_error()
        parsed = pa.Table.from_batches(batches, schema=arrow_schema)
        del batches
        if parsed.num_rows == 0:
            raise input_error(path, "the file has a header but no records", hint="add at least one record")
        with csv_field_limit(limits.max_record_bytes):
            rows = _line_numbers(path, stream, parsed.num_rows, limits)
        return parsed, rows, stream.raw_hash


def _batches(
    path: Path, stream: CheckedStream, block_size: int, types: dict[str, pa.DataType], limits: InputLimits
) -> tuple[list[pa.RecordBatch], pa.Schema]:
    """The file's record batches from pyarrow's streaming reader and their schema.

    The reader reads ``stream`` on Arrow's threads; whatever ends the read (the end of the file, a
    parse error, a limit), it is settled (see :mod:`dataward.io.arrow_loan`) before this returns,
    so that no Arrow thread still holds the file when the error reaches the user and the process
    exits. Only ``reader`` (a list, emptied before the wait) refers to the reader here: a local
    kept alive by the error's traceback would keep it open past the wait.
    """
    loan = ArrowLoan(stream)
    reader: list[pacsv.CSVStreamingReader] = []
    batches: list[pa.RecordBatch] = []
    count = 0
    try:
        reader.append(
            pacsv.open_csv(
                loan.feed(),
                read_options=pacsv.ReadOptions(block_size=block_size),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
            )
        )
        for batch in reader[0]:
            count += batch.num_rows
            if count > limits.max_rows:
                stream.raise_error()
                raise _too_many(path, count, limits)
            batches.append(batch)
        return batches, reader[0].schema
    except pa.ArrowInvalid:
        stream.raise_error()  # a stream stopped at a limit looks cut short to the parser
        raise
    finally:
        loan.settle(reader.clear if reader else None)


def _too_many(path: Path, count: int, limits: InputLimits) -> InputError:
    return limit_exceeded(
        path,
        "max_rows",
        limit_problem("max_rows", limits.max_rows, what=f"the number of records (at least {count:,})", bytes_=False),
    )


def _record_sizes(parsed: pa.Table) -> np.ndarray:
    """The UTF-8 size of each parsed record: the sum of its values' sizes."""
    sizes = np.zeros(parsed.num_rows, dtype=np.int64)
    for column in parsed.columns:
        sizes += pc.binary_length(column).fill_null(0).to_numpy().astype(np.int64)
    return sizes


def _check_records(path: str | PathLike[str], parsed: pa.Table, rows: np.ndarray, limits: InputLimits) -> None:
    """Refuse a record over ``max_record_bytes`` (one spread over many short lines) or too many rows."""
    sizes = _record_sizes(parsed)
    over = np.flatnonzero(sizes > limits.max_record_bytes)
    if over.size:
        index = int(over[0])
        raise limit_exceeded(
            path,
            "max_record_bytes",
            limit_problem("max_record_bytes", limits.max_record_bytes, int(sizes[index]), what="the record"),
            unit="line",
            where=int(rows[index]),
        )


def read_csv(
    path: str | PathLike[str], schema: Schema, limits: InputLimits = DEFAULT_LIMITS
) -> tuple[pa.Table, np.ndarray, str]:
    """Canonical table (without record ids), the line number of each record and the file's
    content hash (of its bytes as read, byte-order mark included).

    The file is read as a stream, never whole: it is checked against ``max_file_bytes`` and
    ``max_record_bytes`` (per line) as it is read, and against ``max_rows`` block by block.

    Values may hold any character, NUL (U+0000) included: it is stored as it is, like every other
    character, so that any text survives export and import in every format
    (see docs/input-limits.md).
    """
    source = Path(path)
    # The csv module (and its process-wide field limit) is needed only for the header and to
    # explain or number records; pyarrow's parse runs outside the lock.
    with csv_field_limit(limits.max_record_bytes):
        header = _header(source, limits)
    check_columns(path, header, schema, unit="line", where=1)
    try:
        try:
            parsed, rows, raw_hash = _parse(source, header, schema, _BLOCK_SIZE, limits)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc):
                raise
            # A record longer than a block: one block for the whole file, as the file's size bounds it.
            parsed, rows, raw_hash = _parse(source, header, schema, source.stat().st_size + 1, limits)
    except pa.ArrowInvalid as exc:
        # Only on failure is the file read whole (within max_file_bytes), to say where and why.
        # pyarrow checks UTF-8 too; decoding here names the line and column of a bad byte.
        data = read_whole(source, limits)
        with csv_field_limit(limits.max_record_bytes):
            text = decode_utf8(path, data, _column_with_bad_bytes)
            raise _explain_parse_failure(path, text, header, str(exc)) from None
    _check_records(path, parsed, rows, limits)
    arrays = []
    for name in schema.arrow_schema(with_record_id=False).names:
        try:
            arrays.append(canonical_column(schema, name, parsed.column(name), "csv", limits))
        except ValueProblem as problem:
            raise value_error(path, problem, unit="line", where=int(rows[problem.index]), column=name) from None
    return pa.Table.from_arrays(arrays, schema=schema.arrow_schema(with_record_id=False)), rows, raw_hash
