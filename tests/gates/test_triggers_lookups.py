"""The lookups the trigger scan walks every carrier entry with (``SortedKeys``, ``_max_by_row``) give
what a binary search and ``np.maximum.at`` give, on either path (a table over a narrow key range, a
search over a wide one), with repeated keys, absent keys and keys beyond the range."""

from __future__ import annotations

import numpy as np
import pytest

from dataward.gates.detectors import triggers
from dataward.gates.detectors.triggers import SortedKeys, _max_by_row, _prior_shifted_tie


def _searched(keys: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The reference: the first equal key's position by binary search, -1 when none is equal."""
    if keys.size == 0:
        return np.full(q.shape[0], -1)
    at = np.minimum(np.searchsorted(keys, q), keys.size - 1)
    return np.where(keys[at] == q, at, -1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dense", [True, False], ids=["table", "search"])
def test_positions_are_those_a_binary_search_gives(seed: int, dense: bool, monkeypatch) -> None:
    rng = np.random.default_rng(seed)
    key_range = 5_000
    keys = np.sort(rng.integers(0, key_range, 3_000))  # many keys repeated: the first one is found
    q = rng.integers(-50, key_range + 50, 20_000)  # some absent, some outside the range either side
    if not dense:
        monkeypatch.setattr(triggers, "DENSE_LOOKUP_KEYS", key_range - 1)
    lookup = SortedKeys(keys, key_range)
    assert (lookup.table is not None) == dense
    found = lookup.find(q)
    assert found.dtype == np.int64
    assert np.array_equal(found, _searched(keys, q))
    inside = q[(q >= 0) & (q < key_range)]
    assert np.array_equal(lookup.find(inside), _searched(keys, inside))


def test_no_keys_finds_nothing() -> None:
    assert np.array_equal(SortedKeys(np.zeros(0, np.int64), 10).find(np.arange(3)), [-1, -1, -1])


@pytest.mark.parametrize("sorted_rows", [True, False])
def test_the_maximum_by_row_is_what_maximum_at_gives(sorted_rows: bool) -> None:
    rng = np.random.default_rng(7)
    rows = rng.integers(0, 300, 10_000)
    if sorted_rows:
        rows = np.sort(rows)
    values = rng.exponential(size=rows.size)
    start = rng.exponential(size=400)
    expected, got = start.copy(), start.copy()
    np.maximum.at(expected, rows, values)
    _max_by_row(got, rows, values)
    assert np.array_equal(got, expected)
    _max_by_row(got, rows[:0], values[:0])
    assert np.array_equal(got, expected)


def test_a_pattern_tested_with_several_labels_gets_each_pair_s_own_prior_shifted_tie() -> None:
    """Worked out once per pattern, each (pattern, label) pair gets what it gets alone."""
    import scipy.sparse as sp

    rng = np.random.default_rng(3)
    n_patterns, n_classes = 200, 4
    b_all = rng.integers(0, 30, (n_patterns, n_classes)).astype(float)
    m_all = rng.integers(0, 10, (n_patterns, n_classes)).astype(float)
    k_b_all = b_all.sum(axis=1)
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    yc = sp.csc_matrix(np.eye(n_classes)[rng.choice(n_classes, 500, p=[0.7, 0.1, 0.1, 0.1])])
    pattern = rng.integers(0, n_patterns, 600)
    label = rng.integers(0, n_classes, 600)
    together = _prior_shifted_tie(pattern, label, m_all, b_all, k_b_all, prior, yc, 0.05)
    alone = [
        _prior_shifted_tie(pattern[i : i + 1], label[i : i + 1], m_all, b_all, k_b_all, prior, yc, 0.05)[0]
        for i in range(pattern.size)
    ]
    assert np.array_equal(together, alone)
