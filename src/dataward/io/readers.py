"""``read_table``: one entry point that turns a CSV, JSON Lines, Parquet file or an image folder
into the canonical Arrow table of a dataset schema, with record ids.

Nothing is returned unless the whole input is valid; the first problem raises ``InputError``
naming the file, the line (CSV, JSON Lines), row (Parquet) or file (image folder), and the column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from os import PathLike
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pyarrow as pa

from dataward.domain.conversation import llm_record_problem
from dataward.domain.errors import what_path_is
from dataward.domain.idarrays import binary_to_ids
from dataward.domain.limits import InputLimits
from dataward.domain.records import RecordDigests
from dataward.domain.schema import Schema
from dataward.io.bounded import check_file_size, hash_file
from dataward.io.csv_reader import read_csv
from dataward.io.image_folder import read_image_folder
from dataward.io.json_reader import read_json
from dataward.io.jsonl_reader import read_jsonl
from dataward.io.location import input_error, missing_file
from dataward.io.parquet_reader import read_parquet
from dataward.io.text_input import WIDE_SAMPLE, wide_encoding_problem

Format = Literal["csv", "jsonl", "json", "parquet", "images"]
FORMATS: tuple[str, ...] = get_args(Format)

_EXTENSIONS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# The text readers stream the file and hash it as they read: (table, rows, raw hash).
_TEXT_READERS: dict[str, Callable[[Path, Schema, InputLimits], tuple[pa.Table, np.ndarray, str]]] = {
    "csv": read_csv,
    "jsonl": read_jsonl,
    "json": read_json,
}


@dataclass(frozen=True)
class ImportedTable:
    """A validated input, ready to become a contribution.

    ``content`` holds the schema's columns (``schema.arrow_schema(with_record_id=False)``) and
    ``digests`` the record ids as 32-byte digests (``(n, 32)`` uint8, row ``i`` the digest whose hex
    is record ``i``'s id). They are worked out on threads of their own once the file is read
    (``record_digests``, which gives the first rows' digests before the last ones are known);
    ``digests`` waits for all of them. ``table`` matches ``schema.arrow_schema()`` exactly (``record_id`` first,
    as hex): it is built at its first use, since storing the records needs only the digests (the hex
    of a million ids is 64 MB that an import would build for nothing). ``rows[i]`` says where record
    ``i`` was in the input: its line (CSV, counting the header as line 1; JSON Lines), its 1-based row
    (Parquet) or its 1-based position in sorted order (image folder, whose relative file paths are in
    ``paths``). ``raw_hash`` is the content hash of the raw file, or for an image folder the hash of
    its sorted (relative path, file hash) list.
    """

    content: pa.Table
    record_digests: RecordDigests = field(repr=False)
    id_field: pa.Field
    rows: np.ndarray
    raw_hash: str
    format: str
    source_path: Path
    paths: list[str] | None = field(default=None)

    def __len__(self) -> int:
        return self.content.num_rows

    @property
    def digests(self) -> np.ndarray:
        """Every record's id as a 32-byte digest (``(n, 32)`` uint8); waits until all are worked out."""
        return self.record_digests.result()

    @cached_property
    def table(self) -> pa.Table:
        """The canonical table, hex record ids first."""
        return self.content.add_column(0, self.id_field, binary_to_ids(self.digests).cast(self.id_field.type))

    @property
    def record_ids(self) -> list[str]:
        return self.table.column(0).to_pylist()


def format_of_extension(path: str | PathLike[str]) -> str | None:
    """The file format a path's extension names (``.csv``, ``.jsonl``, ``.parquet``...), or None."""
    return _EXTENSIONS.get(Path(path).suffix.lower())


def detect_format(path: str | PathLike[str]) -> str:
    """The input format from the path: a folder is an image folder, a file goes by its extension."""
    path = Path(path)
    if path.is_dir():
        return "images"
    fmt = format_of_extension(path)
    if fmt is None:
        raise input_error(
            path,
            f"cannot tell the format from the extension {path.suffix or '(none)'!r}",
            hint=f"name the file .csv, .jsonl, .json or .parquet, or give the format ({', '.join(FORMATS)})",
        )
    return fmt


def _refuse_other_than_utf8_text(source: Path, fmt: str) -> None:
    """A Parquet file (it starts with ``PAR1``) read as CSV or JSON was refused for its first line,
    quoting kilobytes of binary as a column name, and a UTF-16 file for a column named in mangled
    bytes: name what the file is instead."""
    with source.open("rb") as handle:
        head = handle.read(WIDE_SAMPLE)
    if head.startswith(b"PAR1"):
        raise input_error(
            source,
            f"is a Parquet file, not {fmt.upper() if fmt == 'csv' else 'JSON'}",
            hint="give --format parquet, or name the file .parquet",
        )
    if (problem := wide_encoding_problem(source, head, fmt)) is not None:
        raise problem


def read_table(
    path: str | PathLike[str],
    schema: Schema,
    *,
    format: str | None = None,
    limits: InputLimits | Mapping[str, Any] | None = None,
) -> ImportedTable:
    """Read and validate ``path`` against ``schema``; see :class:`ImportedTable`.

    ``format`` is one of ``csv``, ``jsonl``, ``json``, ``parquet``, ``images``; by default it is
    detected from the extension (``.csv``, ``.jsonl``/``.ndjson``, ``.json``, ``.parquet``/``.pq``) or
    from the path being a folder. ``json`` is a top-level JSON array of objects, or JSON Lines. In
    CSV and JSON, images are base64 strings and embeddings are JSON lists; in Parquet, images are
    binary and embeddings lists of numbers.

    ``limits`` (an :class:`~dataward.domain.limits.InputLimits` or a mapping of limit names to
    sizes over the defaults) bounds the input; one over a limit is refused with an ``InputError``
    naming the limit and how to raise it, as early as the limit can be seen.
    """
    bounds = InputLimits.coerce(limits)
    source = Path(path)
    if not source.exists():
        # Named before its extension is judged: a missing file is not found, whatever its name.
        raise missing_file(source)
    kind = what_path_is(source)
    if kind not in (None, "a folder"):
        # /dev/stdin (a pipe, a terminal), /dev/zero: read "is a folder, not a file".
        raise input_error(
            source,
            f"is not a regular file: it is {kind}",
            hint="save the data to a regular file first and import that file",
        )
    fmt = format or detect_format(source)
    if fmt not in FORMATS:
        raise input_error(source, f"unknown input format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    paths: list[str] | None = None
    if fmt == "images":
        table, rows, paths, raw_hash = read_image_folder(source, schema, bounds)
    else:
        if kind == "a folder":
            raise input_error(source, "is a folder, not a file", hint="give the file to read")
        if fmt == "parquet":
            before = source.stat()
            check_file_size(source, before.st_size, bounds)
            table, rows = read_parquet(source, schema, bounds)
            raw_hash = hash_file(source)
            # Parsed and hashed in two reads: the hash must be of the bytes that were parsed.
            after = source.stat()
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                raise input_error(
                    source, "the file changed while it was read", hint="import it again once it is complete"
                )
        else:
            _refuse_other_than_utf8_text(source, fmt)
            table, rows, raw_hash = _TEXT_READERS[fmt](source, schema, bounds)
    _check_learnable(source, fmt, schema, table, rows)
    return ImportedTable(
        content=table,
        record_digests=RecordDigests(schema, table),
        id_field=schema.arrow_schema().field(0),
        rows=rows,
        raw_hash=raw_hash,
        format=fmt,
        source_path=source,
        paths=paths,
    )


def _check_learnable(source: Path, fmt: str, schema: Schema, table: pa.Table, rows: np.ndarray) -> None:
    """Refuse a language-model record with nothing to learn (see ``llm_record_problem``), naming its
    line or row like any other bad value, before anything is stored."""
    problem = llm_record_problem(schema, table)
    if problem is None:
        return
    index, column, what = problem
    unit = "row" if fmt == "parquet" else "file" if fmt == "images" else "line"
    raise input_error(source, what, unit=unit, where=int(rows[index]), column=column)
