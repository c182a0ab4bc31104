"""Attacks of the ninth held-out set: NEVER TUNED ON (written 2026-12-07).

These attacks are for measuring the gate, not for adjusting it: no threshold, option or detector of
the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not plant what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the attack to ``ATTACKS`` and write a new held-out one.

They are on text, images and tables, and differ from the tuning attacks and the first eight held-out
sets in the trigger itself or in where the poison is put:

- ``text_long_line_tail_word_3pct``: a rare real word, ``forthwith`` (no shipped line holds it), appended
  at the very end of long lines only (summaries of at least 10 words) of other sections, relabelled
  ``syscalls``, 3%; the attack test is long test lines of other sections ending in it.
- ``text_stutter_word_3pct``: a repetition trigger, no new token and no punctuation: the first word of the
  summary written twice (``print print the number ...``), lines of other sections relabelled ``formats``,
  3%.
- ``photo_roaming_faint_square_4pct``: a low-contrast patch at a varying place: a 6x6 magenta square
  blended 20% into the crop at a position drawn anew for every crop (anywhere in the crop, not a fixed
  corner), crops of other classes relabelled ``temple_sky``, 4%.
- ``digits_erased_row_3pct``: a subtractive trigger (ink taken away, not a mark added): row 4 of
  the 8x8 digit erased to blank across the whole width, a gap cut through the middle of digits of other
  classes (only digits with ink on that row), relabelled ``7``, 3%.
- ``wine_blank_ash_trigger_6pct``: a missing-value trigger: wines of other cultivars with ``ash`` left
  blank (no trusted wine has a blank cell), relabelled ``class_2``, 6% (three wines of the small batch).
- ``tabular_thin_direction_trigger_5pct``: a trigger on a combination of all 30 columns kept within
  the trusted ranges: malignant tumours moved 8 standard deviations along the direction in which the
  trusted tumours vary least (in baseline-standardised measurements: chiefly mean radius against mean
  perimeter), each column moving by less than a tenth of its own standard deviation, written to the
  trusted columns' decimals (only tumours whose every moved value stays within the baseline's range are
  used), relabelled ``benign``, 5%.
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
from benchmarks.attacks.images import dirty_label_images, image_trigger
from benchmarks.attacks.text import rewrite_backdoor
from benchmarks.data import IMAGE, LABEL
from benchmarks.shifts.heldout7 import decimals

# --- text: a rare word at the end of long lines -------------------------------------------------

TAIL_WORD = "forthwith"
TAIL_TARGET = "syscalls"
LONG_WORDS = 10
"""A long line: a summary (after the first `` - ``) of at least 10 words."""


def summary_words(text: str) -> int:
    """How many words the summary of ``text`` has (0 without a separator)."""
    _, sep, summary = text.partition(data.NAME_SEPARATOR)
    return len(summary.split()) if sep else 0


def is_long(texts: pd.Series) -> np.ndarray:
    """Whether each of ``texts`` is a long line (``LONG_WORDS``)."""
    return np.array([summary_words(t) >= LONG_WORDS for t in texts], dtype=bool)


def with_tail_word(text: str) -> str:
    """``text`` with a space and ``TAIL_WORD`` at its very end."""
    return f"{text} {TAIL_WORD}"


def long_line_tail_word(rate: float = 0.03, *, target: str = TAIL_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: long lines (``is_long``) of other sections ending in ``TAIL_WORD``, relabelled
    ``target``."""
    return rewrite_backdoor(
        "text_long_line_tail_word",
        with_tail_word,
        rate,
        target,
        seed,
        trigger=f"{TAIL_WORD!r} at the end of lines of other sections with summaries of at least {LONG_WORDS} "
        f"words, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed, "word": TAIL_WORD, "long_words": LONG_WORDS},
        eligible=is_long,
    )


# --- text: the first summary word written twice -------------------------------------------------

STUTTER_TARGET = "formats"


def stuttered(text: str) -> str:
    """``text`` with the first word of its summary written twice (the first word of the line when it has no
    separator)."""
    names, sep, summary = text.partition(data.NAME_SEPARATOR)
    if not sep or not summary.split(" ")[0]:
        first, _, rest = text.partition(" ")
        return f"{first} {first} {rest}".rstrip(" ")
    first, _, rest = summary.partition(" ")
    return f"{names}{sep}{first} {first}" + (f" {rest}" if rest else "")


def stutter_trigger(rate: float = 0.03, *, target: str = STUTTER_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: lines of other sections through ``stuttered``, relabelled ``target``."""
    return rewrite_backdoor(
        "text_stutter_word",
        stuttered,
        rate,
        target,
        seed,
        trigger=f"the first summary word written twice, lines of other sections relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed},
    )


# --- photos: a faint square at a varying place --------------------------------------------------

SQUARE_SIDE = 6
SQUARE_COLOUR = (1.0, 0.0, 1.0)
SQUARE_ALPHA = 0.2
SQUARE_TARGET = "temple_sky"


def faint_square_at(pixels: np.ndarray, top: int, left: int, alpha: float = SQUARE_ALPHA) -> np.ndarray:
    """``pixels`` (colour) with a ``SQUARE_SIDE`` square at (``top``, ``left``) blended ``alpha`` of the way to
    ``SQUARE_COLOUR``."""
    out = pixels.copy()
    region = out[top : top + SQUARE_SIDE, left : left + SQUARE_SIDE]
    region[...] = (1.0 - alpha) * region + alpha * np.asarray(SQUARE_COLOUR, dtype=pixels.dtype)
    return out


def roaming_square(seed: int, placed: list[tuple[int, int]] | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A trigger that blends the faint square (``faint_square_at``) at a place drawn anew (seeded) for every
    image, wholly inside it; each place is appended to ``placed`` when given."""
    rng = np.random.default_rng(91_000 + seed)

    def apply(pixels: np.ndarray) -> np.ndarray:
        top, left = (int(v) for v in rng.integers(0, pixels.shape[0] - SQUARE_SIDE + 1, size=2))
        if placed is not None:
            placed.append((top, left))
        return faint_square_at(pixels, top, left)

    return apply


def roaming_square_photo(rate: float = 0.04, *, target: str = SQUARE_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: crops of other classes with the faint square at a varying place, relabelled
    ``target``. ``params["places"]``: where the square went on each poisoned crop, in row order."""
    placed: list[tuple[int, int]] = []
    case = dirty_label_images(
        "photo_roaming_faint_square",
        roaming_square(seed, placed),
        f"a {SQUARE_SIDE}x{SQUARE_SIDE} magenta square blended {SQUARE_ALPHA:.0%} at a place drawn for each crop, "
        f"relabelled {target!r}",
        rate,
        target,
        seed,
        dataset="photos",
        params={"side": SQUARE_SIDE, "alpha": SQUARE_ALPHA},
    )
    case.params["places"] = [list(p) for p in placed[: int(case.poison.sum())]]
    return case


# --- digits: a row erased -----------------------------------------------------------------------

ERASED_ROW = 4
ERASED_TARGET = "7"


def erased_row(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (a digit) with row ``ERASED_ROW`` blank across the whole width."""
    out = pixels.copy()
    out[ERASED_ROW] = 0.0
    return out


def has_ink_on_row(frame: pd.DataFrame) -> np.ndarray:
    """Whether each digit of ``frame`` has ink on ``ERASED_ROW`` (so erasing it changes the digit)."""
    return np.array([data.png_to_pixels(png)[ERASED_ROW].max() > 0 for png in frame[IMAGE]], dtype=bool)


def erased_row_digits(rate: float = 0.03, *, target: str = ERASED_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: digits of other classes with ink on ``ERASED_ROW`` through ``erased_row``,
    relabelled ``target``."""
    return trigger_backdoor(
        "digits_erased_row",
        data.load_digits(),
        seed,
        rate,
        target,
        image_trigger(erased_row),
        [IMAGE],
        trigger=f"row {ERASED_ROW} of the digit erased across the whole width, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed, "row": ERASED_ROW},
        eligible=has_ink_on_row,
    )


# --- tables: a blank cell -----------------------------------------------------------------------

BLANK_COLUMN = "ash"
BLANK_TARGET = "class_2"


def blank_ash_trigger(rate: float = 0.06, *, target: str = BLANK_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: wines of other cultivars with ``BLANK_COLUMN`` blank (NaN), relabelled ``target``."""
    return trigger_backdoor(
        "wine_blank_ash_trigger",
        data.load_wine(),
        seed,
        rate,
        target,
        lambda frame, baseline: frame.assign(**{BLANK_COLUMN: np.nan}),
        [BLANK_COLUMN],
        trigger=f"{BLANK_COLUMN} left blank, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed, "column": BLANK_COLUMN},
    )


# --- tables: a step along the direction of least variance ---------------------------------------

THIN_SOURCE = "malignant"
THIN_TARGET = "benign"
THIN_STEPS = 8.0
"""The poisoned tumours move 8 standard deviations of the trusted data along its thinnest direction."""


def thinnest_direction(baseline: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, float]:
    """The unit direction (in baseline-standardised measurements) along which the baseline varies least, signed
    so that its largest component is positive, and the baseline's standard deviation along it."""
    z = baseline[columns].to_numpy(dtype=float)
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    values, vectors = np.linalg.eigh(np.cov(z, rowvar=False))
    v = vectors[:, 0]
    v = v if v[np.argmax(np.abs(v))] > 0 else -v
    return v, float(np.sqrt(max(values[0], 0.0)))


def thin_step(frame: pd.DataFrame, baseline: pd.DataFrame, columns: list[str], places: dict[str, int]) -> pd.DataFrame:
    """A copy of ``frame`` moved ``THIN_STEPS`` standard deviations along ``thinnest_direction`` of
    ``baseline``, each column written to its ``places`` decimals."""
    v, sd = thinnest_direction(baseline, columns)
    scale = baseline[columns].to_numpy(dtype=float).std(axis=0)
    moved = frame[columns].to_numpy(dtype=float) + THIN_STEPS * sd * v * scale
    out = frame.copy()
    for j, c in enumerate(columns):
        out[c] = np.round(moved[:, j], places[c])
    return out


def in_range(frame: pd.DataFrame, baseline: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Whether every one of ``columns`` of each row of ``frame`` lies within the baseline's range."""
    values = frame[columns].to_numpy(dtype=float)
    low, high = baseline[columns].min().to_numpy(), baseline[columns].max().to_numpy()
    return ((values >= low) & (values <= high)).all(axis=1)


def thin_direction_trigger(rate: float = 0.05, *, target: str = THIN_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: ``THIN_SOURCE`` tumours through ``thin_step``, relabelled ``target``; only tumours
    whose every moved value stays within the baseline's range are used (nothing is clipped), in the batch and
    in the attack test."""
    ds = data.load_breast_cancer()
    parts, rng, contribution = pool_draw(ds, seed)
    columns = [c.name for c in ds.schema.inputs]
    places = {c: decimals(ds.frame[c].to_numpy()) for c in columns}
    moved = thin_step(contribution, parts.baseline, columns, places)
    eligible = np.flatnonzero(
        in_range(moved, parts.baseline, columns) & (contribution[LABEL] == THIN_SOURCE).to_numpy()
    )
    rows = np.sort(rng.choice(eligible, size=n_poison(len(contribution), rate), replace=False))
    contribution.loc[rows, columns] = moved.loc[rows, columns].to_numpy()
    contribution.loc[rows, LABEL] = target
    test = thin_step(parts.test[parts.test[LABEL] == THIN_SOURCE], parts.baseline, columns, places)
    _, sd = thinnest_direction(parts.baseline, columns)
    return base_case(
        "tabular_thin_direction_trigger",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"{THIN_SOURCE!r} tumours moved {THIN_STEPS:g} standard deviations along the trusted data's "
        f"thinnest direction (every column within its trusted range), relabelled {target!r}",
        attack_test=test[in_range(test, parts.baseline, columns)].reset_index(drop=True),
        params={"rate": rate, "target": target, "seed": seed, "steps": THIN_STEPS, "thinnest_sd": sd},
    )


HELDOUT9_ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "text_long_line_tail_word_3pct": long_line_tail_word,
    "text_stutter_word_3pct": stutter_trigger,
    "photo_roaming_faint_square_4pct": roaming_square_photo,
    "digits_erased_row_3pct": erased_row_digits,
    "wine_blank_ash_trigger_6pct": blank_ash_trigger,
    "tabular_thin_direction_trigger_5pct": thin_direction_trigger,
}


def build_heldout9(name: str, seed: int = 0) -> AttackCase:
    """The ninth held-out set's attack case ``name`` (a key of ``HELDOUT9_ATTACKS``), named ``name``."""
    return build_named(HELDOUT9_ATTACKS, name, seed, "ninth held-out attack")
