"""Worker processes forked from a server that imported the ward and its gate once.

A process started afresh imports the ward's services and the gate's libraries (pandas, scikit-learn,
SciPy) on its own: about two CPU seconds each, which for a test of 32 processes at once was most of
its time. Forked from a server that imported them, each starts in a fraction of a second and still
inherits nothing from the test process (``forkserver``, not ``fork``).
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

PRELOADED = (
    "dataward.service.ward",
    "dataward.gates.scanning",
    *(
        f"dataward.service.{name}"
        for name in ("contributions", "datasets", "gating", "lineage_events", "loading", "versions", "withdrawals")
    ),
)


def preloaded_context(*modules: str) -> Any:
    """A ``forkserver`` context whose server imports the ward, its gate and ``modules`` (the modules
    whose functions the workers run) before it forks any worker."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([*PRELOADED, *modules])
    return ctx
