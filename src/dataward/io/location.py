"""Errors that point at the exact place in an input file: file, line (or row) and column."""

from __future__ import annotations

from os import PathLike
from typing import Literal

from dataward.domain import errors
from dataward.domain.errors import InputError, NotFound
from dataward.domain.limits import limit_hint

Unit = Literal["line", "row", "file"]


class ValueProblem(ValueError):
    """A value that does not fit its column, at 0-based position ``index`` of the parsed records."""

    def __init__(self, index: int, column: str, problem: str, *, limit: str | None = None) -> None:
        super().__init__(problem)
        self.index = index
        self.column = column
        self.problem = problem
        self.limit = limit
        """The input limit the value is over (``max_image_pixels``...), or ``None``."""


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


def limit_exceeded(
    path: str | PathLike[str],
    limit: str,
    problem: str,
    *,
    unit: Unit | None = None,
    where: int | str | None = None,
    column: str | None = None,
) -> InputError:
    """An ``input_error`` for an input over one of its limits: the hint says how to raise ``limit``."""
    error = input_error(path, problem, unit=unit, where=where, column=column, hint=limit_hint(limit))
    error.details["limit"] = limit
    return error


def value_error(
    path: str | PathLike[str], problem: ValueProblem, *, unit: Unit, where: int | str, column: str
) -> InputError:
    """The ``InputError`` for a bad value: over a limit (with how to raise it) or simply malformed."""
    if problem.limit is not None:
        return limit_exceeded(path, problem.limit, problem.problem, unit=unit, where=where, column=column)
    return input_error(path, problem.problem, unit=unit, where=where, column=column)


def missing_file(path: str | PathLike[str]) -> NotFound:
    """The error for an input file that does not exist (``dataward.domain.errors.missing_file``)."""
    return errors.missing_file(path)
