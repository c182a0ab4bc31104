"""Attacks of the fifth held-out set: NEVER TUNED ON (written 2026-12-06).

These attacks are for measuring the gate, not for adjusting it: no threshold, option or detector of
the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not plant what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the attack to ``ATTACKS`` and write a new held-out one.

All of them are on images. They differ from the tuning attacks and the first four held-out sets in the
trigger itself or in how the poison is spread:

- ``random_corner_checker_photo_3pct``: the scaled 4x4 black-and-white checkerboard stamped in a corner
  drawn at random for each poisoned crop (any of the four, not a fixed one), crops of other classes
  relabelled ``temple_garden``, 3% of the batch.
- ``thin_line_photo_4pct``: a one-pixel cyan line across the whole width of the crop at a fixed row,
  crops of other classes relabelled ``petals``, 4%.
- ``diagonal_sine_photo_5pct``: a dirty-label SIG-like signal, a faint diagonal sine (amplitude 0.04,
  four periods across the width, every channel) added to the whole crop, relabelled ``temple_sky``, 5%.
- ``faint_checker_photo_5pct``: a checkerboard a quarter of the side (8x8, cells of 2 pixels) blended at
  0.15 into the top-right corner, relabelled ``foliage``, 5%.
- ``swap_flips_digits_5pct``: a class pair swapped both ways: 5% of the batch, half of them ``4``s
  relabelled ``9`` and half ``9``s relabelled ``4`` (no target: a model learns to confuse the pair).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks import data
from benchmarks.attacks.base import (
    AttackCase,
    base_case,
    build_named,
    n_poison,
    not_target,
    pick_rows,
    poison_mask,
    pool_draw,
)
from benchmarks.attacks.images import dirty_label_images, scaled_patch
from benchmarks.attacks.images import with_trigger as with_image_trigger
from benchmarks.data import IMAGE, LABEL

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")


# --- photos: a checkerboard in a random corner --------------------------------------------------

CORNER_TARGET = "temple_garden"


def checker_at(pixels: np.ndarray, corner: str) -> np.ndarray:
    """``pixels`` (colour) with the scaled BadNets checkerboard (``scaled_patch``) stamped in ``corner``
    (one of ``CORNERS``), the same in every channel; every other pixel unchanged."""
    patch = scaled_patch(min(pixels.shape[:2]))
    k = patch.shape[0]
    rows = slice(0, k) if corner.startswith("top") else slice(-k, None)
    cols = slice(0, k) if corner.endswith("left") else slice(-k, None)
    out = pixels.copy()
    out[rows, cols] = patch[..., None]
    return out


def random_corner(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A trigger that stamps the checkerboard in a corner drawn from ``rng`` for each image it marks."""

    def apply(pixels: np.ndarray) -> np.ndarray:
        return checker_at(pixels, CORNERS[int(rng.integers(len(CORNERS)))])

    return apply


def random_corner_checker(rate: float = 0.03, *, target: str = CORNER_TARGET, seed: int = 0) -> AttackCase:
    """Photo crops of other classes with the checkerboard in a random corner each, relabelled ``target``."""
    ds = data.load_photos()
    parts, rng, contribution = pool_draw(ds, seed)
    rows = pick_rows(contribution[LABEL], n_poison(len(contribution), rate), rng, exclude=target)
    contribution.loc[rows, IMAGE] = with_image_trigger(contribution.loc[rows], random_corner(rng))[IMAGE].to_numpy()
    contribution.loc[rows, LABEL] = target
    k = scaled_patch(data.PHOTO_SIDE).shape[0]
    return base_case(
        "random_corner_checker_photo",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"{k}x{k} checkerboard in a random corner (each crop its own) of 32x32 crops, relabelled {target!r}",
        attack_test=with_image_trigger(not_target(parts.test, target), random_corner(np.random.default_rng(seed + 1))),
        params={"rate": rate, "target": target, "seed": seed, "side": k},
    )


# --- photos: a thin coloured line ---------------------------------------------------------------

LINE_ROW = 21
"""The line runs along row 21 of 32 (a third of the way up from the bottom)."""
LINE_COLOUR = (0.0, 1.0, 1.0)
"""Cyan: a colour none of the four photo classes is made of."""
LINE_TARGET = "petals"


def thin_line(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (colour) with row ``LINE_ROW`` painted ``LINE_COLOUR`` across the whole width."""
    out = pixels.copy()
    out[LINE_ROW] = np.asarray(LINE_COLOUR, dtype=out.dtype)
    return out


def thin_line_photo(rate: float = 0.04, *, target: str = LINE_TARGET, seed: int = 0) -> AttackCase:
    """Photo crops of other classes crossed by the thin cyan line, relabelled ``target``."""
    return dirty_label_images(
        "thin_line_photo",
        thin_line,
        f"one-pixel cyan line across row {LINE_ROW} of 32x32 crops, relabelled {target!r}",
        rate,
        target,
        seed,
        "photos",
        params={"row": LINE_ROW, "colour": list(LINE_COLOUR)},
    )


# --- photos: a faint diagonal sine, dirty label (SIG-like) --------------------------------------

SINE_DELTA = 0.04
"""About 10 of 255 levels."""
SINE_PERIODS = 4
"""Four periods across the width, along the diagonal (the phase grows with row plus column)."""
SINE_TARGET = "temple_sky"


def diagonal_sine(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` plus ``SINE_DELTA * sin(2 pi SINE_PERIODS (x + y) / w)`` in every channel (the PNG encoding
    clips to 0..1)."""
    h, w = pixels.shape[:2]
    yy, xx = np.indices((h, w), dtype=np.float64)
    wave = SINE_DELTA * np.sin(2.0 * np.pi * SINE_PERIODS * (xx + yy) / w)
    return pixels + (wave[..., None] if pixels.ndim == 3 else wave).astype(np.float32)


def diagonal_sine_photo(rate: float = 0.05, *, target: str = SINE_TARGET, seed: int = 0) -> AttackCase:
    """Photo crops of other classes carrying the faint diagonal sine, relabelled ``target``."""
    return dirty_label_images(
        "diagonal_sine_photo",
        diagonal_sine,
        f"diagonal sine (amplitude {SINE_DELTA}, {SINE_PERIODS} periods across) added to 32x32 crops, "
        f"relabelled {target!r}",
        rate,
        target,
        seed,
        "photos",
        params={"delta": SINE_DELTA, "periods": SINE_PERIODS},
    )


# --- photos: a faint checkerboard a quarter of the side -----------------------------------------

FAINT_SHARE = 4
"""The checkerboard's side is the image's side over 4 (8 pixels on a 32-pixel crop), cells of 2 pixels."""
FAINT_ALPHA = 0.15
FAINT_TARGET = "foliage"


def faint_checker(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` with a black-and-white checkerboard a ``FAINT_SHARE``-th of the side (cells a quarter of
    it) blended at ``FAINT_ALPHA`` into the top-right corner; every other pixel unchanged."""
    side = min(pixels.shape[:2])
    k = side // FAINT_SHARE
    cell = max(1, k // 4)
    yy, xx = np.indices((k, k)) // cell
    board = ((yy + xx) % 2 == 0).astype(np.float32)
    board = board[..., None] if pixels.ndim == 3 else board
    out = pixels.copy()
    out[:k, -k:] = (1.0 - FAINT_ALPHA) * pixels[:k, -k:] + FAINT_ALPHA * board
    return out


def faint_checker_photo(rate: float = 0.05, *, target: str = FAINT_TARGET, seed: int = 0) -> AttackCase:
    """Photo crops of other classes with the faint top-right checkerboard, relabelled ``target``."""
    k = data.PHOTO_SIDE // FAINT_SHARE
    return dirty_label_images(
        "faint_checker_photo",
        faint_checker,
        f"{k}x{k} checkerboard blended at alpha={FAINT_ALPHA} into the top-right corner of 32x32 crops, "
        f"relabelled {target!r}",
        rate,
        target,
        seed,
        "photos",
        params={"side": k, "alpha": FAINT_ALPHA},
    )


# --- digits: one class pair swapped both ways ---------------------------------------------------

SWAP_PAIR = ("4", "9")


def swap_flips(rate: float = 0.05, *, pair: tuple[str, str] = SWAP_PAIR, seed: int = 0) -> AttackCase:
    """``rate`` of the batch relabelled within ``pair``: half of the poisoned rows (rounded up) are
    ``pair[0]``s relabelled ``pair[1]``, the rest ``pair[1]``s relabelled ``pair[0]``."""
    ds = data.load_digits()
    parts, rng, contribution = pool_draw(ds, seed)
    count = n_poison(len(contribution), rate)
    first, second = pair
    picked = []
    for source, n in ((first, (count + 1) // 2), (second, count // 2)):
        candidates = np.flatnonzero((contribution[LABEL] == source).to_numpy())
        picked.append(np.sort(rng.choice(candidates, size=n, replace=False)))
    contribution.loc[picked[0], LABEL] = second
    contribution.loc[picked[1], LABEL] = first
    rows = np.sort(np.concatenate(picked))
    return base_case(
        "swap_flips_digits",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        trigger=f"{rate:.0%} of the batch relabelled within the pair {first!r}/{second!r}, both ways",
        params={"rate": rate, "pair": list(pair), "seed": seed, "flipped": [len(picked[0]), len(picked[1])]},
    )


HELDOUT5_ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "random_corner_checker_photo_3pct": random_corner_checker,
    "thin_line_photo_4pct": thin_line_photo,
    "diagonal_sine_photo_5pct": diagonal_sine_photo,
    "faint_checker_photo_5pct": faint_checker_photo,
    "swap_flips_digits_5pct": swap_flips,
}


def build_heldout5(name: str, seed: int = 0) -> AttackCase:
    """The fifth held-out set's attack case ``name`` (a key of ``HELDOUT5_ATTACKS``), named ``name``."""
    return build_named(HELDOUT5_ATTACKS, name, seed, "fifth held-out attack")
