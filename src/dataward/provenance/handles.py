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

from dataward.domain.conversation import llm_record_problem
from dataward.domain.errors import InputError
from dataward.domain.limits import InputLimits
from dataward.domain.records import canonical_table
from dataward.domain.schema import RECORD_ID, DatasetKind, Schema
from dataward.io import read_table
from dataward.io.columns import refuse_hidden_labels
from dataward.io.header import check_columns


def file_record_ids(
    path: str | Path, schema: Schema, *, format: str | None = None, limits: InputLimits | None = None
) -> list[str]:
    """The record ids of every row of ``path`` read with ``schema`` (in file order, duplicates kept)."""
    return read_table(Path(path), schema, format=format, limits=limits).table.column(RECORD_ID).to_pylist()  # type: ignore[no-any-return]


def row_record_id(row: str | Mapping[str, Any], schema: Schema) -> str:
    """The record id of one row: a mapping, or its JSON text (``{"text": "...", "label": "..."}``).

    The row is held to a file's rules, as a DataFrame given to ``contribute`` is: the columns a file may
    leave out (a language-model kind's ``kind`` and optional ``input``) may be left out, a column the
    schema does not declare is refused, a chat's ``messages`` may be a list or its JSON text, and a
    language-model record with nothing to learn is refused. So ``trace --row`` takes what ``trace
    --file`` reads, and hashes it to the same id."""
    if isinstance(row, str):
        try:
            row = json.loads(row)
        except json.JSONDecodeError as exc:
            raise InputError(f"the row is not a JSON object: {exc}", hint=f"e.g. --row '{_example(schema)}'") from None
    if not isinstance(row, Mapping):
        raise InputError(
            "the row must be a JSON object of the dataset's columns", hint=f"e.g. --row '{_example(schema)}'"
        )
    optional = schema.optional_columns
    missing = [c for c in schema.columns if c not in row and c not in optional]
    if missing:
        left_out = [c for c in schema.columns if c in optional]
        raise InputError(
            f"the row lacks column(s) {missing}",
            hint=f"give {', '.join(c for c in schema.columns if c not in optional)}"
            + (f" ({', '.join(left_out)} may be left out)" if left_out else "")
            + f", e.g. '{_example(schema)}'",
        )
    check_columns("the row", [str(name) for name in row], schema, holder="row")  # undeclared columns, as a file's
    table = canonical_table(schema, [row])
    refuse_hidden_labels(schema, table)
    problem = llm_record_problem(schema, table)
    if problem is not None:
        _, column, what = problem
        raise InputError(f"the row, column {column!r}: {what}", column=column)
    return table.column(RECORD_ID)[0].as_py()  # type: ignore[no-any-return]


def _example(schema: Schema) -> str:
    """A row of ``schema``'s shape, for a hint: its required columns, each with ``...``."""
    if schema.kind is DatasetKind.CHAT:
        return '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'
    return json.dumps({c: "..." for c in schema.columns if c not in schema.optional_columns})


__all__ = ["file_record_ids", "row_record_id"]
