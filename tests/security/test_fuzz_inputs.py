"""Fuzzing the readers and scan's input normalization: every input is accepted or refused with
``InputError``, never another exception.

The inputs are built from the pieces that break parsers (quotes, separators, line ends, brackets,
NUL, invalid UTF-8, base64 and PNG fragments, truncated or mutated real files) rather than uniform
random bytes, which would nearly always fail at the first byte. Small limits are set so that every
limit is reached too. Example counts are kept small: the suite runs in seconds.
"""

from __future__ import annotations

import base64
import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataward.domain.errors import InputError
from dataward.domain.limits import InputLimits
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.gates.features.image import decode_image
from dataward.gates.inputs import group_arrays, normalize
from dataward.io import read_table
from tests.security.hostile_inputs import bomb_png, small_png

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

SCHEMA = Schema(
    label="label",
    inputs=(
        Column("text", ColumnKind.TEXT),
        Column("size", ColumnKind.NUMERIC),
        Column("colour", ColumnKind.CATEGORICAL),
        Column("emb", ColumnKind.EMBEDDING, dim=2),
    ),
)
IMAGES = Schema(label="label", inputs=(Column("image", ColumnKind.IMAGE),))
SMALL = InputLimits(max_file_bytes=20_000, max_record_bytes=2_000, max_rows=20, max_depth=6, max_image_pixels=10_000)

_PNG = small_png(3)
_PIECES = [
    b",",
    b'"',
    b'""',
    b"\n",
    b"\r\n",
    b"\r",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"text",
    b"size",
    b"colour",
    b"emb",
    b"label",
    b"record_id",
    b'"text"',
    b'"label"',
    b'"emb"',
    b"[0.1, 0.2]",
    b"[[[[[[[[[[",
    b"1e309",
    b"NaN",
    b"-0",
    b"null",
    b"true",
    b"a",
    b"\\u0000",
    b"\\",
    base64.b64encode(_PNG),
    base64.b64encode(bomb_png(500, 500)),
    base64.b64encode(_PNG)[:20],
]
pieces = st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=8)), max_size=60).map(b"".join)

_HEADER = b"text,size,colour,emb,label\n"
_JSON_RECORD = b'{"text": "hi", "size": 1, "colour": "red", "emb": [0.1, 0.2], "label": "a"}\n'


def _read(data: bytes, suffix: str, schema: Schema = SCHEMA, limits: InputLimits = SMALL) -> None:
    """Read ``data`` as a file; only acceptance or ``InputError`` may come out."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input.{suffix}"
        path.write_bytes(data)
        with contextlib.suppress(InputError):
            read_table(path, schema, limits=limits)


@FUZZ
@given(pieces, st.booleans())
def test_csv_is_accepted_or_refused(body: bytes, with_header: bool) -> None:
    _read((_HEADER if with_header else b"") + body, "csv")


@FUZZ
@given(pieces, st.booleans())
def test_json_lines_are_accepted_or_refused(body: bytes, with_record: bool) -> None:
    _read((_JSON_RECORD if with_record else b"") + body, "jsonl")


@FUZZ
@given(pieces)
def test_base64_images_in_csv_are_accepted_or_refused(body: bytes) -> None:
    _read(b"image,label\n" + body + b",a\n", "csv", IMAGES)


def _parquet_bytes() -> bytes:
    out = io.BytesIO()
    table = pa.table(
        {
            "text": ["hi", "there"],
            "size": [1.0, None],
            "colour": ["red", "blue"],
            "emb": [[0.1, 0.2], [0.3, 0.4]],
            "label": ["a", "b"],
        }
    )
    pq.write_table(table, out)
    return out.getvalue()


_PARQUET = _parquet_bytes()


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(_PARQUET) - 1), st.integers(0, 255)), max_size=6), st.integers(0, 64))
def test_mutated_parquet_is_accepted_or_refused(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_PARQUET)
    for position, value in flips:
        data[position] = value
    _read(bytes(data[: len(data) - cut]), "parquet", limits=InputLimits())


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(_PNG) - 1), st.integers(0, 255)), max_size=4), st.binary(max_size=40))
def test_image_folders_are_accepted_or_refused(flips: list[tuple[int, int]], other: bytes) -> None:
    image = bytearray(_PNG)
    for position, value in flips:
        image[position] = value
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "cat").mkdir()
        (root / "cat" / "1.png").write_bytes(bytes(image))
        (root / "cat" / "2.bin").write_bytes(other)
        with contextlib.suppress(InputError):
            read_table(root, IMAGES, limits=SMALL)


# --- scan's input normalization -------------------------------------------------------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=6),
    st.binary(max_size=6),
    st.just(_PNG),
    st.just(bomb_png(200, 200)),
    st.lists(st.floats(), max_size=3),
    st.lists(st.lists(st.integers(-3, 3), max_size=2), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
_column_names = st.sampled_from(["text", "size", "colour", "emb", "label", "image", "record_id", "row", "other"])


@st.composite
def frames(draw: Any) -> pd.DataFrame:
    rows = draw(st.integers(0, 4))
    names = draw(st.lists(_column_names, min_size=1, max_size=7, unique=True))
    frame = pd.DataFrame(index=range(rows))
    for name in names:
        frame[name] = pd.Series([draw(_values) for _ in range(rows)], dtype=object)
    return frame


@FUZZ
@given(frames(), st.sampled_from(["pandas", "arrow"]))
def test_scan_normalization_accepts_or_refuses(frame: pd.DataFrame, form: str) -> None:
    data: Any = frame
    if form == "arrow":
        try:
            data = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return  # not representable as Arrow; the pandas form covers it
    for schema in (SCHEMA, IMAGES):
        try:
            normalized = normalize(data, schema, "contribution", limits=SMALL)
        except InputError:
            continue
        # What normalization accepted, the image featurizer decodes or refuses.
        for name in (c.name for c in schema.of_kind(ColumnKind.IMAGE)):
            for value in normalized.table.column(name).to_pylist():
                if value is not None:
                    with contextlib.suppress(InputError):
                        decode_image(value)


@FUZZ
@given(st.lists(st.integers(0, 255), min_size=1, max_size=12).map(bytes))
def test_decoding_any_bytes_is_an_image_or_an_input_error(data: bytes) -> None:
    for candidate in (data, _PNG[: len(data)], _PNG[:16] + data):
        with contextlib.suppress(InputError):
            decode_image(candidate)


def test_pixel_arrays_given_to_scan_are_normalized() -> None:
    frame = pd.DataFrame({"image": [np.zeros((4, 4), dtype=np.uint8)], "label": ["a"]})
    assert len(normalize(frame, IMAGES, "contribution", limits=SMALL)) == 1


@FUZZ
@given(st.dictionaries(st.text(max_size=3), st.one_of(_values, st.lists(_values, max_size=4)), max_size=3))
def test_scan_groups_are_accepted_or_refused(groups: dict[str, Any]) -> None:
    with contextlib.suppress(InputError):
        group_arrays(groups, 2)
