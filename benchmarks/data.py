"""Real, offline datasets for the attack benchmark, as tables in the shape dataward's gates take.

- ``digits``: scikit-learn's 1,797 8x8 handwritten digits, each stored as PNG bytes in an ``image``
  column (schema kind ``image``), label ``"0"``..``"9"``.
- ``breast_cancer``: scikit-learn's 569 tumours, 30 numeric columns, label ``malignant``/``benign``.
- ``wine``: scikit-learn's 178 wines, 13 numeric columns, label ``class_0``..``class_2``.
- ``iris``: scikit-learn's 150 irises, 4 numeric columns, label ``setosa``/``versicolor``/``virginica``.
- ``man_sections``: 2,199 man-page NAME lines shipped in ``examples/data/man_sections.csv``, labelled
  by manual section (see ``examples/data/README.md``).
- ``photos``: 32x32 colour crops of the two photos scikit-learn ships (``load_sample_images``: a
  temple in a garden, a dahlia), as PNG bytes, in four content classes (see ``photo_crops``).

``photo_crops`` and ``recombined_lines`` make as many more records of the same kind as a case needs
(tens of thousands), from the same real sources.

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
    """Encode one image (floats 0..1 or uint8; (h, w) grayscale or (h, w, 3) colour) as PNG bytes."""
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="RGB" if arr.ndim == 3 else "L").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def png_to_pixels(data: bytes) -> np.ndarray:
    """Decode PNG bytes to a float32 array in 0..1 (Pillow only; never pickle): (h, w) for grayscale
    images, (h, w, 3) for colour ones."""
    with Image.open(io.BytesIO(data)) as img:
        mode = "L" if img.mode in ("L", "1", "I", "I;16", "LA") else "RGB"
        return np.asarray(img.convert(mode), dtype=np.float32) / 255.0


def image_matrix(frame: pd.DataFrame, column: str = IMAGE) -> np.ndarray:
    """All images of ``frame`` as an (n, pixels) float32 matrix of values in 0..1."""
    if len(frame) == 0:
        return np.zeros((0, DIGIT_SIDE * DIGIT_SIDE), dtype=np.float32)
    return np.stack([png_to_pixels(b).ravel() for b in frame[column]]).astype(np.float32)


def images_of(frame: pd.DataFrame, column: str = IMAGE) -> np.ndarray:
    """All images of ``frame`` as an (n, h, w) or (n, h, w, 3) float32 array in 0..1."""
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


@cache
def load_iris() -> Dataset:
    """scikit-learn's iris set: 4 numeric columns, label ``setosa``/``versicolor``/``virginica``."""
    return _tabular("iris", skd.load_iris())


# --- photo crops --------------------------------------------------------------------------------

PHOTO_SIDE = 32
"""Side of every photo crop, in pixels (colour): the smallest "realistic" size the gate must handle."""
PHOTO_WINDOW = (32, 72)
"""Crops are square windows of a random side in this range (pixels of the original photo), resized to
``PHOTO_SIDE``: different scales of the same scene, as a camera at different distances would give."""
PHOTO_CLASSES = ("temple_sky", "temple_garden", "petals", "foliage")
"""``temple_sky``: a window wholly in the top 45% of the temple photo (sky, roofs, tree tops);
``temple_garden``: wholly in its bottom 45% (lake, temple base, trees); ``petals``: a window of the dahlia
photo at least 80% covered by orange petals; ``foliage``: one with at most 1% petal pixels (the dark green
background). Windows between these (the middle band, a petal edge) are never drawn, so every label is
right by construction."""
PHOTO_COUNT = 2_400
"""Crops in the ``photos`` dataset (600 per class); ``photo_crops`` makes any number."""


@cache
def _photo_sources() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The temple and dahlia photos (uint8, 427x640x3) and the integral image of the dahlia's petal mask."""
    temple, dahlia = skd.load_sample_images().images
    rgb = dahlia.astype(np.int32)
    petal = (rgb[..., 0] > 170) & (rgb[..., 0] > rgb[..., 1] + 15) & (rgb[..., 1] > rgb[..., 2] + 15)
    integral = np.zeros((petal.shape[0] + 1, petal.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = petal.cumsum(0).cumsum(1)
    return temple, dahlia, integral


def _photo_windows(count: int, rng: np.random.Generator) -> pd.DataFrame:
    """``count`` distinct windows (photo, y, x, side, label), as equal a share per class as possible."""
    temple, _, integral = _photo_sources()
    height, width = temple.shape[:2]
    per_class = [count // len(PHOTO_CLASSES) + (i < count % len(PHOTO_CLASSES)) for i in range(len(PHOTO_CLASSES))]
    chosen: list[pd.DataFrame] = []
    for cls, want in zip(PHOTO_CLASSES, per_class, strict=True):
        found = pd.DataFrame(columns=["photo", "y", "x", "side"])
        while len(found) < want:
            n = 4 * (want - len(found)) + 64
            side = rng.integers(PHOTO_WINDOW[0], PHOTO_WINDOW[1] + 1, size=n)
            x = (rng.random(n) * (width - side + 1)).astype(np.int64)
            if cls.startswith("temple"):
                top = cls == "temple_sky"
                lo, hi = (np.zeros(n), 0.45 * height - side) if top else (np.full(n, 0.55 * height), height - side)
                ok = hi >= lo
                y = (lo + rng.random(n) * np.maximum(hi - lo, 0)).astype(np.int64)
                photo = "temple"
            else:
                y = (rng.random(n) * (height - side + 1)).astype(np.int64)
                covered = (
                    integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x] + integral[y, x]
                ) / (side * side)
                ok = covered >= 0.8 if cls == "petals" else covered <= 0.01
                photo = "dahlia"
            batch = pd.DataFrame({"photo": photo, "y": y[ok], "x": x[ok], "side": side[ok]})
            found = pd.concat([found, batch], ignore_index=True).drop_duplicates(ignore_index=True)
        chosen.append(found.iloc[:want].assign(label=cls))
    return pd.concat(chosen, ignore_index=True).astype({"y": np.int64, "x": np.int64, "side": np.int64})


def _crop(photo: np.ndarray, y: int, x: int, side: int) -> np.ndarray:
    window = Image.fromarray(photo[y : y + side, x : x + side])
    return np.asarray(window.resize((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.BILINEAR), dtype=np.uint8)


def photo_crops(count: int, seed: int = 0) -> pd.DataFrame:
    """``count`` distinct 32x32 colour crops (PNG bytes in ``image``), balanced over ``PHOTO_CLASSES``,
    in random order. Also returns where each crop came from (``photo``, ``y``, ``x``, ``side``) so a case
    can hold a region out or check a label."""
    if count < 1:
        raise InputError(f"asked for {count} photo crops")
    rng = np.random.default_rng(50_000 + seed)
    windows = _photo_windows(count, rng)
    windows = windows.iloc[rng.permutation(len(windows))].reset_index(drop=True)
    temple, dahlia, _ = _photo_sources()
    photos = {"temple": temple, "dahlia": dahlia}
    images = [
        pixels_to_png(_crop(photos[p], int(y), int(x), int(s)))
        for p, y, x, s in windows[["photo", "y", "x", "side"]].itertuples(index=False)
    ]
    return pd.DataFrame({IMAGE: images, LABEL: windows["label"].to_numpy()}).join(windows[["photo", "y", "x", "side"]])


PHOTO_SCHEMA = Schema(label=LABEL, inputs=(Column(IMAGE, ColumnKind.IMAGE),))


@cache
def load_photos() -> Dataset:
    """``PHOTO_COUNT`` crops of scikit-learn's sample photos (32x32 colour PNG bytes), four classes."""
    frame = photo_crops(PHOTO_COUNT, seed=0)[[IMAGE, LABEL]]
    return Dataset("photos", frame, PHOTO_SCHEMA, "image")


# --- recombined text ----------------------------------------------------------------------------

NAME_SEPARATOR = " - "


def recombined_lines(frame: pd.DataFrame, count: int, seed: int = 0, exclude: set[str] | None = None) -> pd.DataFrame:
    """``count`` distinct man-page lines made by pairing the name part of one line of ``frame`` with the
    description of another line of the same section (so every label stays right), in proportion to the
    sections of ``frame``. Lines in ``exclude`` (and of ``frame`` itself) are never produced."""
    rng = np.random.default_rng(70_000 + seed)
    parts = frame[TEXT].str.split(NAME_SEPARATOR, n=1, expand=True)
    usable = frame.assign(name=parts[0], desc=parts[1]).dropna(subset=["desc"])
    taken = set(frame[TEXT]) | set(exclude or ())
    shares = usable[LABEL].value_counts(normalize=True).sort_index()
    wanted = np.floor(shares.to_numpy() * count).astype(int)
    wanted[: count - wanted.sum()] += 1
    out: list[pd.DataFrame] = []
    for label, want in zip(shares.index, wanted, strict=True):
        rows = usable[usable[LABEL] == label]
        names, descs = rows["name"].to_numpy(), rows["desc"].to_numpy()
        if want > len(names) * len(descs) - len(names):
            raise InputError(f"cannot make {want} distinct {label!r} lines from {len(names)} lines")
        lines: set[str] = set()
        while len(lines) < want:
            n = 2 * (want - len(lines)) + 16
            made = pd.unique(
                np.char.add(
                    np.char.add(names[rng.integers(len(names), size=n)].astype(str), NAME_SEPARATOR),
                    descs[rng.integers(len(descs), size=n)].astype(str),
                )
            )
            for line in made:
                if line not in taken and line not in lines:
                    lines.add(line)
                    if len(lines) == want:
                        break
        out.append(pd.DataFrame({TEXT: sorted(lines), LABEL: label}))
        taken |= lines
    result = pd.concat(out, ignore_index=True)
    return result.iloc[rng.permutation(len(result))].reset_index(drop=True)


LOADERS = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "iris": load_iris,
    "man_sections": load_man_sections,
    "photos": load_photos,
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
