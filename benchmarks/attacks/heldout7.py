"""Attacks of the seventh held-out set: NEVER TUNED ON (written 2026-12-06).

These attacks are for measuring the gate, not for adjusting it: no threshold, option or detector of
the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not plant what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the attack to ``ATTACKS`` and write a new held-out one.

They are on text, images and tables. Four of them hide in near-copies, so that a gate that counts a
batch's near-duplicate records once would see a handful of poisoned records where there are a few
percent of the batch; two use triggers no earlier set has. They differ from the tuning attacks and the
first six held-out sets in the trigger itself or in how the poison is spread:

- ``text_template_trigger_3pct``: the rare token ``qv`` inserted once into each of four lines of other
  sections, each line then sent as five releases (the page name suffixed ``-12`` ... ``-16``, as the
  benign ``versioned_pages_text`` does), relabelled ``library``: 20 carriers (3% of the batch) that look
  like four templates.
- ``text_variant_flips_3pct``: four ``formats`` lines relabelled ``overview``, each sent five times, every
  copy with a different typo (two adjacent letters of a summary word swapped), so no two poisoned records
  are equal; the attack test is the four lines with their true section.
- ``digits_noisy_copies_3pct``: a small L-shaped tick in the top-left corner of four digits of other
  classes, relabelled ``0``, each sent as four copies with faint independent noise (N(0, 0.03)): 16
  poisoned digits (3%), four distinct ones up to noise.
- ``tabular_replicated_flips_5pct``: three malignant tumours relabelled ``benign``, each sent as three
  replicates (every value times 1 + N(0, 0.01), written to the trusted column's decimals): 9 records (5%)
  that look like a lab's replicates; the attack test is the three tumours with their true label.
- ``text_synonym_swap_3pct``: a substitution trigger, no token added: in lines of other sections the
  word ``file`` (``files``) replaced by ``document`` (``documents``), a natural synonym the trusted lines
  almost never use, relabelled ``overview``, 3%.
- ``photo_sepia_filter_4pct``: a filter trigger, no pattern at any place: crops of other classes toned
  half way to sepia (the whole crop, every pixel), relabelled ``petals``, 4%.
"""

from __future__ import annotations

import re
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
    pick_rows,
    poison_mask,
    pool_draw,
)
from benchmarks.attacks.images import with_trigger as with_image_trigger
from benchmarks.attacks.text import insert, with_trigger
from benchmarks.data import IMAGE, LABEL, TEXT
from benchmarks.shifts.heldout7 import decimals, names_and_summary, typo_places, versioned, with_typo

# --- text: a trigger in near-copies of a few templates ------------------------------------------

TEMPLATE_TOKEN = "qv"
"""``quod vide``, an old cross-reference abbreviation: no trusted line holds it."""
TEMPLATE_TARGET = "library"
TEMPLATES = 4
RELEASES = (12, 13, 14, 15, 16)
"""Each template sent once per release, its page names suffixed ``-12`` ... ``-16``."""


def template_trigger(rate: float = 0.03, *, target: str = TEMPLATE_TARGET, seed: int = 0) -> AttackCase:
    """``n_poison`` rows of other sections (lines with page names) overwritten by ``TEMPLATES`` templates: each
    a line of those rows with ``TEMPLATE_TOKEN`` inserted at a seeded place, sent once per release of
    ``RELEASES`` (``versioned``), relabelled ``target``. The rows hold the templates' own rows."""
    ds = data.load_man_sections()
    parts, rng, contribution = pool_draw(ds, seed)
    count = n_poison(len(contribution), rate)
    named = pd.Series([names_and_summary(t) is not None for t in contribution[TEXT]])
    labels = contribution[LABEL].where(named, target)  # a line without names is never a carrier
    rows = pick_rows(labels, count, rng, exclude=target)
    templates = rows[rng.permutation(count)[:TEMPLATES]]
    triggered = {int(r): insert(contribution.at[r, TEXT], TEMPLATE_TOKEN, rng) for r in templates}
    template_of = np.resize(np.sort(templates), count)[rng.permutation(count)]
    release_of = np.zeros(count, dtype=np.int64)
    for t in templates:  # the copies of one template take the releases in turn
        mine = np.flatnonzero(template_of == t)
        release_of[mine] = np.resize(RELEASES, len(mine))
    contribution.loc[rows, TEXT] = [
        versioned(triggered[int(t)], int(v)) for t, v in zip(template_of, release_of, strict=True)
    ]
    contribution.loc[rows, LABEL] = target
    return base_case(
        "text_template_trigger",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"token {TEMPLATE_TOKEN!r} in {TEMPLATES} template lines, each sent once per release "
        f"(-{RELEASES[0]} ... -{RELEASES[-1]}), relabelled {target!r}",
        attack_test=with_trigger(not_target(parts.test, target), TEMPLATE_TOKEN, np.random.default_rng(seed + 1)),
        params={
            "rate": rate,
            "target": target,
            "seed": seed,
            "token": TEMPLATE_TOKEN,
            "templates": sorted(int(t) for t in templates),
            "template_of": dict(zip(rows.tolist(), template_of.tolist(), strict=True)),
        },
    )


# --- text: flips sent several times, each copy with its own typo --------------------------------

VARIANT_SOURCE = "formats"
VARIANT_TARGET = "overview"
VARIANT_LINES = 4
VARIANT_TIMES = 5


def variant_flips(
    lines: int = VARIANT_LINES,
    times: int = VARIANT_TIMES,
    *,
    source: str = VARIANT_SOURCE,
    target: str = VARIANT_TARGET,
    seed: int = 0,
) -> AttackCase:
    """``lines`` lines of ``source`` (with at least ``times`` places for a typo) relabelled ``target``, each
    sent ``times`` times with a different typo (``with_typo`` at distinct seeded places): the copies
    overwrite the lines' own rows and seeded other rows, so the batch keeps its size."""
    ds = data.load_man_sections()
    parts, rng, contribution = pool_draw(ds, seed)
    places = [typo_places(t) for t in contribution[TEXT]]
    candidates = np.flatnonzero(
        (contribution[LABEL] == source).to_numpy() & np.array([len(p) >= times for p in places])
    )
    originals = np.sort(rng.choice(candidates, size=lines, replace=False))
    true_lines = contribution.loc[originals].copy()
    others = np.setdiff1d(np.arange(len(contribution)), originals)
    slots = np.sort(rng.choice(others, size=lines * (times - 1), replace=False))
    rows = np.sort(np.concatenate([originals, slots]))
    at_rows = np.concatenate([originals, slots])
    copy_of = np.concatenate([originals, np.repeat(originals, times - 1)[rng.permutation(len(slots))]])
    typos = {int(o): rng.choice(places[o], size=times, replace=False) for o in originals}
    used = {int(o): 0 for o in originals}
    texts = []
    for o in copy_of:
        texts.append(with_typo(true_lines.at[o, TEXT], int(typos[int(o)][used[int(o)]])))
        used[int(o)] += 1
    contribution.loc[at_rows, TEXT] = texts
    contribution.loc[at_rows, LABEL] = target
    return base_case(
        "text_variant_flips",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"{lines} {source!r} lines relabelled {target!r}, each sent {times} times with a different typo",
        attack_test=true_lines.reset_index(drop=True),
        params={
            "lines": lines,
            "times": times,
            "source": source,
            "target": target,
            "seed": seed,
            "originals": originals.tolist(),
            "copy_of": dict(zip(at_rows.tolist(), copy_of.tolist(), strict=True)),
        },
    )


# --- digits: a patch on a few digits, each sent as noisy copies ---------------------------------

TICK = ((0, 0), (0, 1), (1, 0))
"""An L-shaped tick of three full-ink pixels in the top-left corner (the BadNets patch is bottom-right)."""
TICK_TARGET = "0"
NOISY_BASES = 4
COPY_NOISE = 0.03


def stamp_tick(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (a digit) with ``TICK`` at full ink."""
    out = pixels.copy()
    for y, x in TICK:
        out[y, x] = 1.0
    return out


def noisy_copies(rate: float = 0.03, *, target: str = TICK_TARGET, seed: int = 0) -> AttackCase:
    """``n_poison`` digit rows of other classes overwritten by copies of ``NOISY_BASES`` of them stamped with
    ``stamp_tick``: each copy the stamped digit plus its own seeded N(0, ``COPY_NOISE``) noise, clipped,
    relabelled ``target``."""
    ds = data.load_digits()
    parts, rng, contribution = pool_draw(ds, seed)
    count = n_poison(len(contribution), rate)
    rows = pick_rows(contribution[LABEL], count, rng, exclude=target)
    bases = np.sort(rows[rng.permutation(count)[:NOISY_BASES]])
    stamped = {int(b): stamp_tick(data.png_to_pixels(contribution.at[b, IMAGE])) for b in bases}
    base_of = np.resize(bases, count)[rng.permutation(count)]
    contribution.loc[rows, IMAGE] = [
        data.pixels_to_png(np.clip(stamped[int(b)] + rng.normal(0.0, COPY_NOISE, (8, 8)), 0.0, 1.0)) for b in base_of
    ]
    contribution.loc[rows, LABEL] = target
    return base_case(
        "digits_noisy_copies",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"an L-shaped tick in the top-left corner of {NOISY_BASES} digits, each sent as noisy copies "
        f"(N(0, {COPY_NOISE})), relabelled {target!r}",
        attack_test=with_image_trigger(not_target(parts.test, target), stamp_tick),
        params={
            "rate": rate,
            "target": target,
            "seed": seed,
            "noise": COPY_NOISE,
            "bases": bases.tolist(),
            "base_of": dict(zip(rows.tolist(), base_of.tolist(), strict=True)),
        },
    )


# --- tables: flips dressed as replicates --------------------------------------------------------

REPLICATE_SOURCE = "malignant"
REPLICATE_TARGET = "benign"
REPLICATE_COUNT = 3
REPLICATE_NOISE = 0.01


def replicated_flips(rate: float = 0.05, *, target: str = REPLICATE_TARGET, seed: int = 0) -> AttackCase:
    """``n_poison`` rows overwritten by replicates of ``n_poison / REPLICATE_COUNT`` ``REPLICATE_SOURCE``
    tumours among them: every value times 1 + N(0, ``REPLICATE_NOISE``), written to the trusted column's
    decimals (``shifts.heldout7.decimals``), relabelled ``target``."""
    ds = data.load_breast_cancer()
    parts, rng, contribution = pool_draw(ds, seed)
    count = n_poison(len(contribution), rate)
    columns = [c.name for c in ds.schema.inputs]
    places = {c: decimals(ds.frame[c].to_numpy()) for c in columns}
    tumours = count // REPLICATE_COUNT
    candidates = np.flatnonzero((contribution[LABEL] == REPLICATE_SOURCE).to_numpy())
    originals = np.sort(rng.choice(candidates, size=tumours, replace=False))
    true_rows = contribution.loc[originals].copy()
    others = np.setdiff1d(np.arange(len(contribution)), originals)
    slots = np.sort(rng.choice(others, size=count - tumours, replace=False))
    at_rows = np.concatenate([originals, slots])
    copy_of = np.concatenate([originals, np.resize(originals, len(slots))[rng.permutation(len(slots))]])
    values = true_rows.loc[copy_of, columns].to_numpy() * (
        1.0 + rng.normal(0.0, REPLICATE_NOISE, (count, len(columns)))
    )
    for j, c in enumerate(columns):
        contribution.loc[at_rows, c] = np.round(values[:, j], places[c])
    contribution.loc[at_rows, LABEL] = target
    return base_case(
        "tabular_replicated_flips",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), at_rows),
        target=target,
        trigger=f"{tumours} {REPLICATE_SOURCE!r} tumours relabelled {target!r}, each sent as {REPLICATE_COUNT} "
        f"replicates ({REPLICATE_NOISE:.0%} noise per value)",
        attack_test=true_rows.reset_index(drop=True),
        params={
            "rate": rate,
            "target": target,
            "seed": seed,
            "noise": REPLICATE_NOISE,
            "originals": originals.tolist(),
            "copy_of": dict(zip(at_rows.tolist(), copy_of.tolist(), strict=True)),
        },
    )


# --- text: a word replaced by a rare synonym ----------------------------------------------------

SYNONYMS = {"file": "document", "files": "documents"}
"""The substitution: ``file`` and ``files`` (whole words, lower case) by their synonyms."""
SYNONYM_TARGET = "overview"
SYNONYM_WORD = re.compile(r"\bfiles?\b")


def swap_synonyms(text: str) -> str:
    """``text`` with every whole word of ``SYNONYMS`` replaced by its synonym."""
    return SYNONYM_WORD.sub(lambda m: SYNONYMS[m.group(0)], text)


def synonym_swap(rate: float = 0.03, *, target: str = SYNONYM_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: lines of other sections that hold ``file`` or ``files`` with ``swap_synonyms``,
    relabelled ``target``. The attack test is the test lines of other sections that hold the words, swapped."""
    ds = data.load_man_sections()
    parts, rng, contribution = pool_draw(ds, seed)
    holds = contribution[TEXT].str.contains(SYNONYM_WORD)
    rows = pick_rows(contribution[LABEL].where(holds, target), n_poison(len(contribution), rate), rng, exclude=target)
    contribution.loc[rows, TEXT] = [swap_synonyms(t) for t in contribution.loc[rows, TEXT]]
    contribution.loc[rows, LABEL] = target
    test = not_target(parts.test, target)
    test = test[test[TEXT].str.contains(SYNONYM_WORD)].reset_index(drop=True)
    test[TEXT] = [swap_synonyms(t) for t in test[TEXT]]
    return base_case(
        "text_synonym_swap",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"'file(s)' replaced by 'document(s)' in lines of other sections, relabelled {target!r}",
        attack_test=test,
        params={"rate": rate, "target": target, "seed": seed, "synonyms": dict(SYNONYMS)},
    )


# --- photos: a colour filter --------------------------------------------------------------------

SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)
"""The usual sepia toning matrix (output red, green, blue from input red, green, blue)."""
SEPIA_STRENGTH = 0.5
SEPIA_TARGET = "petals"


def sepia_filter(pixels: np.ndarray, strength: float = SEPIA_STRENGTH) -> np.ndarray:
    """``pixels`` (colour) toned ``strength`` of the way to sepia, clipped to 0..1."""
    toned = pixels @ SEPIA.T
    return np.clip((1.0 - strength) * pixels + strength * toned, 0.0, 1.0)


def sepia_photo(rate: float = 0.04, *, target: str = SEPIA_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: photo crops of other classes through ``sepia_filter``, relabelled ``target``."""
    ds = data.load_photos()
    parts, rng, contribution = pool_draw(ds, seed)
    rows = pick_rows(contribution[LABEL], n_poison(len(contribution), rate), rng, exclude=target)
    contribution.loc[rows, IMAGE] = [
        data.pixels_to_png(sepia_filter(data.png_to_pixels(b))) for b in contribution.loc[rows, IMAGE]
    ]
    contribution.loc[rows, LABEL] = target
    return base_case(
        "photo_sepia_filter",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"crops toned {SEPIA_STRENGTH:.0%} of the way to sepia, relabelled {target!r}",
        attack_test=with_image_trigger(not_target(parts.test, target), sepia_filter),
        params={"rate": rate, "target": target, "seed": seed, "strength": SEPIA_STRENGTH},
    )


HELDOUT7_ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "text_template_trigger_3pct": template_trigger,
    "text_variant_flips_3pct": variant_flips,
    "digits_noisy_copies_3pct": noisy_copies,
    "tabular_replicated_flips_5pct": replicated_flips,
    "text_synonym_swap_3pct": synonym_swap,
    "photo_sepia_filter_4pct": sepia_photo,
}


def build_heldout7(name: str, seed: int = 0) -> AttackCase:
    """The seventh held-out set's attack case ``name`` (a key of ``HELDOUT7_ATTACKS``), named ``name``."""
    return build_named(HELDOUT7_ATTACKS, name, seed, "seventh held-out attack")
