"""A served process exempts its start-up heap from later full collections; a library app does not."""

from __future__ import annotations

import gc
import time
from pathlib import Path

from fastapi.testclient import TestClient

from dataward.server.app import create_app
from dataward.server.settings import ServerSettings
from dataward.service.heap import settle_startup_heap
from dataward.service.ward import Ward


def _full_collection_seconds() -> float:
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started


def test_settling_the_heap_takes_start_up_objects_out_of_full_collections() -> None:
    """After start-up a full collection walks every object the imports made (tens of milliseconds on a
    slow core); once settled it walks only what was made since. Two timings of each (the best kept): in a
    test worker that imported the whole suite a full collection takes seconds, and the two differ by
    orders of magnitude."""
    import dataward.server.app  # noqa: F401  (what a served process has imported)

    gc.collect()
    tracked = len(gc.get_objects())
    try:
        frozen = settle_startup_heap()
        assert frozen >= 0.9 * tracked
        assert len(gc.get_objects()) < tracked // 10
        settled = min(_full_collection_seconds() for _ in range(2))
    finally:
        gc.unfreeze()
    walked = min(_full_collection_seconds() for _ in range(2))
    assert settled < walked / 3


def test_only_the_serving_process_settles_its_heap(tmp_path: Path) -> None:
    """``dataward serve``'s factory settles the heap once the app has started; an app built by a library
    caller or a test (``create_app`` as is) leaves the process's collections alone."""
    folder = tmp_path / "ward"
    Ward.init(folder)
    settings = ServerSettings(ward=folder)
    gc.unfreeze()
    try:
        with TestClient(create_app(settings)):
            assert gc.get_freeze_count() == 0
        with TestClient(create_app(settings, settle_heap=True)):
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
