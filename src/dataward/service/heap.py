"""The heap of a long-lived process, settled once it has started.

A full (generation-2) garbage collection walks every object the process holds. Right after start-up a
served ward holds some 70,000 to 150,000 of them (SQLAlchemy, pydantic, numpy, pyarrow, the ward's own
modules and the application), and walking them took 40 to 100 ms on the 2-core machine of
docs/benchmarks.md: a request that happened to trigger a full collection paid that on top of its own
work, which made the p99 of a warm ``trace`` one collection rather than the trace itself.

These objects live as long as the process: nothing is gained by walking them again. ``gc.freeze``
moves every object tracked at that moment into a permanent generation that collections skip; objects
made later are collected as before. Only a cycle of start-up objects that becomes garbage later is
never reclaimed, which is why this is for the process that serves, once, after start-up, and not for a
library call or a test that builds many applications.
"""

from __future__ import annotations

import gc


def settle_startup_heap() -> int:
    """Collect what start-up left as garbage, then exempt every surviving object from later
    collections (``gc.freeze``). Returns the number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
