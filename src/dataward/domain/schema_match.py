"""Whether two dataset schemas hold the same columns: a clean validation set must be readable with its
dataset's schema, or no gate of that dataset can compare records with it."""

from __future__ import annotations

from dataward.domain.schema import Column, Schema


def _describe(col: Column) -> str:
    dim = f":{col.dim}" if col.dim is not None else ""
    return f"{col.name}:{col.kind.value}{dim}"


def schema_differences(main: Schema, other: Schema) -> list[str]:
    """How ``other`` differs from ``main`` in what records hold (dataset kind, label column, input
    columns and their kinds), one phrase per difference naming the columns; empty when they match.
    Featurizers and descriptions are not compared: they do not change what a record holds."""
    out: list[str] = []
    if main.kind is not other.kind:
        out.append(f"dataset kind {other.kind.value!r} where the dataset has {main.kind.value!r}")
    if main.label != other.label:
        out.append(f"label column {other.label!r} where the dataset has {main.label!r}")
    mine = {c.name: c for c in main.inputs}
    theirs = {c.name: c for c in other.inputs}
    missing = [_describe(c) for name, c in mine.items() if name not in theirs]
    extra = [_describe(c) for name, c in theirs.items() if name not in mine]
    if missing:
        out.append(f"no input column {', '.join(missing)}")
    if extra:
        out.append(f"input column {', '.join(extra)} the dataset does not have")
    for name, col in mine.items():
        if name in theirs and (theirs[name].kind, theirs[name].dim) != (col.kind, col.dim):
            out.append(f"column {name!r} is {_describe(theirs[name])} where the dataset has {_describe(col)}")
    return out
