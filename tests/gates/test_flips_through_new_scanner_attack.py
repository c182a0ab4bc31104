"""The attacker's side of ``label_consistency``'s typicality rule (docs/gates.md, "label_consistency").

A record that the trusted models misread but that resembles no trusted class is read as new content (a
new scanner, a recalibrated instrument), not as a flipped label: it goes to one review finding, never to
the queue. An attacker reads that as an invitation: flip the labels, then send the batch through a
scanner that places every page one pixel further right. Every record then resembles no trusted class,
flipped or not, and the flips leave the queue. These tests hold the gate to what it does without the
scanner (``targeted_flips`` is blocked and its flips queued); the control shows that the scanner alone
is not blocked. ``label_consistency`` now reads a record with the frame's move undone on its pixels when
that places it nearer to trusted records (``_moved_back``); flips that never went through the scanner, sent
among moved records, keep their first reading.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from benchmarks.attacks.base import AttackCase
from benchmarks.attacks.labels import targeted_flips
from benchmarks.shifts.base import map_images, shift_image
from dataward.gates import scan
from dataward.gates.report import GateReport
from tests.gates.conftest import scan_situation

SEED = 0
GAP = (
    "read with the frame's move undone, 18 of the 31 moved '8's sent as '1' are flagged and 13 queued (none "
    "clean), short of half; label_consistency's p=9e-6 reviews but does not reach block_p (before the move was "
    "undone none was flagged at all)"
)


def _scanner(pixels: np.ndarray) -> np.ndarray:
    return shift_image(pixels, 0, 1)


@cache
def _flips(source: str, target: str) -> AttackCase:
    """``targeted_flips`` of 60% of the batch's ``source`` digits to ``target``, built once for the tests that
    send it in different ways (each copies what it changes; the gate never writes to its inputs)."""
    return targeted_flips(source, target, 0.6, seed=SEED)


@cache
def judged(source: str, target: str) -> tuple[GateReport, np.ndarray]:
    """The whole gate on 60% of the batch's ``source`` digits relabelled ``target``, through the scanner."""
    case = _flips(source, target)
    contribution = map_images(case.contribution, _scanner)
    report = scan(case.baseline, contribution, case.schema, case.validation, {"seed": SEED})
    return report, np.asarray(case.poison, dtype=bool)


def test_the_scanner_alone_is_not_blocked() -> None:
    report = scan_situation("new_scanner_digits", SEED)
    assert report.verdict != "block", report.reasons


def test_without_the_scanner_the_flips_are_blocked_and_queued() -> None:
    """What the attacker has to get around."""
    case = _flips("6", "0")
    report = scan(case.baseline, case.contribution, case.schema, case.validation, {"seed": SEED})
    poison = np.asarray(case.poison, dtype=bool)
    assert report.verdict == "block", report.reasons
    assert np.asarray(report.records.flagged, dtype=bool)[poison].mean() >= 0.5


@pytest.mark.parametrize(
    ("source", "target"),
    [("6", "0"), pytest.param("8", "1", marks=pytest.mark.xfail(strict=True, reason=GAP))],
)
def test_flips_sent_through_a_new_scanner_are_queued(source: str, target: str) -> None:
    """Read with the frame's move undone (``label_consistency._moved_back``), a moved '6' sent as '0' reads
    as the '6' it is: before, every flip read as new content and none was queued."""
    report, poison = judged(source, target)
    flagged = np.asarray(report.records.flagged, dtype=bool)
    assert flagged[poison].mean() >= 0.5, report.reasons
    assert flagged[~poison].mean() <= 0.01


def test_flips_left_unmoved_among_moved_records_keep_their_first_reading() -> None:
    """The sender moves the clean records only: the flips, as sent, read as the '6's they are. Moving them
    back would move them away from every trusted record, so they are read as sent, and queued."""
    case = _flips("6", "0")
    poison = np.asarray(case.poison, dtype=bool)
    contribution = map_images(case.contribution, _scanner)
    contribution.loc[poison, "image"] = case.contribution.loc[poison, "image"].to_numpy()
    report = scan(case.baseline, contribution, case.schema, case.validation, {"seed": SEED})
    frame = report.results["label_consistency"].summary["frame"]
    assert frame is not None and frame["read_moved_back"] <= (~poison).sum(), frame
    assert report.verdict == "block", report.reasons
    assert np.asarray(report.records.flagged, dtype=bool)[poison].mean() >= 0.5
