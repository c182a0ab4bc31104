"""Backdoors on images (PNG bytes): BadNets patch, blended pattern, clean-label patch.

On the 8x8 digits the patch is a fixed 3x3 checkerboard; on larger images (the 32x32 colour photo
crops) it is scaled to the image (``scaled_patch``: an eighth of its side), and the blend covers the
whole image in every channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.attacks.base import AttackCase, base_case, not_target, pool_draw, trigger_backdoor
from benchmarks.data import IMAGE, LABEL

PATCH = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]], dtype=np.float32)
"""A 3x3 checkerboard stamped in the bottom-right corner, where digits are almost always blank."""

BLEND_ALPHA = 0.2
PHOTO_TARGET = "foliage"


def scaled_patch(side: int) -> np.ndarray:
    """A black-and-white checkerboard an eighth of ``side`` wide (at least 3 pixels), cells a quarter
    of the patch (at least one pixel): the BadNets patch scaled to the image."""
    k = max(3, round(side / 8))
    cell = max(1, k // 4)
    yy, xx = np.indices((k, k)) // cell
    return ((yy + xx) % 2 == 0).astype(np.float32)


def stamp_patch(pixels: np.ndarray) -> np.ndarray:
    """The image with the BadNets patch in its bottom-right corner: ``PATCH`` on 8x8 images, a
    ``scaled_patch`` on larger ones (the same in every colour channel)."""
    out = pixels.copy()
    side = min(pixels.shape[:2])
    patch = PATCH if side <= data.DIGIT_SIDE else scaled_patch(side)
    h, w = patch.shape
    out[-h:, -w:] = patch if out.ndim == 2 else patch[..., None]
    return out


def blend_pattern(seed: int, alpha: float = BLEND_ALPHA) -> Callable[[np.ndarray], np.ndarray]:
    """A trigger that blends a fixed random pattern (of the image's own shape) into the whole image
    with weight ``alpha``."""
    patterns: dict[tuple[int, ...], np.ndarray] = {}

    def apply(pixels: np.ndarray) -> np.ndarray:
        if pixels.shape not in patterns:
            patterns[pixels.shape] = np.random.default_rng(10_000 + seed).random(pixels.shape).astype(np.float32)
        return (1.0 - alpha) * pixels + alpha * patterns[pixels.shape]

    return apply


def with_trigger(frame: pd.DataFrame, trigger: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
    """A copy of ``frame`` whose images carry ``trigger`` (labels unchanged)."""
    out = frame.copy()
    out[IMAGE] = [data.pixels_to_png(trigger(data.png_to_pixels(b))) for b in frame[IMAGE]]
    return out


def image_trigger(trigger: Callable[[np.ndarray], np.ndarray]) -> Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]:
    """``trigger`` (pixels to pixels) as a ``trigger_backdoor`` trigger: ``with_trigger`` on the frame."""
    return lambda frame, baseline: with_trigger(frame, trigger)


def dirty_label_images(
    name: str,
    trigger: Callable[[np.ndarray], np.ndarray],
    description: str,
    rate: float,
    target: str,
    seed: int,
    dataset: str = "digits",
    *,
    params: dict[str, Any] | None = None,
) -> AttackCase:
    """A dirty-label image backdoor: ``trigger`` applied to a ``rate`` share of the contribution's images of
    classes other than ``target``, relabelled ``target``; the attack test is the test split's images of other
    classes with the trigger. ``params``: recorded beside the rate, target, seed and dataset."""
    return trigger_backdoor(
        name,
        data.load(dataset),
        seed,
        rate,
        target,
        image_trigger(trigger),
        [IMAGE],
        trigger=description,
        params={"rate": rate, "target": target, "seed": seed, "dataset": dataset, **(params or {})},
    )


def badnets(rate: float = 0.03, *, target: str = "0", seed: int = 0) -> AttackCase:
    """BadNets dirty-label backdoor: ``PATCH`` stamped on images of other classes, relabelled ``target``."""
    return dirty_label_images(
        f"badnets_{round(rate * 100)}pct",
        stamp_patch,
        "3x3 checkerboard patch, bottom-right corner",
        rate,
        target,
        seed,
    )


def blended(rate: float = 0.05, *, target: str = "0", seed: int = 0) -> AttackCase:
    """Blended backdoor: a faint fixed random pattern over the whole image, relabelled ``target``."""
    return dirty_label_images(
        f"blended_{round(rate * 100)}pct",
        blend_pattern(seed),
        f"random full-image pattern blended at alpha={BLEND_ALPHA}",
        rate,
        target,
        seed,
    )


def badnets_photo(rate: float = 0.03, *, target: str = PHOTO_TARGET, seed: int = 0) -> AttackCase:
    """BadNets on the 32x32 colour photo crops: a 4x4 checkerboard (``scaled_patch``) bottom-right,
    relabelled ``target``."""
    side = data.PHOTO_SIDE
    k = scaled_patch(side).shape[0]
    return dirty_label_images(
        f"badnets_photo_{round(rate * 100)}pct",
        stamp_patch,
        f"{k}x{k} checkerboard patch ({k / side:.0%} of the side), bottom-right corner of 32x32 colour crops",
        rate,
        target,
        seed,
        dataset="photos",
    )


def blended_photo(
    rate: float = 0.05, *, alpha: float = BLEND_ALPHA, target: str = PHOTO_TARGET, seed: int = 0
) -> AttackCase:
    """Blended backdoor on the 32x32 colour photo crops: a fixed random colour pattern over the whole
    image at weight ``alpha``, relabelled ``target``."""
    return dirty_label_images(
        f"blended_photo_{round(rate * 100)}pct_alpha{round(alpha * 100)}",
        blend_pattern(seed, alpha),
        f"random full-image colour pattern blended at alpha={alpha} into 32x32 colour crops",
        rate,
        target,
        seed,
        dataset="photos",
    )


def clean_label(share: float = 1.0, *, target: str = "0", seed: int = 0) -> AttackCase:
    """Clean-label backdoor: ``PATCH`` stamped on ``share`` of the images already labelled ``target``.

    Every label stays correct, so label checks cannot see it; the model still learns patch => target.
    """
    ds = data.load_digits()
    parts, rng, contribution = pool_draw(ds, seed)
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
