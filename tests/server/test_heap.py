"""A served process exempts its start-up heap from later full collections; a library app does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_SETTLED_IN_A_SERVED_PROCESS = """
import gc, json, time
import dataward.server.app  # what a served process has imported
from dataward.service.heap import settle_startup_heap

def full_collection_seconds():
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started

gc.collect()
tracked = len(gc.get_objects())
frozen = settle_startup_heap()
left = len(gc.get_objects())
settled = min(full_collection_seconds() for _ in range(3))
gc.unfreeze()
walked = min(full_collection_seconds() for _ in range(3))
print(json.dumps({"tracked": tracked, "frozen": frozen, "left": left, "settled": settled, "walked": walked}))
"""


def test_settling_the_heap_takes_start_up_objects_out_of_full_collections() -> None:
    """After start-up a full collection walks every object the imports made (tens of milliseconds on a
    slow core); once settled it walks only what was made since. Measured in a process of its own that
    imported what a served one has (the best of three timings of each): a test worker that imported the
    whole suite holds millions of objects, and every full collection in it took seconds."""
    done = subprocess.run(
        [sys.executable, "-c", _SETTLED_IN_A_SERVED_PROCESS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    heap = json.loads(done.stdout)
    assert heap["frozen"] >= 0.9 * heap["tracked"]
    assert heap["left"] < heap["tracked"] // 10
    assert heap["settled"] < heap["walked"] / 3


_SETTLED_ONLY_WHEN_SERVED = """
import gc, sys
from pathlib import Path
from fastapi.testclient import TestClient
from dataward.server.app import create_app
from dataward.server.settings import ServerSettings
from dataward.service.ward import Ward

folder = Path(sys.argv[1])
Ward.init(folder)
settings = ServerSettings(ward=folder)
with TestClient(create_app(settings)):
    assert gc.get_freeze_count() == 0, "a library's app froze the heap"
with TestClient(create_app(settings, settle_heap=True)):
    assert gc.get_freeze_count() > 0, "the served app left the heap unsettled"
"""


def test_only_the_serving_process_settles_its_heap(tmp_path: Path) -> None:
    """``dataward serve``'s factory settles the heap once the app has started; an app built by a library
    caller or a test (``create_app`` as is) leaves the process's collections alone. In a process of its
    own, as the collections it makes take seconds in a test worker that imported the whole suite."""
    done = subprocess.run(
        [sys.executable, "-c", _SETTLED_ONLY_WHEN_SERVED, str(tmp_path / "ward")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
