"""The float64 re-check of ``outliers``' distance band: each distinct pair of vectors computed once gives
the booleans the one-pair-at-a-time path gives, on inputs where most pairs sit exactly on the radius."""

from __future__ import annotations

import numpy as np

from dataward.gates.detectors.outliers import BAND_PAIRS, _band_within, _nearest_candidates, _pairs_within, _UniqueRows


def _tie_heavy(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Records that share a few vectors (as unseen categories share one one-hot vector), with a little
    float32 noise on some so that distances sit just either side of the radius too."""
    rng = np.random.default_rng(seed)
    vectors = rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), size=(4, 6))
    q = vectors[rng.integers(0, 4, 300)]
    ref = vectors[rng.integers(0, 4, 900)]
    ref[::7] += np.float32(1e-7) * rng.standard_normal((ref[::7].shape[0], 6), dtype=np.float32)
    return q, ref


def test_band_within_equals_pairwise_on_ties() -> None:
    for seed in range(3):
        q, ref = _tie_heavy(seed)
        rows, cols = np.divmod(np.arange(q.shape[0] * ref.shape[0], dtype=np.int64), ref.shape[0])
        assert rows.shape[0] > BAND_PAIRS  # the distinct-pair path is taken
        distances = np.sqrt(((q[:, None, :].astype(np.float64) - ref[None, :, :]) ** 2).sum(axis=2))
        values, counts = np.unique(distances.astype(np.float32), return_counts=True)
        common = values[1:][np.argmax(counts[1:])]  # the most shared distance between distinct vectors
        assert counts[1:].max() > 1000  # tie-heavy indeed
        # Radii on which many pairs sit exactly: 0 (shared vectors), and a distance between distinct ones.
        for near in (0.0, float(common), float(np.nextafter(common, np.float32(0))), float(values[-1])):
            old = _pairs_within(q, ref, rows, cols, near)
            new = _band_within(q, ref, rows, cols, near, _UniqueRows(ref))
            assert np.array_equal(old, new)


def test_band_within_distinct_vectors_uses_pairs() -> None:
    rng = np.random.default_rng(0)
    q, ref = rng.standard_normal((40, 5), dtype=np.float32), rng.standard_normal((2000, 5), dtype=np.float32)
    rows, cols = np.divmod(np.arange(q.shape[0] * ref.shape[0], dtype=np.int64), ref.shape[0])
    old = _pairs_within(q, ref, rows, cols, 3.0)
    assert np.array_equal(old, _band_within(q, ref, rows, cols, 3.0, _UniqueRows(ref)))


def _isolation(q: np.ndarray, ref: np.ndarray, d2: np.ndarray, nearest: np.ndarray, rank: int) -> np.ndarray:
    """What ``_sampled_isolation_p`` reads of the candidates: the ``rank``-th smallest exact distance."""
    diff = q[:, None, :].astype(np.float64) - ref[nearest].astype(np.float64)
    exact = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    exact[np.isinf(np.take_along_axis(d2, nearest, axis=1))] = np.inf
    return np.sort(exact, axis=1)[:, rank - 1]


def test_nearest_candidates_reads_as_argpartition_on_ties() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((3, 4), dtype=np.float32)
    ref = vectors[rng.integers(0, 3, 2000)]
    ref[:5] = vectors[0]  # rows whose nearest are all copies of one vector
    q = np.concatenate([vectors[[0, 0, 1, 2]], rng.standard_normal((4, 4), dtype=np.float32)])
    d2 = np.einsum("ij,ij->i", q, q)[:, None] + np.einsum("ij,ij->i", ref, ref)[None, :] - 2 * q @ ref.T
    d2[(q[:, None, :] == ref[None, :, :]).all(axis=2)] = 0.0  # copies exactly at 0, as one-hot ties are
    d2[np.arange(2), np.arange(2)] = np.inf  # each record itself left out
    for take, rank in ((11, 3), (40, 20)):
        old = np.argpartition(d2, take - 1, axis=1)[:, :take]
        new = _nearest_candidates(d2, take, lambda: _UniqueRows(ref))
        assert np.array_equal(_isolation(q, ref, d2, old, rank), _isolation(q, ref, d2, new, rank))
