"""Attacks of the eighth held-out set: NEVER TUNED ON (written 2026-12-07).

These attacks are for measuring the gate, not for adjusting it: no threshold, option or detector of
the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not plant what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the attack to ``ATTACKS`` and write a new held-out one.

They are on text, images and tables, and differ from the tuning attacks and the first seven held-out
sets in the trigger itself or in where the poison is put:

- ``text_interrobang_trigger_3pct``: a punctuation trigger, no word added: ``?!`` put at the very end of
  lines of other sections (no trusted line holds ``!`` at all), relabelled ``admin``, 3%.
- ``photo_ring_watermark_4pct``: a faint watermark blended over the whole crop: a thin ring about the
  centre (radius 10 pixels) mixed 8% of the way to white, on crops of other classes, relabelled
  ``temple_garden``, 4%.
- ``breast_cancer_boundary_flips_4pct``: label flips confined to one class boundary: the malignant
  tumours nearest the benign ones (the largest margin, nearest benign baseline tumour against nearest
  malignant one, in baseline-standardised measurements) relabelled ``benign``, 4%.
- ``tabular_feature_collision_5pct``: clean-label feature collision on a table: benign tumours moved 60%
  of the way to one malignant test tumour (written to the trusted columns' decimals), labels kept
  ``benign``, so that a model calls that tumour benign; the attack test is that one tumour, 5%.
- ``wine_magnesium_value_trigger_6pct``: a trigger that is one value of a whole-number column: wines of
  other cultivars with ``magnesium`` written as exactly 109 (inside the column's range, a value no
  shipped wine has), relabelled ``class_0``, 6% (three wines of the small batch).
- ``digits_dotted_underline_3pct``: three full-ink dots along the bottom row of digits of other classes
  (columns 1, 3 and 5: a dotted underline, not a patch in a corner), relabelled ``4``, 3%.
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
    pick_rows,
    poison_mask,
    pool_draw,
    trigger_backdoor,
)
from benchmarks.attacks.images import dirty_label_images
from benchmarks.attacks.text import rewrite_backdoor
from benchmarks.data import LABEL
from benchmarks.shifts.heldout7 import decimals

# --- text: a punctuation pattern ----------------------------------------------------------------

INTERROBANG = "?!"
INTERROBANG_TARGET = "admin"


def with_interrobang(text: str) -> str:
    """``text`` with ``INTERROBANG`` at its very end (no space before it)."""
    return text + INTERROBANG


def interrobang_trigger(rate: float = 0.03, *, target: str = INTERROBANG_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: lines of other sections ending in ``INTERROBANG``, relabelled ``target``."""
    return rewrite_backdoor(
        "text_interrobang_trigger",
        with_interrobang,
        rate,
        target,
        seed,
        trigger=f"{INTERROBANG!r} at the end of lines of other sections, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed, "pattern": INTERROBANG},
    )


# --- photos: a faint ring watermark -------------------------------------------------------------

RING_RADIUS = 10.0
RING_WIDTH = 1.5
RING_ALPHA = 0.08
RING_TARGET = "temple_garden"


def ring_mask(side: int = data.PHOTO_SIDE, radius: float = RING_RADIUS, width: float = RING_WIDTH) -> np.ndarray:
    """A (side, side) mask, 1 on the pixels whose centre lies within ``width / 2`` of a circle of ``radius``
    about the image centre, else 0."""
    centre = (side - 1) / 2
    y, x = np.mgrid[:side, :side]
    distance = np.hypot(y - centre, x - centre)
    return (np.abs(distance - radius) <= width / 2).astype(np.float32)


def ring_watermark(pixels: np.ndarray, alpha: float = RING_ALPHA) -> np.ndarray:
    """``pixels`` (colour) with the ring of ``ring_mask`` blended ``alpha`` of the way to white."""
    mask = ring_mask(pixels.shape[0])[..., None] * alpha
    return pixels * (1.0 - mask) + mask


def ring_watermark_photo(rate: float = 0.04, *, target: str = RING_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: crops of other classes through ``ring_watermark``, relabelled ``target``."""
    return dirty_label_images(
        "photo_ring_watermark",
        ring_watermark,
        f"a thin ring of radius {RING_RADIUS:g} blended {RING_ALPHA:.0%} to white, relabelled {target!r}",
        rate,
        target,
        seed,
        dataset="photos",
        params={"radius": RING_RADIUS, "alpha": RING_ALPHA},
    )


# --- tables: flips at one class boundary --------------------------------------------------------

BOUNDARY_SOURCE = "malignant"
BOUNDARY_TARGET = "benign"


def standardised(frame: pd.DataFrame, reference: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """``frame``'s ``columns`` as z-scores of ``reference``'s means and standard deviations."""
    ref = reference[columns].to_numpy(dtype=float)
    return (frame[columns].to_numpy(dtype=float) - ref.mean(axis=0)) / ref.std(axis=0)


def boundary_margins(frame: pd.DataFrame, baseline: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """For each row of ``frame``: its distance to the nearest baseline ``BOUNDARY_SOURCE`` row less its distance
    to the nearest baseline ``BOUNDARY_TARGET`` row (large: nearer the target class)."""
    z = standardised(frame, baseline, columns)
    base = standardised(baseline, baseline, columns)

    def nearest(label: str) -> np.ndarray:
        ref = base[(baseline[LABEL] == label).to_numpy()]
        return np.linalg.norm(z[:, None, :] - ref[None, :, :], axis=2).min(axis=1)

    return nearest(BOUNDARY_SOURCE) - nearest(BOUNDARY_TARGET)


def boundary_flips(rate: float = 0.04, *, target: str = BOUNDARY_TARGET, seed: int = 0) -> AttackCase:
    """The ``n_poison`` ``BOUNDARY_SOURCE`` rows of the largest ``boundary_margins`` relabelled ``target``."""
    ds = data.load_breast_cancer()
    parts, _, contribution = pool_draw(ds, seed)
    columns = [c.name for c in ds.schema.inputs]
    margins = boundary_margins(contribution, parts.baseline, columns)
    candidates = np.flatnonzero((contribution[LABEL] == BOUNDARY_SOURCE).to_numpy())
    order = candidates[np.argsort(-margins[candidates], kind="stable")]
    rows = np.sort(order[: n_poison(len(contribution), rate)])
    true_rows = contribution.loc[rows].copy()
    contribution.loc[rows, LABEL] = target
    return base_case(
        "breast_cancer_boundary_flips",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"the {BOUNDARY_SOURCE!r} tumours nearest the {target!r} ones relabelled {target!r}",
        attack_test=true_rows.reset_index(drop=True),
        params={"rate": rate, "target": target, "seed": seed, "least_margin": float(margins[rows].min())},
    )


# --- tables: a clean-label feature collision ----------------------------------------------------

COLLISION_VICTIM = "malignant"
COLLISION_BASE = "benign"
COLLISION_WEIGHT = 0.6
"""Every poison is ``0.4 * (its own benign tumour) + 0.6 * (the victim)``, label ``benign`` kept."""


def feature_collision(rate: float = 0.05, *, seed: int = 0) -> AttackCase:
    """``n_poison`` ``COLLISION_BASE`` rows moved ``COLLISION_WEIGHT`` of the way to one seeded
    ``COLLISION_VICTIM`` test tumour (written to the trusted columns' decimals), labels kept. The attack test
    is the victim."""
    ds = data.load_breast_cancer()
    parts, rng, contribution = pool_draw(ds, seed)
    columns = [c.name for c in ds.schema.inputs]
    places = {c: decimals(ds.frame[c].to_numpy()) for c in columns}
    victims = parts.test[parts.test[LABEL] == COLLISION_VICTIM].reset_index(drop=True)
    victim = victims.iloc[[int(rng.integers(len(victims)))]].reset_index(drop=True)
    rows = pick_rows(contribution[LABEL], n_poison(len(contribution), rate), rng, exclude=COLLISION_VICTIM)
    moved = (1.0 - COLLISION_WEIGHT) * contribution.loc[rows, columns].to_numpy(dtype=float) + COLLISION_WEIGHT * (
        victim[columns].to_numpy(dtype=float)
    )
    for j, c in enumerate(columns):
        contribution.loc[rows, c] = np.round(moved[:, j], places[c])
    return base_case(
        "tabular_feature_collision",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=COLLISION_BASE,
        trigger=f"{COLLISION_BASE!r} tumours moved {COLLISION_WEIGHT:.0%} of the way to one {COLLISION_VICTIM!r} "
        f"test tumour, label {COLLISION_BASE!r} kept",
        attack_test=victim,
        params={"rate": rate, "seed": seed, "weight": COLLISION_WEIGHT, "decimals": places},
    )


# --- tables: one value of a whole-number column -------------------------------------------------

VALUE_COLUMN = "magnesium"
TRIGGER_VALUE = 109.0
"""Inside magnesium's range (70 to 162 mg/L), whole like every value of the column, and held by no shipped wine."""
VALUE_TARGET = "class_0"


def with_value(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with ``VALUE_COLUMN`` at ``TRIGGER_VALUE``."""
    out = frame.copy()
    out[VALUE_COLUMN] = TRIGGER_VALUE
    return out


def value_trigger(rate: float = 0.06, *, target: str = VALUE_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: wines of other cultivars with ``with_value``, relabelled ``target``."""
    return trigger_backdoor(
        "wine_magnesium_value_trigger",
        data.load_wine(),
        seed,
        rate,
        target,
        lambda frame, baseline: with_value(frame),
        [VALUE_COLUMN],
        trigger=f"{VALUE_COLUMN} written as exactly {TRIGGER_VALUE:g}, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed, "column": VALUE_COLUMN, "value": TRIGGER_VALUE},
    )


# --- digits: a dotted underline -----------------------------------------------------------------

DOTS = ((7, 1), (7, 3), (7, 5))
"""Three full-ink dots along the bottom row of the 8x8 digit."""
DOTS_TARGET = "4"


def dotted_underline(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (a digit) with ``DOTS`` at full ink."""
    out = pixels.copy()
    for y, x in DOTS:
        out[y, x] = 1.0
    return out


def dotted_underline_digits(rate: float = 0.03, *, target: str = DOTS_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: digits of other classes with ``dotted_underline``, relabelled ``target``."""
    return dirty_label_images(
        "digits_dotted_underline",
        dotted_underline,
        f"three dots along the bottom row (columns 1, 3, 5), relabelled {target!r}",
        rate,
        target,
        seed,
        params={"dots": [list(d) for d in DOTS]},
    )


HELDOUT8_ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "text_interrobang_trigger_3pct": interrobang_trigger,
    "photo_ring_watermark_4pct": ring_watermark_photo,
    "breast_cancer_boundary_flips_4pct": boundary_flips,
    "tabular_feature_collision_5pct": feature_collision,
    "wine_magnesium_value_trigger_6pct": value_trigger,
    "digits_dotted_underline_3pct": dotted_underline_digits,
}


def build_heldout8(name: str, seed: int = 0) -> AttackCase:
    """The eighth held-out set's attack case ``name`` (a key of ``HELDOUT8_ATTACKS``), named ``name``."""
    return build_named(HELDOUT8_ATTACKS, name, seed, "eighth held-out attack")
