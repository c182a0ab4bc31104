"""A batch's near-copies count once: a line split into a line per name it lists is one record's evidence.

The sixth held-out set's ``split_names_text`` (an index that keeps one line per page: ``inb, inw - port
I/O`` sent as ``inb - port I/O`` and ``inw - port I/O``) was blocked at two of twelve seeds by
``triggers``, which counted the 18 to 32 near-copies of a few summaries as independent carriers of their
phrase. Folding them must not give an attacker a way to hide a trigger: a pattern that can be tested is
carried by every near-copy of a group or by none, and every copy of a poisoned line is still queued.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from benchmarks import data
from benchmarks.attacks.text import RARE_TOKEN, insert
from benchmarks.benign_seeds import scan_at_seed
from benchmarks.shifts import heldout6
from dataward.gates import scan
from dataward.gates.detectors.triggers import TOKEN_PATTERN
from dataward.gates.near_copies import near_copies
from dataward.gates.report import GateReport
from tests.helpers import shuffled_with_poison


def groups(
    texts: list[str], labels: list[int], others: list[list[object]] | None = None, rare_below: int = 3
) -> list[int]:
    found = near_copies([texts], np.asarray(labels), others or [], token_pattern=TOKEN_PATTERN, rare_below=rare_below)
    return found.group.tolist()


def test_lines_split_one_per_name_are_one_group_and_other_lines_are_not() -> None:
    texts = [
        "inb - port I/O",
        "inw - port I/O",
        "outb_p - port I/O",
        "ls - list directory contents",
        "cat - concatenate files and print on the standard output",
        "openssl-req - port I/O",  # three rare tokens in place of one
        "port - I/O",
    ]
    g = groups(texts, [0] * len(texts))
    assert g[0] == g[1] == g[2] == g[5]
    assert len({g[0], g[3], g[4], g[6]}) == 4


def test_exact_copies_are_one_group_whatever_their_length() -> None:
    g = groups(["ok", "ok", "fine", "ls - list directory contents", "ls - list directory contents"], [0] * 5)
    assert g[0] == g[1] and g[3] == g[4] and len(set(g)) == 3


def test_copies_with_different_labels_are_never_folded() -> None:
    """A line sent with two labels is a conflict for ``duplicates``, not one record's evidence."""
    texts = ["inb - port I/O", "inw - port I/O", "inl - port I/O"]
    assert len(set(groups(texts, [0, 1, 0]))) == 2
    assert len(set(groups(["ls - list directory contents"] * 2, [0, 1]))) == 2


def test_a_token_the_batch_repeats_is_never_what_near_copies_differ_in() -> None:
    """A trigger is carried by many records: a line with it in place of a rare word stays its own."""
    lines = ["inb - port I/O", "cf - port I/O", "cf - copy files", "cf - remove directory entries", "inw - port I/O"]
    g = groups(lines, [0] * 5)
    assert g[0] == g[4] and len(set(g)) == 4


def test_near_copies_share_most_of_their_tokens_and_no_more_than_a_short_span_differs() -> None:
    # Too little left in common: one token of a two-token line.
    assert len(set(groups(["alpha beta", "gamma beta"], [0, 0]))) == 2
    # A span of four rare tokens is not a substitution of a name.
    long = ["a1 a2 a3 a4 - port I/O and memory", "b1 b2 b3 b4 - port I/O and memory"]
    assert len(set(groups(long, [0, 0]))) == 2
    # Two places that differ are not one span.
    two = ["inb - port I/O for x86 hosts", "inw - port I/O for arm hosts"]
    assert len(set(groups(two, [0, 0]))) == 2


def test_other_input_columns_must_be_equal() -> None:
    texts = ["inb - port I/O", "inw - port I/O", "inl - port I/O"]
    g = groups(texts, [0, 0, 0], others=[["a", "a", "b"]])
    assert g[0] == g[1] != g[2]


def test_a_text_column_boundary_is_not_crossed() -> None:
    found = near_copies(
        [["inb - port", "inw - port"], ["io", "dma"]],
        np.zeros(2, np.int64),
        token_pattern=TOKEN_PATTERN,
        rare_below=3,
    )
    assert found.n_groups == 2


def test_representatives_take_the_record_carrying_the_most_patterns() -> None:
    found = near_copies(
        [["inb - port I/O"] * 3 + ["x"]], np.zeros(4, np.int64), token_pattern=TOKEN_PATTERN, rare_below=3
    )
    assert found.representatives(np.array([1.0, 5.0, 1.0, 0.0])).tolist() == [1, 3]
    assert found.representatives().tolist() == [0, 3]
    assert found.folded() == 2


@pytest.mark.parametrize("seed", [0, 4])
def test_a_clean_batch_of_lines_split_one_per_name_is_not_blocked(seed: int) -> None:
    """Blocked before by ``triggers`` (``- port i`` in 18 near-copies at seed 0, p = 0.0018)."""
    case = heldout6.split_names_text(seed, "full", group="tuning")
    report = scan_at_seed(case, seed)
    triggers = report.results["triggers"]
    assert not triggers.block, report.reasons
    assert report.verdict == "review", report.reasons
    # Counted copy by copy the phrase is still tied to the label: named for review, its copies queued.
    (finding,) = triggers.contribution_findings
    assert "near-copies of only" in finding.reason and "not enough to block" in finding.reason
    assert finding.evidence["groups"] < finding.evidence["label_count"]
    queued = np.asarray(report.records.flagged, dtype=bool)
    assert queued[np.asarray(triggers.flagged)].all() and int(np.asarray(triggers.flagged).sum()) >= 18


POISONED = 24
TARGET = "commands"


@cache
def copied_poison(copies: int, seed: int, poisoned: int = POISONED) -> tuple[np.ndarray, GateReport]:
    """The dirty-label backdoor (``RARE_TOKEN`` in ``poisoned`` lines of other sections relabelled
    ``TARGET``), each poisoned line sent ``copies`` times under a different page name, among 300 clean lines."""
    dataset = data.load_man_sections()
    split = data.split(dataset, seed)
    rng = np.random.default_rng(seed)
    spare = pd.concat([split.pool, split.test], ignore_index=True)
    others = spare[spare[data.LABEL] != TARGET]
    poison = others.sample(n=poisoned, random_state=seed).copy()
    clean = spare.drop(index=poison.index).sample(n=300, random_state=seed)
    # The trigger goes into the line after its page name; each copy names another page.
    tails = [insert(text.split(" ", 1)[1], RARE_TOKEN, rng) for text in poison[data.TEXT]]
    heads = [text.split(" ", 1)[0] for text in poison[data.TEXT]]
    poison[data.LABEL] = TARGET
    copied = pd.concat(
        [
            poison.assign(
                **{
                    data.TEXT: [
                        f"{h if k == 0 else f'page{k}x{i}'} {t}"
                        for i, (h, t) in enumerate(zip(heads, tails, strict=True))
                    ]
                }
            )
            for k in range(copies)
        ]
    )
    frame, truth = shuffled_with_poison(clean, copied, rng)
    return truth, scan(split.baseline, frame, dataset.schema, split.validation, {"seed": seed})


@pytest.mark.parametrize("seed", [0, 1])
def test_sending_each_poisoned_line_as_near_copies_still_blocks_and_queues_every_copy(seed: int) -> None:
    truth, report = copied_poison(3, seed)
    triggers = report.results["triggers"]
    assert triggers.block and report.verdict == "block", report.reasons
    queued = np.asarray(report.records.flagged, dtype=bool)
    assert int((queued & truth).sum()) == 3 * POISONED
    assert int((queued & ~truth).sum()) <= 3
    assert triggers.summary["triggers"][0]["trigger"] == RARE_TOKEN
