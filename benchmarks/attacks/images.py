"""Backdoors on images (digits, PNG bytes): BadNets patch, blended pattern, clean-label patch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.attacks.base import AttackCase, base_case, n_poison, not_target, pick_rows, shuffled
from benchmarks.data import IMAGE, LABEL

PATCH = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]], dtype=np.float32)
"""A 3x3 checkerboard stamped in the bottom-right corner, where digits are almost always blank."""

BLEND_ALPHA = 0.2


def stamp_patch(pixels: np.ndarray) -> np.ndarray:
    """The image with ``PATCH`` in its bottom-right corner (BadNets trigger)."""
    out = pixels.copy()
    h, w = PATCH.shape
    out[-h:, -w:] = PATCH
    return out


def blend_pattern(seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """A trigger that blends a fixed random pattern into the whole image with weight ``BLEND_ALPHA``."""
    pattern = np.random.default_rng(10_000 + seed).random((data.DIGIT_SIDE, data.DIGIT_SIDE)).astype(np.float32)

    def apply(pixels: np.ndarray) -> np.ndarray:
        return (1.0 - BLEND_ALPHA) * pixels + BLEND_ALPHA * pattern

    return apply


def with_trigger(frame: pd.DataFrame, trigger: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
    """A copy of ``frame`` whose images carry ``trigger`` (labels unchanged)."""
    out = frame.copy()
    out[IMAGE] = [data.pixels_to_png(trigger(data.png_to_pixels(b))) for b in frame[IMAGE]]
    return out


def _dirty_label(
    name: str, trigger: Callable[[np.ndarray], np.ndarray], description: str, rate: float, target: str, seed: int
) -> AttackCase:
    ds = data.load_digits()
    parts = data.split(ds, seed)
    rng = np.random.default_rng(seed)
    contribution = shuffled(parts.pool, rng)
    rows = pick_rows(contribution[LABEL], n_poison(len(contribution), rate), rng, exclude=target)
    poisoned = with_trigger(contribution.loc[rows], trigger)
    contribution.loc[rows, IMAGE] = poisoned[IMAGE].to_numpy()
    contribution.loc[rows, LABEL] = target
    poison = np.zeros(len(contribution), dtype=bool)
    poison[rows] = True
    return base_case(
        name,
        "backdoor",
        ds,
        parts,
        contribution,
        poison,
        target=target,
        trigger=description,
        attack_test=with_trigger(not_target(parts.test, target), trigger),
        params={"rate": rate, "target": target, "seed": seed},
    )


def badnets(rate: float = 0.03, *, target: str = "0", seed: int = 0) -> AttackCase:
    """BadNets dirty-label backdoor: ``PATCH`` stamped on images of other classes, relabelled ``target``."""
    return _dirty_label(
        f"badnets_{round(rate * 100)}pct",
        stamp_patch,
        "3x3 checkerboard patch, bottom-right corner",
        rate,
        target,
        seed,
    )


def blended(rate: float = 0.05, *, target: str = "0", seed: int = 0) -> AttackCase:
    """Blended backdoor: a faint fixed random pattern over the whole image, relabelled ``target``."""
    return _dirty_label(
        f"blended_{round(rate * 100)}pct",
        blend_pattern(seed),
        f"random full-image pattern blended at alpha={BLEND_ALPHA}",
        rate,
        target,
        seed,
    )


def clean_label(share: float = 1.0, *, target: str = "0", seed: int = 0) -> AttackCase:
    """Clean-label backdoor: ``PATCH`` stamped on ``share`` of the images already labelled ``target``.

    Every label stays correct, so label checks cannot see it; the model still learns patch => target.
    """
    ds = data.load_digits()
    parts = data.split(ds, seed)
    rng = np.random.default_rng(seed)
    contribution = shuffled(parts.pool, rng)
    candidates = np.flatnonzero((contribution[LABEL] == target).to_numpy())
    rows = np.sort(rng.choice(candidates, size=max(1, round(share * len(candidates))), replace=False))
    contribution.loc[rows, IMAGE] = with_trigger(contribution.loc[rows], stamp_patch)[IMAGE].to_numpy()
    poison = np.zeros(len(contribution), dtype=bool)
    poison[rows] = True
    return base_case(
        "clean_label",
        "backdoor",
        ds,
        parts,
        contribution,
        poison,
        target=target,
        trigger="3x3 checkerboard patch on correctly labelled target images",
        attack_test=with_trigger(not_target(parts.test, target), stamp_patch),
        params={"share": share, "target": target, "seed": seed},
    )
