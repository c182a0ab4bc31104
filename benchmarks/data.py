"""Real, offline datasets for the attack benchmark, as tables in the shape dataward's gates take.

- ``digits``: scikit-learn's 1,797 8x8 handwritten digits, each stored as PNG bytes in an ``image``
  column (schema kind ``image``), label ``"0"``..``"9"``.
- ``breast_cancer``: scikit-learn's 569 tumours, 30 numeric columns, label ``malignant``/``benign``.
- ``wine``: scikit-learn's 178 wines, 13 numeric columns, label ``class_0``..``class_2``.
- ``man_sections``: 2,199 man-page NAME lines shipped in ``examples/data/man_sections.csv``, labelled
  by manual section (see ``examples/data/README.md``).

``split`` cuts a dataset into the four parts every attack needs: the trusted baseline, the clean
validation set, a pool the contributions are drawn from, and a held-out test set for the downstream
model.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn import datasets as skd
from sklearn.model_selection import train_test_split

from dataward.domain.errors import InputError
from dataward.domain.schema import Column, ColumnKind, Schema

REPO = Path(__file__).resolve().parents[1]
MAN_SECTIONS_CSV = REPO / "examples" / "data" / "man_sections.csv"
LABEL = "label"
IMAGE = "image"
TEXT = "text"
DIGIT_SIDE = 8
DIGIT_MAX = 16.0
"""scikit-learn's digits hold intensities 0..16; PNGs hold 0..255."""


@dataclass(frozen=True)
class Dataset:
    """A named table with its dataward schema and its modality (``image``, ``text`` or ``tabular``)."""

    name: str
    frame: pd.DataFrame
    schema: Schema
    modality: str

    @property
    def classes(self) -> list[str]:
        return sorted(self.frame[LABEL].unique())


@dataclass(frozen=True)
class Split:
    """The four disjoint parts of a dataset used by every attack."""

    baseline: pd.DataFrame
    validation: pd.DataFrame
    pool: pd.DataFrame
    test: pd.DataFrame


# --- images -------------------------------------------------------------------------------------


def pixels_to_png(pixels: np.ndarray) -> bytes:
    """Encode one grayscale image (floats 0..1 or uint8) as PNG bytes."""
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def png_to_pixels(data: bytes) -> np.ndarray:
    """Decode PNG bytes to a float32 grayscale array in 0..1 (Pillow only; never pickle)."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def image_matrix(frame: pd.DataFrame, column: str = IMAGE) -> np.ndarray:
    """All images of ``frame`` as an (n, h*w) float32 matrix of pixels in 0..1."""
    if len(frame) == 0:
        return np.zeros((0, DIGIT_SIDE * DIGIT_SIDE), dtype=np.float32)
    return np.stack([png_to_pixels(b).ravel() for b in frame[column]]).astype(np.float32)


def images_of(frame: pd.DataFrame, column: str = IMAGE) -> np.ndarray:
    """All images of ``frame`` as an (n, h, w) float32 array in 0..1."""
    return np.stack([png_to_pixels(b) for b in frame[column]])


# --- loaders ------------------------------------------------------------------------------------


@cache
def load_digits() -> Dataset:
    """scikit-learn's digits as PNG bytes (8x8 grayscale), labels ``"0"``..``"9"``."""
    raw = skd.load_digits()
    images = raw.images / DIGIT_MAX
    frame = pd.DataFrame({IMAGE: [pixels_to_png(img) for img in images], LABEL: [str(t) for t in raw.target]})
    schema = Schema(label=LABEL, inputs=(Column(IMAGE, ColumnKind.IMAGE),))
    return Dataset("digits", frame, schema, "image")


def _tabular(name: str, raw) -> Dataset:
    columns = [re.sub(r"[^A-Za-z0-9_]+", "_", c).strip("_") for c in raw.feature_names]
    frame = pd.DataFrame(np.asarray(raw.data, dtype=np.float64), columns=columns)
    frame[LABEL] = [str(raw.target_names[t]) for t in raw.target]
    schema = Schema(label=LABEL, inputs=tuple(Column(c, ColumnKind.NUMERIC) for c in columns))
    return Dataset(name, frame, schema, "tabular")


@cache
def load_breast_cancer() -> Dataset:
    """scikit-learn's breast-cancer set: 30 numeric columns, label ``malignant``/``benign``."""
    return _tabular("breast_cancer", skd.load_breast_cancer())


@cache
def load_wine() -> Dataset:
    """scikit-learn's wine set: 13 numeric columns, label ``class_0``..``class_2``."""
    return _tabular("wine", skd.load_wine())


@cache
def load_man_sections(path: Path = MAN_SECTIONS_CSV) -> Dataset:
    """The shipped man-page NAME lines, labelled by manual section."""
    if not path.exists():
        raise InputError(f"{path} is missing", hint="rebuild it with `python -m benchmarks.make_text_sample`")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns) != [TEXT, LABEL]:
        raise InputError(f"{path} must have the columns text,label, not {','.join(frame.columns)}")
    schema = Schema(label=LABEL, inputs=(Column(TEXT, ColumnKind.TEXT),))
    return Dataset("man_sections", frame, schema, "text")


LOADERS = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "man_sections": load_man_sections,
}


def load(name: str) -> Dataset:
    """A dataset by name (one of ``LOADERS``)."""
    try:
        return LOADERS[name]()
    except KeyError as exc:
        raise InputError(f"unknown dataset {name!r}", hint=f"use one of: {', '.join(LOADERS)}") from exc


def split(
    dataset: Dataset,
    seed: int = 0,
    fractions: tuple[float, float, float, float] = (0.4, 0.1, 0.3, 0.2),
) -> Split:
    """Stratified baseline / validation / pool / test parts (fractions of the whole, summing to 1)."""
    if len(fractions) != 4 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0:
        raise InputError(f"split fractions must be four positive numbers summing to 1, got {fractions}")
    frame = dataset.frame.reset_index(drop=True)
    rest, test = train_test_split(frame, test_size=fractions[3], random_state=seed, stratify=frame[LABEL])
    left = 1.0 - fractions[3]
    rest, pool = train_test_split(rest, test_size=fractions[2] / left, random_state=seed + 1, stratify=rest[LABEL])
    left -= fractions[2]
    baseline, validation = train_test_split(
        rest, test_size=fractions[1] / left, random_state=seed + 2, stratify=rest[LABEL]
    )
    return Split(*(part.reset_index(drop=True) for part in (baseline, validation, pool, test)))
