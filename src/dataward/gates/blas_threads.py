"""Thread limits of the BLAS and OpenMP pools, set many times a scan at little cost.

``threadpoolctl.threadpool_limits`` finds the process's thread-pool libraries afresh on every call, walking
every loaded shared object: about a millisecond each time. A scan of images sets a limit around each of its
neighbour searches and probe fits, thousands of times in a test run. Here the libraries are found once and
found again whenever a module has been imported since (a new library comes with an import: faiss's, a
model's), as ``threadpoolctl.get_cached_controller`` does in its latest versions. The limits set, and so
every figure computed under them, are the same.
"""

from __future__ import annotations

import sys
import threading
from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_cached: tuple[int, ThreadpoolController] | None = None


def controller() -> ThreadpoolController:
    """The thread-pool libraries loaded now, found again only when ``sys.modules`` has grown or shrunk."""
    global _cached
    cached = _cached
    if cached is not None and cached[0] == len(sys.modules):
        return cached[1]
    with _lock:
        modules = len(sys.modules)  # read first: the controller's own imports are counted at the next call
        if _cached is None or _cached[0] != modules:
            _cached = (modules, ThreadpoolController())
        return _cached[1]


def limit_threads(limits: int) -> AbstractContextManager[Any]:
    """Limit every BLAS and OpenMP pool to ``limits`` threads until the block ends (then restore them),
    as ``threadpool_limits(limits=limits)`` does."""
    return controller().limit(limits=limits)
