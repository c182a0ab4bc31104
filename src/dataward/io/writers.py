"""``write_table``: export a table as Parquet, JSON Lines or CSV, atomically.

Images become base64 strings and embeddings JSON lists in JSON Lines and CSV, which is what
:func:`dataward.io.read_table` reads back, so an export imports again with the same record ids.
The file appears whole under its name or not at all (temporary file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dataward.domain.errors import InputError
from dataward.io.images import encode_base64_image
from dataward.io.staged import new_file_mode

EXPORT_FORMATS = ("parquet", "jsonl", "csv")
_BATCH_ROWS = 10_000


def _is_binary(typ: pa.DataType) -> bool:
    return pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_fixed_size_binary(typ)


def _is_list(typ: pa.DataType) -> bool:
    return pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return encode_base64_image(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _write_parquet(table: pa.Table, out: BinaryIO) -> None:
    pq.write_table(table, out, compression="zstd")


def _write_jsonl(table: pa.Table, out: BinaryIO) -> None:
    for batch in table.to_batches(max_chunksize=_BATCH_ROWS):
        lines = [
            json.dumps({k: _json_value(v) for k, v in row.items()}, ensure_ascii=False, allow_nan=False)
            for row in batch.to_pylist()
        ]
        if lines:
            out.write(("\n".join(lines) + "\n").encode("utf-8"))


def _csv_ready(table: pa.Table) -> pa.Table:
    """Binary and list columns as text, the way the CSV reader expects them."""
    for index, field in enumerate(table.schema):
        values = table.column(index).to_pylist()
        if _is_binary(field.type):
            text = [encode_base64_image(v) for v in values]
        elif _is_list(field.type):
            text = [None if v is None else json.dumps(_json_value(v)) for v in values]
        else:
            continue
        table = table.set_column(index, pa.field(field.name, pa.string()), pa.array(text, type=pa.string()))
    return table


def _write_csv(table: pa.Table, out: BinaryIO) -> None:
    pacsv.write_csv(_csv_ready(table), out)


_WRITERS: dict[str, Callable[[pa.Table, BinaryIO], None]] = {
    "parquet": _write_parquet,
    "jsonl": _write_jsonl,
    "csv": _write_csv,
}


def write_table(table: pa.Table, path: str | PathLike[str], format: str) -> Path:
    """Write ``table`` to ``path`` in ``format`` (``parquet``, ``jsonl`` or ``csv``); returns the path."""
    target = Path(path)
    staged = stage_table(table, target, format)
    try:
        os.replace(staged, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
    return target


def output_format(path: str | PathLike[str]) -> str:
    """The format a file named ``path`` is written in: the one its extension names as the readers read it
    (``.json`` as JSON Lines, as Hugging Face's ``to_json`` writes it and import reads it back), Parquet
    without an extension. An extension naming no format written is refused, rather than the file
    written as Parquet under it."""
    from dataward.io.readers import format_of_extension

    target = Path(path)
    if not target.suffix:
        return "parquet"
    format_ = format_of_extension(target)
    format_ = "jsonl" if format_ == "json" else format_
    if format_ not in EXPORT_FORMATS:
        raise InputError(
            f"cannot tell which format to write {str(path)!r} in from its extension {target.suffix!r}",
            hint="name the file .parquet, .jsonl or .csv, or give the format",
        )
    return format_


def check_destination(path: str | PathLike[str], what: str = "file") -> Path:
    """``path`` as a file this process can write, checked before any work whose result it is to hold:
    it names a file (not a folder), in a folder that exists and is writable. ``InputError`` otherwise,
    so that a command refuses a bad ``--html`` or ``-o`` before it stores anything, not after."""
    target = Path(path)
    if target.name in ("", ".", "..") or target.is_dir():
        raise InputError(f"{what} path {str(path)!r} names a folder, not a file", hint="give a file name")
    folder = target.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {what} {str(path)!r}: {folder}: no such folder", hint="create the folder first")
    writable = os.access(target, os.W_OK) if target.exists() else os.access(folder, os.W_OK | os.X_OK)
    if not writable:
        raise InputError(f"cannot write {what} {str(path)!r}: permission denied")
    return target


def stage_table(table: pa.Table, path: str | PathLike[str], format: str) -> Path:
    """Write ``table`` in full (fsynced) under a temporary name beside ``path``, and return that name.

    The caller moves it over ``path`` with ``os.replace`` when the write is to count (an export whose
    event is recorded), or deletes it. Split from :func:`write_table` so that the slow part, writing
    the file, can run before the caller takes any lock, and only the rename under it.
    """
    if format not in _WRITERS:
        raise InputError(f"unknown export format {format!r}", hint=f"use one of: {', '.join(EXPORT_FORMATS)}")
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(f"{target.parent}: no such folder", hint="create the folder first")
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            _WRITERS[format](table, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(name, new_file_mode())  # as a file created by open() would be: the umask is honoured
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    return Path(name)
