"""A scan decodes each small image once: what its memo gives back is what Pillow decodes from the same
bytes, bit for bit, and the memo is bounded (small images only, a byte budget, the scan's duration)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dataward.gates import scan
from dataward.gates.features import image as image_features
from dataward.gates.features import image_memo
from dataward.gates.features.image import Pixels, decode_image
from dataward.gates.features.image_memo import MEMO_MAX_PIXELS, decoded_images


def _encoded(img: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **options)
    return out.getvalue()


def _samples() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    palette = Image.fromarray(rgb).quantize(16)
    palette.info["transparency"] = 3
    return {
        "L": _encoded(Image.fromarray(gray)),
        "RGB": _encoded(Image.fromarray(rgb)),
        "RGBA": _encoded(Image.fromarray(np.dstack([rgb, gray]))),
        "LA": _encoded(Image.fromarray(np.dstack([gray, gray[::-1]]), "LA")),
        "1": _encoded(Image.fromarray(gray > 128)),
        "I;16": _encoded(Image.fromarray(gray.astype(np.uint16) * 257)),
        "P+transparency": _encoded(palette),
        "GIF": _encoded(palette, "GIF"),
        "JPEG": _encoded(Image.fromarray(rgb), "JPEG", quality=90),
        "CMYK JPEG": _encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
    }


def _same(a: Image.Image, b: Image.Image) -> None:
    assert (a.mode, a.size) == (b.mode, b.size)
    assert a.tobytes() == b.tobytes()
    assert a.getpalette() == b.getpalette()
    assert a.info.get("transparency") == b.info.get("transparency")
    for mode in ("L", "RGB", "RGBA"):
        assert a.convert(mode).tobytes() == b.convert(mode).tobytes()


@pytest.mark.parametrize("kind", list(_samples()))
def test_a_remembered_image_is_the_image_pillow_decodes(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _samples()[kind]
    fresh = decode_image(data)
    with decoded_images() as memo:
        first = decode_image(data)
        assert len(memo) == 1
        # The second read is the memo's: decoding again would fail here.
        monkeypatch.setattr(image_features, "load_image", lambda *_a, **_k: pytest.fail("decoded twice"))
        again = decode_image(data, shrink=True)
    for img in (first, again):
        _same(img, fresh)


def test_what_a_caller_does_to_its_image_leaves_the_memo_unchanged() -> None:
    data = _samples()["RGB"]
    with decoded_images():
        first = decode_image(data)
        expected = first.tobytes()
        first.paste((0, 0, 0), (0, 0, 5, 5))
        first.close()
        assert decode_image(data).tobytes() == expected


def test_the_memo_keeps_small_images_only_within_its_budget_and_its_block() -> None:
    small = _samples()["L"]
    side = int(MEMO_MAX_PIXELS**0.5) + 1
    large = _encoded(Image.new("L", (side, side), 7))
    with decoded_images() as memo:
        decode_image(large)
        assert len(memo) == 0  # over MEMO_MAX_PIXELS: decoded each time it is read
        decode_image(small)
        assert len(memo) == 1 and memo.used <= memo.budget
    with decoded_images(budget=len(small)) as tight:
        decode_image(small)
        assert len(tight) == 0 and tight.used == 0
    assert image_memo.current() is None
    decode_image(small)  # outside a scan nothing is kept anywhere
    assert image_memo.current() is None


def test_the_pixels_featurizer_fills_the_memo_with_what_it_decodes(digit_images) -> None:
    import pyarrow as pa

    from dataward.domain.schema import Column, ColumnKind

    baseline, _, _ = digit_images
    values = list(baseline["image"][:50])
    table = pa.table({"image": pa.array(values, pa.large_binary())})
    with decoded_images() as memo:
        vectors = Pixels(Column("image", ColumnKind.IMAGE)).fit_transform(table)
        assert len(memo) == len(set(values))
        for data in values[:5]:
            _same(memo.get(data), decode_image(data))
    assert np.array_equal(vectors, Pixels(Column("image", ColumnKind.IMAGE)).fit_transform(table))


def test_a_scan_of_images_reports_the_same_with_or_without_the_memo(digit_images, monkeypatch) -> None:
    from benchmarks.gate_cost import digest

    baseline, contribution, schema = digit_images
    contribution = contribution.copy()
    contribution.loc[:30, "label"] = 0  # some mislabelled records, so that detectors have something to say
    with_memo = scan(baseline, contribution, schema, policy={"seed": 0}, workers=1)
    kept: list[int] = []
    original = image_memo.DecodedImages.keep

    def counted(self, *args) -> None:
        original(self, *args)
        kept.append(len(self))

    monkeypatch.setattr(image_memo.DecodedImages, "keep", counted)
    again = scan(baseline, contribution, schema, policy={"seed": 0}, workers=1)
    assert kept and max(kept) == len(set(baseline["image"]) | set(contribution["image"]))
    monkeypatch.setattr(image_memo.DecodedImages, "get", lambda self, data: None)
    without = scan(baseline, contribution, schema, policy={"seed": 0}, workers=1)
    assert digest(with_memo) == digest(again) == digest(without)
