"""Nearest-neighbour search over the reference sample, shared between detectors.

Detectors ask two questions of the same pair of arrays: the ``k`` nearest reference records of each
query record (overall), and the mean distance to the ``k`` nearest reference records of each class.
Both are answered from one class-partitioned search (the overall nearest records are among the
per-class nearest ones), memoized per (reference, labels, query), so a gate run pays for about one
pass over ``n_query x reference_size`` whatever the number of detectors.

Search is exact. It uses faiss (``faiss-cpu``) when installed and a chunked float32 numpy product
otherwise; the reference is a bounded sample (``GatePolicy.reference_size``), which keeps the cost at
``O(n_query * reference_size * d)``.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from threadpoolctl import threadpool_limits

CHUNK = 2048
THREADS = 2
"""Threads for the distance products, the one place where more than one pays off."""
K_MAX = 20
"""Neighbours kept per class; every ``k`` asked for must be at most this."""
HAVE_FAISS = importlib.util.find_spec("faiss") is not None

_Search = dict[int, tuple[np.ndarray, np.ndarray]]
_MEMO: dict[tuple[int, int, int, bool], tuple[object, object, object, _Search]] = {}
_MEMO_LIMIT = 8


def _exact(reference: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ref_sq = np.einsum("ij,ij->i", reference, reference)
    kk = min(k, reference.shape[0])
    dist = np.empty((query.shape[0], kk), dtype=np.float32)
    idx = np.empty((query.shape[0], kk), dtype=np.int64)
    for start in range(0, query.shape[0], CHUNK):
        block = query[start : start + CHUNK]
        d2 = ref_sq[None, :] - 2.0 * (block @ reference.T)
        d2 += np.einsum("ij,ij->i", block, block)[:, None]
        if kk < reference.shape[0]:
            part = np.argpartition(d2, kk - 1, axis=1)[:, :kk]
        else:
            part = np.tile(np.arange(reference.shape[0]), (block.shape[0], 1))
        pd = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(pd, axis=1, kind="stable")
        idx[start : start + CHUNK] = np.take_along_axis(part, order, axis=1)
        dist[start : start + CHUNK] = np.sqrt(np.maximum(np.take_along_axis(pd, order, axis=1), 0.0))
    return dist, idx


def _faiss(reference: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    faiss.omp_set_num_threads(THREADS)
    index = faiss.IndexFlatL2(reference.shape[1])
    index.add(reference)
    d2, idx = index.search(query, min(k, reference.shape[0]))
    return np.sqrt(np.maximum(d2, 0.0)).astype(np.float32), idx.astype(np.int64)


RECHECK = 512
"""Query rows whose neighbour distances are recomputed at a time (see ``_row_exact``)."""


def _search(reference: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ref = np.ascontiguousarray(reference, dtype=np.float32)
    q = np.ascontiguousarray(query, dtype=np.float32)
    with threadpool_limits(limits=THREADS if q.shape[0] * ref.shape[0] > 10**7 else 1):
        _, idx = (_faiss if HAVE_FAISS else _exact)(ref, q, k)
    return _row_exact(ref, q, idx)


def _row_exact(ref: np.ndarray, q: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The found neighbours' distances computed again row by row, as sqrt(sum((q - r)^2)) in float64.

    A matrix-product search rounds each distance differently depending on how many query rows share a
    product (its blocks and threads), so one record scored alone, in a partition or in the whole batch
    would get distances a few float32 ulps apart, enough to move a conformal p-value by one calibration
    rank. Recomputed per row, a record's distances depend on that record and the reference only.
    """
    dist = np.empty(idx.shape, dtype=np.float32)
    for start in range(0, q.shape[0], RECHECK):
        block = idx[start : start + RECHECK]
        diff = ref[block].astype(np.float64) - q[start : start + RECHECK, None, :].astype(np.float64)
        dist[start : start + RECHECK] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)


def _per_class(reference: np.ndarray, labels: np.ndarray | None, query: np.ndarray, exclude_self: bool) -> _Search:
    key = (id(reference), id(labels), id(query), exclude_self)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is reference and hit[1] is labels and hit[2] is query:
        return hit[3]
    groups = np.zeros(reference.shape[0], dtype=np.int64) if labels is None else labels
    out: _Search = {}
    rows = np.arange(query.shape[0])
    for c in np.unique(groups):
        members = np.flatnonzero(groups == c)
        kk = min(K_MAX, members.shape[0] - int(exclude_self))
        if kk < 1:
            continue
        dist, local = _search(reference[members], query, kk + int(exclude_self))
        idx = members[local]
        if exclude_self:
            own = idx == rows[:, None]
            # Leave out the row itself where found, else the farthest of the kk + 1.
            own[~own.any(axis=1), -1] = True
            dist = dist[~own].reshape(query.shape[0], kk)
            idx = idx[~own].reshape(query.shape[0], kk)
        out[int(c)] = (dist, idx)
    if len(_MEMO) >= _MEMO_LIMIT:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = (reference, labels, query, out)
    return out


def knn(
    reference: np.ndarray,
    query: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and positions of the ``k`` nearest ``reference`` rows of each ``query`` row, nearest first.

    ``exclude_self`` means ``query`` is ``reference`` and each row's own position is left out
    (leave-one-out). Pass the reference's ``labels`` when a detector also asks ``class_distances``:
    both answers then come from the same search.
    """
    if k > K_MAX:
        raise ValueError(f"at most {K_MAX} neighbours can be asked for")
    if reference.shape[0] == 0 or query.shape[0] == 0:
        return np.zeros((query.shape[0], 0), np.float32), np.zeros((query.shape[0], 0), np.int64)
    per_class = _per_class(reference, labels, query, exclude_self)
    if not per_class:
        return np.zeros((query.shape[0], 0), np.float32), np.zeros((query.shape[0], 0), np.int64)
    dist = np.hstack([d for d, _ in per_class.values()])
    idx = np.hstack([i for _, i in per_class.values()])
    kk = min(k, dist.shape[1])
    if kk < dist.shape[1]:
        part = np.argpartition(dist, kk - 1, axis=1)[:, :kk]
        dist, idx = np.take_along_axis(dist, part, axis=1), np.take_along_axis(idx, part, axis=1)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)


def class_distances(
    reference: np.ndarray, labels: np.ndarray, query: np.ndarray, k: int, *, exclude_self: bool = False
) -> dict[int, np.ndarray]:
    """Per class ``c``: mean distance of every query row to its ``k`` nearest reference rows labelled ``c``.

    With ``exclude_self`` (query is reference), a row's own position is left out of its own class.
    """
    if k > K_MAX:
        raise ValueError(f"at most {K_MAX} neighbours can be asked for")
    return {c: d[:, :k].mean(axis=1) for c, (d, _) in _per_class(reference, labels, query, exclude_self).items()}


def clear_cache() -> None:
    """Forget memoized neighbours (the gate calls this after each run to free memory)."""
    _MEMO.clear()
