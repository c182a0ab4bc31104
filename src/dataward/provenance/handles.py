"""Content as a trace handle: a file or a single row, hashed the way a dataset hashes its records.

A record's id is the hash of its canonical encoding under the dataset's schema, so a suspicious file
(or one row of it) found anywhere can be looked up in a ward without uploading it: the ids are
computed on the caller's side and each one is traced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dataward.domain.errors import InputError
from dataward.domain.limits import InputLimits
from dataward.domain.records import canonical_table
from dataward.domain.schema import RECORD_ID, Schema
from dataward.io import read_table


def file_record_ids(
    path: str | Path, schema: Schema, *, format: str | None = None, limits: InputLimits | None = None
) -> list[str]:
    """The record ids of every row of ``path`` read with ``schema`` (in file order, duplicates kept)."""
    return read_table(Path(path), schema, format=format, limits=limits).table.column(RECORD_ID).to_pylist()  # type: ignore[no-any-return]


def row_record_id(row: str | Mapping[str, Any], schema: Schema) -> str:
    """The record id of one row: a mapping, or its JSON text (``{"text": "...", "label": "..."}``)."""
    if isinstance(row, str):
        try:
            row = json.loads(row)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"the row is not a JSON object: {exc}", hint='e.g. --row \'{"text": "...", "label": "x"}\''
            ) from None
    if not isinstance(row, Mapping):
        raise InputError("the row must be a JSON object of the dataset's columns")
    missing = [c for c in schema.columns if c not in row]
    if missing:
        raise InputError(f"the row lacks column(s) {missing}", hint="give every input column and the label")
    return canonical_table(schema, [row]).column(RECORD_ID)[0].as_py()  # type: ignore[no-any-return]


__all__ = ["file_record_ids", "row_record_id"]
