"""Errors that point at the exact place in an input file: file, line (or row) and column."""

from __future__ import annotations

from os import PathLike
from typing import Literal

from dataward.domain.errors import InputError

Unit = Literal["line", "row", "file"]


class ValueProblem(ValueError):
    """A value that does not fit its column, at 0-based position ``index`` of the parsed records."""

    def __init__(self, index: int, column: str, problem: str) -> None:
        super().__init__(problem)
        self.index = index
        self.column = column
        self.problem = problem


def input_error(
    path: str | PathLike[str],
    problem: str,
    *,
    unit: Unit | None = None,
    where: int | str | None = None,
    column: str | None = None,
    hint: str | None = None,
) -> InputError:
    """An ``InputError`` whose message reads ``FILE, line N, column 'C': problem``.

    ``unit`` says what ``where`` counts: a text line (CSV, JSON Lines), a 1-based row (Parquet)
    or a file inside an image folder.
    """
    place = [str(path)]
    details: dict[str, object] = {"file": str(path)}
    if unit is not None and where is not None:
        place.append(f"{unit} {where}")
        details[unit] = where
    if column is not None:
        place.append(f"column {column!r}")
        details["column"] = column
    return InputError(f"{', '.join(place)}: {problem}", hint=hint, **details)
