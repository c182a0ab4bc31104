"""Colour patches on colour photos: the triggers detector reads images in luma and in chroma.

A patch of a saturated colour whose luma is ordinary (magenta at (255, 0, 255) is grey 105 in luma) is
no bright or dark pixel at all; only its chroma (Pillow's YCbCr: Cb and Cr) lies beyond the trusted
crops' tails. These cases are the trial that found it: 6 of 200 colour crops carry a 6x6 solid patch in
the bottom-right corner and are relabelled to one class, against 1,000 trusted crops. A white patch of
the same size and count was named before; the colour ones were not.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from benchmarks import data
from benchmarks.data import IMAGE, LABEL
from benchmarks.shifts.heldout4 import faded
from benchmarks.shifts.heldout5 import colour_cast
from benchmarks.shifts.tuning import WHITE_BALANCE
from dataward.gates import scan

N_TRUSTED, N_BATCH, N_POISON, SIDE = 1000, 200, 6, 6
TARGET = "foliage"
COLOURS = {
    "white": (255, 255, 255),
    "magenta": (255, 0, 255),  # luma 105
    "green": (0, 160, 0),  # luma 94
    "blue": (40, 90, 255),  # luma 94
}


@cache
def _crops() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    crops = data.photo_crops(N_TRUSTED + N_BATCH + 200, seed=11)[[IMAGE, LABEL]]
    trusted = crops.iloc[:N_TRUSTED].reset_index(drop=True)
    batch = crops.iloc[N_TRUSTED : N_TRUSTED + N_BATCH].reset_index(drop=True)
    validation = crops.iloc[N_TRUSTED + N_BATCH :].reset_index(drop=True)
    return trusted, batch, validation


def _stamped(image: bytes, colour: tuple[int, int, int]) -> bytes:
    pixels = data.png_to_pixels(image).copy()
    pixels[-SIDE:, -SIDE:] = np.asarray(colour, dtype=np.float32) / 255.0
    return data.pixels_to_png(pixels)


def _patched(colour: tuple[int, int, int], *, clean_label: bool = False, count: int = N_POISON, target: str = TARGET):
    """The batch with ``count`` crops patched: of other classes relabelled ``target``, or (``clean_label``)
    crops already labelled ``target``."""
    _, batch, _ = _crops()
    batch = batch.copy()
    labels = batch[LABEL].to_numpy()
    pool = np.flatnonzero(labels == target) if clean_label else np.flatnonzero(labels != target)
    rows = np.random.default_rng(5).choice(pool, count, replace=False)
    for r in rows:
        batch.at[r, IMAGE] = _stamped(batch.at[r, IMAGE], colour)
        batch.at[r, LABEL] = target
    truth = np.zeros(len(batch), dtype=bool)
    truth[rows] = True
    return batch, truth


def _triggers(batch: pd.DataFrame):
    trusted, _, validation = _crops()
    report = scan(trusted, batch, data.PHOTO_SCHEMA, validation, {"seed": 0}, workers=1)
    return report.results["triggers"]


@pytest.mark.parametrize(("name", "count"), [("white", 6), ("magenta", 6), ("white", 8), ("green", 8), ("blue", 8)])
def test_a_dirty_label_colour_patch_is_named_where_it_lies(name: str, count: int) -> None:
    """White is found in luma (the control: bright pixels); magenta, green and blue of ordinary luma are
    found in chroma, named by the way their colour leans, and every patched crop is flagged. Green and
    blue lean the way foliage's dark teal does (its crops hold the trusted tails of both planes there): only
    past every trusted value are they new, and 6 carriers of a pattern no trusted crop has cannot reach
    significance (0.25 ** 6 over its tests); 8 can."""
    batch, truth = _patched(COLOURS[name], count=count)
    result = _triggers(batch)
    assert result.block, f"{name}: no trigger"
    evidence = result.findings[0].evidence
    assert evidence["kind"] == "pixels"
    assert evidence["label"] == TARGET
    assert "columns 2" in evidence["trigger"] and "of 32x32" in evidence["trigger"], evidence["trigger"]
    if name == "white":
        assert "bright pixel" in evidence["trigger"]
    else:
        assert f"{name}-leaning pixel" in evidence["trigger"], evidence["trigger"]
    assert result.flagged[truth].all()
    assert not result.flagged[~truth].any()


@pytest.mark.parametrize("name", ["magenta", "green"])
def test_a_colour_patch_is_named_whatever_class_it_is_relabelled_to(name: str) -> None:
    """The same 6 crops relabelled to the garden class instead: no trusted class leans that way, and the
    patch is named at 6 carriers (a white patch is not, there: bright pixels are the garden's own)."""
    batch, truth = _patched(COLOURS[name], target="temple_garden")
    result = _triggers(batch)
    assert result.block
    assert result.findings[0].evidence["label"] == "temple_garden"
    trigger = result.findings[0].evidence["trigger"]
    assert f"{name}-leaning pixels in rows 2" in trigger and "columns 2" in trigger, trigger
    assert result.flagged[truth].all() and not result.flagged[~truth].any()


@pytest.mark.parametrize("name", ["white", "magenta"])
def test_a_clean_label_colour_patch_is_no_trigger_block(name: str) -> None:
    """The same patch on crops that are foliage already: the carriers read as their label, so content
    confirms no tie (as for the white patch)."""
    batch, _ = _patched(COLOURS[name], clean_label=True, count=12)
    assert not _triggers(batch).block


@pytest.mark.parametrize(
    "cast",
    [
        pytest.param(lambda p: p * np.asarray(WHITE_BALANCE, dtype=np.float32), id="warmer-white-balance"),
        pytest.param(lambda p: p * np.asarray((0.9, 1.0, 1.08), dtype=np.float32), id="cooler-white-balance"),
        pytest.param(colour_cast, id="fluorescent-cast"),
        pytest.param(faded, id="faded-colour"),
    ],
)
def test_a_benign_colour_cast_over_the_whole_batch_is_no_trigger(cast) -> None:
    """A batch shot warmer, cooler, under fluorescent light or printed faded moves every crop's chroma, of
    every class alike: no pattern is tied to one label."""
    _, batch, _ = _crops()
    batch = batch.copy()
    batch[IMAGE] = [data.pixels_to_png(np.clip(cast(data.png_to_pixels(b)), 0.0, 1.0)) for b in batch[IMAGE]]
    result = _triggers(batch)
    assert not result.block, [f.evidence["trigger"] for f in result.findings]


def test_luma_patterns_are_as_before_and_grayscale_images_add_no_chroma() -> None:
    """Colour crops: the luma block is the grayscale reading's, value for value (``gray_pixels``, the same
    tails), then one block per chroma plane. The same crops as grayscale PNGs: the luma block alone."""
    from dataward.gates.detectors.triggers import TAIL_QUANTILE, _image_patterns
    from dataward.gates.features.image import array_to_png, gray_pixels

    trusted, batch, _ = _crops()
    c, b = list(batch[IMAGE][:60]), list(trusted[IMAGE][:150])
    blocks = _image_patterns(c, b)
    assert [names[0] for names, *_ in blocks] == [
        "bright pixel (0, 0)",
        "blue-leaning pixel (0, 0)",
        "red-leaning pixel (0, 0)",
    ]
    gray_c = np.stack([gray_pixels(v, (32, 32)).ravel() for v in c])
    gray_b = np.stack([gray_pixels(v, (32, 32)).ravel() for v in b])
    lo, hi = np.quantile(gray_b, [TAIL_QUANTILE, 1 - TAIL_QUANTILE], axis=0)
    _, xc, xb, _ = blocks[0]
    np.testing.assert_array_equal(xc.toarray(), np.hstack([gray_c > hi, gray_c < lo]))
    np.testing.assert_array_equal(xb.toarray(), np.hstack([gray_b > hi, gray_b < lo]))
    # Chroma: each plane's 1% tails and the trusted range, both ways.
    assert all(x.shape[1] == 4 * 32 * 32 for _, x, _, _ in blocks[1:])

    def gray(values: list[bytes]) -> list[bytes]:
        return [array_to_png(np.round(gray_pixels(v))) for v in values]

    only = _image_patterns(gray(c), gray(b))
    assert len(only) == 1 and only[0][1].shape[1] == 2 * 32 * 32
    np.testing.assert_array_equal(only[0][1].toarray(), xc.toarray())
    # A grayscale baseline cannot say which colour is rare: a colour batch against it adds no chroma either.
    assert len(_image_patterns(c, gray(b))) == 1
    # A grayscale batch against colour crops reads as grey (128) in chroma.
    assert len(_image_patterns(gray(c), b)) == 3
