"""The attacker's side of ``label_consistency``'s typicality rule (docs/gates.md, "label_consistency").

A record that the trusted models misread but that resembles no trusted class is read as new content (a
new scanner, a recalibrated instrument), not as a flipped label: it goes to one review finding, never to
the queue. An attacker reads that as an invitation: flip the labels, then send the batch through a
scanner that places every page one pixel further right. Every record then resembles no trusted class,
flipped or not, and the flips leave the queue. These tests hold the gate to what it does without the
scanner (``targeted_flips`` is blocked and its flips queued); the control shows that the scanner alone
is not blocked.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from benchmarks.attacks.labels import targeted_flips
from benchmarks.shifts.base import map_images, shift_image
from dataward.gates import scan
from dataward.gates.report import GateReport
from tests.gates.conftest import scan_situation

SEED = 0
GAP = (
    "label_consistency reads the shifted flips as atypical (new content), so none is flagged and its "
    "p-value is 1; the verdict is review, on drift and backdoor's whole-batch findings alone"
)


def _scanner(pixels: np.ndarray) -> np.ndarray:
    return shift_image(pixels, 0, 1)


@cache
def judged(source: str, target: str) -> tuple[GateReport, np.ndarray]:
    """The whole gate on 60% of the batch's ``source`` digits relabelled ``target``, through the scanner."""
    case = targeted_flips(source, target, 0.6, seed=SEED)
    contribution = map_images(case.contribution, _scanner)
    report = scan(case.baseline, contribution, case.schema, case.validation, {"seed": SEED})
    return report, np.asarray(case.poison, dtype=bool)


def test_the_scanner_alone_is_not_blocked() -> None:
    report = scan_situation("new_scanner_digits", SEED)
    assert report.verdict != "block", report.reasons


def test_without_the_scanner_the_flips_are_blocked_and_queued() -> None:
    """What the attacker has to get around."""
    case = targeted_flips("6", "0", 0.6, seed=SEED)
    report = scan(case.baseline, case.contribution, case.schema, case.validation, {"seed": SEED})
    poison = np.asarray(case.poison, dtype=bool)
    assert report.verdict == "block", report.reasons
    assert np.asarray(report.records.flagged, dtype=bool)[poison].mean() >= 0.5


@pytest.mark.xfail(strict=True, reason=GAP)
@pytest.mark.parametrize(("source", "target"), [("6", "0"), ("8", "1")])
def test_flips_sent_through_a_new_scanner_are_queued(source: str, target: str) -> None:
    report, poison = judged(source, target)
    flagged = np.asarray(report.records.flagged, dtype=bool)
    assert flagged[poison].mean() >= 0.5, report.reasons
    assert flagged[~poison].mean() <= 0.01
