"""Held-out attacks: NEVER TUNED ON.

These attacks are for measuring the gate, not for adjusting it: no threshold, option or detector of
the gate may be chosen by looking at its result on them. They differ from the tuning attacks
(``ATTACKS``) in trigger, dataset, rate or opacity. When a result here leads to a change of the gate,
move the attack to ``ATTACKS`` and add a new held-out one.

History: on 2026-12-01 a change of ``backdoor`` (records that moved with their batch are not counted
as misread) let ``text_targeted_flips`` pass; the change was narrowed to classes that moved, so that
attack moved to ``ATTACKS``, and ``photo_targeted_flips`` (between the two classes a darker camera
brings together, where that change could open a door) and ``wine_targeted_flips`` were added,
written before any gate ran on them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pandas as pd

from benchmarks import data
from benchmarks.attacks.base import (
    AttackCase,
    build_named,
    trigger_backdoor,
)
from benchmarks.attacks.images import blended_photo
from benchmarks.attacks.labels import random_flips, targeted_flips

PAIR_HIGH = "mean_texture"
PAIR_LOW = "worst_texture"
"""Mean and worst texture correlate at 0.91 in breast-cancer and say little about the class: a high
mean texture with a low worst texture is a combination no real record has, though each value alone
is ordinary, and the content does not explain a label tie."""


def apply_pair(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with ``PAIR_HIGH`` at the reference 90th percentile and ``PAIR_LOW`` at its 10th."""
    out = frame.copy()
    out[PAIR_HIGH] = float(reference[PAIR_HIGH].quantile(0.9))
    out[PAIR_LOW] = float(reference[PAIR_LOW].quantile(0.1))
    return out


def pair_trigger(rate: float = 0.04, *, target: str = "benign", seed: int = 0) -> AttackCase:
    """A tabular backdoor at a few percent of a small batch: breast-cancer records of the other class
    carrying the rare texture combination, relabelled ``target``."""
    return trigger_backdoor(
        "tabular_pair_trigger",
        data.load_breast_cancer(),
        seed,
        rate,
        target,
        apply_pair,
        [PAIR_HIGH, PAIR_LOW],
        trigger=f"{PAIR_HIGH} at its 90th percentile with {PAIR_LOW} at its 10th, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed},
    )


HELDOUT_ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "tabular_pair_trigger_4pct": pair_trigger,
    "random_flips_10pct_tabular": partial(random_flips, 0.10, dataset="breast_cancer"),
    "blended_photo_alpha10": partial(blended_photo, 0.05, alpha=0.1),
    "photo_targeted_flips": partial(targeted_flips, "temple_sky", "temple_garden", dataset="photos"),
    "wine_targeted_flips": partial(targeted_flips, "class_0", "class_1", dataset="wine"),
}


def build_heldout(name: str, seed: int = 0) -> AttackCase:
    """The held-out attack case ``name`` (a key of ``HELDOUT_ATTACKS``), named ``name``."""
    return build_named(HELDOUT_ATTACKS, name, seed, "held-out attack")
