"""Images in modes a contributor chooses: the gate reads every one it accepts, in luma and in chroma.

The attack: a contributor's batch holding one CIELab TIFF (Pillow opens it in mode "LAB", which it can
convert neither to grayscale nor to RGB) was stored, and then every gate run on it failed with Pillow's
``ValueError`` (a traceback from the CLI, a 500 from the server) where an input error was due. Such an
image is now refused at import, naming its row, column and mode, and nothing is stored; ``scan`` refuses
it with an ``InputError``. The modes the gate reads (palette, palette with transparency, CMYK, YCbCr,
16-bit, an animated GIF's first frame...) still decode in luma and chroma.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.gates import scan
from dataward.gates.features.image import luma_chroma_pixels
from dataward.service.ward import Ward

SCHEMA = Schema.parse("label", ["image:image"])


def _encoded(pixels: np.ndarray, fmt: str = "PNG", mode: str | None = None, **options: object) -> bytes:
    img = Image.fromarray(pixels.astype(np.uint8))
    if mode is not None:
        img = img.convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def _crops(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [_encoded(rng.integers(0, 256, (12, 12, 3))) for _ in range(n)]


def _lab() -> bytes:
    data = _encoded(np.random.default_rng(9).integers(0, 256, (12, 12, 3)), "TIFF", "LAB")
    assert Image.open(io.BytesIO(data)).mode == "LAB"
    return data


def _parquet(path: Path, images: list[bytes]) -> Path:
    labels = ["a", "b"] * (len(images) // 2) + ["a"] * (len(images) % 2)
    pq.write_table(pa.table({"image": pa.array(images, pa.binary()), "label": labels}), path)
    return path


def test_a_lab_image_in_a_contribution_is_refused_at_import_and_nothing_is_stored(tmp_path: Path) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("pics", SCHEMA)
    # One cheap detector: what is tested is the import, before any gate runs.
    ward.set_policy(
        "pics", "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  detectors: [duplicates]\n"
    )
    ward.merge(ward.contribute("pics", _parquet(tmp_path / "base.parquet", _crops(30, 1)), source="s:base")["ref"])
    batch = _parquet(tmp_path / "batch.parquet", [*_crops(9, 2), _lab()])
    with pytest.raises(InputError, match=r"row 10, column 'image'.*mode 'LAB'"):
        ward.contribute("pics", batch, source="s:x")
    assert [c["ref"] for c in ward.contributions("pics")] == ["pics#1"]


def test_scan_refuses_a_lab_image_with_an_input_error() -> None:
    trusted = pd.DataFrame({"image": _crops(30, 3), "label": ["a", "b"] * 15})
    batch = pd.DataFrame({"image": [*_crops(9, 4), _lab()], "label": ["a", "b"] * 5})
    with pytest.raises(InputError, match="mode 'LAB'"):
        scan(trusted, batch, SCHEMA, None, {"seed": 0, "detectors": ["triggers"]}, workers=1)


def _animated() -> bytes:
    frames = [Image.fromarray(np.full((12, 12, 3), v, dtype=np.uint8)) for v in (30, 200)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


RGB = np.random.default_rng(5).integers(0, 256, (12, 12, 3))
COLOUR = {
    "palette": _encoded(RGB, mode="P"),
    "palette with transparency": _encoded(RGB, mode="P", transparency=3),
    "CMYK JPEG": _encoded(RGB, "JPEG", "CMYK"),
    "YCbCr TIFF": _encoded(RGB, "TIFF", "YCbCr"),
    "RGBA": _encoded(RGB, mode="RGBA"),
    "animated GIF": _animated(),
}
GRAY = {
    "16-bit": _encoded((np.arange(144).reshape(12, 12) * 400).astype(np.uint16)),
    "1-bit": _encoded(RGB, mode="1"),
    "LA": _encoded(RGB, mode="LA"),
    "F TIFF": _encoded(RGB, "TIFF", "F"),
}


@pytest.mark.parametrize("name", sorted(COLOUR))
def test_colour_modes_decode_in_luma_and_chroma(name: str) -> None:
    luma, chroma = luma_chroma_pixels(COLOUR[name], (6, 6))
    assert luma.shape == (6, 6) and chroma is not None and chroma.shape == (2, 6, 6)


@pytest.mark.parametrize("name", sorted(GRAY))
def test_gray_modes_decode_in_luma_only(name: str) -> None:
    luma, chroma = luma_chroma_pixels(GRAY[name], (6, 6))
    assert luma.shape == (6, 6) and chroma is None
