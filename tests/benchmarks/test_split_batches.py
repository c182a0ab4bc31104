"""The split benchmark cuts a case in two halves that share its poison (``benchmarks.split_batches``)."""

from __future__ import annotations

import numpy as np

from benchmarks.split_batches import halves


def test_halves_share_the_poison_and_every_row_once() -> None:
    poison = np.zeros(101, dtype=bool)
    poison[[3, 17, 40, 41, 77]] = True
    a, b = halves(len(poison), poison, seed=1)
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(101))
    assert (poison[a].sum(), poison[b].sum()) == (3, 2)
    assert len(a) == 51 and len(b) == 50
    again = halves(len(poison), poison, seed=1)
    assert [x.tolist() for x in again] == [a.tolist(), b.tolist()]
