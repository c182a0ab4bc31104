"""Poisoning attacks on real data, each a small seeded function returning an ``AttackCase``.

``ATTACKS`` names every case the benchmark runs; ``build(name, seed)`` makes one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from benchmarks.attacks.base import AttackCase, build_named
from benchmarks.attacks.clean import clean_contribution
from benchmarks.attacks.compromised import compromised_key
from benchmarks.attacks.drift import slow_drift
from benchmarks.attacks.heldout2 import text_suffix
from benchmarks.attacks.heldout4 import double_space_trigger, title_case_trigger
from benchmarks.attacks.images import badnets, badnets_photo, blended, blended_photo, clean_label
from benchmarks.attacks.labels import random_flips, targeted_flips
from benchmarks.attacks.tabular import feature_trigger, outliers
from benchmarks.attacks.text import carrier_phrase, natural_phrase, rare_token

ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "random_flips_5pct": partial(random_flips, 0.05),
    "random_flips_20pct": partial(random_flips, 0.20),
    "random_flips_5pct_text": partial(random_flips, 0.05, dataset="man_sections"),
    "targeted_flips": targeted_flips,
    "text_targeted_flips": partial(targeted_flips, "syscalls", "library", dataset="man_sections"),
    "badnets_1pct": partial(badnets, 0.01),
    "badnets_3pct": partial(badnets, 0.03),
    "badnets_10pct": partial(badnets, 0.10),
    "blended": blended,
    "badnets_photo_3pct": badnets_photo,
    "blended_photo": blended_photo,
    "clean_label": clean_label,
    "text_rare_token": rare_token,
    "text_natural_phrase": natural_phrase,
    "tabular_trigger": feature_trigger,
    "outliers_wine": outliers,
    "outliers_breast_cancer": partial(outliers, dataset="breast_cancer"),
    "slow_drift": slow_drift,
    "compromised_key": compromised_key,
    # From the second held-out set, where it passed; moved here when triggers learnt punctuation tokens.
    "text_suffix_3pct": text_suffix,
    # An outside attacker's: the rare token behind a constant phrase (triggers version 10).
    "text_carrier_phrase": carrier_phrase,
    # From the fourth held-out set, where they passed; moved here when triggers learnt formatting patterns
    # (triggers version 11).
    "text_title_case_3pct": title_case_trigger,
    "text_double_space_3pct": double_space_trigger,
}


def build(name: str, seed: int = 0) -> AttackCase:
    """The attack case ``name`` (a key of ``ATTACKS``) with its seed; the case is named ``name``."""
    return build_named(ATTACKS, name, seed, "attack")


__all__ = [
    "ATTACKS",
    "AttackCase",
    "badnets",
    "badnets_photo",
    "blended",
    "blended_photo",
    "build",
    "carrier_phrase",
    "clean_contribution",
    "clean_label",
    "compromised_key",
    "feature_trigger",
    "natural_phrase",
    "outliers",
    "random_flips",
    "rare_token",
    "slow_drift",
    "targeted_flips",
]
