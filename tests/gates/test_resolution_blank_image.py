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
