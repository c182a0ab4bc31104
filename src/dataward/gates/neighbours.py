"""Nearest-neighbour search over the reference sample: exact, chunked float32, shared between detectors.

Several detectors ask the same question (the k nearest reference records of each contribution
record, and of each reference record but itself), so answers are memoized per pair of arrays. Search
is exact: the reference is a bounded sample (``GatePolicy.reference_size``), which keeps the cost at
``O(n_contribution * reference_size * d)``; an optional faiss index is used when faiss is installed.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from threadpoolctl import threadpool_limits

CHUNK = 2048
THREADS = 2
"""BLAS threads for the distance products, the one place where more than one pays off."""
_MEMO: dict[tuple[int, int, bool], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
_MEMO_LIMIT = 8


def _exact(reference: np.ndarray, query: np.ndarray, k: int, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    ref = np.ascontiguousarray(reference, dtype=np.float32)
    q = np.ascontiguousarray(query, dtype=np.float32)
    ref_sq = np.einsum("ij,ij->i", ref, ref)
    kk = min(k + int(exclude_self), ref.shape[0])
    dist = np.empty((q.shape[0], kk), dtype=np.float32)
    idx = np.empty((q.shape[0], kk), dtype=np.int64)
    for start in range(0, q.shape[0], CHUNK):
        block = q[start : start + CHUNK]
        d2 = ref_sq[None, :] - 2.0 * (block @ ref.T)
        d2 += np.einsum("ij,ij->i", block, block)[:, None]
        if exclude_self:
            rows = np.arange(block.shape[0])
            d2[rows, start + rows] = np.inf
        part = np.argpartition(d2, kk - 1, axis=1)[:, :kk] if kk < ref.shape[0] else np.tile(
            np.arange(ref.shape[0]), (block.shape[0], 1))
        pd = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(pd, axis=1, kind="stable")
        idx[start : start + CHUNK] = np.take_along_axis(part, order, axis=1)
        dist[start : start + CHUNK] = np.sqrt(np.maximum(np.take_along_axis(pd, order, axis=1), 0.0))
    if exclude_self:
        dist, idx = dist[:, :-1], idx[:, :-1]
    return dist, idx


def _faiss(reference: np.ndarray, query: np.ndarray, k: int, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    ref = np.ascontiguousarray(reference, dtype=np.float32)
    index = faiss.IndexFlatL2(ref.shape[1])
    index.add(ref)
    kk = min(k + int(exclude_self), ref.shape[0])
    d2, idx = index.search(np.ascontiguousarray(query, dtype=np.float32), kk)
    if exclude_self:
        # Drop each row's own position (or, for exact ties, the last column) so k remain.
        own = idx == np.arange(idx.shape[0])[:, None]
        own[~own.any(axis=1), -1] = True
        keep = ~own
        d2 = d2[keep].reshape(idx.shape[0], kk - 1)
        idx = idx[keep].reshape(idx.shape[0], kk - 1)
    return np.sqrt(np.maximum(d2, 0.0)).astype(np.float32), idx.astype(np.int64)


HAVE_FAISS = importlib.util.find_spec("faiss") is not None


def knn(
    reference: np.ndarray, query: np.ndarray, k: int, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and positions of the ``k`` nearest ``reference`` rows of each ``query`` row, nearest first.

    ``exclude_self`` means ``query`` is ``reference`` and each row's own position is left out
    (leave-one-out). Results for the same pair of arrays are reused for any ``k`` up to the largest asked.
    """
    if reference.shape[0] == 0 or query.shape[0] == 0:
        return np.zeros((query.shape[0], 0), np.float32), np.zeros((query.shape[0], 0), np.int64)
    key = (id(reference), id(query), exclude_self)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is reference and hit[1] is query and hit[2].shape[1] >= min(
        k, reference.shape[0] - int(exclude_self)
    ):
        return hit[2][:, :k], hit[3][:, :k]
    search = _faiss if HAVE_FAISS else _exact
    with threadpool_limits(limits=THREADS if query.shape[0] * reference.shape[0] > 10**7 else 1):
        dist, idx = search(reference, query, max(k, 20), exclude_self)
    if len(_MEMO) >= _MEMO_LIMIT:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = (reference, query, dist, idx)
    return dist[:, :k], idx[:, :k]


def clear_cache() -> None:
    """Forget memoized neighbours (the gate calls this after each run to free memory)."""
    _MEMO.clear()
    _CLASS_MEMO.clear()


_CLASS_MEMO: dict[tuple[int, int, int, bool], tuple[object, object, object, dict[int, np.ndarray]]] = {}


def class_distances(reference: np.ndarray, labels: np.ndarray, query: np.ndarray, k: int, *,
                    exclude_self: bool = False) -> dict[int, np.ndarray]:
    """Per class ``c``: mean distance of every query row to its ``k`` nearest reference rows labelled ``c``.

    With ``exclude_self`` (query is reference), a row's own position is left out of its own class.
    The cost is one pass over the reference in total, like a single ``knn`` call.
    """
    key = (id(reference), id(labels), id(query), exclude_self)
    hit = _CLASS_MEMO.get(key)
    if hit is not None and hit[0] is reference and hit[1] is labels and hit[2] is query:
        return hit[3]
    out: dict[int, np.ndarray] = {}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        kk = min(k, members.shape[0] - int(exclude_self))
        if kk < 1:
            continue
        ref_c = reference[members]
        with threadpool_limits(limits=THREADS if query.shape[0] * members.shape[0] > 10**7 else 1):
            search = _faiss if HAVE_FAISS else _exact
            dist, idx = search(ref_c, query, kk + int(exclude_self), False)
        if exclude_self:
            own = members[idx] == np.arange(query.shape[0])[:, None]
            # Drop the row itself where it appears, else the farthest of the kk + 1.
            own[~own.any(axis=1), -1] = True
            dist = dist[~own].reshape(query.shape[0], kk)
        out[int(c)] = dist[:, :kk].mean(axis=1)
    if len(_CLASS_MEMO) >= _MEMO_LIMIT:
        _CLASS_MEMO.pop(next(iter(_CLASS_MEMO)))
    _CLASS_MEMO[key] = (reference, labels, query, out)
    return out
