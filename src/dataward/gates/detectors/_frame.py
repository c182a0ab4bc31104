"""A camera or scanner that frames every image a few pixels off: the whole content moved, not changed.

A new scanner whose feed sits two pixels to the right, or a camera mounted a little lower, moves every
image's content by the same few pixels. A tight crop then reads differently in the gate's image
features (a projection of the pixels): a digit '0' moved right loses its right edge and sits where
trusted '6's have their ink, and a whole class of the batch can read as another class. Neither a gain
per feature (``_sensor``) nor a lens's gain field (``_lens``) can undo a move.

:func:`estimate_frame_shift` estimates the move from each class's mean image, batch against trusted
records of the same class, on the lens's grid: the whole-pixel shift, within ``MAX_SHIFT`` of the grid's
side, that brings the classes' batch means closest to their trusted means (the median over classes of
the squared difference on the inner window that no shift within reach leaves empty, so that each class
has one vote and what a shift brings in from outside the frame is never compared). The move is kept
only if it is shared, most classes closer to their trusted means than unmoved, and if it matters: it
removes more of the classes' difference than ``NOISE_FACTOR`` times what two random halves of the
trusted images of each class differ by (the difference a batch framed as the baseline shows by chance).

A move is rigid: it neither adds nor removes a pattern and does not change a record's content, only
where it sits. That is why ``backdoor`` lets a frame shift vouch for a class misread wholesale (every
record of the class read as another class), which a gain may not: relabelled content that went through
the camera, moved back, still reads as the class it came from. A record that never went through it is
moved by the undoing, though, and a few classes are near each other's moves (a '0' moved right sits
where '6's have their ink), so ``backdoor`` excuses a record only when the move is the better
explanation: undone, it reads as its label by at least the margin by which, as sent, it reads as
another class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from dataward.gates.detectors._lens import GRID, classes_on_both_sides, trusted_halves
from dataward.gates.detectors._sensor import MIN_CLASSES, MIN_RECORDS

MAX_SHIFT = 6
"""Largest move looked for, in grid pixels either way (of ``GRID``, about a fifth of the side): a frame a
little off, not another picture."""

NOISE_FACTOR = 2.0
"""The move must remove this many times the difference two random halves of the trusted images show."""


@dataclass(frozen=True)
class FrameShift:
    """The batch's content sits ``rows`` and ``columns`` (fractions of the image's side) from the baseline's."""

    rows: float
    """Down (positive) or up, as a fraction of the image's height."""
    columns: float
    """Right (positive) or left, as a fraction of the image's width."""
    classes: int
    """Classes the estimate was taken over."""
    explained: float
    """Share of the classes' mean-image difference (median over classes) that the move removes."""
    background: np.ndarray
    """The trusted images' mean on the grid (each class one vote), ``(GRID, GRID, c)`` in 0..1: what an
    image moved back shows where its content was cut off. Neither black nor the edge repeated: a dark
    strip on a photo, or a digit's stroke drawn out to the border, would itself read as content."""

    def pixels(self, height: int, width: int) -> tuple[int, int]:
        """The move in whole pixels of a ``height`` x ``width`` image."""
        return round(self.rows * height), round(self.columns * width)

    def undo(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels`` (``(h, w, c)``, 0..1) moved back; the strip the move cut off shows the trusted mean."""
        h, w = pixels.shape[:2]
        dy, dx = self.pixels(h, w)
        out = shift(pixels, -dy, -dx).copy()
        cut = np.zeros((h, w), bool)
        if dy:
            cut[slice(h - dy, h) if dy > 0 else slice(0, -dy), :] = True
        if dx:
            cut[:, slice(w - dx, w) if dx > 0 else slice(0, -dx)] = True
        out[cut] = _resized(self.background, h, w)[cut]
        return out

    def describe(self) -> str:
        """One sentence: where the batch's content sits against the baseline's."""
        moves = []
        if self.rows:
            moves.append(f"{abs(self.rows):.0%} of the height {'down' if self.rows > 0 else 'up'}")
        if self.columns:
            moves.append(f"{abs(self.columns):.0%} of the width {'right' if self.columns > 0 else 'left'}")
        return (
            f"every image framed {' and '.join(moves)} of where the baseline's sit, shared by "
            f"{self.classes} classes (the move removes {self.explained:.0%} of their mean images' difference)"
        )


def _resized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (``(h, w, c)``, 0..1 floats) resized to ``height`` x ``width`` (bilinear), channels kept."""
    if image.shape[:2] == (height, width):
        return image
    channels = [
        np.asarray(
            Image.fromarray(image[..., c].astype(np.float32), "F").resize((width, height), Image.Resampling.BILINEAR)
        )
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1).astype(np.float64)


def shift(pixels: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``pixels`` moved ``dy`` rows down and ``dx`` columns right; the strip left empty repeats the edge."""
    h, w = pixels.shape[:2]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"a move of ({dy}, {dx}) leaves nothing of a {h}x{w} image")
    padded = np.pad(pixels, [(abs(dy), abs(dy)), (abs(dx), abs(dx))] + [(0, 0)] * (pixels.ndim - 2), mode="edge")
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[top : top + h, left : left + w]


def _differences(means: list[tuple[np.ndarray, np.ndarray]]) -> dict[tuple[int, int], np.ndarray]:
    """Per move (dy, dx) within reach, each class's squared difference between its trusted mean and its
    batch mean moved back by the move, on the inner window that every move leaves filled."""
    inner = (slice(MAX_SHIFT, GRID - MAX_SHIFT), slice(MAX_SHIFT, GRID - MAX_SHIFT))
    # On the inner window a move within reach reads only pixels of the image, never the repeated edge: there
    # ``shift(b, -dy, -dx)`` is ``b``'s window moved by (dy, dx), the same values in the same order, taken
    # without padding the image once per move.
    on_grid = all(b.shape[:2] == (GRID, GRID) for _, b in means)
    out = {}
    for dy in range(-MAX_SHIFT, MAX_SHIFT + 1):
        for dx in range(-MAX_SHIFT, MAX_SHIFT + 1):
            moved = (
                (slice(MAX_SHIFT + dy, GRID - MAX_SHIFT + dy), slice(MAX_SHIFT + dx, GRID - MAX_SHIFT + dx))
                if on_grid
                else None
            )
            out[dy, dx] = np.array(
                [
                    np.sum(((b[moved] if moved is not None else shift(b, -dy, -dx)[inner]) - t[inner]) ** 2)
                    for t, b in means
                ]
            )
    return out


def estimate_frame_shift(
    trusted: dict[int, np.ndarray],
    batch: dict[int, np.ndarray],
    *,
    min_records: int = MIN_RECORDS,
    seed: int = 0,
) -> FrameShift | None:
    """The move of the batch's frame against the trusted one, or None: too few classes with
    ``min_records`` images each side (``MIN_CLASSES``), no move (the best is none), a move most classes
    do not share, or one that removes no more than ``NOISE_FACTOR`` times the difference of two random
    halves of the trusted images (median over classes).

    ``trusted`` and ``batch`` map a class code to its images on the lens's ``GRID``, shape
    ``(n, GRID, GRID, c)``."""
    codes = classes_on_both_sides(trusted, batch, min_records)
    if len(codes) < MIN_CLASSES:
        return None
    means = [(trusted[code].mean(axis=0), batch[code].mean(axis=0)) for code in codes]
    differences = _differences(means)
    best = min(differences, key=lambda move: (float(np.median(differences[move])), abs(move[0]) + abs(move[1])))
    if best == (0, 0):
        return None
    unmoved, moved = differences[0, 0], differences[best]
    if 2 * int(np.sum(moved < unmoved)) <= len(codes):
        return None  # not shared: most classes are no closer moved back
    halves = trusted_halves(trusted, codes, np.random.default_rng([seed, 23]))
    inner = (slice(MAX_SHIFT, GRID - MAX_SHIFT), slice(MAX_SHIFT, GRID - MAX_SHIFT))
    chance = float(np.median([np.sum((b[inner] - t[inner]) ** 2) for t, b in halves]))
    removed = float(np.median(unmoved) - np.median(moved))
    if removed <= NOISE_FACTOR * chance:
        return None
    return FrameShift(
        rows=best[0] / GRID,
        columns=best[1] / GRID,
        classes=len(codes),
        explained=removed / max(float(np.median(unmoved)), 1e-12),
        background=np.mean([t for t, _ in means], axis=0),
    )
