"""A class that moved as a whole is not a relabelled group (backdoor version 7; docs/gates.md, "A class
that moved as a whole").

A lens that darkens towards the corners, or a warmer white balance, moves a whole class of photo crops
towards another in the trusted records' space: its tail stretches past the trusted records at every
coarse threshold, which is what a group of relabelled records looks like to a count. In a class whose
records that are not misread read as another class more than any fifth of them could make them on their
own, ``backdoor`` version 7 counted only records misread beyond the class's finest threshold; version 8
does so in every class and says in its review finding when the class moved. The attacker's side: a
backdoor sent through the same lens, aimed at the class the lens moves, is still blocked.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from benchmarks.attacks.images import badnets_photo, blended_photo
from benchmarks.shifts.base import map_images
from benchmarks.shifts.tuning import vignette
from dataward.gates import scan
from dataward.gates.detectors._within_batch import SHIFT_P, reads_further_than_trusted
from dataward.gates.report import GateReport
from tests.gates.conftest import scan_situation

TARGET = "temple_sky"
"""The class the vignetting lens moves most (its crops read as 'temple_garden')."""


def test_a_share_of_far_records_does_not_make_a_class_move_beyond_that_share() -> None:
    """A fifth of the batch far beyond every trusted record moves a Mann-Whitney test (the class-move
    test the within-batch excuse uses) but not the test against that share; a whole class shifted does."""
    rng = np.random.default_rng(0)
    trusted = rng.normal(0.0, 1.0, 400)
    tainted = np.r_[rng.normal(0.0, 1.0, 160), rng.normal(6.0, 0.1, 40)]
    assert reads_further_than_trusted(tainted, trusted)
    assert not reads_further_than_trusted(tainted, trusted, beyond_share=0.2)
    shifted = rng.normal(1.2, 1.0, 200)
    assert reads_further_than_trusted(shifted, trusted, beyond_share=0.2)
    # The same batch drawn like the trusted records moves neither test.
    assert not reads_further_than_trusted(rng.normal(0.0, 1.0, 200), trusted, beyond_share=0.2)


def test_the_share_test_holds_its_level_at_the_share() -> None:
    """Batches that are exactly a fifth far records and four fifths trusted-like are called moved beyond
    that share at about ``SHIFT_P`` or less (400 draws: none expected)."""
    rng = np.random.default_rng(1)
    calls = 0
    for _ in range(400):
        trusted = rng.normal(0.0, 1.0, 300)
        batch = np.r_[rng.normal(0.0, 1.0, 120), rng.normal(9.0, 0.1, 30)]
        calls += reads_further_than_trusted(batch, trusted, beyond_share=0.2)
    assert calls <= max(1, round(400 * SHIFT_P * 10))


BLOCKED_BEFORE = [("vignetting_photos", 0), ("vignetting_photos", 1), ("white_balance_photos", 9)]


@pytest.mark.parametrize(("name", "seed"), BLOCKED_BEFORE)
def test_a_lens_or_white_balance_is_reviewed_not_blocked(name: str, seed: int) -> None:
    """Each of these was blocked by ``backdoor`` (its count at the 2% or 10% threshold) before version 7."""
    report = scan_situation(name, seed)
    assert report.verdict == "review", report.reasons
    assert not report.results["backdoor"].block


@cache
def judged(attack: str) -> tuple[GateReport, np.ndarray]:
    """The whole gate on the attack aimed at 'temple_sky', every crop through the vignetting lens."""
    build = {"badnets": badnets_photo, "blended": blended_photo}[attack]
    case = build(target=TARGET, seed=0)
    contribution = map_images(case.contribution, vignette)
    report = scan(case.baseline, contribution, case.schema, case.validation, {"seed": 0})
    return report, np.asarray(case.poison, dtype=bool)


@pytest.mark.parametrize("attack", ["badnets", "blended"])
def test_a_backdoor_sent_through_the_lens_is_blocked(attack: str) -> None:
    """The lens moves 'temple_sky' as a whole, so only records misread beyond its finest threshold count:
    relabelled garden crops are, and backdoor still names them."""
    report, poison = judged(attack)
    assert report.verdict == "block", report.reasons
    backdoor = report.results["backdoor"]
    assert backdoor.block, backdoor.summary["classes"][TARGET]
    assert backdoor.summary["classes"][TARGET]["class_moved"]
    flagged = np.asarray(report.records.flagged, dtype=bool)
    assert flagged[poison].any() and flagged[~poison].mean() <= 0.01
