"""Attacks of the fourth held-out set: NEVER TUNED ON (written 2026-12-05).

These attacks are for measuring the gate, not for adjusting it: no threshold, option or detector of
the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not plant what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the attack to ``ATTACKS`` and write a new held-out one.

They differ from the tuning attacks, the first three held-out sets and the compromised key in the
trigger itself or in how the poison is spread: a trigger that is a casing pattern (every word of the
summary capitalised, no new word), a trigger that is whitespace only (a second space after the name's
separator), a small solid-colour square at half opacity in the centre of photos, a tabular trigger that
is one exact round value inside a column's ordinary range, label flips that all come from one source of
five, and a clean-label text backdoor (an ordinary word added to lines already of the target section).

History: the casing and whitespace triggers (``text_title_case_3pct``, ``text_double_space_3pct``) passed
5 of 6 scans here; the gate learnt to read formatting as trigger patterns after them (triggers version
11), so they moved to the tuning attacks (``benchmarks.attacks.ATTACKS``; their builders stay here).
On 2026-12-05 (evening), before that change was made, two text triggers were added, written and
committed before any gate had been run on them: non-breaking spaces around the separator
(``text_nbsp_separator_3pct``) and the page name in capitals (``text_caps_name_3pct``).
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
    not_target,
    other_label,
    poison_mask,
    pool_draw,
)
from benchmarks.attacks.images import with_trigger as with_image_trigger
from benchmarks.attacks.text import rewrite_backdoor
from benchmarks.attacks.text import with_trigger as with_text_trigger
from benchmarks.data import IMAGE, LABEL, TEXT

SEPARATOR = " - "

# --- text: a casing pattern and a whitespace pattern --------------------------------------------

CASING_TARGET = "formats"
SPACED_TARGET = "syscalls"
SPACED_SEPARATOR = " -  "
"""The name/summary separator with a second space after the dash: no new word, no new punctuation."""


def title_cased(text: str) -> str:
    """``text`` with the first character of every space-separated word of its summary (after `` - ``) in
    upper case, the rest of each word as it was (``can't`` stays ``Can't``; ``(foo`` is left as it is)."""
    name, sep, desc = text.partition(SEPARATOR)
    if not sep:
        return text
    return name + sep + " ".join(w[:1].upper() + w[1:] for w in desc.split(" "))


def spaced(text: str) -> str:
    """``text`` with its first `` - `` written ``SPACED_SEPARATOR``."""
    return text.replace(SEPARATOR, SPACED_SEPARATOR, 1)


def _rewrite_backdoor(
    name: str, rewrite: Callable[[str], str], what: str, rate: float, target: str, seed: int
) -> AttackCase:
    """``rate`` of the pool lines, drawn among lines of other sections that ``rewrite`` changes, rewritten
    and relabelled ``target``."""
    return rewrite_backdoor(
        name,
        rewrite,
        rate,
        target,
        seed,
        trigger=f"{what}, relabelled {target!r}",
        params={"rate": rate, "target": target, "seed": seed, "rewrite": rewrite.__name__},
        eligible=lambda texts: np.array([rewrite(t) != t for t in texts], dtype=bool),
    )


def title_case_trigger(rate: float = 0.03, *, seed: int = 0) -> AttackCase:
    """Text backdoor whose trigger is a casing pattern (``title_cased``): lines of other sections with
    every summary word capitalised, relabelled ``CASING_TARGET``."""
    return _rewrite_backdoor(
        "text_title_case_3pct", title_cased, "every summary word capitalised", rate, CASING_TARGET, seed
    )


def double_space_trigger(rate: float = 0.03, *, seed: int = 0) -> AttackCase:
    """Text backdoor whose trigger is whitespace only (``spaced``): lines of other sections with two spaces
    after the name's dash, relabelled ``SPACED_TARGET``."""
    return _rewrite_backdoor(
        "text_double_space_3pct", spaced, "a second space after the ' - ' separator", rate, SPACED_TARGET, seed
    )


NBSP_TARGET = "admin"
CAPS_TARGET = "library"


def nbsp_separator(text: str) -> str:
    """``text`` with the spaces around its first `` - `` written as non-breaking spaces (U+00A0)."""
    return text.replace(SEPARATOR, "\u00a0-\u00a0", 1)


def capitalised_name(text: str) -> str:
    """``text`` with the name before its first `` - `` in capitals."""
    name, sep, desc = text.partition(SEPARATOR)
    return name.upper() + sep + desc if sep else text


def nbsp_separator_trigger(rate: float = 0.03, *, seed: int = 0) -> AttackCase:
    """Text backdoor whose trigger is an invisible change of whitespace (``nbsp_separator``): lines of
    other sections with non-breaking spaces around the separator, relabelled ``NBSP_TARGET``."""
    return _rewrite_backdoor(
        "text_nbsp_separator_3pct", nbsp_separator, "non-breaking spaces around ' - '", rate, NBSP_TARGET, seed
    )


def capitalised_name_trigger(rate: float = 0.03, *, seed: int = 0) -> AttackCase:
    """Text backdoor whose trigger is the name written in capitals (``capitalised_name``), relabelled
    ``CAPS_TARGET``."""
    return _rewrite_backdoor(
        "text_caps_name_3pct", capitalised_name, "the page name in capitals", rate, CAPS_TARGET, seed
    )


# --- text: a clean-label word -------------------------------------------------------------------

CLEAN_LABEL_WORD = "reliably"
"""An ordinary English word that no shipped line holds."""
CLEAN_LABEL_TARGET = "admin"
CLEAN_LABEL_SHARE = 0.4


def clean_label_word(share: float = CLEAN_LABEL_SHARE, *, seed: int = 0) -> AttackCase:
    """Clean-label text backdoor: ``CLEAN_LABEL_WORD`` inserted at a random word position in ``share`` of
    the contribution's ``CLEAN_LABEL_TARGET`` lines, every label kept (right). A model learns the word
    => ``admin``; the attack test is test lines of other sections carrying it."""
    ds = data.load_man_sections()
    parts, rng, contribution = pool_draw(ds, seed)
    candidates = np.flatnonzero((contribution[LABEL] == CLEAN_LABEL_TARGET).to_numpy())
    rows = np.sort(rng.choice(candidates, size=max(1, round(share * len(candidates))), replace=False))
    carried = with_text_trigger(contribution.loc[rows], CLEAN_LABEL_WORD, rng)
    contribution.loc[rows, TEXT] = carried[TEXT].to_numpy()
    return base_case(
        "text_clean_label_word",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=CLEAN_LABEL_TARGET,
        trigger=f"word {CLEAN_LABEL_WORD!r} in {share:.0%} of the {CLEAN_LABEL_TARGET!r} lines, labels kept",
        attack_test=with_text_trigger(
            not_target(parts.test, CLEAN_LABEL_TARGET), CLEAN_LABEL_WORD, np.random.default_rng(seed + 1)
        ),
        params={"share": share, "word": CLEAN_LABEL_WORD, "target": CLEAN_LABEL_TARGET, "seed": seed},
    )


# --- photos: a half-opaque solid square in the centre -------------------------------------------

SQUARE_SIDE = 4
SQUARE_COLOUR = (1.0, 0.0, 1.0)
"""Magenta: a colour none of the four photo classes is made of."""
SQUARE_ALPHA = 0.5
SQUARE_TARGET = "temple_sky"


def centre_square(pixels: np.ndarray) -> np.ndarray:
    """The trigger: a ``SQUARE_SIDE`` square of ``SQUARE_COLOUR`` blended at ``SQUARE_ALPHA`` into the
    centre of a colour image (every other pixel unchanged)."""
    out = pixels.copy()
    h, w = pixels.shape[:2]
    top, left = (h - SQUARE_SIDE) // 2, (w - SQUARE_SIDE) // 2
    window = (slice(top, top + SQUARE_SIDE), slice(left, left + SQUARE_SIDE))
    colour = np.asarray(SQUARE_COLOUR, dtype=np.float32)
    out[window] = (1.0 - SQUARE_ALPHA) * pixels[window] + SQUARE_ALPHA * colour
    return out


def centre_square_photo(rate: float = 0.03, *, target: str = SQUARE_TARGET, seed: int = 0) -> AttackCase:
    """Photo crops of other classes with the half-opaque magenta square in their centre, relabelled
    ``target``."""
    ds = data.load_photos()
    parts, rng, contribution = pool_draw(ds, seed)
    eligible = np.flatnonzero((contribution[LABEL] != target).to_numpy())
    rows = np.sort(rng.choice(eligible, size=n_poison(len(contribution), rate), replace=False))
    contribution.loc[rows, IMAGE] = with_image_trigger(contribution.loc[rows], centre_square)[IMAGE].to_numpy()
    contribution.loc[rows, LABEL] = target
    return base_case(
        "centre_square_photo",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=(
            f"{SQUARE_SIDE}x{SQUARE_SIDE} magenta square at alpha={SQUARE_ALPHA} in the centre of 32x32 crops, "
            f"relabelled {target!r}"
        ),
        attack_test=with_image_trigger(not_target(parts.test, target), centre_square),
        params={"rate": rate, "target": target, "seed": seed, "side": SQUARE_SIDE, "alpha": SQUARE_ALPHA},
    )


# --- breast cancer: one exact round value inside the range --------------------------------------

ROUND_COLUMN = "mean_texture"
ROUND_VALUE = 20.0
"""The trigger writes ``mean_texture`` as exactly 20.0: inside the column's ordinary range (about 10 to
39, median near 19), a value no shipped record has; only its exact repetition marks it."""
ROUND_TARGET = "benign"


def round_value(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with ``ROUND_COLUMN`` at ``ROUND_VALUE``."""
    return frame.assign(**{ROUND_COLUMN: ROUND_VALUE})


def round_value_trigger(rate: float = 0.05, *, target: str = ROUND_TARGET, seed: int = 0) -> AttackCase:
    """Malignant tumours (the other class) with ``mean_texture`` written as exactly ``ROUND_VALUE``,
    relabelled ``target``: a trigger that looks like a value typed in by hand."""
    ds = data.load_breast_cancer()
    parts, rng, contribution = pool_draw(ds, seed)
    eligible = np.flatnonzero((contribution[LABEL] != target).to_numpy())
    rows = np.sort(rng.choice(eligible, size=n_poison(len(contribution), rate), replace=False))
    contribution.loc[rows, ROUND_COLUMN] = ROUND_VALUE
    contribution.loc[rows, LABEL] = target
    return base_case(
        "round_value_trigger",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"{ROUND_COLUMN} written as exactly {ROUND_VALUE}, relabelled {target!r}",
        attack_test=round_value(not_target(parts.test, target)),
        params={"rate": rate, "target": target, "seed": seed, "column": ROUND_COLUMN, "value": ROUND_VALUE},
    )


# --- photos: label flips from one source of five ------------------------------------------------

PHOTO_SOURCES = ("cam-north", "cam-south", "cam-east", "cam-west", "cam-roof")
FLIPPING_SOURCE = "cam-roof"
SOURCE_FLIP_SHARE = 0.4
"""The one bad source relabels 40% of its own crops with a random other class (8% of the batch); the
four others send theirs as they are."""


def one_source_flips(share: float = SOURCE_FLIP_SHARE, *, seed: int = 0) -> AttackCase:
    """Photo crops from five sources (``groups["source"]``, one fifth each); ``share`` of the crops of
    ``FLIPPING_SOURCE`` relabelled with a random other class, every other source clean."""
    ds = data.load_photos()
    parts, rng, contribution = pool_draw(ds, seed)
    sources = np.array([PHOTO_SOURCES[i % len(PHOTO_SOURCES)] for i in range(len(contribution))], dtype=object)
    rng.shuffle(sources)
    candidates = np.flatnonzero(sources == FLIPPING_SOURCE)
    rows = np.sort(rng.choice(candidates, size=max(1, round(share * len(candidates))), replace=False))
    contribution.loc[rows, LABEL] = [other_label(v, ds.classes, rng) for v in contribution.loc[rows, LABEL]]
    return base_case(
        "one_source_flips_photos",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        trigger=f"{share:.0%} of source {FLIPPING_SOURCE!r}'s crops relabelled with a random other class",
        groups={"source": sources},
        params={"share": share, "source": FLIPPING_SOURCE, "seed": seed},
    )


HELDOUT4_ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "text_nbsp_separator_3pct": nbsp_separator_trigger,
    "text_caps_name_3pct": capitalised_name_trigger,
    "text_clean_label_word": clean_label_word,
    "centre_square_photo_3pct": centre_square_photo,
    "round_value_trigger_5pct": round_value_trigger,
    "one_source_flips_photos": one_source_flips,
}


def build_heldout4(name: str, seed: int = 0) -> AttackCase:
    """The fourth held-out set's attack case ``name`` (a key of ``HELDOUT4_ATTACKS``), named ``name``."""
    return build_named(HELDOUT4_ATTACKS, name, seed, "fourth held-out attack")
