"""A scanner of lower resolution (``gates/detectors/_resolution.py``), as ``backdoor`` reads it.

The benign side: clean digits from an old scanner that captures them at 4x4 and stores them upsampled
(bilinear) to 8x8 are a batch that differs from the baseline (review), not a poisoned one. Blurred '1's
spread towards where trusted '8's have their ink; before the trusted images were captured the same way
and the batch read against them, a third of the batch's '1's read as '8' beyond the class's finest
threshold and the batch was blocked (an outside trial: 4 of 10 seeds).

The attacker's side: a capture only removes detail, so relabelled records sent through the same
scanner still read as the class they came from against the trusted images captured the same way. A
relabelled record that never went through the scanner, sent sharp among blurred ones, is far from every
blurred record and would read as any label: it is read neither against the captured trusted images nor
as having moved with its (blurred) batch.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks import outside_trial
from dataward.gates import scan
from dataward.gates.detectors import backdoor as backdoor_module
from dataward.gates.detectors._resolution import Resolution, estimate_resolution
from dataward.gates.report import GateReport


def _scanner(pixels: np.ndarray, side: int = 4) -> np.ndarray:
    """The old scanner: 8x8 digits (0..1) captured at ``side`` square and upsampled back (bilinear)."""
    image = Image.fromarray(np.uint8(np.rint(pixels * 255)))
    small = image.resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(small.resize((8, 8), Image.Resampling.BILINEAR), float) / 255


def _scanned(pool: pd.DataFrame, sharp: np.ndarray | None = None) -> pd.DataFrame:
    """Every image of ``pool`` through the scanner, but the rows marked ``sharp``."""
    out = pool.copy()
    keep = np.zeros(len(pool), bool) if sharp is None else sharp
    out["image"] = [
        data if kept else outside_trial.png(_scanner(outside_trial.unpng(data)))
        for data, kept in zip(pool["image"], keep, strict=True)
    ]
    return out


@cache
def _digits() -> tuple[pd.DataFrame, dict]:
    """``outside_trial.digits()``, its 1,797 PNGs encoded once for the module (callers copy what they change)."""
    return outside_trial.digits()


@cache
def _relabelled_parts(
    seed: int, source: str, target: str, share: float, sharp: bool
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """The trusted split, the validation set, the batch of ``_relabelled`` and the schema, built once for every
    scan of the same batch (the gate reads them and never writes to them)."""
    frame, schema = _digits()
    base, validation, pool, _ = outside_trial.split(frame.copy(), seed)
    pool = pool.copy()
    rows = np.flatnonzero(pool["label"].to_numpy() == source)
    rows = rows[: round(share * rows.size)]
    pool.loc[rows, "label"] = target
    batch = _scanned(pool, np.isin(np.arange(len(pool)), rows) if sharp else None)
    return base, validation, batch, schema


def _relabelled(seed: int, source: str, target: str, share: float, *, sharp: bool = False) -> GateReport:
    """A share of the batch's ``source`` digits sent as ``target``, every image through the scanner but the
    relabelled ones when ``sharp``."""
    base, validation, batch, schema = _relabelled_parts(seed, source, target, share, sharp)
    return scan(base, batch, schema, validation, {"seed": seed})


@cache
def _low_res(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """``outside_trial.digits_low_res(seed)``, built once for the scan as is and the one with the capture off."""
    return outside_trial.digits_low_res(seed)


@cache
def _clean(seed: int) -> GateReport:
    base, validation, batch, schema = _low_res(seed)
    return scan(base, batch, schema, validation, {"seed": seed})


@pytest.mark.parametrize("seed", [0, 3])
def test_clean_digits_from_a_4x4_scanner_are_reviewed_not_blocked(seed: int, monkeypatch) -> None:
    report = _clean(seed)
    backdoor = report.results["backdoor"]
    assert not backdoor.block, backdoor.block_reason
    assert report.verdict == "review", report.reasons
    capture = backdoor.summary["resolution"]
    assert capture is not None and capture["scale"] == 0.5, capture
    assert capture["excused"] > 0 and "1" in capture["explained_classes"], capture
    # Without the trusted images captured the same way, the same batch is blocked (the case this guards).
    monkeypatch.setattr(backdoor_module, "estimate_resolution", lambda *args, **kwargs: None)
    base, validation, batch, schema = _low_res(seed)
    assert scan(base, batch, schema, validation, {"seed": seed}).results["backdoor"].block


@pytest.mark.parametrize(("source", "target"), [("8", "1"), ("7", "1")])
def test_flips_sent_through_the_same_scanner_are_blocked(source: str, target: str) -> None:
    """60% of the batch's '8's (or '7's) sent as '1', then every image through the 4x4 scanner: against
    the trusted images captured at 4x4 they still read as '8's (or '7's)."""
    report = _relabelled(0, source, target, 0.6)
    backdoor = report.results["backdoor"]
    assert backdoor.summary["resolution"] is not None
    assert backdoor.block, report.reasons
    assert f"labelled {target!r}" in backdoor.block_reason and f"as {source!r}" in backdoor.block_reason


def test_sharp_flips_in_a_low_resolution_batch_are_blocked(monkeypatch) -> None:
    """60% of the batch's '8's sent sharp as '1' among digits through the 4x4 scanner. Far from every
    blurred record, they read as '1' among the batch's own records and against the captured trusted
    '1's alike; neither reading may excuse a record that never went through the capture."""
    report = _relabelled(0, "8", "1", 0.6, sharp=True)
    backdoor = report.results["backdoor"]
    assert backdoor.summary["resolution"]["not_through"] > 0
    assert backdoor.block, report.reasons
    # The protective part: with every record taken for one that went through the capture, the flips
    # are excused (as having moved with the batch, or against the captured trusted images) and the
    # batch is only reviewed.
    monkeypatch.setattr(
        backdoor_module, "_went_through", lambda capture, table, column, positions, mode: np.ones(len(positions), bool)
    )
    assert not _relabelled(0, "8", "1", 0.6, sharp=True).results["backdoor"].block


def test_a_blank_trusted_scan_does_not_let_sharp_flips_pass_as_captured() -> None:
    """One blank scan among the trusted '0's: it has no detail to lose, and read as having lost infinitely
    much it made every record pass the went-through test, so sharp flips among scanned digits were
    excused and the batch only reviewed."""
    # The batch of test_sharp_flips_in_a_low_resolution_batch_are_blocked: 60% of the '8's sent sharp as '1'.
    base, validation, batch, schema = _relabelled_parts(0, "8", "1", 0.6, True)
    blank = pd.DataFrame({"image": [outside_trial.png(np.zeros((8, 8)))], "label": ["0"]})
    base = pd.concat([base, blank], ignore_index=True)
    report = scan(base, batch, schema, validation, {"seed": 0})
    backdoor = report.results["backdoor"]
    assert backdoor.summary["resolution"]["not_through"] > 0
    assert backdoor.block, report.reasons


def _images(seed: int, side: int | None) -> tuple[dict[int, list[Image.Image]], dict[int, list[Image.Image]]]:
    frame, _ = _digits()
    base, _, pool, _ = outside_trial.split(frame.copy(), seed)

    def by_class(part: pd.DataFrame, through: bool) -> dict[int, list[Image.Image]]:
        out: dict[int, list[Image.Image]] = {}
        for data, label in zip(part["image"], part["label"], strict=True):
            pixels = outside_trial.unpng(data)
            pixels = _scanner(pixels, side) if through and side is not None else pixels
            out.setdefault(int(label), []).append(Image.open(io.BytesIO(outside_trial.png(pixels))).convert("L"))
        return out

    return by_class(base, False), by_class(pool, True)


@pytest.mark.parametrize(("side", "scale"), [(None, None), (4, 0.5), (6, 0.75)])
def test_the_capture_is_found_from_sharpness_and_only_when_there_is_one(side: int | None, scale: float | None) -> None:
    trusted, batch = _images(1, side)
    found = estimate_resolution(trusted, batch, seed=1)
    assert (found.scale if found is not None else None) == scale, found
    if found is not None:
        # An image that went through the capture loses little more to it; a sharp one loses its detail.
        assert found.detail_lost(batch[8][0]) <= found.max_loss < found.detail_lost(trusted[8][0])


def test_a_capture_changes_an_image_only_by_resampling_it() -> None:
    image = Image.fromarray(np.uint8(np.arange(64).reshape(8, 8) * 4))
    capture = Resolution(scale=0.5, classes=3, sharpness=0.4, explained=0.9)
    assert capture.degrade(image).size == (8, 8)
    assert Resolution(scale=1.0, classes=3, sharpness=1.0, explained=0.0).degrade(image) is image
