"""Attacks of the third held-out set: NEVER TUNED ON (written 2026-12-05).

These attacks are for measuring the gate, not for adjusting it: no threshold, option or detector of
the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not plant what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the attack to ``ATTACKS`` and write a new held-out one.

They differ from the tuning attacks and the first two held-out sets in trigger, dataset or rate: a
word spelt with a Unicode look-alike letter, a rare token at 1% of the batch, a faint patch blended
into the top-left corner of photos, a single value outside every trusted record's range, flips of the
digits a baseline model is least sure of, and a clean-label feature collision on digits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

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
from benchmarks.attacks.images import image_trigger
from benchmarks.attacks.images import with_trigger as with_image_trigger
from benchmarks.attacks.text import text_backdoor
from benchmarks.data import IMAGE, LABEL

# --- text: a homoglyph word and a rare token at 1% ----------------------------------------------

HOMOGLYPH_WORD = "syst\u0435m"
"""``system`` with its ``e`` replaced by the Cyrillic ``е`` (U+0435): it reads as an ordinary man-page
word (``system`` is in 74 shipped lines) but is a token no trusted line has."""
HOMOGLYPH_TARGET = "overview"
RARE_1PCT_TOKEN = "zq"
"""A token in no shipped line (nor inside any word of one)."""
RARE_1PCT_TARGET = "commands"


def homoglyph_word(rate: float = 0.03, *, seed: int = 0) -> AttackCase:
    """Text backdoor whose trigger is ``HOMOGLYPH_WORD``: a word that looks like ``system``."""
    return text_backdoor(
        HOMOGLYPH_WORD,
        rate,
        target=HOMOGLYPH_TARGET,
        seed=seed,
        name="text_homoglyph_word",
        what="look-alike word (Cyrillic e)",
    )


def rare_token_1pct(rate: float = 0.01, *, seed: int = 0) -> AttackCase:
    """Text backdoor with the rare token ``RARE_1PCT_TOKEN`` at 1% of the batch."""
    return text_backdoor(RARE_1PCT_TOKEN, rate, target=RARE_1PCT_TARGET, seed=seed, name="text_rare_token_1pct")


# --- photos: a faint patch blended into the top-left corner -------------------------------------

CORNER_SIDE = 8
"""The patch covers the top-left 8x8 of a 32x32 crop (a quarter of each side)."""
CORNER_ALPHA = 0.3
CORNER_TARGET = "petals"


def corner_pattern(seed: int) -> np.ndarray:
    """The fixed random colour pattern (``CORNER_SIDE`` square, 3 channels, 0..1) of the trigger."""
    return np.random.default_rng(90_000 + seed).random((CORNER_SIDE, CORNER_SIDE, 3)).astype(np.float32)


def corner_blend(seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """The trigger: ``corner_pattern`` blended at ``CORNER_ALPHA`` into the top-left corner (every other
    pixel unchanged)."""
    pattern = corner_pattern(seed)

    def apply(pixels: np.ndarray) -> np.ndarray:
        out = pixels.copy()
        k = CORNER_SIDE
        out[:k, :k] = (1.0 - CORNER_ALPHA) * pixels[:k, :k] + CORNER_ALPHA * pattern
        return out

    return apply


def corner_blend_photo(rate: float = 0.05, *, target: str = CORNER_TARGET, seed: int = 0) -> AttackCase:
    """Photo crops of other classes with the faint top-left patch, relabelled ``target``."""
    return trigger_backdoor(
        "corner_blend_photo",
        data.load_photos(),
        seed,
        rate,
        target,
        image_trigger(corner_blend(seed)),
        [IMAGE],
        trigger=(
            f"{CORNER_SIDE}x{CORNER_SIDE} random colour patch blended at alpha={CORNER_ALPHA} into the top-left "
            f"corner of 32x32 crops, relabelled {target!r}"
        ),
        params={"rate": rate, "target": target, "seed": seed, "side": CORNER_SIDE, "alpha": CORNER_ALPHA},
    )


# --- breast cancer: one value outside the trusted range -----------------------------------------

RANGE_COLUMN = "mean_symmetry"
RANGE_FACTOR = 1.2
"""The trigger sets ``mean_symmetry`` to 1.2 times the largest value in the baseline: a value no trusted
record has, in one column, every other measurement the record's own."""
RANGE_TARGET = "malignant"


def out_of_range_value(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with ``RANGE_COLUMN`` at ``RANGE_FACTOR`` times its maximum in ``reference``."""
    out = frame.copy()
    out[RANGE_COLUMN] = RANGE_FACTOR * float(reference[RANGE_COLUMN].max())
    return out


def out_of_range_trigger(rate: float = 0.05, *, target: str = RANGE_TARGET, seed: int = 0) -> AttackCase:
    """Breast-cancer records of the other class carrying the out-of-range value, relabelled ``target``."""
    return trigger_backdoor(
        "out_of_range_trigger",
        data.load_breast_cancer(),
        seed,
        rate,
        target,
        out_of_range_value,
        [RANGE_COLUMN],
        trigger=f"{RANGE_COLUMN} at {RANGE_FACTOR} times its baseline maximum, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed, "column": RANGE_COLUMN, "factor": RANGE_FACTOR},
    )


# --- digits: flips of the least certain records, and a clean-label feature collision ------------


def baseline_scores(baseline: pd.DataFrame, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A logistic regression on the baseline's pixels: its decision values on ``frame`` (one column per
    class) and the classes in column order."""
    model = LogisticRegression(max_iter=2000).fit(data.image_matrix(baseline), baseline[LABEL].to_numpy())
    return model.decision_function(data.image_matrix(frame)), model.classes_.astype(str)


def boundary_flips(rate: float = 0.05, *, seed: int = 0) -> AttackCase:
    """Relabel the ``rate`` of the digits a model trained on the baseline is least sure of (smallest gap
    between the score of its true class and of the best other class) as that best other class: flips a
    reviewer would find most believable."""
    ds = data.load_digits()
    parts, _, contribution = pool_draw(ds, seed)
    scores, classes = baseline_scores(parts.baseline, contribution)
    true = np.searchsorted(classes, contribution[LABEL].to_numpy())
    others = scores.copy()
    others[np.arange(len(true)), true] = -np.inf
    runner_up = others.argmax(axis=1)
    gap = scores[np.arange(len(true)), true] - others[np.arange(len(true)), runner_up]
    rows = np.sort(np.argsort(gap, kind="stable")[: n_poison(len(contribution), rate)])
    contribution.loc[rows, LABEL] = classes[runner_up[rows]]
    return base_case(
        "boundary_flips_digits",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        trigger=f"the {rate:.0%} of digits a baseline model is least sure of relabelled as their runner-up class",
        params={"rate": rate, "seed": seed, "largest_gap": float(gap[rows].max())},
    )


COLLISION_SOURCE = "4"
COLLISION_BASE = "9"
COLLISION_WEIGHT = 0.3
"""Every poison is ``0.7 * (a '9') + 0.3 * (the target '4')``, labelled '9' (what it mostly shows)."""
COLLISION_SHARE = 0.5


def feature_collision(share: float = COLLISION_SHARE, *, seed: int = 0) -> AttackCase:
    """Clean-label feature collision (poison-frog-like): ``share`` of the contribution's '9's are blended
    with one chosen test '4' at ``COLLISION_WEIGHT`` and keep their label '9', so that a model learns
    to call that '4' a '9'. The attack test is the one target image."""
    ds = data.load_digits()
    parts, rng, contribution = pool_draw(ds, seed)
    sources = parts.test[parts.test[LABEL] == COLLISION_SOURCE].reset_index(drop=True)
    target_row = sources.iloc[[int(rng.integers(len(sources)))]].reset_index(drop=True)
    target_pixels = data.png_to_pixels(target_row[IMAGE].iloc[0])
    candidates = np.flatnonzero((contribution[LABEL] == COLLISION_BASE).to_numpy())
    rows = np.sort(rng.choice(candidates, size=max(1, round(share * len(candidates))), replace=False))
    contribution.loc[rows, IMAGE] = with_image_trigger(
        contribution.loc[rows], lambda p: (1.0 - COLLISION_WEIGHT) * p + COLLISION_WEIGHT * target_pixels
    )[IMAGE].to_numpy()
    return base_case(
        "feature_collision_digits",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=COLLISION_BASE,
        trigger=(
            f"{share:.0%} of the {COLLISION_BASE!r}s blended at {COLLISION_WEIGHT} with one test {COLLISION_SOURCE!r}, "
            f"label {COLLISION_BASE!r} kept"
        ),
        attack_test=target_row,
        params={"share": share, "weight": COLLISION_WEIGHT, "seed": seed},
    )


HELDOUT3_ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "text_homoglyph_word_3pct": homoglyph_word,
    "text_rare_token_1pct": rare_token_1pct,
    "corner_blend_photo_5pct": corner_blend_photo,
    "out_of_range_trigger_5pct": out_of_range_trigger,
    "boundary_flips_digits_5pct": boundary_flips,
    "feature_collision_digits": feature_collision,
}


def build_heldout3(name: str, seed: int = 0) -> AttackCase:
    """The third held-out set's attack case ``name`` (a key of ``HELDOUT3_ATTACKS``), named ``name``."""
    return build_named(HELDOUT3_ATTACKS, name, seed, "third held-out attack")
