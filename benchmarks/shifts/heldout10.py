"""Benign situations of the tenth held-out set: NEVER TUNED ON (written 2026-12-07).

These situations are for measuring the gate, not for adjusting it: no threshold, option or detector
of the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not make what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the situation to the tuning set (``benchmarks.shifts.tuning``) and write a new
held-out one.

They are text, images and tables, each a clean, correctly labelled batch that differs from the trusted
one in a way the tuning set, the first nine held-out sets and the outside trial do not have: a style
guide that sets the separator between names and summary as a spaced em dash (``nproc — print ...``), a
catalogue that writes ``&`` for the word ``and`` in summaries, pages scraped with their ``NAME`` heading
kept in front of the line, photos from a camera that stores colour at half resolution (4:2:0 chroma
subsampling: brightness untouched, colour averaged over 2x2 blocks), photos from a phone's vivid mode
(every pixel's colour pushed 30% further from its grey, brightness kept), digits from a writer whose hand
leans right (each row shifted along a shear), wines that are a cooperative's blends of two lots of the
same cultivar (each row the average of two pool wines of one class), irises measured from a herbarium's
dried, pressed specimens (every length and width shrunk by 8%), and tumours whose area is reported by
an image-analysis program that computes it from the radius (``pi * r**2``) instead of counting pixels.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.data import LABEL
from benchmarks.shifts.base import (
    Situation,
    new_sensor,
    rewritten_register,
    situation,
    sized_pool,
)
from benchmarks.shifts.heldout7 import decimals

GROUP = "heldout10"

# --- text ---------------------------------------------------------------------------------------

EM_DASH_SEPARATOR = " \u2014 "
"""A spaced em dash, where the shipped lines have a spaced hyphen (``data.NAME_SEPARATOR``)."""


def em_dash(text: str) -> str:
    """``text`` with its first separator (`` - ``) written as ``EM_DASH_SEPARATOR``; hyphens elsewhere (in names,
    in the summary) and a line without a separator as they are."""
    names, sep, summary = text.partition(data.NAME_SEPARATOR)
    return f"{names}{EM_DASH_SEPARATOR}{summary}" if sep else text


AND_WORD = re.compile(r"(?<=\s)and(?=\s)")
"""The word ``and`` (lower case, between spaces)."""


def ampersand(text: str) -> str:
    """``text`` with every word ``and`` of its summary (after the first `` - ``) written ``&``; names as they are."""
    names, sep, summary = text.partition(data.NAME_SEPARATOR)
    if not sep:
        return text
    return f"{names}{sep}{AND_WORD.sub('&', f' {summary} ')[1:-1]}"


HEADING = "NAME"
"""The man page's section heading a scraper kept in front of the line."""


def with_heading(text: str) -> str:
    """``text`` with the ``HEADING`` and a space in front (``NAME nproc - print ...``)."""
    return f"{HEADING} {text}"


def em_dash_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines with an em-dash separator (``em_dash``)."""
    return rewritten_register(
        "em_dash_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        em_dash,
        "NAME lines from a documentation site whose style guide sets the separator between the names and the "
        "summary as a spaced em dash ('nproc \u2014 print the number of processing units available'); hyphens "
        "inside names and summaries as they are",
    )


def ampersand_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines with ``&`` for ``and`` (``ampersand``)."""
    return rewritten_register(
        "ampersand_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        ampersand,
        "NAME lines from a catalogue that writes '&' for the word 'and' in summaries ('show / manipulate "
        "routing, network devices, interfaces & tunnels'); names and every other word as they are",
    )


def name_heading_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines with the ``NAME`` heading in front (``with_heading``)."""
    return rewritten_register(
        "name_heading_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        with_heading,
        f"NAME lines scraped with the section heading kept: every line starts with '{HEADING} ' (the heading and "
        "the line joined when line breaks were collapsed), the line itself as it is",
    )


# --- photos -------------------------------------------------------------------------------------

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""BT.601 luma weights (R, G, B)."""
CB_SCALE, CR_SCALE = 1.772, 1.402
"""Full-range BT.601: ``Cb = (B - Y) / 1.772``, ``Cr = (R - Y) / 1.402``."""


def to_ycbcr(pixels: np.ndarray) -> np.ndarray:
    """Colour ``pixels`` (0..1) as full-range BT.601 (Y, Cb, Cr), Cb and Cr centred on 0."""
    y = pixels @ LUMA
    return np.stack([y, (pixels[..., 2] - y) / CB_SCALE, (pixels[..., 0] - y) / CR_SCALE], axis=-1)


def from_ycbcr(ycc: np.ndarray) -> np.ndarray:
    """The inverse of ``to_ycbcr`` (not clipped)."""
    y, cb, cr = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    r = y + CR_SCALE * cr
    b = y + CB_SCALE * cb
    g = (y - LUMA[0] * r - LUMA[2] * b) / LUMA[1]
    return np.stack([r, g, b], axis=-1)


CHROMA_BLOCK = 2
"""4:2:0: one colour sample per 2x2 block of pixels."""


def chroma_subsampled(pixels: np.ndarray, block: int = CHROMA_BLOCK) -> np.ndarray:
    """``pixels`` (colour, sides a multiple of ``block``) with Cb and Cr each averaged over ``block`` x ``block``
    blocks and repeated back over the block (a box filter, as a simple decoder upsamples); luma untouched."""
    ycc = to_ycbcr(pixels.astype(np.float32))
    h, w = pixels.shape[:2]
    chroma = ycc[..., 1:].reshape(h // block, block, w // block, block, 2).mean(axis=(1, 3))
    ycc[..., 1:] = np.repeat(np.repeat(chroma, block, axis=0), block, axis=1)
    return np.clip(from_ycbcr(ycc), 0.0, 1.0)


def chroma_subsampled_photos(seed: int = 0, size: str = "full") -> Situation:
    """Pool crops through ``chroma_subsampled``."""
    return new_sensor(
        "chroma_subsampled_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        chroma_subsampled,
        "photos from a camera that stores colour at half resolution (4:2:0 chroma subsampling): brightness "
        f"of every pixel as it was, colour (Cb, Cr) averaged over {CHROMA_BLOCK}x{CHROMA_BLOCK} blocks (colour "
        "bleeds a pixel across sharp edges)",
        block=CHROMA_BLOCK,
    )


VIVID = 1.3
"""A phone's vivid mode: every pixel's colour 30% further from its own grey (its luma)."""


def vivid(pixels: np.ndarray, gain: float = VIVID) -> np.ndarray:
    """``pixels`` (colour) with each pixel's distance from its luma grey scaled by ``gain`` (clipped to 0..1)."""
    y = (pixels @ LUMA)[..., None]
    return np.clip(y + gain * (pixels - y), 0.0, 1.0)


def vivid_mode_photos(seed: int = 0, size: str = "full") -> Situation:
    """Pool crops through ``vivid``."""
    return new_sensor(
        "vivid_mode_photos",
        GROUP,
        data.load_photos(),
        seed,
        size,
        vivid,
        f"photos from a phone left in its vivid mode: every pixel's colour {VIVID - 1:.0%} further from its grey "
        "(more saturated sky, petals and leaves), its brightness kept (up to clipping)",
        gain=VIVID,
    )


# --- digits -------------------------------------------------------------------------------------

SLANT = 0.25
"""A hand that leans right: each row of the 8x8 digit shifted by 0.25 pixel per row from the middle (the top
row 0.875 pixel right, the bottom row 0.875 pixel left)."""


def slanted(pixels: np.ndarray, slant: float = SLANT) -> np.ndarray:
    """``pixels`` (a grey digit) sheared: row ``r`` moved ``slant * ((h - 1) / 2 - r)`` pixels right (linear
    interpolation, blank where nothing moved in)."""
    h, w = pixels.shape
    columns = np.arange(w, dtype=np.float32)
    out = np.zeros_like(pixels)
    for r in range(h):
        out[r] = np.interp(columns - slant * ((h - 1) / 2 - r), columns, pixels[r], left=0.0, right=0.0)
    return out


def slanted_hand_digits(seed: int = 0, size: str = "full") -> Situation:
    """Pool digits through ``slanted``."""
    return new_sensor(
        "slanted_hand_digits",
        GROUP,
        data.load_digits(),
        seed,
        size,
        slanted,
        f"digits from a writer whose hand leans right: every digit sheared ({SLANT:g} pixel per row, the top "
        "leaning right of the bottom), the strokes' ink and the labels as they are",
        slant=SLANT,
    )


# --- tables -------------------------------------------------------------------------------------


def blend_pairs(pool: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Pairs of row positions of ``pool`` (an (n, 2) array), each of one class, every row in at most one pair:
    the rows of each class in a seeded order, taken two by two (an odd one out is left over), pairs in the
    order of their first row."""
    pairs = []
    for label in sorted(pool[LABEL].unique()):
        rows = rng.permutation(np.flatnonzero((pool[LABEL] == label).to_numpy()))
        pairs.extend(rows[: len(rows) // 2 * 2].reshape(-1, 2))
    pairs = np.array(pairs, dtype=int).reshape(-1, 2)
    return pairs[np.argsort(pairs.min(axis=1), kind="stable")]


def blended_rows(pool: pd.DataFrame, pairs: np.ndarray, columns: list[str], places: dict[str, int]) -> pd.DataFrame:
    """One row per pair: the average of its two rows' ``columns``, each written to its ``places`` decimals, and
    the first row's label (both are one class)."""
    values = (pool[columns].to_numpy(dtype=float)[pairs[:, 0]] + pool[columns].to_numpy(dtype=float)[pairs[:, 1]]) / 2
    out = pd.DataFrame({c: np.round(values[:, j], places[c]) for j, c in enumerate(columns)})
    out[LABEL] = pool[LABEL].to_numpy()[pairs[:, 0]]
    return out


def cultivar_blends_wine(seed: int = 0, size: str = "full") -> Situation:
    """Pool wines blended two by two within a cultivar (``blend_pairs``, ``blended_rows``)."""
    ds = data.load_wine()
    split, rng, pool = sized_pool(ds, seed, size)
    columns = [c.name for c in ds.schema.inputs]
    places = {c: decimals(ds.frame[c].to_numpy()) for c in columns}
    pairs = blend_pairs(pool, rng)
    return situation(
        "cultivar_blends_wine",
        "covariate_shift",
        GROUP,
        ds,
        split,
        blended_rows(pool, pairs, columns, places),
        "a cooperative that sends its blends: each wine an equal blend of two lots of the same cultivar, every "
        "assay the average of the two lots' (written to the trusted decimals), the cultivar as it is",
        pairs=pairs.tolist(),
    )


SHRINK = 0.92
"""Pressed and dried, a flower's sepals and petals shrink: each length and width 92% of the fresh one."""


def dried_specimens_iris(seed: int = 0, size: str = "full") -> Situation:
    """Pool irises with every measurement times ``SHRINK``, written to the trusted one decimal."""
    ds = data.load_iris()
    split, _, contribution = sized_pool(ds, seed, size)
    columns = [c.name for c in ds.schema.inputs]
    contribution[columns] = np.round(contribution[columns].to_numpy(dtype=float) * SHRINK, 1)
    return situation(
        "dried_specimens_iris",
        "covariate_shift",
        GROUP,
        ds,
        split,
        contribution,
        f"irises measured from a herbarium's dried, pressed specimens: every sepal and petal length and width "
        f"{SHRINK:.0%} of the fresh flower's (written to one decimal), the species as they are",
        shrink=SHRINK,
    )


AREA_FROM_RADIUS = {"mean_area": "mean_radius", "worst_area": "worst_radius"}
"""The areas the program computes, each from its radius."""


def computed_area_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    """Pool tumours with each ``AREA_FROM_RADIUS`` area written as ``pi * radius**2`` (to the trusted column's
    decimals), every other measurement and label as it is."""
    ds = data.load_breast_cancer()
    split, _, contribution = sized_pool(ds, seed, size)
    for area, radius in AREA_FROM_RADIUS.items():
        places = decimals(ds.frame[area].to_numpy())
        contribution[area] = np.round(np.pi * contribution[radius].to_numpy(dtype=float) ** 2, places)
    return situation(
        "computed_area_breast_cancer",
        "recalibration",
        GROUP,
        ds,
        split,
        contribution,
        "a hospital whose image-analysis program computes a nucleus's area from its radius (pi * r**2, a "
        "perfect circle) instead of counting the pixels inside the outline: mean_area and worst_area about 2% "
        "larger on average, the radius and every other measurement as they are",
        areas=dict(AREA_FROM_RADIUS),
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "em_dash_text": em_dash_text,
    "ampersand_text": ampersand_text,
    "name_heading_text": name_heading_text,
    "chroma_subsampled_photos": chroma_subsampled_photos,
    "vivid_mode_photos": vivid_mode_photos,
    "slanted_hand_digits": slanted_hand_digits,
    "cultivar_blends_wine": cultivar_blends_wine,
    "dried_specimens_iris": dried_specimens_iris,
    "computed_area_breast_cancer": computed_area_breast_cancer,
}
__all__ = [
    "SITUATIONS",
    "ampersand",
    "blend_pairs",
    "blended_rows",
    "chroma_subsampled",
    "em_dash",
    "from_ycbcr",
    "slanted",
    "to_ycbcr",
    "vivid",
    "with_heading",
]
