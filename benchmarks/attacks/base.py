"""The shape every attack produces, and helpers the attacks share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.data import LABEL, Dataset, Split
from dataward.domain.errors import InputError
from dataward.domain.schema import Schema


@dataclass
class AttackCase:
    """One poisoned contribution to a dataset, with everything needed to judge a defence against it.

    ``poison[i]`` is the ground truth: True when row ``i`` of ``contribution`` is poison.
    ``attack_test`` holds the inputs on which the attack's success is measured (triggered inputs of
    the other classes for a backdoor, the source class for targeted flips; None when the attack has
    no target): attack success rate = share of them a model predicts as ``target``.
    ``first_baseline`` is set for slow drift, where ``baseline`` already holds the earlier
    contributions of the drift.
    """

    name: str
    family: str
    """``label_noise``, ``backdoor``, ``outlier``, ``drift`` or ``clean`` (a contribution with no poison)."""
    dataset: str
    modality: str
    schema: Schema
    baseline: pd.DataFrame
    validation: pd.DataFrame
    contribution: pd.DataFrame
    poison: np.ndarray
    test: pd.DataFrame
    target: str | None = None
    trigger: str = ""
    attack_test: pd.DataFrame | None = None
    groups: dict[str, np.ndarray] | None = None
    first_baseline: pd.DataFrame | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.poison = np.asarray(self.poison, dtype=bool)
        if self.poison.shape != (len(self.contribution),):
            raise InputError(f"{self.name}: the poison mask must have one entry per contribution row")
        for key, values in (self.groups or {}).items():
            if len(values) != len(self.contribution):
                raise InputError(f"{self.name}: group {key!r} must have one entry per contribution row")

    @property
    def poison_fraction(self) -> float:
        return float(self.poison.mean()) if len(self.poison) else 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready description of the case (no data)."""
        return {
            "name": self.name,
            "family": self.family,
            "dataset": self.dataset,
            "baseline": len(self.baseline),
            "contribution": len(self.contribution),
            "poisoned": int(self.poison.sum()),
            "poison_fraction": round(self.poison_fraction, 4),
            "target": self.target,
            "trigger": self.trigger,
            "params": self.params,
        }


def n_poison(n: int, rate: float) -> int:
    """How many of ``n`` records a ``rate`` poisons: at least one, never all."""
    if not 0.0 < rate < 1.0:
        raise InputError(f"a poison rate must be between 0 and 1, got {rate}")
    return int(min(n - 1, max(1, round(rate * n))))


def pick_rows(
    labels: pd.Series,
    count: int,
    rng: np.random.Generator,
    exclude: str | None = None,
    *,
    among: np.ndarray | None = None,
) -> np.ndarray:
    """``count`` random row positions (sorted), optionally none whose label is ``exclude`` and, with ``among``
    (a boolean mask, one entry per row), only rows where it is true."""
    keep = (labels != exclude).to_numpy() if exclude is not None else np.ones(len(labels), dtype=bool)
    eligible = np.flatnonzero(keep & among if among is not None else keep)
    if count > len(eligible):
        raise InputError(f"asked for {count} rows but only {len(eligible)} are eligible")
    return np.sort(rng.choice(eligible, size=count, replace=False))


def other_label(label: str, classes: list[str], rng: np.random.Generator) -> str:
    """A random class different from ``label``."""
    choices = [c for c in classes if c != label]
    return str(choices[int(rng.integers(len(choices)))])


def base_case(
    name: str,
    family: str,
    dataset: Dataset,
    parts: Split,
    contribution: pd.DataFrame,
    poison: np.ndarray,
    **extra: Any,
) -> AttackCase:
    """An ``AttackCase`` whose baseline, validation and test come straight from ``parts``."""
    return AttackCase(
        name=name,
        family=family,
        dataset=dataset.name,
        modality=dataset.modality,
        schema=dataset.schema,
        baseline=parts.baseline,
        validation=parts.validation,
        contribution=contribution.reset_index(drop=True),
        poison=poison,
        test=parts.test,
        **extra,
    )


def shuffled(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def pool_draw(dataset: Dataset, seed: int) -> tuple[Split, np.random.Generator, pd.DataFrame]:
    """The start every builder shares: ``dataset`` split at ``seed``, a generator seeded with ``seed``, and the
    split's pool shuffled by that generator (the contribution to poison; the generator is then used for the
    builder's further draws)."""
    parts = data.split(dataset, seed)
    rng = np.random.default_rng(seed)
    return parts, rng, shuffled(parts.pool, rng)


def not_target(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    return frame[frame[LABEL] != target].reset_index(drop=True)


def poison_mask(n: int, rows: np.ndarray) -> np.ndarray:
    """The ground truth of a contribution of ``n`` records: true at ``rows``."""
    poison = np.zeros(n, dtype=bool)
    poison[rows] = True
    return poison


def trigger_backdoor(
    name: str,
    dataset: Dataset,
    seed: int,
    rate: float,
    target: str,
    apply: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame],
    columns: list[str],
    *,
    trigger: str,
    params: dict[str, Any],
    eligible: Callable[[pd.DataFrame], np.ndarray] | None = None,
) -> AttackCase:
    """A dirty-label backdoor: ``n_poison(rate)`` records of the shuffled pool (``pool_draw``) of classes other
    than ``target`` (and, with ``eligible``, only those where it is true), passed through ``apply`` and
    relabelled ``target``.

    ``apply(frame, baseline)`` returns a copy of ``frame`` carrying the trigger (labels unchanged; ``baseline``
    is the split's trusted records, for triggers set from them); only its ``columns`` are written back to the
    poisoned rows. The attack test is ``apply`` on the test records of other classes (only the ``eligible``
    ones), run after the contribution's (a trigger with its own draws draws for the batch first).
    ``trigger`` and ``params`` are recorded as they are.
    """
    parts, rng, contribution = pool_draw(dataset, seed)
    count = n_poison(len(contribution), rate)
    among = eligible(contribution) if eligible is not None else None
    try:
        rows = pick_rows(contribution[LABEL], count, rng, exclude=target, among=among)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from exc
    triggered = apply(contribution.loc[rows], parts.baseline)
    for column in columns:
        contribution.loc[rows, column] = triggered[column].to_numpy()
    contribution.loc[rows, LABEL] = target
    test = not_target(parts.test, target)
    if eligible is not None:
        test = test[eligible(test)].reset_index(drop=True)
    return base_case(
        name,
        "backdoor",
        dataset,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=trigger,
        attack_test=apply(test, parts.baseline),
        params=params,
    )


def build_named(registry: Mapping[str, Callable[..., AttackCase]], name: str, seed: int, what: str) -> AttackCase:
    """The case ``name`` of ``registry`` drawn at ``seed`` and named ``name``; an unknown name is refused with
    the choices (``what``: "held-out attack" and the like)."""
    try:
        factory = registry[name]
    except KeyError as exc:
        raise InputError(f"unknown {what} {name!r}", hint=f"use one of: {', '.join(registry)}") from exc
    case = factory(seed=seed)
    case.name = name
    return case
