"""Clean contributions (no poison at all), to count false alarms and false blocks."""

from __future__ import annotations

import numpy as np

from benchmarks import data
from benchmarks.attacks.base import AttackCase, base_case


def clean_contribution(dataset: str = "digits", share: float = 0.5, *, seed: int = 0) -> AttackCase:
    """A random ``share`` of the pool of ``dataset``, untouched. Different seeds give different draws
    from the same split (split seed 0), as successive honest contributions would be."""
    ds = data.load(dataset)
    parts = data.split(ds, 0)
    rng = np.random.default_rng(1_000 + seed)
    rows = np.sort(rng.choice(len(parts.pool), size=max(2, round(share * len(parts.pool))), replace=False))
    contribution = parts.pool.iloc[rows].reset_index(drop=True)
    return base_case(
        f"clean_{dataset}_{seed}",
        "clean",
        ds,
        parts,
        contribution,
        np.zeros(len(contribution), dtype=bool),
        trigger="none",
        params={"share": share, "seed": seed},
    )
