"""A clean validation set must hold its dataset's columns: the gate reads its records with the
dataset's schema. Checked when the validation set is made (``dataset create --validation-for``) and,
for a ward whose validation set predates that check, before a contribution is stored or gated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from dataward.catalog.tables import datasets
from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.domain.schema_match import schema_differences
from dataward.service import rows


def check_validation_schema(dataset: str, main: Schema, validation: Schema, *, name: str | None = None) -> None:
    """Refuse (``InputError`` naming the columns) a validation set whose schema differs from ``main``'s.

    ``name`` is the existing validation set's name (None: one being created)."""
    differences = schema_differences(main, validation)
    if not differences:
        return
    what = f"the clean validation set {name!r} of {dataset!r}" if name else f"a validation set for {dataset!r}"
    columns = ", ".join(f"{c.name}:{c.kind.value}" for c in main.inputs)
    raise InputError(
        f"{what} must have the same columns as {dataset!r}, and it has {'; '.join(differences)}",
        hint=(
            f"declare it as {main.kind.value!r} data, as {dataset!r} is"
            if name is None and main.is_llm
            else f"declare it with --label {main.label} and --input for each of {columns}"
            if name is None
            else f"the gate of {dataset!r} cannot read {name!r}'s records with {dataset!r}'s schema (the "
            "validation set was made before this was checked); a dataset has one validation set, so make a "
            f"new dataset whose validation set has --label {main.label} and the inputs {columns}"
        ),
        dataset=dataset,
    )


def validation_schema_refusal(conn: Connection, ds: Any) -> InputError | None:
    """The error refusing to gate ``ds`` because its clean validation set holds other columns, or None."""
    val = conn.execute(
        select(datasets).where(datasets.c.validation_for == ds.name, datasets.c.role == "validation")
    ).first()
    if val is None:
        return None
    try:
        check_validation_schema(ds.name, rows.dataset_schema(ds), rows.dataset_schema(val), name=val.name)
    except InputError as exc:
        return exc
    return None
