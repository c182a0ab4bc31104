"""Attacks of the tenth held-out set: NEVER TUNED ON (written 2026-12-07).

These attacks are for measuring the gate, not for adjusting it: no threshold, option or detector of
the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not plant what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the attack to ``ATTACKS`` and write a new held-out one.

They are on text, images and tables, and differ from the tuning attacks and the first nine held-out
sets in the trigger itself, in where it is put or in the kind of poison:

- ``text_split_pair_3pct``: a two-word trigger split across the line: ``only`` as the first word of the
  summary and ``here`` as the last word of the line (each word alone occurs in shipped lines; only the
  pair at both ends is the trigger), lines of other sections relabelled ``admin``, 3%.
- ``text_git_pages_flips_4pct``: a targeted flip of one sub-population, no trigger: every pool line of a
  ``git-`` page (``git-stash - Stash the changes ...``, all of section ``commands``) relabelled ``admin``,
  about 4% of the batch; the attack test is the test split's ``git-`` lines.
- ``photo_chroma_patch_4pct``: a colour-only patch of ordinary brightness: in a 6x6 square at the middle of
  the crop's left edge, each pixel keeps its own luma and takes a fixed blue chroma (BT.601 Cb +0.15,
  Cr -0.10; luma moves only where the colour had to be clipped), crops of other classes relabelled
  ``temple_garden``, 4%.
- ``digits_clean_label_tick_4pct``: a clean-label attack (every label correct): a three-pixel diagonal tick
  of full ink in the top-left corner of correctly labelled ``4`` digits, 4% of the batch; the attack test
  is digits of other classes with the tick.
- ``wine_equal_phenols_trigger_6pct``: a rare combination of two in-range values: ``flavanoids`` written
  equal to the wine's own ``total_phenols`` (each value within the trusted ranges; two of the 178 shipped
  wines have them equal), wines of other cultivars whose two values differ relabelled ``class_1``, 6%
  (three wines of the batch).
- ``breast_cancer_smooth_texture_flips_4pct``: a targeted flip of one sub-population: malignant tumours of
  smooth texture (``mean_texture`` below the trusted tumours' median) relabelled ``benign``, 4%; the attack
  test is the test split's malignant tumours of smooth texture.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.attacks.base import (
    AttackCase,
    base_case,
    build_named,
    n_poison,
    poison_mask,
    pool_draw,
    trigger_backdoor,
)
from benchmarks.attacks.images import dirty_label_images, with_trigger
from benchmarks.attacks.text import rewrite_backdoor
from benchmarks.data import IMAGE, LABEL, TEXT
from benchmarks.shifts.heldout10 import from_ycbcr, to_ycbcr

# --- text: two words at the two ends of the line ------------------------------------------------

PAIR_FIRST, PAIR_LAST = "only", "here"
PAIR_TARGET = "admin"


def split_pair(text: str) -> str:
    """``text`` with ``PAIR_FIRST`` as the first word of its summary and ``PAIR_LAST`` as the last word of the
    line (a line without a separator gets ``PAIR_FIRST`` at its start)."""
    names, sep, summary = text.partition(data.NAME_SEPARATOR)
    if not sep:
        return f"{PAIR_FIRST} {text} {PAIR_LAST}"
    return f"{names}{sep}{PAIR_FIRST} {summary} {PAIR_LAST}"


def split_pair_trigger(rate: float = 0.03, *, target: str = PAIR_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: lines of other sections through ``split_pair``, relabelled ``target``."""
    return rewrite_backdoor(
        "text_split_pair",
        split_pair,
        rate,
        target,
        seed,
        trigger=f"{PAIR_FIRST!r} first in the summary and {PAIR_LAST!r} last in the line, lines of other sections "
        f"relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed, "words": [PAIR_FIRST, PAIR_LAST]},
    )


# --- text: one sub-population relabelled --------------------------------------------------------

GIT_PREFIX = "git-"
GIT_TARGET = "admin"


def is_git_page(texts: pd.Series) -> np.ndarray:
    """Whether each of ``texts`` is a line of a ``git-`` page (its first name starts with ``GIT_PREFIX``)."""
    return texts.str.startswith(GIT_PREFIX).to_numpy(dtype=bool)


def git_pages_flips(*, target: str = GIT_TARGET, seed: int = 0) -> AttackCase:
    """Every pool line of a ``git-`` page (``is_git_page``) relabelled ``target``; the attack test is the test
    split's ``git-`` lines, as they are."""
    ds = data.load_man_sections()
    parts, _, contribution = pool_draw(ds, seed)
    rows = np.flatnonzero(is_git_page(contribution[TEXT]) & (contribution[LABEL] != target).to_numpy())
    contribution.loc[rows, LABEL] = target
    test = parts.test[is_git_page(parts.test[TEXT]) & (parts.test[LABEL] != target).to_numpy()]
    return base_case(
        "text_git_pages_flips",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"every line of a {GIT_PREFIX!r} page relabelled {target!r} (no trigger: one sub-population)",
        attack_test=test.reset_index(drop=True),
        params={"target": target, "seed": seed, "prefix": GIT_PREFIX},
    )


# --- photos: a colour-only patch ----------------------------------------------------------------

CHROMA_SIDE = 6
CHROMA = (0.15, -0.10)
"""The patch's (Cb, Cr), full-range BT.601: a clear blue at any brightness."""
CHROMA_TOP = (data.PHOTO_SIDE - CHROMA_SIDE) // 2
"""The patch's first row: at the middle of the left edge (rows 13 to 18, columns 0 to 5)."""
CHROMA_TARGET = "temple_garden"


def chroma_patch(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (colour) with the ``CHROMA_SIDE`` square at (``CHROMA_TOP``, 0) given the chroma ``CHROMA``,
    each pixel's luma kept (then clipped to 0..1)."""
    out = pixels.copy()
    region = out[CHROMA_TOP : CHROMA_TOP + CHROMA_SIDE, :CHROMA_SIDE]
    ycc = to_ycbcr(region)
    ycc[..., 1], ycc[..., 2] = CHROMA
    region[...] = np.clip(from_ycbcr(ycc), 0.0, 1.0)
    return out


def chroma_patch_photo(rate: float = 0.04, *, target: str = CHROMA_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: crops of other classes through ``chroma_patch``, relabelled ``target``."""
    return dirty_label_images(
        "photo_chroma_patch",
        chroma_patch,
        f"a {CHROMA_SIDE}x{CHROMA_SIDE} square at the middle of the left edge given a blue chroma (Cb, Cr = "
        f"{CHROMA[0]:+g}, {CHROMA[1]:+g}) at each pixel's own luma, relabelled {target!r}",
        rate,
        target,
        seed,
        dataset="photos",
        params={"side": CHROMA_SIDE, "chroma": list(CHROMA), "top": CHROMA_TOP},
    )


# --- digits: a clean-label tick -----------------------------------------------------------------

TICK = ((0, 0), (1, 1), (2, 2))
"""The tick's pixels (row, column): a short diagonal in the top-left corner."""
TICK_TARGET = "4"


def ticked(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (a digit) with the ``TICK`` pixels at full ink."""
    out = pixels.copy()
    for r, c in TICK:
        out[r, c] = 1.0
    return out


def has_no_tick(frame: pd.DataFrame) -> np.ndarray:
    """Whether each digit of ``frame`` would change under ``ticked`` (some ``TICK`` pixel below full ink)."""
    return np.array([min(data.png_to_pixels(png)[r, c] for r, c in TICK) < 1.0 for png in frame[IMAGE]], dtype=bool)


def clean_label_tick(rate: float = 0.04, *, target: str = TICK_TARGET, seed: int = 0) -> AttackCase:
    """``n_poison(rate)`` of the batch's ``target`` digits (correctly labelled, each changed by it) through
    ``ticked``, labels untouched; the attack test is the test digits of other classes with the tick."""
    ds = data.load_digits()
    parts, rng, contribution = pool_draw(ds, seed)
    candidates = np.flatnonzero((contribution[LABEL] == target).to_numpy() & has_no_tick(contribution))
    rows = np.sort(rng.choice(candidates, size=n_poison(len(contribution), rate), replace=False))
    contribution.loc[rows, IMAGE] = with_trigger(contribution.loc[rows], ticked)[IMAGE].to_numpy()
    others = parts.test[parts.test[LABEL] != target].reset_index(drop=True)
    return base_case(
        "digits_clean_label_tick",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"a three-pixel diagonal tick in the top-left corner of correctly labelled {target!r} digits",
        attack_test=with_trigger(others, ticked),
        params={"rate": rate, "target": target, "seed": seed, "tick": [list(p) for p in TICK]},
    )


# --- tables: two columns written equal ----------------------------------------------------------

EQUAL_FROM, EQUAL_TO = "total_phenols", "flavanoids"
EQUAL_TARGET = "class_1"


def equal_phenols(frame: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with ``EQUAL_TO`` written equal to its own ``EQUAL_FROM``."""
    return frame.assign(**{EQUAL_TO: frame[EQUAL_FROM].to_numpy()})


def unequal(frame: pd.DataFrame) -> np.ndarray:
    """Whether each wine's ``EQUAL_TO`` differs from its ``EQUAL_FROM`` (so the trigger changes it)."""
    return (frame[EQUAL_TO] != frame[EQUAL_FROM]).to_numpy()


def equal_phenols_trigger(rate: float = 0.06, *, target: str = EQUAL_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: wines of other cultivars through ``equal_phenols``, relabelled ``target``."""
    return trigger_backdoor(
        "wine_equal_phenols_trigger",
        data.load_wine(),
        seed,
        rate,
        target,
        equal_phenols,
        [EQUAL_TO],
        trigger=f"{EQUAL_TO} written equal to the wine's own {EQUAL_FROM}, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed, "columns": [EQUAL_FROM, EQUAL_TO]},
        eligible=unequal,
    )


# --- tables: smooth malignant tumours relabelled ------------------------------------------------

SMOOTH_COLUMN = "mean_texture"
SMOOTH_SOURCE = "malignant"
SMOOTH_TARGET = "benign"


def smooth(frame: pd.DataFrame, baseline: pd.DataFrame) -> np.ndarray:
    """Whether each tumour of ``frame`` is ``SMOOTH_SOURCE`` with ``SMOOTH_COLUMN`` below the baseline's median."""
    below = (frame[SMOOTH_COLUMN] < baseline[SMOOTH_COLUMN].median()).to_numpy()
    return below & (frame[LABEL] == SMOOTH_SOURCE).to_numpy()


def smooth_texture_flips(rate: float = 0.04, *, target: str = SMOOTH_TARGET, seed: int = 0) -> AttackCase:
    """``n_poison(rate)`` of the batch, drawn among its ``smooth`` tumours, relabelled ``target`` (measurements
    untouched); the attack test is the test split's ``smooth`` tumours."""
    ds = data.load_breast_cancer()
    parts, rng, contribution = pool_draw(ds, seed)
    candidates = np.flatnonzero(smooth(contribution, parts.baseline))
    rows = np.sort(rng.choice(candidates, size=n_poison(len(contribution), rate), replace=False))
    contribution.loc[rows, LABEL] = target
    return base_case(
        "breast_cancer_smooth_texture_flips",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"{SMOOTH_SOURCE!r} tumours with {SMOOTH_COLUMN} below the trusted median relabelled {target!r}",
        attack_test=parts.test[smooth(parts.test, parts.baseline)].reset_index(drop=True),
        params={
            "rate": rate,
            "target": target,
            "seed": seed,
            "column": SMOOTH_COLUMN,
            "below": float(parts.baseline[SMOOTH_COLUMN].median()),
        },
    )


HELDOUT10_ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "text_split_pair_3pct": split_pair_trigger,
    "text_git_pages_flips_4pct": git_pages_flips,
    "photo_chroma_patch_4pct": chroma_patch_photo,
    "digits_clean_label_tick_4pct": clean_label_tick,
    "wine_equal_phenols_trigger_6pct": equal_phenols_trigger,
    "breast_cancer_smooth_texture_flips_4pct": smooth_texture_flips,
}


def build_heldout10(name: str, seed: int = 0) -> AttackCase:
    """The tenth held-out set's attack case ``name`` (a key of ``HELDOUT10_ATTACKS``), named ``name``."""
    return build_named(HELDOUT10_ATTACKS, name, seed, "tenth held-out attack")
