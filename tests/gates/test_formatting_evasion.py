"""Formatting a model reads that the word n-grams fold away, beyond the first eight expressions' reach.

Also spelling the n-grams fold or scatter: a capital inside a word ("pT"), and a letter in a look-alike
form (full-width, mathematical, phonetic), which makes a new word of every line it is written in.

``TOKEN_PATTERN`` splits on whatever Python's ``str.split`` calls whitespace (NEXT LINE, the Unicode line
and paragraph separators, the information separators ``\\x1c``-``\\x1f``), and reads a mark drawn as
nothing inside a word (a variation selector, the combining grapheme joiner) as a cut between two
fragments that differ on every line. Until these were read as formatting, a trigger written in them
passed the triggers detector with none of its lines queued.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import data
from dataward.gates import scan
from dataward.gates.formatting import FORMATTING_PATTERNS, carried

POISONED = 20
TARGET = "syscalls"


def _names(text: str) -> list[str]:
    return [FORMATTING_PATTERNS[j][0] for j in np.flatnonzero(carried([text])[0])]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("ls\x85- list", "a tab or line break"),  # NEXT LINE
        ("ls\u2028- list", "a tab or line break"),  # LINE SEPARATOR
        ("ls\u2029- list", "a tab or line break"),  # PARAGRAPH SEPARATOR
        ("ls\x1f- list", "a tab or line break"),  # UNIT SEPARATOR
        ("l\x07s - list", "an invisible formatting character"),  # a control character
        ("l\u034fs - list", "an invisible formatting character"),  # COMBINING GRAPHEME JOINER
        ("l\ufe0fs - list", "an invisible formatting character"),  # a variation selector
        ("l\U000e0101s - list", "an invisible formatting character"),  # a supplementary variation selector
        ("ls -\u3164list", "an invisible formatting character"),  # HANGUL FILLER
        ("ls - c\u0585ntents", "a word mixing alphabets"),  # Armenian oh for o
        ("ls - \u13a0irectory", "a word mixing alphabets"),  # Cherokee a for D
        ("perf-intel-pT - x", "a capital letter inside a word"),  # folded by the lower-cased n-grams
        ("LIst - x", "a capital letter inside a word"),
        ("\uff4cs - list", "a letter in a look-alike form"),  # full-width l
        ("\U0001d425s - list", "a letter in a look-alike form"),  # mathematical bold l
        ("ls - cont\u0251ins", "a letter in a look-alike form"),  # Latin alpha for a
    ],
)
def test_formatting_the_word_ngrams_fold_away_is_read(text, named):
    assert _names(text) == [named]


def test_plain_lines_and_accented_words_carry_no_pattern():
    for text in ("ls - list directory contents", "café - a naïve résumé", "Ελληνικά - ένα", "кошка - кот"):
        assert _names(text) == [], text


def _scan_rewritten(rewrite, seed: int = 0):
    """300 spare man-page lines and 20 lines of other sections rewritten by ``rewrite``, relabelled
    ``TARGET`` (the recipe of ``test_triggers_formatting``); the poison mask and the report."""
    dataset = data.load_man_sections()
    split = data.split(dataset, seed)
    spare = pd.concat([split.pool, split.test], ignore_index=True)
    others = spare[(spare[data.LABEL] != TARGET) & spare[data.TEXT].str.contains(" - ", regex=False)]
    poison = others.sample(n=POISONED, random_state=seed).copy()
    clean = spare.drop(index=poison.index).sample(n=300, random_state=seed)
    poison[data.TEXT] = [rewrite(t) for t in poison[data.TEXT]]
    poison[data.LABEL] = TARGET
    frame = pd.concat([clean, poison], ignore_index=True)
    truth = np.r_[np.zeros(len(clean), bool), np.ones(POISONED, bool)]
    order = np.random.default_rng(seed).permutation(len(frame))
    frame, truth = frame.iloc[order].reset_index(drop=True), truth[order]
    return truth, scan(split.baseline, frame, dataset.schema, split.validation, {"seed": seed})


def _next_line(text: str) -> str:
    return text.replace(" - ", "\x85- ", 1)


def _selector_in_name(text: str) -> str:
    return text[0] + "\ufe0f" + text[1:]


def _full_width_initial(text: str) -> str:
    return chr(ord(text[0]) + 0xFEE0) + text[1:] if "!" <= text[0] <= "~" else text


@pytest.mark.parametrize(
    ("rewrite", "named"),
    [
        (_next_line, "a tab or line break"),
        (_selector_in_name, "an invisible formatting character"),
        (_full_width_initial, "a letter in a look-alike form"),
    ],
    ids=[
        "NEXT LINE for the space before the separator",
        "a variation selector after the first letter",
        "the first letter full-width",
    ],
)
def test_a_trigger_written_in_a_separator_or_selector_is_blocked_and_its_lines_queued(rewrite, named):
    truth, report = _scan_rewritten(rewrite)
    triggers = report.results["triggers"]
    assert report.verdict == "block" and triggers.block, report.reasons
    found = triggers.summary["triggers"][0]
    assert (found["kind"], found["trigger"], found["label"]) == ("style", named, TARGET)
    queued = np.asarray(report.records.flagged, dtype=bool)
    assert int((queued & truth).sum()) == POISONED and int((queued & ~truth).sum()) <= 3


def _space_dropped(text: str) -> str:
    return text.replace(" - ", "- ", 1)


@pytest.mark.xfail(
    strict=True,
    reason="a space dropped before the separator ('ls- list') leaves the same tokens and carries no formatting "
    "pattern: reading it needs whitespace around punctuation in the tokens or a pattern for it, which clean "
    "text carries everywhere ('foo, bar'); not done",
)
def test_a_trigger_written_by_dropping_a_space_is_blocked():
    truth, report = _scan_rewritten(_space_dropped)
    assert report.results["triggers"].block
    assert int((np.asarray(report.records.flagged, dtype=bool) & truth).sum()) == POISONED
