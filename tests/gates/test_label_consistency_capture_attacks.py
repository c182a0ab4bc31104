"""Relabelled digits sent through another capture than the batch's, among digits from the 4x4 scanner.

The batch's capture (4x4, bilinear, stored at 8x8) is estimated from its classes' median sharpness; the
went-through test (``Resolution.went_through``) then lets every record whose detail a second capture takes
no more of than it takes of the most detailed trusted image already captured. That bound is loose: most
digits captured at 6x6 or 7x7 (finer than the batch's capture), or blurred with a Gaussian, pass it. Those
records are then read against the trusted images captured at 4x4, where they resemble no trusted class,
and ``label_consistency`` flagged none of them, where read against the trusted images as they are most of
them were flagged. A record that reading cannot read either way (against its label, resembling no trusted
class) now keeps its first reading. The loose bound itself is a known gap (strict xfails below).
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from benchmarks import outside_trial
from dataward.gates import scan
from dataward.gates.detectors import label_consistency
from dataward.gates.detectors._resolution import estimate_resolution
from tests.gates.test_label_consistency_capture import ALONE, _alone, _relabelled, relabelled_pool
from tests.gates.test_low_resolution import _images, _scanner

FILTERS = {
    "6x6 scanner": lambda pixels: _scanner(pixels, 6),
    "gaussian": lambda pixels: ndimage.gaussian_filter(pixels, 0.8),
}


@cache
def _batch(seed: int, source: str, target: str, share: float, flip: str) -> tuple[tuple, np.ndarray]:
    """A share of the pool's ``source`` digits sent as ``target`` through ``FILTERS[flip]``, every other
    digit through the 4x4 scanner. Returns ``scan``'s arguments (label_consistency alone) and the rows."""
    base, validation, pool, schema, poisoned = relabelled_pool(seed, source, target, share)
    pool["image"] = [
        outside_trial.png(np.clip((FILTERS[flip] if hit else _scanner)(outside_trial.unpng(data)), 0, 1))
        for data, hit in zip(pool["image"], poisoned, strict=True)
    ]
    return (base, pool, schema, validation, {"seed": seed, **ALONE}), poisoned


def _flagged(args: tuple, poisoned: np.ndarray) -> int:
    return _flagged_in(scan(*args).results["label_consistency"], poisoned)


def _flagged_in(result, poisoned: np.ndarray) -> int:
    return int((np.asarray(result.flagged, bool) & poisoned).sum())


@cache
def _sharp_ones_as_seven() -> tuple:
    """``label_consistency`` alone on the sharp '1's sent as '7' at seed 3 (two tests read it: one scan)."""
    args, poisoned = _relabelled(3, "1", "7", 0.3, sharp=True)
    return scan(*_alone(args)).results["label_consistency"], poisoned


@pytest.mark.parametrize("flip", sorted(FILTERS))
def test_against_the_trusted_images_as_they_are_the_flips_are_flagged(flip: str, monkeypatch) -> None:
    """The control: without the captured reading, most of the relabelled '3's are flagged."""
    args, poisoned = _batch(0, "3", "8", 0.3, flip)
    monkeypatch.setattr(label_consistency, "batch_capture", lambda *a, **k: None)
    assert _flagged(args, poisoned) >= 0.4 * poisoned.sum()


@pytest.mark.parametrize("flip", sorted(FILTERS))
def test_flips_through_another_capture_are_flagged(flip: str) -> None:
    """'3's sent as '8' through a 6x6 scanner or a Gaussian blur, among digits through the 4x4 scanner:
    they pass the went-through test, but against the 4x4-captured trusted images they disagree with their
    label while resembling no class, so that reading cannot read them and their first reading stands
    (before, none was flagged at seed 0: 0 of 16, against 16 of 16 without the captured reading)."""
    args, poisoned = _batch(0, "3", "8", 0.3, flip)
    result = scan(*args).results["label_consistency"]
    assert result.summary["capture"] is not None
    assert _flagged_in(result, poisoned) >= 0.4 * poisoned.sum()


@pytest.mark.xfail(strict=True, reason="review46: went_through takes most images captured finer than the batch")
def test_digits_captured_finer_than_the_batch_did_not_go_through_it() -> None:
    """The batch's capture is 4x4; digits captured at 6x6 keep detail a 4x4 capture takes away, yet 87%
    of them pass ``went_through`` at seed 0 (the max over trusted captured images is the bound)."""
    trusted, batch = _images(0, 4)
    capture = estimate_resolution(trusted, batch, seed=0)
    assert capture is not None and capture.scale == 0.5
    frame, _ = outside_trial.digits()
    _, _, pool, _ = outside_trial.split(frame, 0)
    finer = [
        Image.open(io.BytesIO(outside_trial.png(_scanner(outside_trial.unpng(data), 6)))).convert("L")
        for data in pool["image"]
    ]
    assert np.mean([capture.went_through(image) for image in finer]) <= 0.2


def test_sharp_ones_sent_as_seven_among_blurred_digits_are_flagged() -> None:
    """A sharp '1' is a bar with little detail for a capture to take: 9 to 17 of the pool's 55 sharp '1's
    pass ``went_through`` (seeds 0 and 3), so sharp '1's sent as '7' among digits from the 4x4 scanner were
    partly read against the blurred trusted images (at seed 3: 11 flagged where 15 were before the captured
    reading). That reading cannot read them (against their label, resembling no class), so their first
    reading stands: 15 of 16 flagged."""
    result, poisoned = _sharp_ones_as_seven()
    assert result.summary["capture"] is not None
    assert (np.asarray(result.flagged, bool) & poisoned).sum() >= 0.9 * poisoned.sum()


def test_sharp_ones_did_not_go_through_the_capture() -> None:
    """The went-through test itself (``Resolution.went_through``, which ``backdoor`` reads too): a sharp '1'
    loses little to a second capture, and with the bound at the most any captured trusted image loses, 4 of
    the 16 sent as '7' at seed 3 were taken for captured; at the 99th percentile none is."""
    result, poisoned = _sharp_ones_as_seven()
    capture = result.summary["capture"]
    assert capture["not_through"] >= poisoned.sum(), capture


def test_the_whole_gate_queues_gaussian_blurred_flips_for_review() -> None:
    """The whole gate on the same attack at seed 4: before the captured reading, 9 of the 16 relabelled
    '3's were in the review queue; with it (before a reading that cannot read a record left its first reading
    standing) none was, and the batch read as a clean one from the 4x4 scanner (verdict review, nothing
    queued)."""
    (base, pool, schema, validation, policy), poisoned = _batch(4, "3", "8", 0.3, "gaussian")
    report = scan(base, pool, schema, validation, {"seed": policy["seed"]})
    assert report.verdict == "review", report.reasons
    assert (np.asarray(report.records.flagged, bool) & poisoned).sum() >= 0.25 * poisoned.sum()
