"""A camera or scanner that frames every image a few pixels off (``gates/detectors/_frame.py``).

The benign side: clean digits from a camera mounted two pixels to the right are a batch that differs
from the baseline (review), not a poisoned one. Before the frame's move was undone, the '0's, their
right edge cut, read as trusted '6's as a class and the batch was blocked with no record to review.

The attacker's side: a move is rigid, so undoing it must never carry relabelled content onto its new
label, whether the flips went through the same camera, replaced a whole class, or were left where they
were while every other image moved (undoing the move then moves them).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from dataward.gates import scan
from dataward.gates.detectors import backdoor as backdoor_module
from dataward.gates.detectors._frame import estimate_frame_shift, shift
from dataward.gates.detectors._lens import GRID
from dataward.gates.report import GateReport

SEED = 0
SCHEMA = {"label": "label", "inputs": [{"name": "image", "kind": "image"}]}
MOVE = 2  # pixels to the right, of 16: a camera mounted a little off
REST_RATE_GAP = (
    "known gap: a class's count is judged against the rest of the batch's misread rate read before any "
    "change is undone, so a sender who moves the clean records he sends buys a discount for faint relabelled "
    "'0's (which label_consistency reads as new content); reading the rest with the changes undone closes it "
    "but blocked 5 of 216 clean moved or vignetted tuning scans"
)


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, "L").save(out, format="PNG")
    return out.getvalue()


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as 16x16 grayscale (each pixel doubled: a tight crop), in a seeded order."""
    x, y = load_digits(return_X_y=True)
    images = np.repeat(np.repeat((x / 16 * 255).astype(np.uint8).reshape(-1, 8, 8), 2, axis=1), 2, axis=2)
    order = np.random.default_rng(SEED).permutation(y.size)
    return images[order], y[order].astype(str)


def _frame(images: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"image": [_png(p) for p in images], "label": labels})


def _camera(pixels: np.ndarray, dx: int = MOVE) -> np.ndarray:
    """The new camera: content ``dx`` pixels to the right (left if negative), the edge it leaves cut
    and the strip it opens black."""
    out = np.zeros_like(pixels)
    if dx > 0:
        out[:, dx:] = pixels[:, :-dx]
    else:
        out[:, :dx] = pixels[:, -dx:]
    return out


def _spare(label: str, count: int) -> np.ndarray:
    """``count`` digits of ``label`` from outside the baseline, the validation set and the batch."""
    images, labels = _digits()
    return images[1400:][labels[1400:] == label][:count]


def _dimmed(images: np.ndarray, ink: float = 0.45) -> np.ndarray:
    """Faint ink: atypical of every trusted class, so ``label_consistency`` reads them as new content."""
    return np.round(images * ink).astype(np.uint8)


@cache
def _trusted() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The baseline (digits 300 to 1100) and the validation set (the first 300) as PNG tables, encoded once
    for every scan of the module (the gate reads them and never writes to them)."""
    images, labels = _digits()
    return _frame(images[300:1100], labels[300:1100]), _frame(images[:300], labels[:300])


def _scan(batch: pd.DataFrame) -> GateReport:
    baseline, validation = _trusted()
    return scan(baseline, batch, SCHEMA, validation, {"seed": SEED})


def _batch(
    edit: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[GateReport, np.ndarray]:
    images, labels = _digits()
    sent, said, poison = edit(images[1100:1400].copy(), labels[1100:1400].copy())
    return _scan(_frame(sent, said)), poison


def test_a_camera_framing_every_image_two_pixels_off_is_reviewed_not_blocked(monkeypatch) -> None:
    images, labels = _digits()
    moved = _frame(np.stack([_camera(p) for p in images[1100:1400]]), labels[1100:1400])
    report = _scan(moved)
    assert report.verdict == "review", report.reasons
    frame = report.results["backdoor"].summary["frame_shift"]
    assert frame["excused"] > 0 and "right" in frame["description"], frame
    assert "0" in frame["explained_classes"] and "6" in frame["explained_classes"], frame
    # Without the move undone, the same batch is blocked (the case this guards).
    monkeypatch.setattr(backdoor_module, "estimate_frame_shift", lambda *args, **kwargs: None)
    assert _scan(moved).verdict == "block"


def _flips(x: np.ndarray, y: np.ndarray, share: float) -> np.ndarray:
    sixes = np.flatnonzero(y == "6")
    return sixes[: round(share * sixes.size)]


def test_flips_sent_through_the_camera_are_blocked() -> None:
    """Most '6's of the batch relabelled '0', then every image through the camera."""

    def edit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flipped = _flips(x, y, 0.6)
        y[flipped] = "0"
        return np.stack([_camera(p) for p in x]), y, np.isin(np.arange(y.size), flipped)

    report, _ = _batch(edit)
    assert report.verdict == "block", report.reasons


def test_a_class_replaced_wholesale_and_sent_through_the_camera_is_blocked() -> None:
    """Every '0' of the batch swapped for a trusted-looking '6' labelled '0': the class is misread
    wholesale, and only the move could vouch for it. Moved back, the '6's still read as '6'."""
    images, labels = _digits()
    spare_sixes = images[1400:][labels[1400:] == "6"]

    def edit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        zeros = np.flatnonzero(y == "0")
        x[zeros] = spare_sixes[: zeros.size]
        return np.stack([_camera(p) for p in x]), y, np.isin(np.arange(y.size), zeros)

    report, _ = _batch(edit)
    assert report.verdict == "block", report.reasons


def test_flips_left_where_they_were_while_every_other_image_moved_are_blocked() -> None:
    """Undoing the move moves the flips the other way: it must not make them read as their new label."""

    def edit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flipped = _flips(x, y, 0.6)
        moved = np.stack([p if i in set(flipped.tolist()) else _camera(p) for i, p in enumerate(x)])
        y[flipped] = "0"
        return moved, y, np.isin(np.arange(y.size), flipped)

    report, _ = _batch(edit)
    assert report.verdict == "block", report.reasons


@pytest.mark.xfail(strict=True, reason=REST_RATE_GAP)
def test_dimmed_zeros_sent_unmoved_as_twos_in_a_moved_batch_are_blocked() -> None:
    """The sender moves the clean records he sends so that the batch "moved as a whole", and hides 25
    faint '0's labelled '2' among them. The records the move explains must not count as the batch's own
    movement that every class's count is judged against (the rest of the batch's rate)."""

    def edit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        moved = np.stack([_camera(p) for p in x])
        poison = _dimmed(_spare("0", 25))
        sent = np.concatenate([moved, poison])
        return sent, np.concatenate([y, ["2"] * len(poison)]), np.arange(sent.shape[0]) >= x.shape[0]

    report, _ = _batch(edit)
    assert report.verdict == "block" and report.results["backdoor"].block, report.reasons


@pytest.mark.xfail(strict=True, reason=REST_RATE_GAP)
def test_a_class_replaced_wholesale_by_faint_zeros_sent_through_the_camera_is_blocked() -> None:
    """Every '2' of the batch swapped for a faint '0' labelled '2', then every image through the camera."""

    def edit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = y != "2"
        poison = _dimmed(_spare("0", 40))
        sent = np.stack([_camera(p) for p in np.concatenate([x[keep], poison])])
        said = np.concatenate([y[keep], ["2"] * len(poison)])
        return sent, said, np.arange(said.size) >= int(keep.sum())

    report, _ = _batch(edit)
    assert report.verdict == "block" and report.results["backdoor"].block, report.reasons


def test_zeros_sent_unmoved_as_sixes_in_a_batch_moved_left_are_not_excused() -> None:
    """Moved back two pixels right, an unmoved '0' lands where trusted '6's have their ink: undoing the
    move would carry it onto its new label. It reads as a '0' as sent by a wider margin than it reads
    as a '6' moved back, so the move is not the better explanation: the flips stay in class '6''s
    misread count (15 of them were excused without the margin rule, 6 of 21 counted), and the batch is
    blocked."""

    def edit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        moved = np.stack([_camera(p, -MOVE) for p in x])
        poison = _spare("0", 20)
        sent = np.concatenate([moved, poison])
        return sent, np.concatenate([y, ["6"] * len(poison)]), np.arange(sent.shape[0]) >= x.shape[0]

    report, _ = _batch(edit)
    assert report.verdict == "block", report.reasons
    assert report.results["backdoor"].summary["classes"]["6"]["misread"] >= 18, report.results["backdoor"].summary


def _grids(images: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    out = {}
    for code, label in enumerate(sorted(set(labels.tolist()))):
        rows = images[labels == label].astype(np.float64) / 255.0
        big = np.repeat(np.repeat(rows, GRID // rows.shape[1], axis=1), GRID // rows.shape[2], axis=2)
        out[code] = big[..., None]
    return out


def test_the_move_is_estimated_from_the_classes_means_and_none_without_one() -> None:
    images, labels = _digits()
    trusted = _grids(images[300:1100], labels[300:1100])
    same = _grids(images[1100:1400], labels[1100:1400])
    assert estimate_frame_shift(trusted, same) is None
    moved = _grids(np.stack([_camera(p) for p in images[1100:1400]]), labels[1100:1400])
    move = estimate_frame_shift(trusted, moved)
    assert move is not None and move.pixels(16, 16) == (0, MOVE)
    # Fewer than three classes on either side: no majority to speak of.
    two = {code: moved[code] for code in (0, 1)}
    assert estimate_frame_shift(trusted, two) is None


def test_the_move_must_be_shared_by_most_classes() -> None:
    """Two classes of ten moved: a move of theirs, not of the camera."""
    images, labels = _digits()
    trusted = _grids(images[300:1100], labels[300:1100])
    batch_images = images[1100:1400].copy()
    some = np.isin(labels[1100:1400], ["0", "6"])
    batch_images[some] = np.stack([_camera(p) for p in batch_images[some]])
    assert estimate_frame_shift(trusted, _grids(batch_images, labels[1100:1400])) is None


@pytest.mark.parametrize(("dy", "dx"), [(0, 2), (0, -3), (2, 0), (-1, 1)])
def test_undoing_a_move_restores_what_the_frame_kept(dy: int, dx: int) -> None:
    pixels = np.arange(256, dtype=np.float64).reshape(16, 16, 1) / 255.0
    back = shift(shift(pixels, dy, dx), -dy, -dx)
    kept = (slice(max(0, -dy) or None, 16 - max(0, dy)), slice(max(0, -dx) or None, 16 - max(0, dx)))
    assert np.array_equal(back[kept], pixels[kept])
