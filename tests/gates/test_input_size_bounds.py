"""The gate's cost is bounded by what it works on, not by what a record declares: a batch of large
images is decoded one image at a time and shrunk as it is decoded, a batch whose images declare too many
pixels together is refused from their headers, and a huge text record is read up to a working length."""

from __future__ import annotations

import io
import random
import string
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

from dataward.domain.errors import InputError
from dataward.domain.limits import DEFAULT_LIMITS, InputLimits
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.gates import scan
from dataward.gates.detectors.triggers import TEXT_MAX_CHARS as TRIGGER_TEXT_MAX_CHARS
from dataward.gates.detectors.triggers import TriggerDetector, TriggerOptions
from dataward.gates.features import image as image_features
from dataward.gates.features.image import LARGE_IMAGE_PIXELS, WORKING_SIDE, Pixels, decode_image
from dataward.gates.features.text import TEXT_MAX_CHARS, TfidfSvd, cut_text

IMAGE_SCHEMA = Schema(label="label", inputs=(Column("image", ColumnKind.IMAGE),))
REPO = Path(__file__).resolve().parents[2]


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def black_png(side: int) -> bytes:
    """A complete, decodable all-black grayscale PNG of ``side`` x ``side``, written row by row (its
    pixels never exist here): tens of kilobytes that decode to ``side`` squared bytes."""
    z = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def header_png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (only its first rows are there)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1) * 2, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def small_png(value: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


# Featurizes COUNT all-black SIDE x SIDE PNGs and prints the growth of the process's peak resident memory
# in MiB. Pillow's pixel buffers are not seen by tracemalloc, so a fresh process's peak is what counts.
_PEAK_SCRIPT = """
import resource, sys
import pyarrow as pa
from dataward.domain.schema import Column, ColumnKind
from dataward.gates.features.image import Pixels
from tests.gates.test_input_size_bounds import black_png
count, side = int(sys.argv[1]), int(sys.argv[2])
table = pa.table({"image": pa.array([black_png(side)] * count, pa.large_binary())})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
vectors = Pixels(Column("image", ColumnKind.IMAGE)).fit_transform(table)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert vectors.shape == (count, 32 * 32) and not vectors.any(), vectors.shape
print((after - before) / 1024)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_a_batch_of_large_pngs_costs_the_featurizer_about_one_image_not_the_batch() -> None:
    # Six 25 Mpx images: 150 MiB of pixels held together before, one image's 25 MiB (shrunk as soon as
    # it is decoded, released before the next) now.
    count, side = 6, 5000
    assert side * side > LARGE_IMAGE_PIXELS
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(count), str(side)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": f"{REPO / 'src'}:{REPO}", "PATH": "/usr/bin:/bin"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    growth = float(done.stdout.strip())
    assert growth < 90, f"peak memory grew by {growth:.0f} MiB for {count} images of {side} x {side}"


def test_a_large_image_is_shrunk_as_it_is_decoded_with_the_features_almost_unchanged() -> None:
    side = 4200  # 17.6 Mpx: over LARGE_IMAGE_PIXELS
    ramp = np.add.outer(np.arange(side) % 251, np.arange(side) // 17).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(ramp).save(out, format="PNG", compress_level=1)
    data = out.getvalue()
    shrunk = decode_image(data, shrink=True)
    assert shrunk.size == (side // (side // WORKING_SIDE),) * 2 and min(shrunk.size) >= WORKING_SIDE
    full = decode_image(data)
    assert full.size == (side, side)
    small = [np.asarray(img.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.int16) for img in (shrunk, full)]
    assert np.abs(small[0] - small[1]).max() <= 2


def test_ordinary_images_are_decoded_as_they_are() -> None:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(out, "JPEG")
    img = decode_image(out.getvalue(), shrink=True)
    assert img.size == (800, 600)
    assert np.array_equal(np.asarray(img), np.asarray(decode_image(out.getvalue())))


def test_a_batch_whose_images_declare_too_many_pixels_is_refused_before_any_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Pixels, "_pixels", lambda *_a: pytest.fail("images were decoded before the check"))
    monkeypatch.setattr(image_features, "load_image", lambda *_a, **_k: pytest.fail("an image was decoded"))
    baseline = pd.DataFrame({"image": [small_png(v) for v in range(0, 200, 10)], "label": ["a", "b"] * 10})
    # The outside trial's record: 9,400 x 9,400, under max_image_pixels; the 114th of them crosses the
    # default batch limit (10 Gpx).
    side = 9400
    assert side * side < DEFAULT_LIMITS.max_image_pixels
    count = DEFAULT_LIMITS.max_batch_pixels // (side * side) + 1
    contribution = pd.DataFrame({"image": [header_png(side, side)] * count, "label": ["a", "b"] * (count // 2)})
    with pytest.raises(InputError) as caught:
        scan(baseline, contribution, IMAGE_SCHEMA)
    assert caught.value.details["limit"] == "max_batch_pixels"
    assert f"row {count}" in caught.value.message and "10,000,000,000" in caught.value.message
    assert "max_batch_pixels" in caught.value.hint
    # A lowered limit, named like any other.
    few = pd.DataFrame({"image": [header_png(100, 100)] * 3, "label": ["a", "b", "a"]})
    with pytest.raises(InputError, match=r"row 3 .*max_batch_pixels"):
        scan(baseline, few, IMAGE_SCHEMA, limits={"max_batch_pixels": 25_000})
    assert InputLimits.coerce({"max_batch_pixels": "1.5G"}).max_batch_pixels == 1_500_000_000


def _random_words(chars: int, seed: int = 1) -> str:
    rnd = random.Random(seed)
    alphabet = string.ascii_lowercase + string.digits
    return " ".join("".join(rnd.choices(alphabet, k=8)) for _ in range(chars // 9))


def _lines(count: int) -> list[str]:
    rnd = random.Random(0)
    words = [
        "list",
        "copy",
        "move",
        "the",
        "file",
        "to",
        "a",
        "directory",
        "print",
        "show",
        "lines",
        "of",
        "text",
        "from",
        "standard",
        "input",
    ]
    return [" ".join(rnd.choices(words, k=8)) for _ in range(count)]


def test_a_huge_text_record_costs_the_featurizer_its_working_length_only() -> None:
    # One MiB of random words among ordinary lines: about 290 MiB traced before the cut, 16 after.
    huge = _random_words(1 << 20)
    table = pa.table({"text": pa.array([*_lines(200), huge], pa.large_string())})
    featurizer = TfidfSvd(Column("text", ColumnKind.TEXT))
    tracemalloc.start()
    try:
        vectors = featurizer.fit_transform(table)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert vectors.shape[0] == 201
    assert peak < 60 * (1 << 20), f"featurizing traced {peak / (1 << 20):.0f} MiB"
    # The cut is a prefix of whole words: the same record cut by hand gives the same vector.
    head = cut_text(huge, TEXT_MAX_CHARS)
    assert huge.startswith(head) and TEXT_MAX_CHARS - 9 <= len(head) <= TEXT_MAX_CHARS
    cut = pa.table({"text": pa.array([*_lines(200), head], pa.large_string())})
    assert np.array_equal(featurizer.transform(cut), featurizer.transform(table))


def test_a_text_is_cut_at_a_word_boundary_so_no_fragment_becomes_a_token() -> None:
    assert cut_text("list the files", 100) == "list the files"
    assert cut_text("list the files", 11) == "list the"  # not "list the fi"
    assert cut_text("list the files", 9) == "list the "  # the cut falls on whitespace: kept as is
    assert cut_text("abcdefgh", 4) == "abcd"  # one long word: cut inside it


def test_a_huge_text_record_costs_the_trigger_detector_its_working_length_only() -> None:
    huge = _random_words(1 << 20, seed=2)
    detector = TriggerDetector.__new__(TriggerDetector)
    detector.max_ngram, detector.min_support = TriggerOptions().max_ngram, TriggerOptions().min_support
    tracemalloc.start()
    try:
        names, xc, _ = detector._text([*_lines(300), huge], _lines(500))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert xc.shape[0] == 301 and names
    assert peak < 30 * (1 << 20), f"the trigger n-grams traced {peak / (1 << 20):.0f} MiB"
    assert TRIGGER_TEXT_MAX_CHARS >= 5 * TEXT_MAX_CHARS


def test_the_language_model_detectors_count_the_n_grams_of_the_same_working_length() -> None:
    from dataward.gates.detectors.llm_triggers import cut_texts

    long = "word " * 50_000  # 250,000 characters
    (cut,) = cut_texts([long])
    assert long.startswith(cut) and len(cut) == TRIGGER_TEXT_MAX_CHARS
    assert cut_texts(["a short prompt"]) == ["a short prompt"]
