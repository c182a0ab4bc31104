"""CPU seconds of every call of one function, as a benchmark measures the function inside a larger read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def cpu_of_calls(module: Any, name: str) -> Iterator[list[float]]:
    """Within the block, ``module.name`` is wrapped so that each call appends its CPU seconds
    (``time.process_time``) to the list yielded; the function is put back afterwards."""
    original = getattr(module, name)
    seconds: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.process_time() - start)

    setattr(module, name, timed)
    try:
        yield seconds
    finally:
        setattr(module, name, original)
