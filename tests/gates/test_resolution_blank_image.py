"""The low-resolution capture's guard (``Resolution.max_loss``) must not be switched off by one blank
trusted image: a flat image has no detail to lose, and 0 / 0 read as infinitely much made every batch
record, however sharp, pass as having gone through the capture."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from dataward.gates.detectors._resolution import Resolution, estimate_resolution


def _images(seed: int) -> tuple[dict[int, list[Image.Image]], dict[int, list[Image.Image]]]:
    rng = np.random.default_rng(seed)

    def image(code: int) -> Image.Image:
        base = np.zeros((16, 16))
        base[:, code * 3 : code * 3 + 3] = 200
        return Image.fromarray(np.clip(base + rng.normal(0, 30, (16, 16)), 0, 255).astype(np.uint8))

    capture = Resolution(0.5, 0, 0.0, 0.0)
    trusted = {code: [image(code) for _ in range(30)] for code in range(4)}
    batch = {code: [capture.degrade(image(code)) for _ in range(30)] for code in range(4)}
    return trusted, batch


def test_a_blank_trusted_image_leaves_the_capture_guard_finite() -> None:
    trusted, batch = _images(1)
    found = estimate_resolution(trusted, batch)
    assert found is not None and math.isfinite(found.max_loss)
    trusted[0].append(Image.fromarray(np.zeros((16, 16), np.uint8)))  # one blank scan in the baseline
    with_blank = estimate_resolution(trusted, batch)
    assert with_blank is not None
    assert math.isfinite(with_blank.max_loss), with_blank
    sharp = trusted[1][0]  # a record that never went through the capture
    assert with_blank.detail_lost(sharp) > with_blank.max_loss


def test_blank_images_on_either_side_leave_the_estimate_as_it_was() -> None:
    """Blank images show no capture: neither in the trusted set nor in the batch (where a sender may add
    them on purpose, a whole class of them included) do they move the estimate or switch it off."""
    trusted, batch = _images(1)
    found = estimate_resolution(trusted, batch)
    assert found is not None
    blank = Image.fromarray(np.full((16, 16), 128, np.uint8))
    trusted[0] += [blank] * 3
    batch[0] += [blank] * 40
    trusted[9], batch[9] = [blank] * 30, [blank] * 30  # a class the batch sends blank only
    assert estimate_resolution(trusted, batch) == found


def test_a_blank_batch_record_is_not_taken_for_one_that_went_through_the_capture() -> None:
    """Taking a blank image through the capture changes nothing, which would excuse it by construction;
    it carries no sign of the capture, so the capture may not vouch for it (nor is its reading an inf)."""
    trusted, batch = _images(1)
    found = estimate_resolution(trusted, batch)
    assert found is not None
    blank = Image.fromarray(np.zeros((16, 16), np.uint8))
    assert math.isnan(found.detail_lost(blank))
    assert not found.went_through(blank)
    assert found.went_through(batch[2][0]) and not found.went_through(trusted[2][0])
