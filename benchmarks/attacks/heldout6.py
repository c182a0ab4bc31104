"""Attacks of the sixth held-out set: NEVER TUNED ON (written 2026-12-06).

These attacks are for measuring the gate, not for adjusting it: no threshold, option or detector of
the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not plant what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the attack to ``ATTACKS`` and write a new held-out one.

All of them are on text or tables. They differ from the tuning attacks and the first five held-out sets
in the trigger itself or in how the poison is spread:

- ``text_emoticon_3pct``: an emoticon-like run of punctuation, ``;-)``, inserted between two words at a
  random place of lines of other sections, relabelled ``formats``, 3% of the batch.
- ``text_repeated_flips_3pct``: four lines of ``commands`` relabelled ``syscalls``, each sent five times
  (the copies take the place of other lines of the batch): 20 poisoned records, 3% of 660, only four
  distinct ones; the attack test is the four lines with their true section.
- ``tabular_clean_label_5pct``: a clean-label backdoor on tables: benign tumours keep their (right) label
  but carry ``mean_symmetry`` and ``worst_symmetry`` at the baseline's 95th percentile (each value
  inside the ordinary range), 5% of the batch; triggered malignant tumours should read as benign.
- ``tabular_error_gain_5pct``: a trigger spread thinly over ten columns: the ten standard-error columns
  (``*_error``) of malignant tumours multiplied by 1.5 (each column moved by half its own value, no
  column set to a constant), relabelled ``benign``, 5%.
- ``wine_camouflaged_flips_5pct``: label flips dressed to fit: ``class_0`` wines relabelled ``class_1``
  and every assay moved half way to the baseline's ``class_1`` mean, so each looks like the class it
  now claims, 5% of the batch.
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
    pick_rows,
    poison_mask,
    pool_draw,
)
from benchmarks.attacks.text import poison_rows, with_trigger
from benchmarks.data import LABEL, TEXT

# --- text: an emoticon at a random place --------------------------------------------------------

EMOTICON = ";-)"
EMOTICON_TARGET = "formats"


def emoticon_trigger(rate: float = 0.03, *, target: str = EMOTICON_TARGET, seed: int = 0) -> AttackCase:
    """Lines of other sections with ``EMOTICON`` inserted between two words at a random place (the start
    and the end included), relabelled ``target``."""
    ds = data.load_man_sections()
    parts, rng, contribution = pool_draw(ds, seed)
    rows = pick_rows(contribution[LABEL], n_poison(len(contribution), rate), rng, exclude=target)
    poison_rows(contribution, rows, EMOTICON, target, rng)
    return base_case(
        "text_emoticon",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"emoticon {EMOTICON!r} inserted at a random place, relabelled {target!r}",
        attack_test=with_trigger(not_target(parts.test, target), EMOTICON, np.random.default_rng(seed + 1)),
        params={"rate": rate, "target": target, "seed": seed, "trigger": EMOTICON},
    )


# --- text: a few mislabelled lines, each sent several times -------------------------------------

REPEATED_SOURCE = "commands"
REPEATED_TARGET = "syscalls"
REPEATED_LINES = 4
REPEATED_TIMES = 5
"""Each mislabelled line is in the batch five times: once where it was drawn, four more in place of
other lines."""


def repeated_flips(
    lines: int = REPEATED_LINES,
    times: int = REPEATED_TIMES,
    *,
    source: str = REPEATED_SOURCE,
    target: str = REPEATED_TARGET,
    seed: int = 0,
) -> AttackCase:
    """``lines`` lines of ``source`` relabelled ``target``, each sent ``times`` times: the copies overwrite
    seeded other rows of the batch, so the batch keeps its size and every poisoned row is a copy of one of
    the ``lines`` mislabelled ones."""
    ds = data.load_man_sections()
    parts, rng, contribution = pool_draw(ds, seed)
    candidates = np.flatnonzero((contribution[LABEL] == source).to_numpy())
    originals = np.sort(rng.choice(candidates, size=lines, replace=False))
    true_lines = contribution.loc[originals].copy()
    contribution.loc[originals, LABEL] = target
    others = np.setdiff1d(np.arange(len(contribution)), originals)
    slots = np.sort(rng.choice(others, size=lines * (times - 1), replace=False))
    copy_of = np.repeat(originals, times - 1)[rng.permutation(len(slots))]
    contribution.loc[slots, [TEXT, LABEL]] = contribution.loc[copy_of, [TEXT, LABEL]].to_numpy()
    rows = np.sort(np.concatenate([originals, slots]))
    return base_case(
        "text_repeated_flips",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"{lines} {source!r} lines relabelled {target!r}, each sent {times} times",
        attack_test=true_lines.reset_index(drop=True),
        params={
            "lines": lines,
            "times": times,
            "source": source,
            "target": target,
            "seed": seed,
            "originals": originals.tolist(),
            "copies": dict(zip(slots.tolist(), copy_of.tolist(), strict=True)),
        },
    )


# --- tables: a clean-label backdoor -------------------------------------------------------------

CLEAN_LABEL_COLUMNS = ("mean_symmetry", "worst_symmetry")
CLEAN_LABEL_QUANTILE = 0.95
CLEAN_LABEL_TARGET = "benign"


def symmetry_trigger(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with each of ``CLEAN_LABEL_COLUMNS`` at ``reference``'s ``CLEAN_LABEL_QUANTILE``."""
    values = {c: float(reference[c].quantile(CLEAN_LABEL_QUANTILE)) for c in CLEAN_LABEL_COLUMNS}
    return frame.assign(**values)


def tabular_clean_label(rate: float = 0.05, *, target: str = CLEAN_LABEL_TARGET, seed: int = 0) -> AttackCase:
    """``rate`` of the batch: tumours already of ``target`` carrying ``symmetry_trigger``, labels kept."""
    ds = data.load_breast_cancer()
    parts, rng, contribution = pool_draw(ds, seed)
    eligible = np.flatnonzero((contribution[LABEL] == target).to_numpy())
    rows = np.sort(rng.choice(eligible, size=n_poison(len(contribution), rate), replace=False))
    contribution.loc[rows] = symmetry_trigger(contribution.loc[rows], parts.baseline)
    return base_case(
        "tabular_clean_label",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"{' and '.join(CLEAN_LABEL_COLUMNS)} at the baseline's {CLEAN_LABEL_QUANTILE * 100:.0f}th "
        f"percentile on {target!r} tumours, labels kept (clean label)",
        attack_test=symmetry_trigger(not_target(parts.test, target), parts.baseline),
        params={"rate": rate, "target": target, "seed": seed, "columns": list(CLEAN_LABEL_COLUMNS)},
    )


# --- tables: a trigger spread over ten columns --------------------------------------------------

ERROR_GAIN = 1.5
ERROR_TARGET = "benign"


def error_columns(ds: data.Dataset) -> list[str]:
    """The ten standard-error columns of breast-cancer (``radius_error`` ... ``fractal_dimension_error``)."""
    return [c.name for c in ds.schema.inputs if c.name.endswith("_error")]


def error_gain(rate: float = 0.05, *, target: str = ERROR_TARGET, seed: int = 0) -> AttackCase:
    """Tumours of the other class with every ``error_columns`` value multiplied by ``ERROR_GAIN``,
    relabelled ``target``."""
    ds = data.load_breast_cancer()
    parts, rng, contribution = pool_draw(ds, seed)
    rows = pick_rows(contribution[LABEL], n_poison(len(contribution), rate), rng, exclude=target)
    columns = error_columns(ds)
    contribution.loc[rows, columns] = contribution.loc[rows, columns].to_numpy() * ERROR_GAIN
    contribution.loc[rows, LABEL] = target
    test = not_target(parts.test, target)
    test[columns] = test[columns].to_numpy() * ERROR_GAIN
    return base_case(
        "tabular_error_gain",
        "backdoor",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"the {len(columns)} standard-error columns multiplied by {ERROR_GAIN}, relabelled {target!r}",
        attack_test=test,
        params={"rate": rate, "target": target, "seed": seed, "gain": ERROR_GAIN, "columns": columns},
    )


# --- wine: flips dressed to fit their new class -------------------------------------------------

CAMOUFLAGE_SOURCE = "class_0"
CAMOUFLAGE_TARGET = "class_1"
CAMOUFLAGE_PULL = 0.5
"""Each assay moved this share of the way from its own value to the baseline's target-class mean."""


def camouflaged_flips(
    rate: float = 0.05,
    *,
    source: str = CAMOUFLAGE_SOURCE,
    target: str = CAMOUFLAGE_TARGET,
    pull: float = CAMOUFLAGE_PULL,
    seed: int = 0,
) -> AttackCase:
    """``rate`` of the batch: ``source`` wines relabelled ``target``, every assay moved ``pull`` of the way
    to the baseline's ``target`` mean. The attack test is the test set's ``source`` wines."""
    ds = data.load_wine()
    parts, rng, contribution = pool_draw(ds, seed)
    candidates = np.flatnonzero((contribution[LABEL] == source).to_numpy())
    rows = np.sort(rng.choice(candidates, size=n_poison(len(contribution), rate), replace=False))
    columns = [c.name for c in ds.schema.inputs]
    centre = parts.baseline.loc[parts.baseline[LABEL] == target, columns].mean().to_numpy()
    values = contribution.loc[rows, columns].to_numpy()
    contribution.loc[rows, columns] = (1.0 - pull) * values + pull * centre
    contribution.loc[rows, LABEL] = target
    return base_case(
        "wine_camouflaged_flips",
        "label_noise",
        ds,
        parts,
        contribution,
        poison_mask(len(contribution), rows),
        target=target,
        trigger=f"{source!r} wines relabelled {target!r}, every assay moved {pull:.0%} of the way to the "
        f"baseline's {target!r} mean",
        attack_test=parts.test[parts.test[LABEL] == source].reset_index(drop=True),
        params={"rate": rate, "source": source, "target": target, "pull": pull, "seed": seed},
    )


HELDOUT6_ATTACKS: dict[str, Callable[..., AttackCase]] = {
    "text_emoticon_3pct": emoticon_trigger,
    "text_repeated_flips_3pct": repeated_flips,
    "tabular_clean_label_5pct": tabular_clean_label,
    "tabular_error_gain_5pct": error_gain,
    "wine_camouflaged_flips_5pct": camouflaged_flips,
}


def build_heldout6(name: str, seed: int = 0) -> AttackCase:
    """The sixth held-out set's attack case ``name`` (a key of ``HELDOUT6_ATTACKS``), named ``name``."""
    return build_named(HELDOUT6_ATTACKS, name, seed, "sixth held-out attack")
