"""``triggers._pixel_quantiles`` gives ``np.quantile``'s floats bit for bit (8-bit pixels read by counting)."""

import numpy as np

from dataward.gates.detectors.triggers import TAIL_QUANTILE, _pixel_quantiles


def test_pixel_quantiles_are_numpys_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    q = np.asarray([TAIL_QUANTILE, 1 - TAIL_QUANTILE])
    for _ in range(300):
        n, width, top = int(rng.integers(1, 400)), int(rng.integers(1, 6)), int(rng.integers(0, 256))
        pixels = rng.integers(0, top + 1, (n, width)).astype(np.uint8)
        expected = np.quantile(pixels, q, axis=0)
        got = _pixel_quantiles(pixels, q)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert got.tobytes() == expected.tobytes()
        assert got.tobytes() == np.quantile(pixels.astype(np.float64), q, axis=0).tobytes()


def test_pixel_quantiles_of_other_pixels_are_numpys() -> None:
    pixels = np.random.default_rng(1).normal(size=(50, 4))
    q = np.asarray([TAIL_QUANTILE, 1 - TAIL_QUANTILE])
    assert _pixel_quantiles(pixels, q).tobytes() == np.quantile(pixels, q, axis=0).tobytes()
