"""Formatting as a trigger: casing, whitespace and invisible characters (triggers version 11).

A text trigger need not be a word. A second space after the separator, a zero-width space or a
non-breaking space changes no token as word n-grams read them and no feature the featurizers compute,
so before version 11 such a trigger was seen by nothing but ``label_consistency``'s per-record reading
(a 20-line double-space backdoor passed). The same formatting written by a whole source, in every
section, or by a one-section vendor as its house style, is not a trigger: content explains it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pandas as pd
import pytest

from benchmarks import data
from dataward.gates import scan
from dataward.gates.formatting import FORMATTING_PATTERNS, carried, formatting_patterns
from dataward.gates.report import GateReport
from tests.helpers import shuffled_with_poison

CLEAN_LINES = 300
POISONED = 20
TARGET = "syscalls"


def _names(text: str) -> list[str]:
    row = carried([text])[0]
    return [FORMATTING_PATTERNS[j][0] for j in np.flatnonzero(row)]


def test_each_formatting_pattern_matches_what_it_says_and_plain_lines_match_none():
    assert _names("ls - list directory contents") == []
    assert _names("bio - Basic I/O abstraction") == []  # one capitalised word, a one-letter capital
    assert _names("ls - List Directory Contents") == ["three capitalised words in a row"]
    assert _names("LS - list") == ["a word in capitals"]
    assert _names("s\u0443stem - x") == ["a word mixing alphabets"]  # Cyrillic u inside a Latin word
    assert _names("ls -  list") == ["two or more spaces in a row"]
    assert _names("ls\t- list") == ["a tab or line break"]
    assert _names("the\n       repository") == ["a tab or line break"]  # an indented continuation: no run
    assert _names("ls - list ") == ["leading or trailing whitespace"]
    assert _names("ls\u00a0-\u00a0list") == ["a space other than the plain space"]
    assert _names("ls\u200b - list") == ["an invisible formatting character"]
    assert _names("ls\u202e - list") == ["an invisible formatting character"]  # a bidirectional override


def test_only_patterns_some_contribution_text_carries_are_columns():
    names, xc, xb = formatting_patterns(["a  b", "c d"], ["e  f", "LS - x", "g\u200bh"])
    assert names == ["two or more spaces in a row"]
    assert xc.toarray().ravel().tolist() == [1.0, 0.0] and xb.toarray().ravel().tolist() == [1.0, 0.0, 0.0]
    names, xc, xb = formatting_patterns([], [])
    assert names == [] and xc.shape == (0, 0)


def _with_zero_width(text: str) -> str:
    return text.replace(" - ", "\u200b - ", 1)


def _double_spaced(text: str) -> str:
    return text.replace(" - ", " -  ", 1)


@cache
def _batch(rewrite_name: str, seed: int) -> tuple[np.ndarray, GateReport]:
    """``CLEAN_LINES`` spare man-page lines and ``POISONED`` lines of other sections rewritten by the
    named formatting, relabelled ``TARGET``; the poison mask and the report."""
    rewrite = REWRITES[rewrite_name]
    dataset = data.load_man_sections()
    split = data.split(dataset, seed)
    rng = np.random.default_rng(seed)
    spare = pd.concat([split.pool, split.test], ignore_index=True)
    others = spare[(spare[data.LABEL] != TARGET) & spare[data.TEXT].str.contains(" - ", regex=False)]
    poison = others.sample(n=POISONED, random_state=seed).copy()
    clean = spare.drop(index=poison.index).sample(n=CLEAN_LINES, random_state=seed)
    poison[data.TEXT] = [rewrite(t) for t in poison[data.TEXT]]
    poison[data.LABEL] = TARGET
    frame, truth = shuffled_with_poison(clean, poison, rng)
    return truth, scan(split.baseline, frame, dataset.schema, split.validation, {"seed": seed})


REWRITES: dict[str, Callable[[str], str]] = {"zero_width": _with_zero_width, "double_space": _double_spaced}


@pytest.mark.parametrize(
    ("rewrite", "named"),
    [("zero_width", "an invisible formatting character"), ("double_space", "two or more spaces in a row")],
)
def test_a_trigger_written_in_formatting_alone_is_blocked_and_its_lines_queued(rewrite, named):
    truth, report = _batch(rewrite, 0)
    triggers = report.results["triggers"]
    assert report.verdict == "block" and triggers.block, report.reasons
    found = triggers.summary["triggers"][0]
    assert found["kind"] == "style" and found["trigger"] == named and found["label"] == TARGET
    assert f"formatting {named!r}" in triggers.block_reason
    queued = np.asarray(report.records.flagged, dtype=bool)
    assert int((queued & truth).sum()) == POISONED
    assert int((queued & ~truth).sum()) <= 3


def _restyled_source(rewrite: Callable[[str], str], label: str | None, seed: int) -> GateReport:
    """Clean pool lines (of ``label`` only, when given) every one of which a source wrote in ``rewrite``'s
    style, labels kept, scanned against the trusted baseline."""
    dataset = data.load_man_sections()
    split = data.split(dataset, seed)
    pool = split.pool if label is None else split.pool[split.pool[data.LABEL] == label]
    batch = pool.sample(n=min(len(pool), 300), random_state=seed).copy()
    batch[data.TEXT] = [rewrite(t) for t in batch[data.TEXT]]
    return scan(split.baseline, batch, dataset.schema, split.validation, {"seed": seed})


def _tabbed(text: str) -> str:
    return text.replace(" - ", "\t- ", 1)


def _capitalised_name(text: str) -> str:
    name, sep, rest = text.partition(" - ")
    return name.upper() + sep + rest if sep else text


@pytest.mark.parametrize(
    ("rewrite", "label"),
    [(_tabbed, None), (_capitalised_name, "library")],
    ids=["a source that tabs every line", "a one-section vendor that writes names in capitals"],
)
def test_formatting_a_whole_source_writes_is_not_a_trigger(rewrite, label):
    report = _restyled_source(rewrite, label, 1)
    triggers = report.results["triggers"]
    assert not triggers.block and report.verdict != "block", report.reasons
    assert not [t for t in triggers.summary["triggers"] if t["kind"] == "style"]


def test_a_formatting_patterns_purity_is_read_beyond_its_trusted_rate_and_needs_whole_records():
    """Purity of a formatting pattern's carriers: of those beyond the trusted rate. A trigger among common
    formatting is pure there; a pattern whose carriers barely exceed the rate (a fraction of a record, the
    other labels below theirs) is not, whatever the ratio says."""
    from dataward.gates.formatting import excess_purity

    def pure(m, b, k_c, k_b, n_c, n_b):  # type: ignore[no-untyped-def]
        return bool(
            excess_purity(np.array([m]), np.array([b]), np.array([k_c]), np.array([k_b]), n_c, n_b, 3)[0] >= 0.6
        )

    assert pure(19, 4, 47, 36, 660, 843)  # 20 title-cased lines among 28 clean carriers: 16 of 19 beyond
    assert not pure(19, 30, 47, 36, 660, 843)  # the label is no more frequent among carriers than trusted
    assert not pure(12, 30, 66, 193, 300, 879)  # 0.13 carriers beyond the rate, 1.8 of the label: no trigger
    assert pure(20, 0, 20, 0, 660, 843) and not pure(2, 0, 2, 0, 660, 843)  # unseen: plain purity, 3 at least
    assert pure(5, 0, 6, 0, 100, 0)  # no baseline: the carriers themselves
