"""What the held-out sets' builder tests compare with: the pool a situation drew, and records as tuples."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks import data, shifts
from benchmarks.shifts.base import SMALL_CONTRIBUTION, parts, sized


def record_keys(frame: pd.DataFrame) -> list[tuple]:
    """Each record of ``frame`` as a tuple of its values, in order."""
    return list(map(tuple, frame.itertuples(index=False)))


def drawn_pool(situation: shifts.Situation, seed: int = 0) -> pd.DataFrame:
    """The pool records a situation drew (small), in the order it drew them."""
    split = parts(data.load(situation.dataset), seed, "small")
    return sized(split.pool, "small", SMALL_CONTRIBUTION, np.random.default_rng(seed)).reset_index(drop=True)
