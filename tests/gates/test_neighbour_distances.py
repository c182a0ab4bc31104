"""Found neighbours' distances are each record's own: the same bits whatever rows were searched with it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dataward.gates import neighbours


def _by_definition(ref: np.ndarray, q: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sqrt(sum((q - r)^2)) in float64, one query row at a time, neighbours sorted by distance."""
    dist = np.empty(idx.shape, dtype=np.float32)
    for row in range(q.shape[0]):
        diff = ref[idx[row]].astype(np.float64) - q[row].astype(np.float64)
        dist[row] = np.sqrt(np.einsum("jk,jk->j", diff, diff))
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)


@pytest.mark.parametrize(
    ("queries", "k", "dims", "scale"),
    [
        (1, 1, 3, 1.0),
        (31, 5, 64, 1.0),
        (neighbours.RECHECK, 20, 256, 1.0),
        (neighbours.RECHECK + 1, 21, 384, 1e6),
        (3 * neighbours.RECHECK + 7, 4, 17, 1e-30),
        (40, 3, 8, 1e30),
    ],
)
def test_distances_are_those_of_each_row_alone(queries: int, k: int, dims: int, scale: float) -> None:
    rng = np.random.default_rng(queries + k)
    ref = (rng.standard_normal((200, dims)) * scale).astype(np.float32)
    q = (rng.standard_normal((queries, dims)) * scale).astype(np.float32)
    idx = rng.integers(0, len(ref), (queries, k))
    dist, found = neighbours._row_exact(ref, q, idx)
    want_dist, want_found = _by_definition(ref, q, idx)
    assert dist.tobytes() == want_dist.tobytes()
    assert np.array_equal(found, want_found)


def test_a_search_asked_again_is_kept_while_other_searches_come_and_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan's detectors ask the baseline's leave-one-out search again between searches of their own: it is
    computed once, however many other searches pass through the memo meanwhile, and read the same."""
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(60, 6)).astype(np.float32)
    searched: list[int] = []
    search = neighbours._search

    def counted(ref: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        searched.append(query.shape[0])
        return search(ref, query, k)

    monkeypatch.setattr(neighbours, "_search", counted)
    neighbours.clear_cache()
    try:
        first = neighbours.knn(reference, reference, 3, exclude_self=True)
        others = [rng.normal(size=(7, 6)).astype(np.float32) for _ in range(3 * neighbours._MEMO_LIMIT)]
        for query in others:
            neighbours.knn(reference, query, 3)
            again = neighbours.knn(reference, reference, 3, exclude_self=True)
            assert all(np.array_equal(a, b) for a, b in zip(again, first, strict=True))
    finally:
        neighbours.clear_cache()
    assert searched.count(reference.shape[0]) == 1
    assert searched.count(7) == len(others)


@pytest.mark.skipif(not neighbours.HAVE_FAISS, reason="faiss is not installed")
def test_faiss_searches_run_on_the_threads_the_search_was_given(monkeypatch) -> None:
    """A small search, or any search in a parallel scan's worker, runs faiss on one thread: faiss's own
    OpenMP threads are not reached by the BLAS limit, and a search given one thread ran on two."""
    import faiss

    asked: list[int] = []
    set_threads = faiss.omp_set_num_threads
    monkeypatch.setattr(faiss, "omp_set_num_threads", lambda n: (asked.append(n), set_threads(n)))
    rng = np.random.default_rng(0)
    small = rng.normal(size=(50, 8)).astype(np.float32)
    large_ref = rng.normal(size=(5_000, 8)).astype(np.float32)
    large_query = rng.normal(size=(2_100, 8)).astype(np.float32)  # 1.05e7 distance pairs: above the limit

    neighbours._search(small, small, 5)
    neighbours._search(large_ref, large_query, 5)
    in_worker: list[int] = []

    def worker() -> None:
        neighbours.single_threaded_searches()
        neighbours._search(large_ref, large_query, 5)
        in_worker.extend(asked[2:])

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert asked[:2] == [1, neighbours.THREADS]
    assert in_worker == [1]
