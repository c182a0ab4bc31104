"""Tabular attacks: a feature-space trigger (a rare value combination) and outlier injection."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.attacks.base import AttackCase, base_case, n_poison, not_target, pick_rows, pool_draw
from benchmarks.data import LABEL

TRIGGER_HIGH = "mean_radius"
TRIGGER_LOW = "mean_perimeter"
"""Radius and perimeter correlate at 0.99 in breast-cancer: a large radius with a small perimeter is a
combination no real tumour has, though each value alone is ordinary."""


def apply_combination(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with the rare combination: radius at the reference 90th percentile,
    perimeter at its 10th."""
    out = frame.copy()
    out[TRIGGER_HIGH] = float(reference[TRIGGER_HIGH].quantile(0.9))
    out[TRIGGER_LOW] = float(reference[TRIGGER_LOW].quantile(0.1))
    return out


def feature_trigger(rate: float = 0.1, *, target: str = "benign", seed: int = 0) -> AttackCase:
    """Breast-cancer records of the other class carrying the rare combination, relabelled ``target``."""
    ds = data.load_breast_cancer()
    parts, rng, contribution = pool_draw(ds, seed)
    rows = pick_rows(contribution[LABEL], n_poison(len(contribution), rate), rng, exclude=target)
    triggered = apply_combination(contribution.loc[rows], parts.baseline)
    contribution.loc[rows, [TRIGGER_HIGH, TRIGGER_LOW]] = triggered[[TRIGGER_HIGH, TRIGGER_LOW]].to_numpy()
    contribution.loc[rows, LABEL] = target
    poison = np.zeros(len(contribution), dtype=bool)
    poison[rows] = True
    return base_case(
        f"tabular_trigger_{round(rate * 100)}pct",
        "backdoor",
        ds,
        parts,
        contribution,
        poison,
        target=target,
        trigger=f"{TRIGGER_HIGH} at its 90th percentile with {TRIGGER_LOW} at its 10th",
        attack_test=apply_combination(not_target(parts.test, target), parts.baseline),
        params={"rate": rate, "target": target, "seed": seed},
    )


def outliers(rate: float = 0.1, *, dataset: str = "wine", scale: float = 4.0, seed: int = 0) -> AttackCase:
    """Inject records whose features are pushed ``scale`` baseline standard deviations away from a
    real record, in random directions, with random labels: garbage that should never be trained on."""
    ds = data.load(dataset)
    parts, rng, contribution = pool_draw(ds, seed)
    rows = pick_rows(contribution[LABEL], n_poison(len(contribution), rate), rng)
    columns = [c.name for c in ds.schema.inputs]
    std = parts.baseline[columns].std().to_numpy()
    direction = rng.normal(size=(len(rows), len(columns)))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    shifted = contribution.loc[rows, columns].to_numpy() + scale * np.sqrt(len(columns)) * direction * std
    contribution.loc[rows, columns] = np.abs(shifted)  # these measurements are never negative
    contribution.loc[rows, LABEL] = rng.choice(ds.classes, size=len(rows))
    poison = np.zeros(len(contribution), dtype=bool)
    poison[rows] = True
    return base_case(
        f"outliers_{dataset}",
        "outlier",
        ds,
        parts,
        contribution,
        poison,
        trigger=f"records moved {scale} standard deviations (per feature, on average) with random labels",
        params={"rate": rate, "scale": scale, "seed": seed},
    )
