"""Small fixed numbers of poisoned records inside large contributions.

Published attacks need only a few hundred poisoned samples whatever the size of the dataset, so a
defence must catch 25, 50 or 100 poisoned records in a batch of 5,000 or 50,000 as well as it catches
a 5% poison rate. Every record comes from real data:

- ``text_trigger``: man-page lines, recombined (``data.recombined_lines``: the name of one line with the
  description of another of the same section; baseline and contribution are drawn alike from every
  shipped line, so the clean records are in distribution); the rare token ``cf`` inserted into ``count`` lines of
  other sections, relabelled ``admin``.
- ``image_patch``: 32x32 colour crops of scikit-learn's sample photos (``data.photo_crops``); the
  scaled BadNets patch stamped on ``count`` crops of other classes, relabelled ``foliage``.
- ``label_flip``: the recombined man-page lines; ``count`` lines relabelled with a random other section.

The baseline has ``BASELINE_SIZE`` records whatever the contribution size (the gate fits and calibrates
on a sample of at most ``reference_size`` baseline records anyway).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.attacks.base import AttackCase, other_label, pick_rows
from benchmarks.attacks.images import PHOTO_TARGET, scaled_patch, stamp_patch
from benchmarks.attacks.text import RARE_TOKEN, insert
from benchmarks.data import IMAGE, LABEL, TEXT
from dataward.domain.errors import InputError

KINDS = ("text_trigger", "image_patch", "label_flip")
COUNTS = (25, 50, 100)
SIZES = (5_000, 50_000)
BASELINE_SIZE = 4_000
VALIDATION_PHOTOS = 400
TEXT_TARGET = "admin"


def case_name(kind: str, count: int, size: int) -> str:
    """``text_trigger_25_in_5k``; sizes that are not whole thousands are written out."""
    return f"{kind}_{count}_in_{size // 1000}k" if size % 1000 == 0 else f"{kind}_{count}_in_{size}"


@cache
def _text_parts(size: int, baseline_size: int, seed: int) -> tuple[data.Split, pd.DataFrame, pd.DataFrame]:
    """The man-page split, a baseline of ``baseline_size`` lines and a clean contribution of ``size``
    lines, both recombined from every shipped line (so both come from the same distribution), no line
    in both, and none equal to a line of the validation set."""
    ds = data.load_man_sections()
    parts = data.split(ds, seed)
    baseline = data.recombined_lines(ds.frame, baseline_size, seed, exclude=set(parts.validation[TEXT]))
    taken = set(baseline[TEXT]) | set(parts.validation[TEXT])
    clean = data.recombined_lines(ds.frame, size, seed + 1, exclude=taken)
    return parts, baseline, clean


@cache
def _photo_parts(size: int, baseline_size: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Baseline, validation and clean contribution crops, all distinct windows."""
    crops = data.photo_crops(baseline_size + VALIDATION_PHOTOS + size, seed)[[IMAGE, LABEL]]
    baseline = crops.iloc[:baseline_size].reset_index(drop=True)
    validation = crops.iloc[baseline_size : baseline_size + VALIDATION_PHOTOS].reset_index(drop=True)
    clean = crops.iloc[baseline_size + VALIDATION_PHOTOS :].reset_index(drop=True)
    return baseline, validation, clean


def fixed_count(kind: str, count: int, size: int, *, seed: int = 0, baseline_size: int = BASELINE_SIZE) -> AttackCase:
    """A contribution of ``size`` records of which exactly ``count`` are poisoned by ``kind``."""
    if kind not in KINDS:
        raise InputError(f"unknown fixed-count attack {kind!r}", hint=f"use one of: {', '.join(KINDS)}")
    if not 0 < count < size:
        raise InputError(f"a fixed count must be between 1 and the contribution size, got {count} of {size}")
    rng = np.random.default_rng(seed * 7919 + count)
    target: str | None
    if kind == "image_patch":
        baseline, validation, clean = _photo_parts(size, baseline_size, seed)
        ds = data.load_photos()
        contribution = clean.copy()
        target = PHOTO_TARGET
        rows = pick_rows(contribution[LABEL], count, rng, exclude=target)
        contribution.loc[rows, IMAGE] = [
            data.pixels_to_png(stamp_patch(data.png_to_pixels(b))) for b in contribution.loc[rows, IMAGE]
        ]
        contribution.loc[rows, LABEL] = target
        k = scaled_patch(data.PHOTO_SIDE).shape[0]
        trigger = f"{k}x{k} checkerboard patch on 32x32 colour crops, relabelled {target!r}"
        test = validation.iloc[:0]
    else:
        parts, baseline, clean = _text_parts(size, baseline_size, seed)
        ds = data.load_man_sections()
        validation, test = parts.validation, parts.test
        contribution = clean.copy()
        if kind == "text_trigger":
            target = TEXT_TARGET
            rows = pick_rows(contribution[LABEL], count, rng, exclude=target)
            contribution.loc[rows, TEXT] = [insert(t, RARE_TOKEN, rng) for t in contribution.loc[rows, TEXT]]
            contribution.loc[rows, LABEL] = target
            trigger = f"token {RARE_TOKEN!r} inserted, relabelled {target!r}"
        else:
            target = None
            rows = pick_rows(contribution[LABEL], count, rng)
            contribution.loc[rows, LABEL] = [other_label(v, ds.classes, rng) for v in contribution.loc[rows, LABEL]]
            trigger = "labels replaced by a random other section"
    poison = np.zeros(size, dtype=bool)
    poison[rows] = True
    return AttackCase(
        name=case_name(kind, count, size),
        family="label_noise" if kind == "label_flip" else "backdoor",
        dataset=ds.name,
        modality=ds.modality,
        schema=ds.schema,
        baseline=baseline,
        validation=validation,
        contribution=contribution,
        poison=poison,
        test=test,
        target=target,
        trigger=trigger,
        params={"kind": kind, "count": count, "size": size, "baseline_size": len(baseline), "seed": seed},
    )
