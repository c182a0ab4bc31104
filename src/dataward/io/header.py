"""Checks that a file's columns match the dataset schema, before any value is read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from os import PathLike

from dataward.domain.schema import RECORD_ID, Schema
from dataward.io.location import Unit, input_error


def check_columns(
    path: str | PathLike[str],
    names: Sequence[str],
    schema: Schema,
    *,
    unit: Unit | None = None,
    where: int | None = None,
) -> None:
    """Refuse duplicate, missing and undeclared columns. A ``record_id`` column is allowed (files
    exported by dataward carry one) and ignored: ids are always recomputed from the content."""
    for name, count in Counter(names).items():
        if count > 1:
            raise input_error(
                path,
                f"the column name appears {count} times in the header",
                unit=unit,
                where=where,
                column=name,
                hint="give every column a distinct name",
            )
    present = set(names) | schema.optional_columns
    # Naming what the file holds tells a semicolon-separated CSV ('a;b;label' read as one column) or a
    # header with blanks (' b') at a glance.
    found = f"the file's columns are {', '.join(repr(n) for n in names[:20])}{', ...' if len(names) > 20 else ''}"
    if schema.label not in present:
        raise input_error(
            path,
            f"the label column is missing ({found})",
            unit=unit,
            where=where,
            column=schema.label,
            hint=f"add a {schema.label!r} column or rename the file's label column to it; CSV is comma-separated",
        )
    for column in schema.inputs:
        if column.name not in present:
            raise input_error(
                path,
                f"the {column.kind.value} input column is missing ({found})",
                unit=unit,
                where=where,
                column=column.name,
                hint=f"the schema's columns are {', '.join(schema.columns)}",
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
                hint="declare it in the dataset schema or drop it from the file",
            )
