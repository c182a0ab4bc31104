"""A lens's gain field on raw images: every pixel scaled by a smooth function of its position.

A lens that darkens towards the corners (vignetting), a sensor whose illumination falls off across
the frame, or a new white balance multiplies each pixel value by a gain that depends on where the
pixel is and on its channel, not on the image. The gate's image features are a projection of the
pixels (``_sensor`` undoes a change shared by every feature), so such a change is not one gain in
the gate's space: it darkens a sky's corners towards a garden's shade, and records of a class that
only went through the lens read as another class.

:func:`estimate_gain_field` estimates the field from each class's mean image, batch against trusted
records of the same class (a mean, not a median: a gain multiplies the mean exactly, and the mean of a
few hundred images is steadier): the ratio of the means per pixel, the median over classes (each class
one vote, so that one class moved on its own cannot set it), and per channel a least-squares fit of a
polynomial of degree ``DEGREE`` in the pixel's position. A quadratic in position holds a constant gain
(exposure, white balance), a gradient across the frame and a radial fall-off; it cannot hold a pattern,
a patch or another class's content, so a sender who controls every class of a batch can set a field
but cannot, by undoing it, carry relabelled content onto its new label. The field must be shared: undone,
it brings most classes' mean images closer to their trusted ones; it must stay within ``MAX_GAIN`` of 1
either way (a lens, not an image of its own); and it must matter (``MIN_EFFECT``), else there is no lens
to undo. ``backdoor`` lets it excuse a misread record only as it lets a feature-space change: when it
explains both classes the record is read between.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dataward.gates.detectors._sensor import MIN_CLASSES, MIN_RECORDS

DEGREE = 2
"""Degree of the polynomial in the pixel's position: a constant gain, a gradient, a radial fall-off."""

GRID = 32
"""Side of the square grid the field is estimated on (images are resized to it for the estimate only)."""

SAMPLE_PER_CLASS = 500
"""Images of a class read on each side at most (a seeded sample beyond): a median image needs no more."""

MAX_GAIN = 2.0
"""The field stays within this factor of 1 everywhere, either way: a lens, not an image of its own."""

MIN_EFFECT = 0.03
"""The field's largest gain must differ from 1 by at least this much (in log) for there to be a lens ..."""

NOISE_FACTOR = 2.0
"""... and by this many times what two random halves of the trusted images give (``estimate_gain_field``)."""

DARK = 0.05
"""Mean pixel values below this (0..1) on either side are left out of the ratios: noise, not gain."""


def _terms(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The polynomial's terms at normalized positions ``u``, ``v`` (each -1..1): shape ``(len(u), terms)``."""
    return np.stack([u**i * v**j for i in range(DEGREE + 1) for j in range(DEGREE + 1 - i)], axis=1)


def _positions(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's normalized position, row-major: -1 at the first row (column), 1 at the last."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u = (x - (width - 1) / 2) / max((width - 1) / 2, 1.0)
    v = (y - (height - 1) / 2) / max((height - 1) / 2, 1.0)
    return u.reshape(-1), v.reshape(-1)


@dataclass(frozen=True)
class GainField:
    """Pixel values of the batch are ``field(position, channel) * v`` of the baseline lens's ``v``."""

    coefficients: np.ndarray
    """Per channel (rows), the polynomial's coefficients of the gain."""
    classes: int
    """Classes the estimate was taken over."""

    @property
    def channels(self) -> int:
        return int(self.coefficients.shape[0])

    def at(self, height: int, width: int) -> np.ndarray:
        """The gains at every pixel of a ``height`` x ``width`` image: shape ``(height, width, channels)``."""
        terms = _terms(*_positions(height, width))
        return (terms @ self.coefficients.T).reshape(height, width, self.channels)

    def undo(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels`` (``(h, w, channels)``, 0..1) as the baseline's lens would have given them (clipped to 0..1)."""
        h, w = pixels.shape[:2]
        return np.clip(pixels / np.clip(self.at(h, w), 1.0 / MAX_GAIN, MAX_GAIN), 0.0, 1.0)

    def describe(self) -> str:
        """One sentence: the gain at the centre and the range over the frame."""
        gains = self.at(GRID, GRID)
        centre = gains[GRID // 2, GRID // 2].mean()
        return (
            f"a lens or sensor gain shared by {self.classes} classes, varying across the frame: "
            f"x{centre:.2f} at the centre, x{gains.min():.2f} to x{gains.max():.2f} over the image"
        )


def to_grid(image: Image.Image, mode: str) -> np.ndarray:
    """``image`` in ``mode`` ("L" or "RGB"), resized to ``GRID`` square, as 0..1 floats ``(GRID, GRID, c)``."""
    img = image.convert(mode)
    if img.size != (GRID, GRID):
        img = img.resize((GRID, GRID), Image.Resampling.BILINEAR)
    out = np.asarray(img, dtype=np.float64) / 255.0
    return out.reshape(GRID, GRID, -1)


def classes_on_both_sides(trusted: dict[int, np.ndarray], batch: dict[int, np.ndarray], min_records: int) -> list[int]:
    """The classes with at least ``min_records`` images on each side, in code order."""
    return [
        code
        for code in sorted(trusted.keys() & batch.keys())
        if trusted[code].shape[0] >= min_records and batch[code].shape[0] >= min_records
    ]


def trusted_halves(
    trusted: dict[int, np.ndarray], codes: list[int], rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per class of ``codes``, the mean images of two disjoint random halves of its trusted images: what a
    batch drawn like the baseline differs from it by chance, the null an estimated change must beat."""
    halves = []
    for code in codes:
        order = rng.permutation(trusted[code].shape[0])
        half = order.size // 2
        halves.append((trusted[code][order[:half]].mean(axis=0), trusted[code][order[half:]].mean(axis=0)))
    return halves


def _fit_field(means: list[tuple[np.ndarray, np.ndarray]]) -> GainField | None:
    """The field fitted to the classes' (trusted, batch) mean images, or None when too few pixels can be read."""
    channels = means[0][0].shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.stack([np.where((t > DARK) & (b > DARK), b / t, np.nan).reshape(-1, channels) for t, b in means])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pixel dark in every class: all NaN
        shared = np.nanmedian(ratios, axis=0)
    # A pixel enters the fit only where most classes can read it: the median of one or two classes'
    # ratios is that class's own move.
    readable = 2 * np.sum(np.isfinite(ratios), axis=0) > len(means)
    terms = _terms(*_positions(GRID, GRID))
    use = readable & np.isfinite(shared)
    if np.any(use.sum(axis=0) < 4 * terms.shape[1]):
        return None
    coefficients = np.zeros((channels, terms.shape[1]))
    for c in range(channels):
        coefficients[c] = np.linalg.lstsq(terms[use[:, c]], shared[use[:, c], c], rcond=None)[0]
    return GainField(coefficients, len(means))


def _strength(field: GainField | None) -> float:
    """The field's largest gain away from 1, in log (0 for no field)."""
    if field is None:
        return 0.0
    gains = field.at(GRID, GRID)
    return float(np.abs(np.log(np.clip(gains, 1e-6, None))).max())


def estimate_gain_field(
    trusted: dict[int, np.ndarray],
    batch: dict[int, np.ndarray],
    *,
    min_records: int = MIN_RECORDS,
    seed: int = 0,
) -> GainField | None:
    """The lens's gain field from the trusted images to the batch's, or None: too few classes with
    ``min_records`` images each side (``MIN_CLASSES``), no field shared by most classes, a field beyond
    ``MAX_GAIN``, or one too weak to matter.

    Too weak: within ``MIN_EFFECT`` of 1 everywhere, or within ``NOISE_FACTOR`` times the field that two
    disjoint random halves of the trusted images of each class give (the field a batch through no lens
    shows from its classes' mean images differing by chance: about 5% on 300 photo crops a class).

    ``trusted`` and ``batch`` map a class code to its images on ``GRID``, shape ``(n, GRID, GRID, c)``."""
    codes = classes_on_both_sides(trusted, batch, min_records)
    if len(codes) < MIN_CLASSES:
        return None
    means = [(trusted[code].mean(axis=0), batch[code].mean(axis=0)) for code in codes]
    field = _fit_field(means)
    if field is None:
        return None
    gains = field.at(GRID, GRID)
    if gains.min() <= 1.0 / MAX_GAIN or gains.max() >= MAX_GAIN:
        return None
    halves = trusted_halves(trusted, codes, np.random.default_rng([seed, 19]))
    if _strength(field) < max(MIN_EFFECT, NOISE_FACTOR * _strength(_fit_field(halves))):
        return None
    # Shared: undone, it brings most classes' mean images closer to their trusted ones.
    closer = sum(np.linalg.norm(b / gains - t) < np.linalg.norm(b - t) for t, b in means)
    if 2 * closer <= len(means):
        return None
    return field
