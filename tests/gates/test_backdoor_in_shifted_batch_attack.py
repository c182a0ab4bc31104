"""The attacker's side of excusing records that moved with their batch (docs/gates.md, "Benign shift").

A batch from a darker camera moves whole classes: against the trusted photos, many 'temple_sky' crops
read as 'temple_garden'. ``backdoor`` excuses a misread record when, among the batch's own records, it
still reads as its label (``_within_batch.reads_as_own_within_batch``), so that a new camera is a
difference to review. An attacker reads that as an invitation: send the backdoor through the same
camera, aimed at the class the camera moves most. Taking the class's move off every record (a location
shift of the scores) would excuse every poisoned crop as well (measured: 21 of 21 at seed 0), so the
excuse asks the batch instead; these tests hold it to blocking the poison while the clean batch from
the same camera is not blocked.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from benchmarks.attacks.base import AttackCase
from benchmarks.attacks.images import badnets_photo, blended_photo
from benchmarks.shifts.base import map_images
from benchmarks.shifts.tuning import CAMERA_GAIN, CAMERA_OFFSET
from dataward.gates import scan
from dataward.gates.report import GateReport
from tests.gates.conftest import scan_situation

SEED = 0
TARGET = "temple_sky"
"""The class the darker camera moves most towards another (its crops read as 'temple_garden')."""
POISONING = {"label_consistency", "duplicates", "triggers", "backdoor", "clean_validation"}


def _camera(pixels: np.ndarray) -> np.ndarray:
    return CAMERA_GAIN * pixels + CAMERA_OFFSET


@cache
def _through_the_camera(attack: str) -> tuple[AttackCase, pd.DataFrame]:
    """The attack's case and its whole contribution through the darker camera, built once for both ways of
    sending the poison (``judged`` copies before it changes anything; the gate never writes to its inputs)."""
    build = {"badnets": badnets_photo, "blended": blended_photo}[attack]
    case: AttackCase = build(target=TARGET, seed=SEED)
    return case, map_images(case.contribution, _camera)


@cache
def judged(attack: str, poison_through_camera: bool = True) -> tuple[GateReport, np.ndarray]:
    """The whole gate on the attack's contribution taken through the darker camera (with
    ``poison_through_camera`` False, every clean record is and the poisoned ones are left as they were)."""
    case, contribution = _through_the_camera(attack)
    if not poison_through_camera:
        poison = np.asarray(case.poison, dtype=bool)
        contribution = contribution.copy()
        for column in contribution.columns:
            contribution.loc[poison, column] = case.contribution.loc[poison, column]
    report = scan(case.baseline, contribution, case.schema, case.validation, {"seed": SEED})
    return report, np.asarray(case.poison, dtype=bool)


@pytest.mark.parametrize("seed", [SEED, 7, 9])
def test_the_clean_batch_from_the_camera_is_not_blocked(seed: int) -> None:
    """The control: the same camera without poison is a difference to review. At seeds 7 and 9 the
    camera brings a tenth of the clean 'temple_sky' crops to read as 'temple_garden' even among the
    batch's own records; undoing the change every class shares (``_sensor``) reads them as skies."""
    report = scan_situation("new_camera_photos", seed)
    assert report.verdict != "block", report.reasons


@pytest.mark.parametrize("attack", ["badnets", "blended"])
@pytest.mark.parametrize("poison_through_camera", [True, False], ids=["all-through", "clean-only"])
def test_a_backdoor_sent_through_the_camera_is_blocked(attack: str, poison_through_camera: bool) -> None:
    """Also when only the clean records go through the camera: undoing the change then brightens the
    poisoned crops, which must not make garden content read as sky."""
    report, poison = judged(attack, poison_through_camera)
    assert report.verdict == "block", report.reasons
    blocking = {name for name, result in report.results.items() if result.block}
    assert blocking and blocking <= POISONING
    # The blended pattern is faint: only backdoor's group names it, so the excuse must not reach it.
    assert "backdoor" in blocking
    flagged = np.asarray(report.records.flagged, dtype=bool)
    assert flagged[poison].any() and flagged[~poison].mean() <= 0.01  # the policy's alpha
