"""Checks that a file's columns match the dataset schema, before any value is read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from os import PathLike
from typing import Any

from dataward.domain.errors import InputError
from dataward.domain.schema import RECORD_ID, Schema
from dataward.domain.wording import a_or_an
from dataward.io.location import Unit, input_error


def undeclared_column_hint(schema: Schema, holder: str = "file") -> str:
    """The hint for a column the schema does not declare: a dataset's schema is fixed when it is created,
    so the hint names the columns it reads rather than a change to the schema."""
    return f"the dataset's columns are {', '.join(schema.columns)}: drop the column from the {holder} or rename it"


def frame_holder(data: Any) -> str:
    """What ``data``, given to ``contribute`` in Python instead of a file, is called in messages:
    ``"DataFrame"`` or ``"Arrow table"``. Anything else is refused with an ``InputError``."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(data, pd.DataFrame):
        return "DataFrame"
    if isinstance(data, pa.Table):
        return "Arrow table"
    raise InputError(
        "a contribution's records must be a file or folder path, a pandas DataFrame or a pyarrow Table, "
        f"not {type(data).__name__}"
    )


def check_unique(
    path: str | PathLike[str],
    names: Sequence[str],
    *,
    unit: Unit | None = None,
    where: int | None = None,
    holder: str = "file",
) -> None:
    """Refuse a column name given twice (``holder`` as for ``check_columns``)."""
    for name, count in Counter(names).items():
        if count > 1:
            raise input_error(
                path,
                f"the column name appears {count} times {'in the header' if holder == 'file' else 'among its columns'}",
                unit=unit,
                where=where,
                column=name,
                hint="give every column a distinct name",
            )


DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
"""Separators a CSV header read as one column may hold instead of commas."""


def delimiter_hint(names: Sequence[str], schema: Schema) -> str | None:
    """The hint for a CSV whose header seems separated by something other than commas (``a;b;label``
    read as one column): the separator it seems to use, or None when none explains the header."""
    wanted = set(schema.columns)
    for sep, word in DELIMITERS.items():
        parts = [part.strip() for name in names for part in name.split(sep)]
        if any(sep in name for name in names) and wanted & set(parts):
            return (
                f"the header seems to be separated by {word}s ({sep!r}), and dataward reads CSV comma-separated: "
                "save the file with commas (pandas: df.to_csv(path, index=False); a spreadsheet: "
                "CSV, comma-delimited)"
            )
    return None


def check_columns(
    path: str | PathLike[str],
    names: Sequence[str],
    schema: Schema,
    *,
    unit: Unit | None = None,
    where: int | None = None,
    holder: str = "file",
) -> None:
    """Refuse duplicate, missing and undeclared columns. A ``record_id`` column is allowed (files
    exported by dataward carry one) and ignored: ids are always recomputed from the content.

    ``holder`` names what holds the columns in the messages (``"DataFrame"``: one given in Python)."""
    check_unique(path, names, unit=unit, where=where, holder=holder)
    present = set(names) | schema.optional_columns
    # Naming what the file holds tells a semicolon-separated CSV ('a;b;label' read as one column) or a
    # header with blanks (' b') at a glance.
    found = f"the {holder}'s columns are {', '.join(repr(n) for n in names[:20])}{', ...' if len(names) > 20 else ''}"
    if schema.label not in present:
        raise input_error(
            path,
            f"the label column is missing ({found})",
            unit=unit,
            where=where,
            column=schema.label,
            hint=delimiter_hint(names, schema)
            or (
                f"add {a_or_an(repr(schema.label))} column or rename the file's label column to it; "
                "CSV is comma-separated"
            ),
        )
    for column in schema.inputs:
        if column.name not in present:
            raise input_error(
                path,
                f"the {column.kind.value} input column is missing ({found})",
                unit=unit,
                where=where,
                column=column.name,
                hint=delimiter_hint(names, schema) or f"the schema's columns are {', '.join(schema.columns)}",
            )
    declared = set(schema.columns) | {RECORD_ID}
    for name in names:
        if name not in declared:
            raise input_error(
                path,
                "the column is not in the dataset schema",
                unit=unit,
                where=where,
                column=name,
                hint=undeclared_column_hint(schema, holder),
            )
