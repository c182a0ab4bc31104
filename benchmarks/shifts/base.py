"""What a benign situation is, and the helpers the tuning and held-out sets share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.attacks.base import AttackCase
from benchmarks.data import IMAGE, LABEL, Dataset
from dataward.domain.errors import InputError
from dataward.domain.schema import Schema

KINDS = (
    "one_class",
    "new_topic",
    "new_sensor",
    "recalibration",
    "class_prior",
    "register",
    "duplicates",
    "large_batch",
)
"""The kinds of legitimate change every set covers: a one-class source, a new topic or sub-population,
a new sensor or scanner, a recalibrated instrument, a class-prior change, a new language register,
duplicates of trusted records, a larger-than-usual batch."""
EXTRA_KINDS = ("unit_change", "rounding", "covariate_shift", "small_batch", "imputation")
"""Kinds only the second held-out set has (``benchmarks.shifts.heldout2``): one feature in other units,
measurements rounded to fewer digits, a sample drawn from one part of a feature's range, a very small
batch, a few missing values filled in by the exporter. No set is required to cover them."""
HELDOUT3_KINDS = ("boundary_sample", "self_duplicates")
"""Kinds only the third held-out set has (``benchmarks.shifts.heldout3``): the records a model is least sure
of (an active-learning pick), a batch that holds some of its own records twice."""
HELDOUT4_KINDS = ("row_order", "finer_resolution", "missing_cells")
"""Kinds only the fourth held-out set has (``benchmarks.shifts.heldout4``): a batch whose records come in
the order of a sorted sheet, measurements read to a finer step than the trusted ones, cells left blank."""
SET_GROUPS = (
    "tuning",
    "heldout",
    "heldout2",
    "heldout3",
    "heldout4",
    "heldout5",
    "heldout6",
    "heldout7",
    "heldout8",
    "heldout9",
    "heldout10",
)
"""``tuning`` may be looked at while tuning the gate; ``heldout``, ``heldout2``, ``heldout3``, ``heldout4``,
``heldout5``, ``heldout6``, ``heldout7``, ``heldout8``, ``heldout9`` and ``heldout10`` never."""
SIZES = ("small", "full")
SMALL_BASELINE = 500
"""With ``size="small"`` (for fast tests) baselines are cut to at most this many records (stratified)."""
SMALL_CONTRIBUTION = 250
"""...and contributions to at most this many (keeping what makes the situation: one class stays one class)."""


@dataclass
class Situation:
    """A clean, correctly labelled contribution that differs from its trusted baseline in one realistic
    way. The gate may send it to review; it must never block it (docs/gates.md)."""

    name: str
    kind: str
    group: str
    """``tuning`` (may be looked at while tuning the gate); ``heldout`` to ``heldout10`` (never tuned on)."""
    dataset: str
    modality: str
    schema: Schema
    baseline: pd.DataFrame
    validation: pd.DataFrame
    contribution: pd.DataFrame
    description: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in (*KINDS, *EXTRA_KINDS, *HELDOUT3_KINDS, *HELDOUT4_KINDS):
            raise InputError(f"{self.name}: unknown situation kind {self.kind!r}")
        if self.group not in SET_GROUPS:
            raise InputError(f"{self.name}: a situation is in one of the groups {', '.join(SET_GROUPS)}")
        self.contribution = self.contribution.reset_index(drop=True)
        self.baseline = self.baseline.reset_index(drop=True)

    def as_case(self) -> AttackCase:
        """The situation as a poison-free ``AttackCase``, so the benchmark runs it like any other case."""
        return AttackCase(
            name=self.name,
            family="clean",
            dataset=self.dataset,
            modality=self.modality,
            schema=self.schema,
            baseline=self.baseline,
            validation=self.validation,
            contribution=self.contribution,
            poison=np.zeros(len(self.contribution), dtype=bool),
            test=self.validation.iloc[:0],
            trigger="none",
            params={"kind": self.kind, "group": self.group, **self.params},
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (no data)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "group": self.group,
            "dataset": self.dataset,
            "baseline": len(self.baseline),
            "contribution": len(self.contribution),
            "description": self.description,
            "params": self.params,
        }


def check_size(size: str) -> None:
    if size not in SIZES:
        raise InputError(f"unknown situation size {size!r}", hint=f"use one of: {', '.join(SIZES)}")


def take(frame: pd.DataFrame, limit: int, rng: np.random.Generator) -> pd.DataFrame:
    """At most ``limit`` rows of ``frame``, drawn at random and stratified by label (each class keeps
    its share, and every class present keeps at least one row)."""
    if len(frame) <= limit:
        return frame.reset_index(drop=True)
    shares = frame[LABEL].value_counts()
    quota = np.maximum(1, np.floor(shares / len(frame) * limit)).astype(int)
    picked = [
        frame[frame[LABEL] == label].iloc[np.sort(rng.choice(int(shares[label]), size=int(n), replace=False))]
        for label, n in quota.items()
    ]
    return pd.concat(picked).sort_index().reset_index(drop=True)


def sized(frame: pd.DataFrame, size: str, limit: int, rng: np.random.Generator) -> pd.DataFrame:
    """``frame`` as it is at ``size="full"``, cut to ``limit`` rows at ``size="small"``."""
    check_size(size)
    return frame.reset_index(drop=True) if size == "full" else take(frame, limit, rng)


def parts(dataset: Dataset, seed: int, size: str) -> data.Split:
    """The benchmark's split of ``dataset``, with the baseline cut at ``size="small"``."""
    split = data.split(dataset, seed)
    rng = np.random.default_rng(20_000 + seed)
    return data.Split(sized(split.baseline, size, SMALL_BASELINE, rng), split.validation, split.pool, split.test)


def sized_pool(dataset: Dataset, seed: int, size: str) -> tuple[data.Split, np.random.Generator, pd.DataFrame]:
    """The start most situations share: the split of ``dataset`` (``parts``), a generator seeded with ``seed``,
    and the split's pool cut to ``size`` by that generator (``sized``: a fresh frame with a plain index, free
    to change; the generator is then used for the situation's further draws)."""
    split = parts(dataset, seed, size)
    rng = np.random.default_rng(seed)
    return split, rng, sized(split.pool, size, SMALL_CONTRIBUTION, rng)


def situation(
    name: str,
    kind: str,
    group: str,
    dataset: Dataset,
    split: data.Split,
    contribution: pd.DataFrame,
    description: str,
    **params: Any,
) -> Situation:
    """A ``Situation`` whose baseline and validation set come from ``split``."""
    return Situation(
        name=name,
        kind=kind,
        group=group,
        dataset=dataset.name,
        modality=dataset.modality,
        schema=dataset.schema,
        baseline=split.baseline,
        validation=split.validation,
        contribution=contribution,
        description=description,
        params=params,
    )


def new_sensor(
    name: str, group: str, dataset: Dataset, seed: int, size: str, fn: Any, description: str, **params: Any
) -> Situation:
    """Pool images of ``dataset`` as another sensor gives them: ``fn`` applied to every image's pixels."""
    split, _, pool = sized_pool(dataset, seed, size)
    return situation(name, "new_sensor", group, dataset, split, map_images(pool, fn), description, **params)


def without(dataset: Dataset, keep: np.ndarray, name: str) -> Dataset:
    """``dataset`` restricted to the rows where ``keep`` is true (a baseline that never saw the rest)."""
    return Dataset(name, dataset.frame[keep].reset_index(drop=True), dataset.schema, dataset.modality)


def upscaled(dataset: Dataset, factor: int) -> Dataset:
    """``dataset`` with every image's pixels repeated ``factor`` times each way (8x8 digits as a tight
    16x16 crop). It keeps the dataset's name: its records and classes are the dataset's own."""
    frame = map_images(dataset.frame, lambda p: np.repeat(np.repeat(p, factor, axis=0), factor, axis=1))
    return Dataset(dataset.name, frame, dataset.schema, dataset.modality)


def map_images(frame: pd.DataFrame, fn) -> pd.DataFrame:
    """A copy of ``frame`` with ``fn`` applied to the pixels (0..1 floats) of every image."""
    out = frame.copy()
    out[IMAGE] = [data.pixels_to_png(np.clip(fn(data.png_to_pixels(b)), 0.0, 1.0)) for b in frame[IMAGE]]
    return out


def shift_image(pixels: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The image moved ``dy`` pixels down and ``dx`` right, the uncovered border filled with the
    image's own edge (as a scanner that places the page slightly off would give)."""
    out = np.roll(pixels, (dy, dx), axis=(0, 1))
    if dy > 0:
        out[:dy] = pixels[:1]
    elif dy < 0:
        out[dy:] = pixels[-1:]
    if dx > 0:
        out[:, :dx] = pixels[:, :1]
    elif dx < 0:
        out[:, dx:] = pixels[:, -1:]
    return out


def rewritten_register(
    name: str,
    group: str,
    ds: Dataset,
    seed: int,
    size: str,
    rewrite: Any,
    description: str,
    *,
    kind: str = "register",
) -> Situation:
    """Pool records of ``ds`` with every text rewritten by ``rewrite`` (a new language register, or another
    ``kind`` of situation made by rewriting the lines)."""
    split, _, contribution = sized_pool(ds, seed, size)
    contribution[data.TEXT] = [rewrite(t) for t in contribution[data.TEXT]]
    return situation(name, kind, group, ds, split, contribution, description, rewrite=rewrite.__name__)


def rewritten_column(
    name: str,
    kind: str,
    group: str,
    ds: Dataset,
    seed: int,
    size: str,
    column: str,
    fn: Callable[[np.ndarray], np.ndarray],
    description: str,
    /,
    **params: Any,
) -> Situation:
    """Pool records of ``ds`` (``sized_pool``) with ``column``'s values through ``fn`` (values to values: a lab's
    other unit, rounding or reporting rule), every other cell and label as it is; ``params`` are recorded as
    they are (positional arguments only, so that ``column=`` may be one of them)."""
    split, _, contribution = sized_pool(ds, seed, size)
    contribution[column] = fn(contribution[column].to_numpy())
    return situation(name, kind, group, ds, split, contribution, description, **params)


def with_trusted_copies(
    name: str, group: str, ds: Dataset, seed: int, size: str, share: float, description: str
) -> Situation:
    """Fresh pool records mixed with exact copies of baseline records (``share`` of the batch), labels kept."""
    split, rng, fresh = sized_pool(ds, seed, size)
    n_copies = round(len(fresh) * share / (1 - share))
    copies = split.baseline.iloc[np.sort(rng.choice(len(split.baseline), size=n_copies, replace=False))]
    contribution = pd.concat([fresh, copies], ignore_index=True)
    order = rng.permutation(len(contribution))
    return situation(
        name,
        "duplicates",
        group,
        ds,
        split,
        contribution.iloc[order],
        description,
        duplicate_share=share,
        duplicate_rows=np.flatnonzero(order >= len(fresh)).tolist(),
    )


def favouring(pool: pd.DataFrame, label: str, others_share: float, rng: np.random.Generator, seed: int) -> pd.DataFrame:
    """Every record of ``label`` in ``pool`` and a seeded ``others_share`` of the rest, shuffled: a
    source that sends mostly one class (a class-prior change)."""
    chosen = pool[pool[LABEL] == label]
    others = pool[pool[LABEL] != label]
    picked = others.iloc[np.sort(rng.choice(len(others), size=round(others_share * len(others)), replace=False))]
    return pd.concat([chosen, picked]).sample(frac=1.0, random_state=seed)
