"""The capture estimate reads the sharpness of many images together (``sharpness_all``): each image's
value must be the float ``sharpness`` gives it alone, bit for bit, whatever the images beside it, so that
no capture, guard or went-through answer of a scan moves."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dataward.gates.detectors import _resolution
from dataward.gates.detectors._resolution import Resolution, sharpness, sharpness_all


def _mixed(seed: int, count: int) -> list[Image.Image]:
    """Gray and colour images of several sizes, with flat, two-tone, blurred and one-pixel-wide ones."""
    rng = np.random.default_rng(seed)
    sizes = [(28, 28), (8, 8), (32, 32), (17, 23), (1, 5), (5, 1), (2, 2)]
    images = []
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        values = (rng.random((h, w, 3)) * 255 * rng.random()).astype(np.uint8)
        if i % 7 == 0:
            values[:] = 7
        if i % 11 == 0:
            values = (values > 60).astype(np.uint8) * 255
        image = Image.fromarray(values, "RGB").convert("L" if i % 3 else "RGB")
        if i % 5 == 0:
            image = Resolution(0.5, 0, 0.0, 0.0).degrade(image)
        images.append(image)
    return images


def _bits(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).view(np.int64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sharpness_read_together_is_each_images_own_float(seed: int) -> None:
    images = _mixed(seed, 400)
    alone = np.array([sharpness(image) for image in images])
    assert (alone == 0).any() and (alone > 0).any()
    assert np.array_equal(_bits(sharpness_all(images)), _bits(alone))
    # The same image gives the same float among other images, in another order, or alone.
    order = np.random.default_rng(seed).permutation(len(images))
    assert np.array_equal(_bits(sharpness_all([images[i] for i in order])), _bits(alone[order]))
    assert sharpness_all([]).shape == (0,)


def test_blocks_of_a_shape_give_the_same_floats(monkeypatch: pytest.MonkeyPatch) -> None:
    images = _mixed(3, 120)
    whole = sharpness_all(images)
    monkeypatch.setattr(_resolution, "SHARPNESS_BLOCK", 1000)  # a few 28x28 images per block
    assert np.array_equal(_bits(sharpness_all(images)), _bits(whole))


@pytest.mark.parametrize("block", [_resolution.DETAIL_BLOCK, 7])
def test_detail_lost_together_is_each_images_own_reading(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """NaN for a flat image, inf when the capture flattens an image, else the ratio: as one by one, in
    blocks of any size."""
    monkeypatch.setattr(_resolution, "DETAIL_BLOCK", block)
    images = _mixed(4, 300)
    for capture in (Resolution(0.375, 0, 0.0, 0.0, max_loss=1.5), Resolution(0.75, 0, 0.0, 0.0, max_loss=1.1)):
        alone = np.array([capture.detail_lost(image) for image in images])
        assert np.isnan(alone).any() and np.isfinite(alone).any()
        assert np.array_equal(_bits(capture.details_lost(images)), _bits(alone))
        went = np.array([capture.went_through(image) for image in images])
        assert went.any() and not went.all()
        assert np.array_equal(capture.went_through_all(images), went)
