"""What counts as a missing value in the raw records given to the ward."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def is_missing(value: Any) -> bool:
    """Is ``value`` a missing value: ``None``, a float NaN, or pandas' ``NA`` or ``NaT``?

    pandas marks a missing value with NaN in its ``str`` and float columns (a ``None`` put in a text
    column comes back from ``DataFrame.to_dict`` as ``nan``) and keeps ``NA`` in an object column that
    holds it. Each is the same absent value as ``None``, not a number or an object given where text
    was expected, so each must be read as ``None`` is: the record's id cannot depend on which marker a
    tool chose. pandas is not imported for the check: its markers are known by their type's module."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    kind = type(value)
    return kind.__name__ in ("NAType", "NaTType") and kind.__module__.startswith("pandas")
