"""What folding near-copies must not give away: an attacker's ways around ``dataward.gates.near_copies``
and the leave-group-out naive Bayes, each written as the behaviour a user relies on.

Several of these fail on the code they were written against; each says what it shows.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from benchmarks import data
from benchmarks.attacks.text import RARE_TOKEN
from dataward.gates import scan
from dataward.gates.detectors.label_consistency import NaiveBayes
from dataward.gates.near_copies import TOKEN_PATTERN, near_copies
from tests.gates.test_near_copies import copied_poison


def _thue_morse(length: int, first: str, second: str) -> str:
    return " ".join(first if bin(i).count("1") % 2 == 0 else second for i in range(length))


def test_records_whose_tokens_all_differ_are_not_folded_by_a_hash_collision() -> None:
    """The keys are polynomial hashes modulo 2**64, which the Thue-Morse sequence and its complement
    collide for whatever the odd base: 1,024 tokens of two words, every position different, read as
    exact copies. (An attacker who orders a batch's first tokens fixes their ids, and a lattice search
    finds short colliding sequences of other words as well.)"""
    x, y = _thue_morse(1024, "a", "b"), _thue_morse(1024, "b", "a")
    found = near_copies([[x, y]], np.zeros(2, np.int64), token_pattern=TOKEN_PATTERN, rare_below=3)
    assert found.n_groups == 2


def test_column_boundaries_are_not_tokens_two_records_share() -> None:
    """Four text columns, three of them empty: the records share no token, only the column boundaries,
    which were counted towards ``MIN_SHARED`` and the half of each record."""
    found = near_copies(
        [["", ""], ["", ""], ["", ""], ["abc", "xyz"]],
        np.zeros(2, np.int64),
        token_pattern=TOKEN_PATTERN,
        rare_below=3,
    )
    assert found.n_groups == 2


@pytest.mark.parametrize("grouped", [False, True])
def test_leaving_rows_out_is_refitting_without_them_even_with_features_only_they_carry(grouped: bool) -> None:
    """The refit's vocabulary loses the features only the left-out rows carry, and the row's score reads
    the denominators only through the features the refit keeps. (The closed form charged the row's whole
    mass, its own features included: about +3 nats to its own label here, growing with the mass of
    features nobody else carries, which a sender of padded lines chooses.)"""
    rng = np.random.default_rng(3)
    dense = rng.integers(0, 3, size=(40, 12)).astype(np.float64)
    dense[:, 0] = 1.0
    labels = rng.integers(0, 3, 40)
    members = [0, 1, 7, 9] if grouped else [0]
    labels[members] = labels[0]
    extra = np.zeros((40, 3))
    extra[members, :] = 2.0  # three features only the left-out rows carry
    x = sparse.csr_matrix(np.hstack([dense, extra]))
    groups = np.arange(40)
    groups[members] = 0
    model = NaiveBayes(x, labels, 3)
    joint = model.loo_log_joint(groups) if grouped else model.loo_log_joint()
    rest = np.setdiff1d(np.arange(40), members)
    refit = NaiveBayes(x[rest], labels[rest], 3)
    assert refit.v == 12
    for row in members:
        np.testing.assert_allclose(joint[row], refit.log_joint(x[row])[0], rtol=1e-10)
    # Rows with no feature of their own are still read exactly.
    for row in (2, 3):
        refit_one = NaiveBayes(x[np.setdiff1d(np.arange(40), [row])], np.delete(labels, row), 3)
        np.testing.assert_allclose(model.loo_log_joint()[row], refit_one.log_joint(x[row])[0], rtol=1e-10)


SOURCE, FLIP_TARGET, FLIPPED = "commands", "syscalls", 4


@cache
def _flipped_p_values(copies: int, seed: int, appended: bool) -> np.ndarray:
    """``label_consistency``'s p-values of ``FLIPPED`` relabelled lines (the first copy of each), each sent
    ``copies`` times, copy ``k`` with `` (k)`` appended when ``appended``."""
    dataset = data.load_man_sections()
    split = data.split(dataset, seed)
    spare = pd.concat([split.pool, split.test], ignore_index=True)
    flipped = spare[spare[data.LABEL] == SOURCE].sample(n=FLIPPED, random_state=seed)
    flipped = flipped.assign(**{data.LABEL: FLIP_TARGET})
    clean = spare.drop(index=flipped.index).sample(n=300, random_state=seed)
    parts = [
        flipped.assign(**{data.TEXT: [t + (f" ({k})" if appended and k else "") for t in flipped[data.TEXT]]})
        for k in range(copies)
    ]
    frame = pd.concat([*parts, clean], ignore_index=True)
    report = scan(
        split.baseline, frame, dataset.schema, split.validation, {"seed": seed, "detectors": ["label_consistency"]}
    )
    return np.asarray(report.results["label_consistency"].p_values[:FLIPPED])


@pytest.mark.xfail(
    strict=True,
    reason="known gap: near-copies are substitutions of rare tokens, the rule triggers' counts need; a copy with "
    "' (2)' appended is an insertion, and label_consistency's naive Bayes still reads it with its copies "
    "(docs/gates.md, 'Near-copies count once in text')",
)
@pytest.mark.parametrize("seed", [0, 1])
def test_copies_of_a_flipped_line_that_each_append_a_token_still_read_as_one(seed: int) -> None:
    """Near-copies differ by a substitution of rare tokens; a copy with `` (2)`` appended (an insertion, of
    tokens every copy shares) is none, and five such copies vouch for one another as exact copies did
    before the change: p 0.04-0.30 at seed 0 where the line sent once has 0.002-0.10."""
    once, five = _flipped_p_values(1, seed, False), _flipped_p_values(5, seed, True)
    assert np.all(five <= 2.0 * once + 0.01), (five, once)


TEMPLATES, COPIES = 3, 8


@pytest.mark.parametrize("seed", [0, 1])
def test_a_backdoor_sent_as_three_templates_many_times_is_not_let_through(seed: int) -> None:
    """24 poisoned lines from three templates: ``triggers`` counts them as a handful of records, below what
    it can block on, and no other detector blocks. Counted as 24 records (version 12) ``triggers`` blocked at
    p = 2e-7 and 2e-9. The downstream text model trained on baseline and batch sends 28-31% of other
    sections' test lines with the trigger to the target (10% without poison; 70% for 24 distinct poisoned
    lines): a weaker backdoor, and not let through: the pattern that only the repetition ties to its label
    is a finding for review (triggers 14) with every copy queued."""
    truth, report = copied_poison(COPIES, seed, poisoned=TEMPLATES)
    assert report.verdict == "review", report.reasons
    triggers = report.results["triggers"]
    assert [f.evidence["trigger"] for f in triggers.contribution_findings] == [RARE_TOKEN]
    queued = np.asarray(report.records.flagged, dtype=bool)
    assert int((queued & truth).sum()) == TEMPLATES * COPIES
    assert int((queued & ~truth).sum()) == 0
