"""Image columns: decode bytes with Pillow, resize to a small fixed size, normalized pixels."""

from __future__ import annotations

import io
import warnings
from typing import Self

import numpy as np
import pyarrow as pa
from PIL import Image

from dataward.domain.errors import InputError
from dataward.domain.limits import limit_error
from dataward.domain.schema import ColumnKind
from dataward.gates.features.base import Featurizer, featurizer

GRAY_MODES = frozenset({"L", "1", "I", "I;16", "F", "LA"})
"""Pillow modes read as grayscale: a baseline holding only these is featurized in "L", else in "RGB"."""

MAX_SIDE = 32
"""Images larger than this are resized to MAX_SIDE x MAX_SIDE: enough for patches and blends to show."""


def decode_image(data: bytes, *, row: int | None = None) -> Image.Image:
    """Decode image bytes with Pillow (never pickle); a clear error names the row that does not decode.

    The pixel limit is checked on the headers before decoding (:func:`check_image_headers`, run by
    ``scan`` on every input); here Pillow's own decompression-bomb refusal, and any other failure
    to decode, becomes an ``InputError`` rather than escaping as Pillow's exception.
    """
    where = f" in row {row}" if row is not None else ""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Image.DecompressionBombError as exc:
        raise limit_error("max_image_pixels", f"the image{where} is a decompression bomb: {exc}") from None
    except Exception as exc:  # Pillow raises many types for damaged files; all mean "not an image".
        raise InputError(
            f"an image{where} cannot be decoded: {exc or type(exc).__name__}",
            hint="images must be PNG/JPEG/... bytes",
        ) from None
    return img


def check_image_headers(values: pa.Array | pa.ChunkedArray, what: str, column: str, max_pixels: int) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` pixels, before any is decoded.

    Only the header is read (Pillow decodes lazily), so a decompression bomb costs nothing here.
    Values that are not images at all are left to the featurizer, which names them.
    """
    for row, data in enumerate(values.to_pylist(), start=1):
        if data is None:
            continue
        try:
            with warnings.catch_warnings():
                # Pillow warns above its own limit; the limit that counts here is ``max_pixels``.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as img:
                    width, height = img.size
        except Image.DecompressionBombError as exc:
            raise limit_error(
                "max_image_pixels",
                f"the {what}'s image in row {row} of column {column!r} is a decompression bomb: {exc}",
            ) from None
        except Exception:  # not an image: decode_image says so with its row when it is used
            continue
        if width * height > max_pixels:
            raise limit_error(
                "max_image_pixels",
                f"the {what}'s image in row {row} of column {column!r} is {width} x {height} pixels, "
                f"over the limit of {max_pixels:,} (max_image_pixels)",
            )


def gray_pixels(data: object, size: tuple[int, int] | None = None) -> np.ndarray:
    """One image's grayscale pixels (0..255, float64), resized to ``size`` (width, height) when given."""
    if data is None:
        raise InputError("an image is missing")
    img = decode_image(bytes(data)).convert("L")  # type: ignore[call-overload]
    if size is not None and img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float64)


def array_to_png(array: np.ndarray) -> bytes:
    """Encode a pixel array (H x W, H x W x 3/4; values 0..255, or 0..1 for floats) as PNG bytes."""
    arr = np.asarray(array)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InputError(f"an image array must be H x W or H x W x C (C in 1, 3, 4), got shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise InputError("an image array holds a non-finite value")
        if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0 and not np.all(arr == np.round(arr)):
            arr = arr * 255.0
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def image_to_png(image: Image.Image) -> bytes:
    """Encode a PIL image as PNG bytes, losslessly: its pixels in its own mode (with its palette,
    transparency and colour profile), as ``array_to_png`` encodes a pixel array; the same image gives the
    same bytes. A mode PNG cannot hold exactly (CMYK, floating-point pixels, 32-bit integers beyond 16
    bits) is refused with an ``InputError``: converting it would be a choice of ours, made silently."""
    if image.mode == "I":
        low, high = image.getextrema()
        if low < 0 or high > 0xFFFF:  # PNG stores mode I in 16 bits
            raise InputError(f"a PIL image of mode I holds values from {low} to {high}, beyond PNG's 16 bits")
    buf = io.BytesIO()
    try:
        image.save(buf, format="PNG")
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(
            f"a PIL image of mode {image.mode} cannot be written as PNG without loss ({exc}); "
            "convert it first, e.g. image.convert('RGB')"
        ) from None
    return buf.getvalue()


@featurizer(default=True)
class Pixels(Featurizer):
    """Pixels scaled to [0, 1] and centred on the baseline's mean image.

    Images keep their size when every baseline image shares one no larger than ``MAX_SIDE``; otherwise
    all are resized to ``MAX_SIDE`` square. Grayscale unless the baseline holds colour images.
    """

    name = "pixels"
    kinds = frozenset({ColumnKind.IMAGE})

    def _images(self, table: pa.Table) -> list[Image.Image]:
        out = []
        for i, data in enumerate(self.values(table).to_pylist(), start=1):
            if data is None:
                raise InputError(f"the image in row {i} of column {self.column.name!r} is missing")
            out.append(decode_image(data, row=i))
        return out

    def fit(self, table: pa.Table) -> Self:
        self._fit_pixels(table)
        return self

    def fit_transform(self, table: pa.Table) -> np.ndarray:
        """Fit, and return the same images' vectors without decoding them a second time."""
        return (self._fit_pixels(table) - self.mean_).astype(np.float32)

    def _fit_pixels(self, table: pa.Table) -> np.ndarray:
        images = self._images(table)
        sizes = {img.size for img in images}
        (w, h) = next(iter(sizes)) if len(sizes) == 1 else (MAX_SIDE, MAX_SIDE)
        if max(w, h) > MAX_SIDE:
            w, h = MAX_SIDE, MAX_SIDE
        self.size_ = (w, h)
        self.mode_ = "RGB" if any(img.mode not in GRAY_MODES for img in images) else "L"
        pixels = self._pixels(images)
        self.mean_ = pixels.mean(axis=0) if len(pixels) else np.zeros(pixels.shape[1], dtype=np.float32)
        return pixels

    def _pixels(self, images: list[Image.Image]) -> np.ndarray:
        w, h = self.size_
        channels = 3 if self.mode_ == "RGB" else 1
        out = np.empty((len(images), w * h * channels), dtype=np.float32)
        for i, img in enumerate(images):
            img = img.convert(self.mode_)
            if img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            out[i] = np.asarray(img, dtype=np.float32).reshape(-1) / 255.0
        return out

    def transform(self, table: pa.Table) -> np.ndarray:
        return (self._pixels(self._images(table)) - self.mean_).astype(np.float32)
