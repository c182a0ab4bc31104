"""Benign situations of the eighth held-out set: NEVER TUNED ON (written 2026-12-07).

These situations are for measuring the gate, not for adjusting it: no threshold, option or detector
of the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not make what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the situation to the tuning set (``benchmarks.shifts.tuning``) and write a new
held-out one.

They are text, images and tables, each a clean, correctly labelled batch that differs from the trusted
one in a way the tuning set, the first seven held-out sets and the outside trial do not have: a British
mirror that writes the summaries with British spellings (``initialise``, ``colour``), a source that
writes every line in lower case, digits written with a thick felt-tip pen, digits a model finds hardest
(the nearest to another class, still correctly labelled), photos from a camera mounted sideways (every
crop turned a quarter turn), photos exported letterboxed (the scene scaled into a wide band between
black bars), a lab that measures magnesium in mmol/L and converts it back to mg/L before upload (the
same values to within a hundredth), a cultivar-balanced resample of the wines, and tumour measurements
exported in single precision (the same values to seven significant digits).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
from PIL import Image

from benchmarks import data
from benchmarks.data import LABEL
from benchmarks.shifts.base import (
    Situation,
    new_sensor,
    rewritten_column,
    rewritten_register,
    situation,
    sized_pool,
)

GROUP = "heldout8"

# --- text ---------------------------------------------------------------------------------------

BRITISH_WORDS = {
    "color": "colour",
    "colors": "colours",
    "behavior": "behaviour",
    "behaviors": "behaviours",
    "center": "centre",
    "centers": "centres",
    "catalog": "catalogue",
    "catalogs": "catalogues",
    "dialog": "dialogue",
    "dialogs": "dialogues",
    "analyze": "analyse",
    "analyzes": "analyses",
    "analyzer": "analyser",
    "favorite": "favourite",
    "license": "licence",
}
"""Whole lower-case words a British mirror spells its own way (besides ``-ize`` words, ``IZE_WORD``)."""
IZE_WORD = re.compile(r"(?<![\w-])([a-z]+)iz(e|es|ed|ing|er|ers|ation|ations)(?![\w-])")
"""An ``-ize`` word (``initialize``, ``synchronization``) written with ``-ise`` by a British mirror..."""
NOT_IZE = re.compile(r"(siz|seiz|priz|capsiz)$")
"""...unless the stem before ``iz`` ends a word that is spelt with a z everywhere (``size``, ``resize``,
``seize``, ``prize``)."""
PLAIN_WORD = re.compile(r"(?<![\w-])[a-z]+(?![\w-])")


def british(text: str) -> str:
    """``text`` with the summary (after the first `` - ``) in British spelling: ``-ize`` words as ``-ise``
    (``IZE_WORD``, not ``NOT_IZE``) and the words of ``BRITISH_WORDS``; page names are never touched."""
    names, sep, summary = text.partition(data.NAME_SEPARATOR)
    if not sep:
        return text

    def ise(m: re.Match[str]) -> str:
        stem = m.group(1)
        return m.group(0) if NOT_IZE.search(stem + "iz") else f"{stem}is{m.group(2)}"

    summary = IZE_WORD.sub(ise, summary)
    summary = PLAIN_WORD.sub(lambda m: BRITISH_WORDS.get(m.group(0), m.group(0)), summary)
    return f"{names}{sep}{summary}"


def lower_case(text: str) -> str:
    """``text`` in lower case, names and summary alike."""
    return text.lower()


def british_spelling_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines from a British mirror (``british``)."""
    return rewritten_register(
        "british_spelling_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        british,
        "NAME lines from a British mirror that respells the summaries: -ize words as -ise ('initialise', "
        "'synchronisation'), 'colour', 'behaviour', 'centre', 'catalogue'; page names as they are",
    )


def lower_case_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines in lower case (``lower_case``)."""
    return rewritten_register(
        "lower_case_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        lower_case,
        "NAME lines from a source that writes everything in lower case (page names, acronyms and summaries: "
        "'ca.pl - friendlier interface for openssl certificate programs')",
    )


# --- digits -------------------------------------------------------------------------------------

PEN_SPREAD = 0.6
"""A felt-tip pen: each pixel at least ``0.6`` of the ink of its darkest four-neighbour (strokes wider)."""
HARD_SHARE = 0.4
"""The share of the pool's digits, the hardest ones, a source sends (those nearest another class's mean)."""


def thick_pen(pixels: np.ndarray, spread: float = PEN_SPREAD) -> np.ndarray:
    """``pixels`` with the strokes widened: ``max(p, spread * max of the four neighbours)`` (zero padded)."""
    padded = np.pad(pixels, 1)
    neighbours = np.maximum.reduce([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
    return np.maximum(pixels, spread * neighbours)


def thick_pen_digits(seed: int = 0, size: str = "full") -> Situation:
    """Pool digits written with a thick pen (``thick_pen``)."""
    return new_sensor(
        "thick_pen_digits",
        GROUP,
        data.load_digits(),
        seed,
        size,
        thick_pen,
        f"digits written with a thick felt-tip pen: every stroke about a pixel wider, its edge at {PEN_SPREAD:.0%} "
        "of the ink of the stroke beside it",
        spread=PEN_SPREAD,
    )


def centroid_margins(baseline: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """For each digit of ``frame``: the distance to the nearest baseline class mean other than its own, less
    the distance to its own class's mean (small or negative: a digit near another class)."""
    classes = sorted(baseline[LABEL].unique())
    pixels = data.image_matrix(baseline)
    means = np.stack([pixels[(baseline[LABEL] == c).to_numpy()].mean(axis=0) for c in classes])
    dist = np.linalg.norm(data.image_matrix(frame)[:, None, :] - means[None, :, :], axis=2)
    own = np.array([classes.index(label) for label in frame[LABEL]])
    mine = dist[np.arange(len(frame)), own]
    dist[np.arange(len(frame)), own] = np.inf
    return dist.min(axis=1) - mine


def hardest_cases_digits(seed: int = 0, size: str = "full") -> Situation:
    """The ``HARD_SHARE`` of the pool digits of the smallest ``centroid_margins`` (ties by pool order), in pool
    order, labels as they are."""
    ds = data.load_digits()
    split, _, pool = sized_pool(ds, seed, size)
    margins = centroid_margins(split.baseline, pool)
    picked = np.sort(np.argsort(margins, kind="stable")[: round(HARD_SHARE * len(pool))])
    return situation(
        "hardest_cases_digits",
        "boundary_sample",
        GROUP,
        ds,
        split,
        pool.iloc[picked],
        f"a source that sends only the digits a simple model finds hardest: the {HARD_SHARE:.0%} of them nearest "
        "another class's mean shape (sloppy but correctly labelled)",
        share=HARD_SHARE,
        rows=picked.tolist(),
    )


# --- photos -------------------------------------------------------------------------------------

LETTERBOX_BAND = 24
"""A letterboxed export: the 32x32 scene scaled into a 32-wide, 24-high band, black bars of 4 rows above
and below."""


def rotated_mount(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` turned a quarter turn counter-clockwise (a camera mounted on its side)."""
    return np.rot90(pixels, k=1).copy()


def letterboxed(pixels: np.ndarray, band: int = LETTERBOX_BAND) -> np.ndarray:
    """``pixels`` (square, colour) scaled (bilinear) to ``band`` rows of the full width and centred between
    black bars."""
    side = pixels.shape[0]
    img = Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))
    scaled = np.asarray(img.resize((pixels.shape[1], band), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    out = np.zeros_like(pixels)
    top = (side - band) // 2
    out[top : top + band] = scaled
    return out


def rotated_mount_photos(seed: int = 0, size: str = "full") -> Situation:
    """Pool crops turned a quarter turn (``rotated_mount``)."""
    return new_sensor(
        "rotated_mount_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        rotated_mount,
        "photos from a camera mounted on its side and never rotated back: every crop turned a quarter turn "
        "(skies and horizons run up the left edge), the scenes and labels as they are",
    )


def letterboxed_photos(seed: int = 0, size: str = "full") -> Situation:
    """Pool crops letterboxed (``letterboxed``)."""
    return new_sensor(
        "letterboxed_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        letterboxed,
        f"photos exported letterboxed for a wide screen: each scene scaled into a {LETTERBOX_BAND}-row band of "
        f"the {data.PHOTO_SIDE}x{data.PHOTO_SIDE} frame between black bars",
        band=LETTERBOX_BAND,
    )


# --- tables -------------------------------------------------------------------------------------

MAGNESIUM = "magnesium"
MG_PER_MMOL = 24.305
"""Magnesium's molar mass: mg/L = mmol/L * 24.305."""
MMOL_DECIMALS = 3
"""The lab writes mmol/L to three decimals..."""
MG_DECIMALS = 2
"""...and uploads the converted mg/L to two (the trusted column holds whole numbers)."""


def via_mmol(mg: np.ndarray) -> np.ndarray:
    """``mg`` (mg/L) measured in mmol/L (``MMOL_DECIMALS``) and converted back to mg/L (``MG_DECIMALS``)."""
    return np.round(np.round(mg / MG_PER_MMOL, MMOL_DECIMALS) * MG_PER_MMOL, MG_DECIMALS)


def converted_magnesium_wine(seed: int = 0, size: str = "full") -> Situation:
    """Pool wines with ``MAGNESIUM`` through ``via_mmol``."""
    return rewritten_column(
        "converted_magnesium_wine",
        "rounding",
        GROUP,
        data.load_wine(),
        seed,
        size,
        MAGNESIUM,
        via_mmol,
        f"a lab that measures {MAGNESIUM} in mmol/L and converts it to mg/L before upload: the same values to "
        f"within a hundredth, written with {MG_DECIMALS} decimals where the trusted ones are whole numbers",
        column=MAGNESIUM,
        factor=MG_PER_MMOL,
    )


def balanced_cultivars_wine(seed: int = 0, size: str = "full") -> Situation:
    """As many pool wines of each cultivar as the rarest has (a seeded draw of each), shuffled."""
    ds = data.load_wine()
    split, rng, pool = sized_pool(ds, seed, size)
    least = int(pool[LABEL].value_counts().min())
    picked = np.concatenate(
        [np.sort(rng.choice(np.flatnonzero((pool[LABEL] == c).to_numpy()), least, replace=False)) for c in ds.classes]
    )
    return situation(
        "balanced_cultivars_wine",
        "class_prior",
        GROUP,
        ds,
        split,
        pool.iloc[picked].sample(frac=1.0, random_state=seed),
        f"a cultivar-balanced resample: {least} wines of each cultivar, drawn without replacement (the rarer "
        "cultivars more common than in the trusted data)",
        per_class=least,
    )


def single_precision_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    """Pool tumours with every measurement through single precision (``float32``) and back."""
    ds = data.load_breast_cancer()
    split, _, contribution = sized_pool(ds, seed, size)
    columns = [c.name for c in ds.schema.inputs]
    contribution[columns] = contribution[columns].to_numpy().astype(np.float32).astype(np.float64)
    return situation(
        "single_precision_breast_cancer",
        "rounding",
        GROUP,
        ds,
        split,
        contribution,
        "tumour measurements exported by a tool that stores single-precision floats: the same values to about "
        "seven significant digits (0.07871 arrives as 0.07870999723672867)",
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "british_spelling_text": british_spelling_text,
    "lower_case_text": lower_case_text,
    "thick_pen_digits": thick_pen_digits,
    "hardest_cases_digits": hardest_cases_digits,
    "rotated_mount_photos": rotated_mount_photos,
    "letterboxed_photos": letterboxed_photos,
    "converted_magnesium_wine": converted_magnesium_wine,
    "balanced_cultivars_wine": balanced_cultivars_wine,
    "single_precision_breast_cancer": single_precision_breast_cancer,
}
__all__ = [
    "SITUATIONS",
    "british",
    "centroid_margins",
    "letterboxed",
    "lower_case",
    "rotated_mount",
    "thick_pen",
    "via_mmol",
]
