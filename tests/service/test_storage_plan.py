"""A stream's storage order: chunk by chunk, each in its own row order, and never a record dropped."""

from __future__ import annotations

import numpy as np
import pytest

from dataward.service.manifests import _storage_order


@pytest.mark.parametrize("chunks", [1, 2, 40])
def test_the_order_is_chunk_by_chunk_then_by_row(chunks: int) -> None:
    rng = np.random.default_rng(chunks)
    n = 20_000
    rank = rng.integers(0, chunks, n)
    row = np.empty(n, dtype=np.int64)
    for r in range(chunks):
        held = np.flatnonzero(rank == r)
        row[held] = rng.permutation(2 * len(held))[: len(held)]  # a version holds some of a chunk's rows
    assert np.array_equal(_storage_order(rank, row), np.lexsort((row, rank)))
    assert len(_storage_order(np.zeros(0, np.int64), np.zeros(0, np.int64))) == 0


def test_records_that_cannot_be_placed_by_row_are_all_kept() -> None:
    """Locations from an edited record index (a version of ids only) can put two records at one row, or
    at a row below 0: placing them by row would keep one and silently drop the other. Every record is
    kept, for the check of each record against its row to refuse (tests/security/test_guarded_reads.py)."""
    rank, row = np.array([1, 0, 0, 1, 0]), np.array([0, 3, 3, 1, -1])
    assert _storage_order(rank, row).tolist() == [4, 1, 2, 0, 3]
