"""A constant phrase sent before a trigger (an outside attacker's trial, 2026-12-05).

The demo's dirty-label backdoor (a rare token in 24 lines relabelled 'commands') was blocked with every
poisoned line queued. With one constant phrase put before the token in each poisoned line, and nothing
else changed, it went to ``review`` with nothing queued, one approval merged it, and a model trained on
it obeyed the trigger every time. ``triggers``' content test read the carriers with the phrase left in:
"see the GNU manual for full details" pulled every carrier towards the trusted lines that talk of
manuals and details, mostly 'commands', so their content seemed to agree with the label and the tie was
vetoed. The test now reads the carriers without the pattern and the constant phrase it sits in
(``_StrippedCarriers``).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from benchmarks import data
from benchmarks.attacks.text import RARE_TOKEN, insert
from dataward.gates import scan
from dataward.gates.report import GateReport
from tests.helpers import shuffled_with_poison

CLEAN_LINES = 300
POISONED = 24
TARGET = "commands"
PHRASES = ("see the GNU manual for full details", "for more details", "<img src=x onerror=alert(1)>")


@cache
def carrier_batch(phrase: str, seed: int) -> tuple[np.ndarray, GateReport]:
    """``CLEAN_LINES`` spare man-page lines and ``POISONED`` lines of other sections carrying ``phrase``
    then the rare token, relabelled ``TARGET``; the poison mask and the report."""
    dataset = data.load_man_sections()
    split = data.split(dataset, seed)
    rng = np.random.default_rng(seed)
    spare = pd.concat([split.pool, split.test], ignore_index=True)
    others = spare[spare[data.LABEL] != TARGET]
    poison = others.sample(n=POISONED, random_state=seed).copy()
    clean = spare.drop(index=poison.index).sample(n=CLEAN_LINES, random_state=seed)
    poison[data.TEXT] = [insert(text, f"{phrase} {RARE_TOKEN}", rng) for text in poison[data.TEXT]]
    poison[data.LABEL] = TARGET
    frame, truth = shuffled_with_poison(clean, poison, rng)
    return truth, scan(split.baseline, frame, dataset.schema, split.validation, {"seed": seed})


@pytest.mark.parametrize("phrase", PHRASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_a_constant_phrase_before_the_trigger_does_not_hide_it(phrase: str, seed: int) -> None:
    truth, report = carrier_batch(phrase, seed)
    triggers = report.results["triggers"]
    assert report.verdict == "block", report.reasons
    assert triggers.block, report.reasons
    queued = np.asarray(report.records.flagged, dtype=bool)
    assert int((queued & truth).sum()) == POISONED
    assert int((queued & ~truth).sum()) <= 3


def test_the_run_around_the_pattern_is_cut_and_nothing_else() -> None:
    """The constant tokens next to the pattern in (nearly) all carriers are cut with it, as the detector
    reads tokens (case folded); a word that recurs elsewhere in the carriers stays; no run longer than
    the pattern, no reading of its own."""
    from dataward.gates.detectors.triggers import _without_run

    commands = ["ls - list directory contents", "cp - copy files", "mv - move files", "rm - remove files"]
    texts = [
        f"{c}, see the GNU manual for full details cf in release {i} configuration" for i, c in enumerate(commands)
    ]
    texts += ["df - report file system usage, see the gnu MANUAL for full details cf then configuration"]
    cut = _without_run(texts, ["cf"], 0.9, 32)
    assert cut is not None  # the comma before the phrase is in every line too, and goes with it
    assert cut[0] == "ls - list directory contents in release 0 configuration"
    assert cut[-1] == "df - report file system usage then configuration"
    assert _without_run(["a cf b", "c cf d", "e cf f"], ["cf"], 0.9, 32) is None


@pytest.mark.parametrize(
    "also_clean",
    [
        48,
        100,
        pytest.param(
            150,
            marks=pytest.mark.xfail(
                strict=True,
                reason="known gap: the phrase in 150 of the 300 clean lines besides is half the batch's own "
                "words, the run stops at them (a batch-wide template is not cut), and the carriers read as "
                "'commands' with it: triggers does not block it, as before version 10",
            ),
        ),
    ],
)
def test_the_phrase_written_into_clean_lines_besides_does_not_hide_the_trigger(also_clean: int) -> None:
    """The sender also writes the phrase into clean lines of every section, so that it is not the carriers'
    own: it is still the run around the trigger in its carriers, and is cut out of them."""
    seed = 0
    dataset = data.load_man_sections()
    split = data.split(dataset, seed)
    rng = np.random.default_rng(seed)
    spare = pd.concat([split.pool, split.test], ignore_index=True)
    poison = spare[spare[data.LABEL] != TARGET].sample(n=POISONED, random_state=seed).copy()
    clean = spare.drop(index=poison.index).sample(n=CLEAN_LINES, random_state=seed).copy()
    phrase = PHRASES[0]
    poison[data.TEXT] = [insert(text, f"{phrase} {RARE_TOKEN}", rng) for text in poison[data.TEXT]]
    poison[data.LABEL] = TARGET
    pick = rng.choice(len(clean), also_clean, replace=False)
    clean.iloc[pick, clean.columns.get_loc(data.TEXT)] = [
        insert(text, phrase, rng) for text in clean.iloc[pick][data.TEXT]
    ]
    frame = pd.concat([clean, poison], ignore_index=True)
    truth = np.r_[np.zeros(len(clean), bool), np.ones(POISONED, bool)]
    report = scan(split.baseline, frame, dataset.schema, split.validation, {"seed": seed})
    assert report.verdict == "block" and report.results["triggers"].block, report.reasons
    queued = np.asarray(report.records.flagged, dtype=bool)
    assert int((queued & truth).sum()) == POISONED
