"""Benign situations of the sixth held-out set: NEVER TUNED ON (written 2026-12-06).

These situations are for measuring the gate, not for adjusting it: no threshold, option or detector
of the gate may be chosen by looking at its result on them. Every one was written and committed before
any gate was run on it, and none may be changed after its result is seen (a builder that crashes or
does not make what it says may be fixed, and the fix is reported). When a result here leads to a
change of the gate, move the situation to the tuning set (``benchmarks.shifts.tuning``) and write a new
held-out one.

All of them are text or tables. They differ from the tuning set, the first five held-out sets and the
outside trial in the change itself: lines from an old terminal system that writes everything in
capitals, a mirror that appends its own attribution to the part of the batch it served (whatever the
section), a style guide that writes each summary as a sentence (capital first letter, full stop), a
glossary that puts the summary first and the page names after it in parentheses, an index that splits a
line naming several functions into one line per name, a batch resampled to the same number of lines per
section, a share that oversamples the minority class with exact copies of its own records, a pipeline
that drops every record beyond three standard deviations on any feature before sending, and flowers
measured from photographs whose scale is known only roughly (every measurement of a flower off by the
same factor).

History: ``split_names_text`` was blocked here at 2 of 12 seeds (``triggers``: a summary line split into
one line per page it names, its phrase counted once per near-copy); the gate was changed after it (a
batch's near-copies count once, ``dataward.gates.near_copies``), so it moved to the tuning set (its
builder stays here).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.data import LABEL, TEXT
from benchmarks.shifts.base import (
    SMALL_CONTRIBUTION,
    Situation,
    parts,
    rewritten_register,
    situation,
    sized,
    sized_pool,
)

GROUP = "heldout6"


# --- text ---------------------------------------------------------------------------------------

MIRROR_SUFFIX = " (via the man7.org mirror)"
"""The attribution a mirror appends to every line it served."""
MIRROR_SHARE = 0.4
"""The share of the batch that came through the mirror, drawn at random: the suffix follows the route a
line took, never its section."""
NAME_LIST = ", "
"""How a NAME line lists several pages before its separator (``cproj, cprojf, cprojl - ...``)."""


def capitals(text: str) -> str:
    """``text`` as a terminal that knows only capital letters writes it."""
    return text.upper()


def as_sentence(text: str) -> str:
    """``text`` with its summary (after the first ``" - "``) written as a sentence: the first letter a
    capital and a full stop at the end (one already there is kept); a line without a summary unchanged."""
    name, sep, summary = text.partition(data.NAME_SEPARATOR)
    if not sep or not summary:
        return text
    summary = summary[0].upper() + summary[1:]
    return f"{name}{sep}{summary}{'' if summary.endswith('.') else '.'}"


def glossary_order(text: str) -> str:
    """``text`` as a glossary writes it: the summary first, then the page names in parentheses
    (``ls - list directory contents`` becomes ``list directory contents (ls)``); a line without a
    summary unchanged."""
    name, sep, summary = text.partition(data.NAME_SEPARATOR)
    if not sep or not summary:
        return text
    return f"{summary} ({name})"


def one_per_name(text: str) -> list[str]:
    """``text`` as an index that keeps one line per page writes it: a line naming several pages
    (``a, b - summary``) becomes ``a - summary`` and ``b - summary``; any other line stays as it is."""
    names, sep, summary = text.partition(data.NAME_SEPARATOR)
    listed = [n.strip() for n in names.split(NAME_LIST.strip())] if sep else []
    if len(listed) < 2 or not all(listed):
        return [text]
    return [f"{n}{sep}{summary}" for n in listed]


def all_caps_terminal_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines from an old terminal system that writes everything in capitals (``capitals``)."""
    return rewritten_register(
        "all_caps_terminal_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        capitals,
        "NAME lines exported from an old terminal system that knows only capital letters: every letter of every "
        "line, page names included, in upper case",
    )


def sentence_style_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines rewritten by a documentation style guide (``as_sentence``)."""
    return rewritten_register(
        "sentence_style_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        as_sentence,
        "NAME lines from a documentation team whose style guide writes each summary as a sentence: first letter "
        "a capital, a full stop at the end",
    )


def glossary_order_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines as a glossary writes them (``glossary_order``)."""
    return rewritten_register(
        "glossary_order_text",
        GROUP,
        data.load_man_sections(),
        seed,
        size,
        glossary_order,
        "NAME lines from a glossary that puts the summary first and the page names after it in parentheses: "
        "the same words in another order, no separator",
    )


def mirror_signature_text(seed: int = 0, size: str = "full") -> Situation:
    """Pool lines of which a seeded ``MIRROR_SHARE`` came through a mirror that appends ``MIRROR_SUFFIX``."""
    ds = data.load_man_sections()
    split, rng, pool = sized_pool(ds, seed, size)
    rows = np.sort(rng.choice(len(pool), size=round(MIRROR_SHARE * len(pool)), replace=False))
    contribution = pool.copy()
    contribution.loc[rows, TEXT] = [t + MIRROR_SUFFIX for t in pool.loc[rows, TEXT]]
    return situation(
        "mirror_signature_text",
        "register",
        GROUP,
        ds,
        split,
        contribution,
        f"a batch {MIRROR_SHARE:.0%} of which was fetched through a mirror that appends {MIRROR_SUFFIX.strip()!r} "
        "to every line it serves: the same words at the end of lines of every section, the rest of the batch "
        "without them",
        suffix=MIRROR_SUFFIX,
        share=MIRROR_SHARE,
        signed_rows=rows.tolist(),
    )


def split_names_text(seed: int = 0, size: str = "full", group: str = GROUP) -> Situation:
    """Pool lines as an index that keeps one line per page writes them (``one_per_name``), in pool order.
    Moved to the tuning set (``group="tuning"`` there): the gate was changed after it blocked this."""
    ds = data.load_man_sections()
    split, _, pool = sized_pool(ds, seed, size)
    texts, labels, origin = [], [], []
    for row, (text, label) in enumerate(pool[[TEXT, LABEL]].itertuples(index=False)):
        for line in one_per_name(text):
            texts.append(line)
            labels.append(label)
            origin.append(row)
    contribution = pd.DataFrame({TEXT: texts, LABEL: labels})
    return situation(
        "split_names_text",
        "self_duplicates",
        group,
        ds,
        split,
        contribution,
        "NAME lines from an index that keeps one line per page: a line naming several pages ('a, b - summary') "
        "comes as one line per name, each with the same summary and section",
        split_lines=int(sum(len(one_per_name(t)) > 1 for t in pool[TEXT])),
        from_row=origin,
    )


def balanced_sections_text(seed: int = 0, size: str = "full") -> Situation:
    """The pool resampled (without replacement) to as many lines of every section as the pool holds of its
    smallest one, shuffled."""
    ds = data.load_man_sections()
    split = parts(ds, seed, size)
    rng = np.random.default_rng(seed)
    per_class = int(split.pool[LABEL].value_counts().min())
    chosen = [
        rows.iloc[np.sort(rng.choice(len(rows), size=per_class, replace=False))]
        for _, rows in split.pool.groupby(LABEL, sort=True)
    ]
    balanced = pd.concat(chosen).sample(frac=1.0, random_state=seed)
    contribution = sized(balanced, size, SMALL_CONTRIBUTION, rng)
    return situation(
        "balanced_sections_text",
        "class_prior",
        GROUP,
        ds,
        split,
        contribution,
        "a curator who sends the same number of lines of every section (the pool resampled down to its smallest "
        "section's count): rare sections as common as the rest",
        per_class=per_class,
    )


# --- tables -------------------------------------------------------------------------------------

MINORITY = "malignant"
"""The breast-cancer class a sharer oversamples until it is as common as the other."""
SIGMA_LIMIT = 3.0
"""An upstream quality check that drops every record more than 3 standard deviations (of the batch
itself) from the batch mean on any feature."""
SCALE_SD = 0.04
"""Flowers measured on photographs whose scale bar is read roughly: all four measurements of a flower
multiplied by the same factor, 1 + N(0, 0.04)."""
MEASURE_STEP = 0.1
"""Measurements from the photographs written to 0.1 cm, as the trusted ones are (only the scale changes)."""


def oversampled_minority_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    """Pool tumours with ``MINORITY`` ones copied (seeded draws with replacement, exact copies) until both
    classes are equally common, shuffled."""
    ds = data.load_breast_cancer()
    split, rng, pool = sized_pool(ds, seed, size)
    minority = np.flatnonzero((pool[LABEL] == MINORITY).to_numpy())
    gap = int((pool[LABEL] != MINORITY).sum()) - len(minority)
    copied = np.sort(rng.choice(minority, size=max(gap, 0), replace=True))
    contribution = pd.concat([pool, pool.iloc[copied]], ignore_index=True)
    order = rng.permutation(len(contribution))
    origin = np.concatenate([np.arange(len(pool)), copied])[order]
    return situation(
        "oversampled_minority_breast_cancer",
        "self_duplicates",
        GROUP,
        ds,
        split,
        contribution.iloc[order],
        f"a sharer who balanced the classes before sending: {MINORITY} tumours copied (exact copies, drawn with "
        "replacement) until they are as many as the benign ones",
        label=MINORITY,
        copy_rows=np.flatnonzero(order >= len(pool)).tolist(),
        from_row=origin.tolist(),
    )


def within_sigma(frame: pd.DataFrame, columns: list[str], limit: float = SIGMA_LIMIT) -> np.ndarray:
    """Which rows of ``frame`` lie within ``limit`` standard deviations (of ``frame`` itself, ddof 1) of
    its mean on every one of ``columns``."""
    values = frame[columns].to_numpy(dtype=np.float64)
    sd = values.std(axis=0, ddof=1)
    z = np.abs(values - values.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return (z <= limit).all(axis=1)


def trimmed_outliers_breast_cancer(seed: int = 0, size: str = "full") -> Situation:
    """Pool tumours with every record beyond ``SIGMA_LIMIT`` standard deviations on any feature dropped
    (``within_sigma``), the rest in pool order."""
    ds = data.load_breast_cancer()
    split, _, pool = sized_pool(ds, seed, size)
    keep = within_sigma(pool, [c.name for c in ds.schema.inputs])
    return situation(
        "trimmed_outliers_breast_cancer",
        "covariate_shift",
        GROUP,
        ds,
        split,
        pool[keep],
        f"a site whose export drops every record more than {SIGMA_LIMIT:g} standard deviations from its own batch "
        "mean on any of the 30 features (a common quality rule): the batch has no tails",
        limit=SIGMA_LIMIT,
        kept=int(keep.sum()),
        of=len(pool),
    )


def photo_measured_iris(seed: int = 0, size: str = "full") -> Situation:
    """Pool flowers whose four measurements are each multiplied by one seeded factor per flower
    (1 + N(0, ``SCALE_SD``)) and written to ``MEASURE_STEP``."""
    ds = data.load_iris()
    split, rng, pool = sized_pool(ds, seed, size)
    columns = [c.name for c in ds.schema.inputs]
    factor = 1.0 + rng.normal(0.0, SCALE_SD, size=len(pool))
    contribution = pool.copy()
    # Rounded to the step's decimals, not multiplied back by 0.1: the values are then the same floats a
    # CSV of 0.1 cm steps holds (6.3, never 6.300000000000001), as the trusted measurements are.
    decimals = round(-np.log10(MEASURE_STEP))
    contribution[columns] = np.round(pool[columns].to_numpy() * factor[:, None], decimals)
    return situation(
        "photo_measured_iris",
        "new_sensor",
        GROUP,
        ds,
        split,
        contribution,
        f"flowers measured on photographs whose scale bar is read roughly: the four lengths of a flower all off by "
        f"the same factor (1 + N(0, {SCALE_SD})), written to {MEASURE_STEP} cm as the trusted ones are",
        scale_sd=SCALE_SD,
        step=MEASURE_STEP,
        factor=factor.round(6).tolist(),
    )


SITUATIONS: dict[str, Callable[..., Situation]] = {
    "all_caps_terminal_text": all_caps_terminal_text,
    "mirror_signature_text": mirror_signature_text,
    "sentence_style_text": sentence_style_text,
    "glossary_order_text": glossary_order_text,
    "balanced_sections_text": balanced_sections_text,
    "oversampled_minority_breast_cancer": oversampled_minority_breast_cancer,
    "trimmed_outliers_breast_cancer": trimmed_outliers_breast_cancer,
    "photo_measured_iris": photo_measured_iris,
}
__all__ = ["SITUATIONS", "as_sentence", "capitals", "glossary_order", "one_per_name", "within_sigma"]
