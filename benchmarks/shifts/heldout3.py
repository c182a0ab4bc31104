"""Benign situations of the third held-out set: NEVER TUNED ON (written 2026-12-05).

These situations are for measuring the gate, not for adjusting it: no threshold, option or detector
of the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not make what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the situation to the tuning set (``benchmarks.shifts.tuning``) and write a new
held-out one.

They differ from the tuning set and the first two held-out sets in the change itself: summaries cut
to their first words by a listing page, punctuation replaced by spaces by a search-index export,
typographic dashes and quotes put in by a publishing system, mirrored photos, a tighter framing,
in-camera sharpening, digits from a bilevel (fax) scanner, one wine assay read with an offset, the
uncertain cases an active-learning loop asks a labeller for, and a sheet part of which was exported
twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks import data
from benchmarks.data import LABEL
from benchmarks.shifts.base import (
    Situation,
    new_sensor,
    parts,
    rewritten_register,
    situation,
)

GROUP = "heldout3"

# --- text ---------------------------------------------------------------------------------------

SUMMARY_WORDS = 4
"""A listing page shows the page name and only the first four words of its summary."""
EM_DASH = "\u2014"
RIGHT_QUOTE = "\u2019"
DOUBLE_QUOTES = ("\u201c", "\u201d")


def truncated_summary(text: str, words: int = SUMMARY_WORDS) -> str:
    """``text`` as a listing page shows it: the name, `` - `` and the first ``words`` words of the summary
    (no ellipsis: the page cuts at a word limit and marks nothing)."""
    name, sep, desc = text.partition(" - ")
    return f"{name}{sep}{' '.join(desc.split(' ')[:words])}"


def stripped_punctuation(text: str) -> str:
    """``text`` as a search-index export writes it: every character that is not a letter, a digit, an
    underscore or a space replaced by a space, runs of spaces collapsed (case kept)."""
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def typeset(text: str) -> str:
    """``text`` as a publishing system typesets it: the name/summary separator `` - `` an em dash,
    apostrophes curly, straight double quotes paired as opening and closing quotes."""
    out = text.replace(" - ", f" {EM_DASH} ", 1).replace("'", RIGHT_QUOTE)
    pieces = out.split('"')
    return "".join(p + (DOUBLE_QUOTES[i % 2] if i < len(pieces) - 1 else "") for i, p in enumerate(pieces))


def _rewritten(
    name: str, kind: str, rewrite: Callable[[str], str], seed: int, size: str, description: str
) -> Situation:
    """Pool man-page lines, each rewritten by ``rewrite``, labels kept (``rewritten_register``)."""
    return rewritten_register(name, GROUP, data.load_man_sections(), seed, size, rewrite, description, kind=kind)


def truncated_summary_text(seed: int = 0, size: str = "full") -> Situation:
    return _rewritten(
        "truncated_summary_text",
        "register",
        truncated_summary,
        seed,
        size,
        f"lines copied from a listing page that shows each page's name and only the first {SUMMARY_WORDS} words "
        "of its summary, cut without a mark",
    )


def stripped_punctuation_text(seed: int = 0, size: str = "full") -> Situation:
    return _rewritten(
        "stripped_punctuation_text",
        "register",
        stripped_punctuation,
        seed,
        size,
        "lines from a search-index export that replaces every punctuation mark (hyphens, dots, brackets, "
        "commas, the ' - ' separator) by a space",
    )


def typeset_text(seed: int = 0, size: str = "full") -> Situation:
    return _rewritten(
        "typeset_text",
        "register",
        typeset,
        seed,
        size,
        f"lines from a publishing system that typesets them: an em dash ({EM_DASH}) between name and summary, "
        "curly apostrophes and quotes",
    )


# --- images -------------------------------------------------------------------------------------

CROP_MARGIN = 2
"""A camera with a longer lens: the central 28x28 of every 32x32 crop, enlarged back to 32x32."""
SHARPEN_SIGMA = 1.0
SHARPEN_AMOUNT = 0.6
"""In-camera sharpening: an unsharp mask, ``p + 0.6 (p - gaussian(p, sigma=1))`` per channel."""
BILEVEL_THRESHOLD = 0.5
"""A fax or bilevel scanner: every pixel at or above half intensity is full ink, every other blank."""


def mirrored(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` mirrored left to right."""
    return pixels[:, ::-1].copy()


def tighter_crop(pixels: np.ndarray, margin: int = CROP_MARGIN) -> np.ndarray:
    """The centre of ``pixels`` (``margin`` pixels taken off every side) enlarged back to its size (bilinear)."""
    h, w = pixels.shape[:2]
    inner = np.clip(np.rint(pixels[margin : h - margin, margin : w - margin] * 255.0), 0, 255).astype(np.uint8)
    img = Image.fromarray(inner).resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def sharpened(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` after an unsharp mask of ``SHARPEN_AMOUNT`` at ``SHARPEN_SIGMA`` (per channel, no
    blurring across channels); the caller clips to 0..1."""
    sigma = (SHARPEN_SIGMA, SHARPEN_SIGMA, 0.0)[: pixels.ndim]
    return pixels + SHARPEN_AMOUNT * (pixels - ndimage.gaussian_filter(pixels, sigma=sigma, mode="nearest"))


def bilevel(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` thresholded at ``BILEVEL_THRESHOLD``: 1 (ink) or 0 (blank)."""
    return (pixels >= BILEVEL_THRESHOLD).astype(np.float32)


def mirrored_photos(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "mirrored_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        mirrored,
        "photo crops from a camera app that stores its pictures mirrored left to right (as a front camera does)",
    )


def tighter_crop_photos(seed: int = 0, size: str = "full") -> Situation:
    side = data.PHOTO_SIDE
    return new_sensor(
        "tighter_crop_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        tighter_crop,
        f"photo crops through a slightly longer lens: the central {side - 2 * CROP_MARGIN}x{side - 2 * CROP_MARGIN} "
        f"of each crop enlarged to {side}x{side}",
        margin=CROP_MARGIN,
    )


def sharpened_photos(seed: int = 0, size: str = "full") -> Situation:
    return new_sensor(
        "sharpened_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        sharpened,
        f"photo crops from a camera that sharpens in the camera: an unsharp mask of amount {SHARPEN_AMOUNT} "
        f"at sigma {SHARPEN_SIGMA}",
        amount=SHARPEN_AMOUNT,
        sigma=SHARPEN_SIGMA,
    )


def bilevel_fax_digits(seed: int = 0, size: str = "full", group: str = GROUP) -> Situation:
    return new_sensor(
        "bilevel_fax_digits",
        group,
        data.load_digits(),
        seed,
        size,
        bilevel,
        f"digits from forms sent by fax: a bilevel scan, every pixel full ink or blank (threshold {BILEVEL_THRESHOLD})",
        threshold=BILEVEL_THRESHOLD,
    )


# --- tabular ------------------------------------------------------------------------------------

OFFSET_COLUMN = "alcohol"
OFFSET = 0.3
"""A lab whose alcohol meter reads 0.3 % vol high (the column's sd is about 0.8); every other assay right."""
UNCERTAIN_SHARE = 0.5
"""The active-learning pick: the half of the pool a model trained on the baseline is least sure of."""
RESENT_SHARE = 0.2
"""Share of a field sheet's records that its export sent a second time."""


def alcohol_offset_wine(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_wine()
    split = parts(ds, seed, size)
    contribution = split.pool.copy()
    contribution[OFFSET_COLUMN] = contribution[OFFSET_COLUMN] + OFFSET
    return situation(
        "alcohol_offset_wine",
        "recalibration",
        GROUP,
        ds,
        split,
        contribution,
        f"a lab whose alcohol meter reads {OFFSET} % vol high: {OFFSET_COLUMN} {OFFSET} higher, the 12 other "
        "assays as they were",
        column=OFFSET_COLUMN,
        offset=OFFSET,
    )


def uncertainty(baseline: pd.DataFrame, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """How unsure a standardised logistic regression fitted on ``baseline`` is of each row of ``frame``:
    the absolute distance of its decision value from the boundary (smaller is less sure)."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(baseline[columns].to_numpy(), baseline[LABEL].to_numpy())
    return np.abs(model.decision_function(frame[columns].to_numpy()))


def uncertain_cases_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_breast_cancer()
    split = parts(ds, seed, size)
    columns = [c.name for c in ds.schema.inputs]
    margin = uncertainty(split.baseline, split.pool, columns)
    keep = np.sort(np.argsort(margin, kind="stable")[: round(UNCERTAIN_SHARE * len(split.pool))])
    return situation(
        "uncertain_cases_breast_cancer",
        "boundary_sample",
        GROUP,
        ds,
        split,
        split.pool.iloc[keep],
        f"an active-learning round: the {UNCERTAIN_SHARE:.0%} of the pool a logistic regression trained on the "
        "baseline is least sure of, sent to a pathologist and labelled by the biopsy (every label right)",
        share=UNCERTAIN_SHARE,
        largest_margin=float(margin[keep].max()),
    )


def resent_rows_iris(seed: int = 0, size: str = "full") -> Situation:
    ds = data.load_iris()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    sheet = split.pool.reset_index(drop=True)
    again = np.sort(rng.choice(len(sheet), size=round(RESENT_SHARE * len(sheet)), replace=False))
    contribution = pd.concat([sheet, sheet.iloc[again]], ignore_index=True)
    order = rng.permutation(len(contribution))
    return situation(
        "resent_rows_iris",
        "self_duplicates",
        GROUP,
        ds,
        split,
        contribution.iloc[order],
        f"a field sheet part of which the export sent twice: {RESENT_SHARE:.0%} of its records appear a second time "
        "in the same batch (copies of its own records, not of trusted ones)",
        share=RESENT_SHARE,
        resent_rows=np.flatnonzero(order >= len(sheet)).tolist(),
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "truncated_summary_text": truncated_summary_text,
    "stripped_punctuation_text": stripped_punctuation_text,
    "typeset_text": typeset_text,
    "mirrored_photos": mirrored_photos,
    "tighter_crop_photos": tighter_crop_photos,
    "sharpened_photos": sharpened_photos,
    "alcohol_offset_wine": alcohol_offset_wine,
    "uncertain_cases_breast_cancer": uncertain_cases_breast_cancer,
    "resent_rows_iris": resent_rows_iris,
}
__all__ = [
    "SITUATIONS",
    "bilevel",
    "mirrored",
    "sharpened",
    "stripped_punctuation",
    "tighter_crop",
    "truncated_summary",
    "typeset",
    "uncertainty",
]
