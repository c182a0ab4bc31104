"""Benign situations of the fifth held-out set: NEVER TUNED ON (written 2026-12-06).

These situations are for measuring the gate, not for adjusting it: no threshold, option or detector
of the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not make what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the situation to the tuning set (``benchmarks.shifts.tuning``) and write a new
held-out one.

All of them are images. They differ from the tuning set, the first four held-out sets and the outside
trial in the change itself: photos from a phone whose rolling shutter shears a panning shot, the same
scenes through a wider lens (more of the real surroundings in each crop, not a padded border), part of
a batch shot under fluorescent light (a green cast on those crops only), a photographer who only went
to the temple (two classes of four), bursts of near-identical shots of the same scenes, digits written
smaller inside larger form boxes, a yes/no questionnaire (only zeros and ones), a stack of forms
partly scanned twice after a paper jam (the second scan a pixel lower), and forms whose printed box
line the scanner did not quite drop (a faint line along the bottom of every digit).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pandas as pd
from scipy import ndimage

from benchmarks import data
from benchmarks.data import IMAGE, LABEL
from benchmarks.shifts.base import (
    SMALL_CONTRIBUTION,
    Situation,
    new_sensor,
    parts,
    shift_image,
    situation,
    sized,
    sized_pool,
)

GROUP = "heldout5"

Window = tuple[str, int, int, int]
"""Where a photo crop was cut: (photo, y, x, side) in the original photo's pixels."""

# --- photos: transforms of the pixels -----------------------------------------------------------

SHUTTER_SKEW = 2.0
"""A rolling shutter during a pan: row ``r`` of ``h`` is read ``SHUTTER_SKEW * r / (h - 1)`` pixels to the
right of the top row (0 at the top, 2 pixels at the bottom), bilinear, edges repeated."""
CAST_GAINS = (0.97, 1.08, 1.0)
"""Fluorescent light: red, green and blue scaled by these factors (a green cast)."""
CAST_SHARE = 0.4
"""The share of the batch shot under that light (the rest in daylight, as the trusted crops)."""


def rolling_shutter(pixels: np.ndarray, skew: float = SHUTTER_SKEW) -> np.ndarray:
    """``pixels`` (colour) sheared as a rolling shutter shears a panning shot: each row moved right by
    ``skew`` times its relative height (linear interpolation between pixels, edge columns repeated)."""
    h, w = pixels.shape[:2]
    yy, xx = np.indices((h, w), dtype=np.float64)
    coords = [yy, xx - skew * yy / (h - 1)]
    planes = [ndimage.map_coordinates(pixels[..., c], coords, order=1, mode="nearest") for c in range(3)]
    return np.stack(planes, axis=-1).astype(np.float32)


def colour_cast(pixels: np.ndarray, gains: tuple[float, float, float] = CAST_GAINS) -> np.ndarray:
    """``pixels`` with each channel scaled by its gain; the caller clips."""
    return pixels * np.asarray(gains, dtype=np.float32)


def rolling_shutter_photos(seed: int = 0, size: str = "full") -> Situation:
    """Photo crops from a phone panning while it shoots (``rolling_shutter``)."""
    return new_sensor(
        "rolling_shutter_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        rolling_shutter,
        f"photo crops from a phone that pans while its rolling shutter reads the rows: each row {SHUTTER_SKEW} "
        "pixels further right at the bottom than at the top (a slanted shear, no rotation)",
        skew=SHUTTER_SKEW,
    )


def fluorescent_cast_photos(seed: int = 0, size: str = "full") -> Situation:
    """Pool photo crops of which a seeded ``CAST_SHARE`` were shot under fluorescent light (``colour_cast``)."""
    ds = data.load_photos()
    split, rng, pool = sized_pool(ds, seed, size)
    rows = np.sort(rng.choice(len(pool), size=round(CAST_SHARE * len(pool)), replace=False))
    contribution = pool.copy()
    contribution.loc[rows, IMAGE] = [
        data.pixels_to_png(np.clip(colour_cast(data.png_to_pixels(b)), 0.0, 1.0)) for b in pool.loc[rows, IMAGE]
    ]
    return situation(
        "fluorescent_cast_photos",
        "new_sensor",
        GROUP,
        ds,
        split,
        contribution,
        f"a photographer who shot {CAST_SHARE:.0%} of the batch indoors under fluorescent light: those crops "
        f"have a green cast (red, green, blue scaled by {', '.join(map(str, CAST_GAINS))}), the rest are daylight",
        gains=list(CAST_GAINS),
        share=CAST_SHARE,
        cast_rows=rows.tolist(),
    )


# --- photos: other framings of the same real scenes ---------------------------------------------

WIDER_LENS = 1.25
"""A wider lens from the same spot: each crop's window in the original photo 1.25 times wider and
taller about the same centre, resized to 32x32 as every crop is."""
BURST_SHARE = 0.3
"""The share of the batch's scenes shot as a burst: each of them sent with ``BURST_EXTRA`` more shots."""
BURST_EXTRA = 2
BURST_JITTER = 2
"""A hand-held burst: each extra shot's window moved by up to 2 pixels (of the original photo) each way."""
TEMPLE_CLASSES = ("temple_garden", "temple_sky")
"""A photographer who only went to the temple: its two classes, none of the dahlia's."""


@cache
def _windows() -> dict[bytes, Window]:
    """Where each crop of ``data.load_photos()`` came from: PNG bytes -> (photo, y, x, side)."""
    crops = data.photo_crops(data.PHOTO_COUNT, seed=0)
    return {
        png: (str(photo), int(y), int(x), int(side))
        for png, photo, y, x, side in crops[[IMAGE, "photo", "y", "x", "side"]].itertuples(index=False)
    }


def window_of(png: bytes) -> Window:
    """The (photo, y, x, side) window of the original photo a ``photos`` crop was cut from."""
    return _windows()[png]


def fits(label: str, photo: str, y: int, x: int, side: int) -> bool:
    """Whether a square window lies inside its photo and meets the rule that makes ``label`` right
    (``rect_fits``)."""
    return rect_fits(label, photo, y, x, side, side)


def rect_fits(label: str, photo: str, y: int, x: int, height: int, width: int) -> bool:
    """Whether a window lies inside its photo and meets the rule that makes ``label`` right
    (``data.PHOTO_CLASSES``: sky wholly in the top 45% of the temple, garden wholly in its bottom 45%,
    petals at least 80% petal pixels, foliage at most 1%)."""
    temple, _, integral = data._photo_sources()
    photo_h, photo_w = temple.shape[:2]
    if y < 0 or x < 0 or y + height > photo_h or x + width > photo_w:
        return False
    if label == "temple_sky":
        return photo == "temple" and y + height <= 0.45 * photo_h
    if label == "temple_garden":
        return photo == "temple" and y >= int(0.55 * photo_h)
    covered = (integral[y + height, x + width] - integral[y, x + width] - integral[y + height, x] + integral[y, x]) / (
        height * width
    )
    if label == "petals":
        return photo == "dahlia" and covered >= 0.8
    return label == "foliage" and photo == "dahlia" and covered <= 0.01


def crop(photo: str, y: int, x: int, side: int) -> bytes:
    """The 32x32 crop of ``photo`` at that window, as PNG bytes (made as ``data.photo_crops`` makes them)."""
    temple, dahlia, _ = data._photo_sources()
    return data.pixels_to_png(data._crop({"temple": temple, "dahlia": dahlia}[photo], y, x, side))


def wider(window: Window, factor: float = WIDER_LENS) -> Window:
    """``window`` ``factor`` times wider about the same centre (rounded to whole pixels)."""
    photo, y, x, side = window
    grown = round(side * factor)
    margin = (grown - side) // 2
    return photo, y - margin, x - margin, grown


def wider_lens_photos(seed: int = 0, size: str = "full") -> Situation:
    """The pool's scenes through a wider lens (``wider``), cut from the original photos: crops whose wider
    view would leave the photo or cross into another class's region are not in the batch (the wider
    view of them would not be one class)."""
    ds = data.load_photos()
    split, _, pool = sized_pool(ds, seed, size)
    images, labels = [], []
    for png, label in pool[[IMAGE, LABEL]].itertuples(index=False):
        window = wider(window_of(png))
        if fits(label, *window):
            images.append(crop(*window))
            labels.append(label)
    contribution = pd.DataFrame({IMAGE: images, LABEL: labels})
    return situation(
        "wider_lens_photos",
        "new_sensor",
        GROUP,
        ds,
        split,
        contribution,
        f"the same scenes through a wider lens: each window {WIDER_LENS} times wider about the same centre, cut "
        f"from the original photo and resized to {data.PHOTO_SIDE}x{data.PHOTO_SIDE} (scenes whose wider view "
        "would not be one class are left out)",
        factor=WIDER_LENS,
        kept=len(contribution),
        of=len(pool),
    )


def jittered(window: Window, label: str, rng: np.random.Generator) -> Window | None:
    """``window`` moved by a random non-zero offset of at most ``BURST_JITTER`` pixels each way such that
    it still ``fits`` ``label``; None when no such offset exists."""
    photo, y, x, side = window
    steps = range(-BURST_JITTER, BURST_JITTER + 1)
    offsets = [(dy, dx) for dy in steps for dx in steps]
    for i in rng.permutation(len(offsets)):
        dy, dx = offsets[i]
        if (dy, dx) != (0, 0) and fits(label, photo, y + dy, x + dx, side):
            return photo, y + dy, x + dx, side
    return None


def burst_shots_photos(seed: int = 0, size: str = "full") -> Situation:
    """Pool crops of which ``BURST_SHARE`` of the scenes come with ``BURST_EXTRA`` more hand-held shots
    (``jittered`` windows of the same scene, cut from the original photo), shuffled in."""
    ds = data.load_photos()
    split, rng, pool = sized_pool(ds, seed, size)
    scenes = np.sort(rng.choice(len(pool), size=round(BURST_SHARE * len(pool)), replace=False))
    extra_images, extra_labels, extra_scenes = [], [], []
    for row in scenes:
        png, label = pool.at[row, IMAGE], pool.at[row, LABEL]
        taken = {png}
        for _ in range(BURST_EXTRA):
            window = jittered(window_of(png), label, rng)
            shot = None if window is None else crop(*window)
            if shot is not None and shot not in taken:
                taken.add(shot)
                extra_images.append(shot)
                extra_labels.append(label)
                extra_scenes.append(int(row))
    extras = pd.DataFrame({IMAGE: extra_images, LABEL: extra_labels})
    contribution = pd.concat([pool, extras], ignore_index=True)
    order = rng.permutation(len(contribution))
    scene_of = np.concatenate([np.arange(len(pool)), np.asarray(extra_scenes, dtype=np.int64)])[order]
    return situation(
        "burst_shots_photos",
        "self_duplicates",
        GROUP,
        ds,
        split,
        contribution.iloc[order],
        f"a photographer who shoots bursts: {BURST_SHARE:.0%} of the scenes come with {BURST_EXTRA} more hand-held "
        f"shots, each framed up to {BURST_JITTER} pixels (of the original photo) away from the first",
        share=BURST_SHARE,
        extra=BURST_EXTRA,
        burst_rows=np.flatnonzero(order >= len(pool)).tolist(),
        scene=scene_of.tolist(),
    )


def temple_only_photos(seed: int = 0, size: str = "full") -> Situation:
    """Pool crops of the ``TEMPLE_CLASSES`` only: two of the four classes, none of the others."""
    ds = data.load_photos()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    pool = split.pool[split.pool[LABEL].isin(TEMPLE_CLASSES)]
    contribution = sized(pool, size, SMALL_CONTRIBUTION, rng)
    return situation(
        "temple_only_photos",
        "class_prior",
        GROUP,
        ds,
        split,
        contribution,
        f"a photographer who only went to the temple: crops of {' and '.join(TEMPLE_CLASSES)} only, none of the "
        "dahlia's two classes",
        labels=list(TEMPLE_CLASSES),
    )


# --- digits -------------------------------------------------------------------------------------

SMALL_WRITING = 0.8
"""Digits written smaller in larger form boxes: each image scaled by 0.8 about its centre (bilinear),
the border left blank, as the box around a digit is."""
YES_NO_CLASSES = ("0", "1")
"""A questionnaire whose boxes take a 0 (no) or a 1 (yes): only those two digits."""
RESCAN_SHARE = 0.25
"""After a paper jam, a quarter of the stack's forms went through the scanner a second time..."""
RESCAN_SHIFT = 1
"""...landing one pixel lower than the first time (the top row repeated)."""
BOX_LINE_INK = 0.25
"""A box line printed in a drop-out colour the scanner does not quite drop: the bottom row of every
digit at least a quarter of full ink."""


def smaller_writing(pixels: np.ndarray, scale: float = SMALL_WRITING) -> np.ndarray:
    """``pixels`` (grey) scaled by ``scale`` about the image centre (bilinear), blank outside."""
    centre = (np.asarray(pixels.shape, dtype=np.float64) - 1.0) / 2.0
    return ndimage.affine_transform(
        pixels, np.eye(2) / scale, offset=centre - centre / scale, order=1, mode="constant", cval=0.0
    )


def box_line(pixels: np.ndarray, ink: float = BOX_LINE_INK) -> np.ndarray:
    """``pixels`` with its bottom row at least ``ink`` (ink already darker there is kept)."""
    out = pixels.copy()
    out[-1] = np.maximum(out[-1], ink)
    return out


def small_writing_digits(seed: int = 0, size: str = "full") -> Situation:
    """Digits from forms with larger boxes (``smaller_writing``)."""
    return new_sensor(
        "small_writing_digits",
        GROUP,
        data.load_digits(),
        seed,
        size,
        smaller_writing,
        f"digits from a form with larger boxes: people write smaller, each digit {SMALL_WRITING:.0%} of its usual "
        "size in the middle of the box, blank around it",
        scale=SMALL_WRITING,
    )


def box_line_digits(seed: int = 0, size: str = "full") -> Situation:
    """Digits from forms whose box line shows faintly at the bottom (``box_line``)."""
    return new_sensor(
        "box_line_digits",
        GROUP,
        data.load_digits(),
        seed,
        size,
        box_line,
        f"digits from forms whose boxes are printed in a colour the scanner does not quite drop: a faint line "
        f"({BOX_LINE_INK:.0%} of full ink) along the bottom row of every digit, of every class",
        ink=BOX_LINE_INK,
    )


def yes_no_digits(seed: int = 0, size: str = "full") -> Situation:
    """Pool digits of ``YES_NO_CLASSES`` only."""
    ds = data.load_digits()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    contribution = sized(split.pool[split.pool[LABEL].isin(YES_NO_CLASSES)], size, SMALL_CONTRIBUTION, rng)
    return situation(
        "yes_no_digits",
        "class_prior",
        GROUP,
        ds,
        split,
        contribution,
        "a yes/no questionnaire: every box holds a 0 (no) or a 1 (yes), so the batch has those two digits only",
        labels=list(YES_NO_CLASSES),
    )


def rescanned_jam_digits(seed: int = 0, size: str = "full") -> Situation:
    """Pool digits, and a seeded ``RESCAN_SHARE`` of them scanned a second time ``RESCAN_SHIFT`` pixel
    lower (``shift_image``), labels kept, shuffled in."""
    ds = data.load_digits()
    split, rng, pool = sized_pool(ds, seed, size)
    again = np.sort(rng.choice(len(pool), size=round(RESCAN_SHARE * len(pool)), replace=False))
    rescans = pool.iloc[again].copy()
    rescans[IMAGE] = [data.pixels_to_png(shift_image(data.png_to_pixels(b), RESCAN_SHIFT, 0)) for b in rescans[IMAGE]]
    contribution = pd.concat([pool, rescans], ignore_index=True)
    order = rng.permutation(len(contribution))
    first = np.concatenate([np.arange(len(pool)), again])[order]
    return situation(
        "rescanned_jam_digits",
        "self_duplicates",
        GROUP,
        ds,
        split,
        contribution.iloc[order],
        f"a stack of forms that jammed: {RESCAN_SHARE:.0%} of them went through the scanner again and come twice, "
        f"the second scan {RESCAN_SHIFT} pixel lower",
        share=RESCAN_SHARE,
        shift=RESCAN_SHIFT,
        rescan_rows=np.flatnonzero(order >= len(pool)).tolist(),
        first_scan=first.tolist(),
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "rolling_shutter_photos": rolling_shutter_photos,
    "wider_lens_photos": wider_lens_photos,
    "fluorescent_cast_photos": fluorescent_cast_photos,
    "temple_only_photos": temple_only_photos,
    "burst_shots_photos": burst_shots_photos,
    "small_writing_digits": small_writing_digits,
    "yes_no_digits": yes_no_digits,
    "rescanned_jam_digits": rescanned_jam_digits,
    "box_line_digits": box_line_digits,
}
__all__ = [
    "SITUATIONS",
    "box_line",
    "colour_cast",
    "crop",
    "fits",
    "jittered",
    "rolling_shutter",
    "smaller_writing",
    "wider",
    "window_of",
]
