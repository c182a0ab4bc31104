"""How many rows a streamed version yields at a time, and the check of a caller's choice.

Apart from ``service.loading`` so that the ward's facade (a default argument) and the HTTP client (the
same check before a request) need not import the loader and its table code.
"""

from __future__ import annotations

from dataward.domain.errors import InputError

DEFAULT_BATCH_ROWS = 10_000


def check_batch_rows(batch_rows: int) -> int:
    """``batch_rows`` when it is a positive int, else an ``InputError``."""
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows <= 0:
        raise InputError(f"batch_rows must be a positive number of rows, got {batch_rows!r}")
    return batch_rows
