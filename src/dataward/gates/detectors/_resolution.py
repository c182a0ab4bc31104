"""A scanner or camera of lower resolution: every image captured smaller and stored at the baseline's size.

An old scanner that captures digits at 4x4 and stores them upsampled to 8x8, or a camera whose images
are enlarged to the baseline's size, blurs every stroke. Nothing of it can be undone on the batch (the
detail is gone), and neither a gain (``_sensor``, ``_lens``) nor a move (``_frame``) models it: a blurred
'1' spreads towards where trusted '8's have their ink, and a whole class of the batch can read as
another class while each record is what it says it is.

What can be done is the opposite: take the trusted images through the same capture and read the batch
against them. :func:`estimate_resolution` finds the capture from the images' sharpness, a statistic a
gain or an offset leaves alone: per image, the mean squared difference of neighbouring pixels over the
image's own variance. Per class, the capture (a share of the side among ``SCALES``, or none) that brings
the median sharpness of its trusted images closest to the batch's is that class's vote; the batch's
capture is the median vote (each class one vote, so a class sent its own way cannot set it). It is kept
only if most classes vote for a lower resolution, if the batch is blurrier than two random halves of
the trusted images differ by ``NOISE_FACTOR`` times over, and if the capture explains the difference
(it removes at least half of it, median over classes).

A capture only removes detail: it cannot add a pattern, and a '7' captured at 4x4 is still closer to
trusted '7's captured at 4x4 than to trusted '1's. That is why ``backdoor`` reads a record misread
against the trusted records once more against the trusted records captured the same way (calibrated
on their own leave-one-out reading), and excuses it only when it then reads as its label outright, in a
class whose other records read no further from their label than the captured trusted records do, and
only if the record itself could have gone through the capture (``Resolution.detail_lost``): a sharp
record is far from every blurred trusted record, equally far from its label's and from its content's,
and read against them it would pass for any label.
Very low captures are not looked for (``SCALES`` starts at three eighths of the side): below them the
classes' content runs together and no reading could tell relabelled records from their new label.

A flat image (a blank scan) has no detail to keep or lose, so it is evidence of no capture at all: it
takes no part in the estimate (neither in a class's sharpness nor in ``max_loss``, where its 0 / 0 read as
infinitely much would have let every record pass as captured), and ``detail_lost`` reads nothing from it
(NaN), so ``backdoor`` never lets the capture excuse it. A sender who adds blank images to a batch thus
neither sways the estimate nor gets them excused by it; blank images in the trusted set cannot switch the
went-through test off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dataward.gates.detectors._sensor import MIN_CLASSES, MIN_RECORDS

SCALES = (0.375, 0.5, 0.625, 0.75, 0.875)
"""Captures looked for, as a share of the stored image's side (bilinear down, then bilinear back up)."""

NOISE_FACTOR = 2.0
"""The batch must be blurrier than the trusted images by this many times what two random halves of the
trusted images differ by (in log sharpness, median over classes)."""

LOSS_QUANTILE = 0.99
"""Share of the captured trusted images whose loss bounds ``went_through``. The maximum let through most images
captured a little finer than the batch (87% of digits captured at 6x6 against a 4x4 capture) and some sharp
'1's (a bar has little detail to lose); the 99th percentile lets through 99% of the batch's own captured
images, 60% of those at 6x6 and no sharp '1' (docs/benchmarks.md, "The went-through bound")."""

MIN_CAPTURE = 2
"""Fewest pixels a capture keeps along a side."""

DETAIL_BLOCK = 256
"""Images ``Resolution.details_lost`` takes through the capture at a time (and the estimate's guard reads)."""


@dataclass(frozen=True)
class Resolution:
    """The batch's images were captured at ``scale`` of their side and stored at the baseline's size."""

    scale: float
    """Share of the stored image's side that was captured."""
    classes: int
    """Classes the estimate was taken over."""
    sharpness: float
    """The batch's sharpness over the trusted images' (median over classes)."""
    explained: float
    """Share of the classes' difference in log sharpness (median over classes) that the capture removes."""
    max_loss: float = float("inf")
    """The most detail (``detail_lost``) the capture, taken again, removes from a trusted image that went
    through it once, but for the top ``LOSS_QUANTILE`` tail (over the trusted images the estimate read that
    have detail to lose): an image that loses more is taken for one that never went through it."""

    def detail_lost(self, image: Image.Image) -> float:
        """How much sharper ``image`` is than itself taken through the capture (1: nothing lost). An image
        that went through the capture loses little more; one that did not loses the detail it kept (inf:
        the capture leaves it flat). NaN for a flat image: it has nothing to lose, and no reading of it
        tells whether it went through the capture or not."""
        kept = sharpness(image)
        if kept <= 0.0:
            return float("nan")
        captured = sharpness(self.degrade(image))
        return kept / captured if captured > 0 else float("inf")

    def details_lost(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``detail_lost`` of each image, the same floats, with the sharpness of all of them read at once
        (``sharpness_all``); only images with detail are taken through the capture, as one by one."""
        lost = np.full(len(images), np.nan)
        # A block at a time: the images taken through the capture are held for one block only.
        for start in range(0, len(images), DETAIL_BLOCK):
            block = images[start : start + DETAIL_BLOCK]
            kept = sharpness_all(block)
            some = np.flatnonzero(kept > 0.0)
            if some.size:
                captured = sharpness_all([self.degrade(block[i]) for i in some])
                ratio = kept[some] / np.where(captured > 0, captured, 1.0)
                lost[start + some] = np.where(captured > 0, ratio, np.inf)
        return lost

    def went_through(self, image: Image.Image) -> bool:
        """Whether ``image`` could have gone through the capture: taking it through once more removes no
        more detail than from a trusted image already captured (``max_loss``). False for a flat image,
        which shows no capture (NaN compares false)."""
        return bool(self.detail_lost(image) <= self.max_loss)

    def went_through_all(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``went_through`` of each image (``details_lost`` against ``max_loss``)."""
        return self.details_lost(images) <= self.max_loss

    def degrade(self, image: Image.Image) -> Image.Image:
        """``image`` as the batch's capture would have given it: resized to ``scale`` of its side and back."""
        w, h = image.size
        small = (max(MIN_CAPTURE, round(self.scale * w)), max(MIN_CAPTURE, round(self.scale * h)))
        if small[0] >= w and small[1] >= h:
            return image
        bilinear = Image.Resampling.BILINEAR
        return image.resize(small, bilinear).resize((w, h), bilinear)

    def describe(self) -> str:
        """One sentence: the capture and how much sharpness it accounts for."""
        return (
            f"every image captured at about {self.scale:.0%} of its side and stored enlarged, shared by "
            f"{self.classes} classes (the batch's images are {self.sharpness:.0%} as sharp as the baseline's; "
            f"the capture accounts for {self.explained:.0%} of the difference)"
        )


def sharpness(image: Image.Image) -> float:
    """Mean squared difference of neighbouring pixels (both directions, every channel) over the image's
    own variance: how much of its contrast sits in fine detail, whatever its gain or offset (0 for a flat
    image)."""
    pixels = np.asarray(image, dtype=np.float64)
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    variance = float(pixels.var())
    if variance <= 1e-12 or min(pixels.shape[:2]) < 2:
        return 0.0
    detail = float(np.mean(np.diff(pixels, axis=0) ** 2)) + float(np.mean(np.diff(pixels, axis=1) ** 2))
    return detail / variance


SHARPNESS_BLOCK = 1 << 22
"""Pixel values (float64, 32 MB) ``sharpness_all`` stacks at a time."""


def sharpness_all(images: Sequence[Image.Image]) -> np.ndarray:
    """``sharpness`` of each image, the same floats bit for bit, for images of one shape at a time.

    One image at a time, numpy's fixed cost per call was most of the time of a digit's sharpness (an
    estimate reads thousands). Each image's mean and variance are still summed over its own values in
    the same order: a row of a stacked C-ordered array is reduced as the flat image was. Images are
    widened to float64 a block at a time (``SHARPNESS_BLOCK``), never all at once: a sample of large
    photographs would take eight times its pixels' memory."""
    out = np.zeros(len(images), dtype=np.float64)
    by_shape: dict[tuple[int, int, int], list[int]] = {}
    for i, image in enumerate(images):
        width, height = image.size
        by_shape.setdefault((height, width, len(image.getbands())), []).append(i)
    for shape, members in by_shape.items():
        if min(shape[:2]) < 2:
            continue  # no neighbouring pixels: 0, as ``sharpness`` says
        step = max(1, SHARPNESS_BLOCK // max(1, int(np.prod(shape))))
        for start in range(0, len(members), step):
            block = members[start : start + step]
            count = len(block)
            stack = np.stack([np.asarray(images[i], dtype=np.float64).reshape(shape) for i in block])
            variance = stack.reshape(count, -1).var(axis=1)
            detail = (np.diff(stack, axis=1) ** 2).reshape(count, -1).mean(axis=1)
            detail += (np.diff(stack, axis=2) ** 2).reshape(count, -1).mean(axis=1)
            flat = variance <= 1e-12
            out[block] = np.where(flat, 0.0, detail / np.where(flat, 1.0, variance))
    return out


def _log_median(images: list[Image.Image]) -> float:
    return _log_median_of(sharpness_all(images))


def _log_median_of(values: np.ndarray) -> float:
    """Log of the median of the positive sharpness ``values`` (NaN when none is)."""
    values = values[values > 0]
    return float(np.log(np.median(values))) if values.size else float("nan")


def estimate_resolution(
    trusted: dict[int, list[Image.Image]],
    batch: dict[int, list[Image.Image]],
    *,
    min_records: int = MIN_RECORDS,
    seed: int = 0,
) -> Resolution | None:
    """The lower resolution the batch's images were captured at, or None: too few classes with
    ``min_records`` images each side (``MIN_CLASSES``), a batch no blurrier than chance, or a capture that
    most classes do not vote for or that does not explain the difference.

    ``trusted`` and ``batch`` map a class code to its images (decoded, in one mode, at their stored size).
    Flat images are left out on both sides (they show no capture), also when counting ``min_records``."""
    # Each image's sharpness is read once: the estimate reads each class's medians several times.
    sharp_trusted, sharp_batch = _sharpness_of(trusted), _sharpness_of(batch)
    trusted = {
        code: [img for img, v in zip(imgs, sharp_trusted[code], strict=True) if v > 0] for code, imgs in trusted.items()
    }
    sharp_trusted = {code: values[values > 0] for code, values in sharp_trusted.items()}
    sharp_batch = {code: values[values > 0] for code, values in sharp_batch.items()}
    batch_sizes = {code: int(values.size) for code, values in sharp_batch.items()}
    codes = [
        code
        for code in sorted(trusted.keys() & batch.keys())
        if len(trusted[code]) >= min_records and batch_sizes[code] >= min_records
    ]
    if len(codes) < MIN_CLASSES:
        return None
    rng = np.random.default_rng([seed, 29])
    targets, unchanged, chance = [], [], []
    for code in codes:
        targets.append(_log_median_of(sharp_batch[code]))
        unchanged.append(_log_median_of(sharp_trusted[code]))
        order = rng.permutation(len(trusted[code]))
        half = order.size // 2
        values = sharp_trusted[code]
        chance.append(abs(_log_median_of(values[order[:half]]) - _log_median_of(values[order[half:]])))
    gaps = [u - t for u, t in zip(unchanged, targets, strict=True)]
    if not np.all(np.isfinite(gaps)):
        return None
    gap = float(np.median(gaps))
    # A batch no blurrier than chance has no capture to find: said before any capture is tried, which is
    # most of the cost (every trusted image resized at every scale).
    if gap <= NOISE_FACTOR * float(np.median(chance)):
        return None
    votes = []
    by_scale: dict[float, list[float]] = {scale: [] for scale in SCALES}
    for code, target, kept in zip(codes, targets, unchanged, strict=True):
        distance = {1.0: abs(kept - target)}
        for scale in SCALES:
            captured = Resolution(scale, 0, 0.0, 0.0)
            distance[scale] = abs(_log_median([captured.degrade(img) for img in trusted[code]]) - target)
            by_scale[scale].append(distance[scale])
        votes.append(min(distance, key=lambda s: (distance[s], -s)))
    if 2 * sum(v < 1.0 for v in votes) <= len(codes):
        return None  # most classes are as sharp as their trusted images, or sharper
    scale = min(SCALES, key=lambda s: abs(s - float(np.median(votes))))
    left = float(np.median(by_scale[scale]))
    if left > 0.5 * gap:
        return None
    found = Resolution(scale=scale, classes=len(codes), sharpness=float(np.exp(-gap)), explained=1.0 - left / gap)
    # Only readings count: a trusted image the capture flattens (NaN) or that a second capture flattens
    # (inf) says nothing of how much a captured image loses, and one inf would let every record through.
    kept = [img for code in codes for img in trusted[code]]
    blocks = [
        found.details_lost([found.degrade(img) for img in kept[start : start + DETAIL_BLOCK]])
        for start in range(0, len(kept), DETAIL_BLOCK)
    ]
    losses = np.concatenate(blocks) if blocks else np.zeros(0)
    finite = losses[np.isfinite(losses)]
    if not finite.size:
        return None
    return Resolution(
        scale=found.scale,
        classes=found.classes,
        sharpness=found.sharpness,
        explained=found.explained,
        max_loss=float(np.quantile(finite, LOSS_QUANTILE)),
    )


def _sharpness_of(images: dict[int, list[Image.Image]]) -> dict[int, np.ndarray]:
    """Each class's images' sharpness, in order (0 for a flat image, which shows no capture)."""
    return {code: sharpness_all(imgs) for code, imgs in images.items()}
