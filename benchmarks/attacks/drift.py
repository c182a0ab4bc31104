"""Slow drift: twenty small contributions, each moving one class a little further, none suspicious alone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.attacks.base import AttackCase
from benchmarks.data import LABEL


def drift_steps(
    steps: int = 20, size: int = 30, step_std: float = 0.02, *, cls: str = "benign", seed: int = 0
) -> tuple[data.Split, list[pd.DataFrame], list[np.ndarray]]:
    """The split and ``steps`` contributions; in contribution ``k`` (1-based) every record of ``cls`` is
    moved ``k * step_std`` baseline standard deviations along one fixed random direction.

    Records are drawn from the pool and jittered by 1% of a standard deviation so that no contribution
    repeats another exactly.
    """
    ds = data.load_breast_cancer()
    parts = data.split(ds, seed)
    rng = np.random.default_rng(seed)
    columns = [c.name for c in ds.schema.inputs]
    std = parts.baseline[columns].std().to_numpy()
    direction = np.abs(rng.normal(size=len(columns)))
    direction /= np.linalg.norm(direction) / np.sqrt(len(columns))  # about one std per feature at k*step=1
    contributions, masks = [], []
    for k in range(1, steps + 1):
        rows = rng.choice(len(parts.pool), size=size, replace=False)
        frame = parts.pool.iloc[rows].reset_index(drop=True).copy()
        values = frame[columns].to_numpy() + rng.normal(scale=0.01, size=(size, len(columns))) * std
        moved = (frame[LABEL] == cls).to_numpy()
        values[moved] += k * step_std * direction * std
        frame[columns] = values
        contributions.append(frame)
        masks.append(moved)
    return parts, contributions, masks


def slow_drift(steps: int = 20, size: int = 30, step_std: float = 0.02, *, seed: int = 0) -> AttackCase:
    """The last of ``steps`` drifting contributions, judged against a baseline that already merged the
    earlier ones, with the first trusted baseline given as ``first_baseline``."""
    return drift_sequence(steps, size, step_std, seed=seed)[-1]


def drift_sequence(steps: int = 20, size: int = 30, step_std: float = 0.02, *, seed: int = 0) -> list[AttackCase]:
    """Every step of the drift as a case: step ``k`` is judged against the first baseline plus the
    ``k - 1`` earlier contributions (each was let in, since none looked suspicious alone)."""
    ds = data.load_breast_cancer()
    parts, contributions, masks = drift_steps(steps, size, step_std, seed=seed)
    cases = []
    for k in range(1, steps + 1):
        merged = pd.concat([parts.baseline, *contributions[: k - 1]], ignore_index=True)
        cases.append(
            AttackCase(
                name="slow_drift" if k == steps else f"slow_drift_step_{k}",
                family="drift",
                dataset=ds.name,
                modality=ds.modality,
                schema=ds.schema,
                baseline=merged,
                validation=parts.validation,
                contribution=contributions[k - 1],
                poison=masks[k - 1],
                test=parts.test,
                trigger=f"class 'benign' moved {step_std} std further in each of {steps} contributions",
                first_baseline=parts.baseline,
                params={"steps": steps, "step": k, "size": size, "step_std": step_std, "seed": seed},
            )
        )
    return cases
