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
import threading

import numpy as np

from dataward.gates.blas_threads import limit_threads

CHUNK = 2048
THREADS = 2
"""Threads for the distance products, the one place where more than one pays off."""
K_MAX = 20
"""Neighbours kept per class; every ``k`` asked for must be at most this."""
HAVE_FAISS = importlib.util.find_spec("faiss") is not None

_Search = dict[int, tuple[np.ndarray, np.ndarray]]
_MEMO: dict[tuple[int, int, int, bool], tuple[object, object, object, _Pending]] = {}
_MEMO_LIMIT = 8
_MEMO_LOCK = threading.Lock()
_LOCAL = threading.local()


def single_threaded_searches() -> None:
    """Mark the calling thread as one of a parallel scan's workers: its searches keep BLAS at one thread.

    The thread limit of BLAS is one setting for the whole process; a search that raised it to ``THREADS``
    while another worker ran a model fit would change how that fit rounds. The scan's workers already
    keep both cores busy."""
    _LOCAL.single = True


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


def _faiss(reference: np.ndarray, query: np.ndarray, k: int, threads: int = THREADS) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    # faiss runs on OpenMP threads of its own, which the BLAS limit does not reach: a search given one
    # thread (a small one, or one in a parallel scan's worker) ran on two all the same, two threads
    # contending for the cores a scan's other worker was using (a small search cost 3.6 times the CPU).
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatL2(reference.shape[1])
    index.add(reference)
    d2, idx = index.search(query, min(k, reference.shape[0]))
    return np.sqrt(np.maximum(d2, 0.0)).astype(np.float32), idx.astype(np.int64)


RECHECK = 32
"""Query rows whose neighbour distances are recomputed at a time (see ``_row_exact``): a block's float64
differences (32 x k x d) stay in the processor's cache, which made the recomputation twice as fast as in
blocks of 512; each row's distances are the same whatever the block."""


def _search(reference: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ref = np.ascontiguousarray(reference, dtype=np.float32)
    q = np.ascontiguousarray(query, dtype=np.float32)
    threads = 1 if getattr(_LOCAL, "single", False) or q.shape[0] * ref.shape[0] <= 10**7 else THREADS
    with limit_threads(threads):
        _, idx = _faiss(ref, q, k, threads) if HAVE_FAISS else _exact(ref, q, k)
    return _row_exact(ref, q, idx)


def _row_exact(ref: np.ndarray, q: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The found neighbours' distances computed again row by row, as sqrt(sum((q - r)^2)) in float64.

    A matrix-product search rounds each distance differently depending on how many query rows share a
    product (its blocks and threads), so one record scored alone, in a partition or in the whole batch
    would get distances a few float32 ulps apart, enough to move a conformal p-value by one calibration
    rank. Recomputed per row, a record's distances depend on that record and the reference only.
    """
    dist = np.empty(idx.shape, dtype=np.float32)
    buffer = np.empty((min(RECHECK, q.shape[0]), idx.shape[1], q.shape[1]), dtype=np.float64)
    for start in range(0, q.shape[0], RECHECK):
        block = idx[start : start + RECHECK]
        diff = buffer[: len(block)]
        # Both sides widened to float64 before the subtraction (``dtype``), as converting them first would.
        np.subtract(np.take(ref, block, axis=0), q[start : start + RECHECK, None, :], out=diff, dtype=np.float64)
        dist[start : start + RECHECK] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)


class _Pending:
    """One class-partitioned search, computed class by class by whichever threads ask for it.

    Each thread that needs the search takes the next class not yet taken, until none is left, then waits
    for the classes others took: two detectors that ask at the same time split the work instead of one
    waiting idle. A class's answer depends only on the arrays, so the result does not depend on which
    thread computed what."""

    def __init__(self, reference: np.ndarray, labels: np.ndarray | None, query: np.ndarray, exclude_self: bool):
        self.reference, self.query, self.exclude_self = reference, query, exclude_self
        groups = np.zeros(reference.shape[0], dtype=np.int64) if labels is None else labels
        self.classes = [int(c) for c in np.unique(groups)]
        self.groups = groups
        self.results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(self.classes)
        self.taken = self.done = 0
        self.error: BaseException | None = None
        self.out: _Search | None = None
        self.cond = threading.Condition()

    def _one(self, c: int) -> tuple[np.ndarray, np.ndarray] | None:
        members = np.flatnonzero(self.groups == c)
        kk = min(K_MAX, members.shape[0] - int(self.exclude_self))
        if kk < 1:
            return None
        dist, local = _search(self.reference[members], self.query, kk + int(self.exclude_self))
        idx = members[local]
        if self.exclude_self:
            rows = np.arange(self.query.shape[0])
            own = idx == rows[:, None]
            # Leave out the row itself where found, else the farthest of the kk + 1.
            own[~own.any(axis=1), -1] = True
            dist = dist[~own].reshape(self.query.shape[0], kk)
            idx = idx[~own].reshape(self.query.shape[0], kk)
        return dist, idx

    def result(self) -> _Search:
        while True:
            with self.cond:
                if self.error is not None:
                    raise self.error
                if self.taken == len(self.classes):
                    while self.done < len(self.classes) and self.error is None:
                        self.cond.wait()
                    if self.error is not None:
                        raise self.error
                    if self.out is None:
                        self.out = {c: r for c, r in zip(self.classes, self.results, strict=True) if r is not None}
                    return self.out
                i = self.taken
                self.taken += 1
            try:
                found = self._one(self.classes[i])
            except BaseException as exc:
                with self.cond:
                    self.error = exc
                    self.cond.notify_all()
                raise
            with self.cond:
                self.results[i] = found
                self.done += 1
                self.cond.notify_all()


def _per_class(reference: np.ndarray, labels: np.ndarray | None, query: np.ndarray, exclude_self: bool) -> _Search:
    key = (id(reference), id(labels), id(query), exclude_self)
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
        if hit is not None and hit[0] is reference and hit[1] is labels and hit[2] is query:
            pending = hit[3]
            # Least recently used goes first: the baseline's leave-one-out search, asked again by each
            # detector's fit, was pushed out by one detector's later searches and computed again.
            _MEMO[key] = _MEMO.pop(key)
        else:
            pending = _Pending(reference, labels, query, exclude_self)
            if key not in _MEMO and len(_MEMO) >= _MEMO_LIMIT:
                _MEMO.pop(next(iter(_MEMO)))
            _MEMO[key] = (reference, labels, query, pending)
    try:
        return pending.result()
    except BaseException:
        with _MEMO_LOCK:  # a failed search is not remembered: the next caller tries again
            if key in _MEMO and _MEMO[key][3] is pending:
                del _MEMO[key]
        raise


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
    with _MEMO_LOCK:
        _MEMO.clear()
