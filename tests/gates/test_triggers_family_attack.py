"""The attacker's side of a new topic's families of pages (docs/gates.md, "Triggers: two routes").

A new software family's library pages (Debian's ``Dpkg::*`` modules) read as other sections to the
baseline and all carry the family's name: to the trigger tests they look like a dirty-label trigger, and
such a batch is blocked at some draws of the baseline. An obvious way to excuse them is to count the
carriers that stay each other's nearest records once the pattern is taken out as one draw (one family,
not forty independent records). It was tried (2026-12-05) and withdrawn because of this attack: the
trigger goes into one family of lines of another class (20 of the 42 spare ``git`` command lines, or 20
``pam`` admin lines), relabelled 'library', beside the family's other lines with their true label. Read
without the trigger the poisoned lines are still one family, so they would count as one draw. That rule
passed the ``git`` batch at seeds 1 and 2 with nothing queued; today ``triggers`` blocks every draw and
queues every poisoned line. The clean batch (the same lines without the poison) is not blocked.
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

CLEAN_LINES = 600
POISONED = 20
TARGET = "library"


@cache
def family_batch(family: str, source: str, seed: int, poisoned: bool) -> tuple[pd.DataFrame, np.ndarray, GateReport]:
    """A batch of ``CLEAN_LINES`` spare man-page lines, plus (when ``poisoned``) ``POISONED`` lines of
    ``source`` naming ``family`` with the rare token inserted, relabelled ``TARGET``; scanned against the
    split's baseline with its validation set. Returns the batch, its poison mask and the report."""
    dataset = data.load_man_sections()
    split = data.split(dataset, seed)
    rng = np.random.default_rng(seed)
    spare = pd.concat([split.pool, split.test], ignore_index=True)
    of_family = spare[data.TEXT].str.contains(rf"\b{family}", case=False) & (spare[data.LABEL] == source)
    poison = spare[of_family].sample(n=POISONED, random_state=seed).copy()
    clean = spare.drop(index=poison.index).sample(n=CLEAN_LINES, random_state=seed)
    poison[data.TEXT] = [insert(text, RARE_TOKEN, rng) for text in poison[data.TEXT]]
    poison[data.LABEL] = TARGET
    parts = [clean, poison] if poisoned else [clean]
    frame = pd.concat(parts, ignore_index=True)
    truth = np.r_[np.zeros(len(clean), bool), np.ones(len(frame) - len(clean), bool)]
    order = rng.permutation(len(frame))
    frame, truth = frame.iloc[order].reset_index(drop=True), truth[order]
    report = scan(split.baseline, frame, dataset.schema, split.validation, {"seed": seed})
    return frame, truth, report


CASES = [("git", "commands", seed) for seed in (0, 1, 2)] + [("pam", "admin", seed) for seed in (0, 1)]


@pytest.mark.parametrize(("family", "source", "seed"), CASES)
def test_a_trigger_hidden_in_one_family_of_lines_is_blocked_and_every_poisoned_line_queued(
    family: str, source: str, seed: int
) -> None:
    _, truth, report = family_batch(family, source, seed, poisoned=True)
    assert report.verdict == "block"
    assert report.results["triggers"].block, report.reasons
    assert RARE_TOKEN in report.results["triggers"].block_reason
    queued = np.asarray(report.records.flagged, dtype=bool)
    assert int((queued & truth).sum()) == POISONED
    assert int((queued & ~truth).sum()) <= 5


@pytest.mark.parametrize(("family", "source", "seed"), [("git", "commands", 1), ("pam", "admin", 1)])
def test_the_same_batch_without_the_poison_is_not_blocked(family: str, source: str, seed: int) -> None:
    _, _, report = family_batch(family, source, seed, poisoned=False)
    assert report.verdict != "block", report.reasons
    assert not report.results["triggers"].block
