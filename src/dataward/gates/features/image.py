"""Image columns: decode bytes with Pillow, resize to a small fixed size, normalized pixels."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

import numpy as np
import pyarrow as pa
from PIL import Image

from dataward.domain.errors import InputError
from dataward.domain.limits import limit_error
from dataward.domain.schema import ColumnKind
from dataward.gates.features import image_memo
from dataward.gates.features.base import Featurizer, featurizer
from dataward.io.images import unreadable_mode

GRAY_MODES = frozenset({"L", "1", "I", "I;16", "F", "LA"})
"""Pillow modes read as grayscale: a baseline holding only these is featurized in "L", else in "RGB"."""

MAX_SIDE = 32
"""Images larger than this are resized to MAX_SIDE x MAX_SIDE: enough for patches and blends to show."""


LARGE_IMAGE_PIXELS = 4096 * 4096
"""Images with more pixels than this (16.8 Mpx) are shrunk as they are decoded, for the gate's use: every
gate statistic works on at most a few dozen pixels a side. Ordinary images (a 12 Mpx photo, and anything
smaller) are decoded as they are, so their features are exactly what they always were."""

WORKING_SIDE = 1024
"""The side a large image keeps at least, in each direction, once shrunk: far above any size the gate
resizes to, so the shrinking (a box average) changes the gate's few dozen pixels a side by rounding only."""


def open_image(data: bytes, *, row: int | None = None) -> Image.Image:
    """Open image bytes with Pillow, lazily: the header is read (size, mode), no pixel is decoded yet.

    Pillow's decompression-bomb refusal becomes an ``InputError`` naming ``max_image_pixels``, and any
    other failure to read the header an ``InputError`` naming the row, as in :func:`decode_image`.
    """
    with _decoding(row):
        return Image.open(io.BytesIO(data))


def decode_image(data: bytes, *, row: int | None = None, shrink: bool = False) -> Image.Image:
    """Decode image bytes with Pillow (never pickle); a clear error names the row that does not decode.

    The pixel limit is checked on the headers before decoding (:func:`check_image_headers`, run by
    ``scan`` on every input); here Pillow's own decompression-bomb refusal, and any other failure
    to decode, becomes an ``InputError`` rather than escaping as Pillow's exception. With ``shrink``,
    an image over ``LARGE_IMAGE_PIXELS`` comes back shrunk to about ``WORKING_SIDE`` a side
    (:func:`load_image`); callers that resize to a few dozen pixels anyway pass it.

    Within a scan, a small image decoded before (by this or the pixels featurizer) comes from the scan's
    memo (:mod:`image_memo`): the same pixels, decoded once.
    """
    memo = image_memo.current()
    if memo is None:
        return load_image(open_image(data, row=row), row=row, shrink=shrink)[0]
    kept = memo.get(data)
    if kept is not None:
        # Only images too small to be shrunk are kept: the same pixels whatever ``shrink`` says.
        return kept.copy()
    opened = open_image(data, row=row)
    size = opened.size
    img = load_image(opened, row=row, shrink=shrink)[0]
    memo.keep(data, size, img)
    return img


def load_image(img: Image.Image, *, row: int | None = None, shrink: bool = False) -> tuple[Image.Image, str]:
    """Decode an image :func:`open_image` opened; also the mode it decoded to (before any shrinking).

    With ``shrink``, an image over ``LARGE_IMAGE_PIXELS`` is decoded small: a JPEG by its decoder's own
    scaling (``Image.draft``: 1/2 to 1/8, so its full-size pixels never exist), then any image by an
    integer box average (``Image.reduce``) to no less than ``WORKING_SIDE`` a side, straight after
    decoding and before any conversion. Formats Pillow can only decode whole (PNG) still cost their
    full size for the moment this takes; callers decode one image at a time.
    """
    width, height = img.size
    large = shrink and width * height > LARGE_IMAGE_PIXELS
    with _decoding(row):
        if large:
            # Does nothing for formats without decoder scaling; keeps the mode, so gray stays gray.
            img.draft(img.mode, (max(1, width // _factor(width)), max(1, height // _factor(height))))
        img.load()
    mode = img.mode
    if (unreadable := unreadable_mode(mode)) is not None:
        # Checked at import too (``io.images.check_image``); an image stored before that check, or handed
        # to ``scan`` directly, is refused here rather than failing a conversion with Pillow's ValueError.
        where = f" in row {row}" if row is not None else ""
        raise InputError(f"the image{where} is {unreadable}", hint="convert it to RGB (or L) and send it again")
    if large:
        img = _reduced(img)
    return img, mode


def _factor(side: int) -> int:
    return max(1, side // WORKING_SIDE)


_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "F"})
"""Modes ``Image.reduce`` averages as they are (a palette's indices, or 1-bit pixels, cannot be)."""


def _reduced(img: Image.Image) -> Image.Image:
    fx, fy = _factor(img.size[0]), _factor(img.size[1])
    if fx == 1 and fy == 1:
        return img
    try:
        if img.mode not in _REDUCIBLE:
            # Gray stays gray and colour stays colour: the gate's own choice of "L" or "RGB" is made later.
            if img.mode == "1":
                target = "L"
            elif img.mode.startswith("I;16"):
                target = "I"
            else:
                target = "RGBA" if img.has_transparency_data else "RGB"
            img = img.convert(target)
        return img.reduce((fx, fy))
    except (ValueError, OSError):  # a mode Pillow cannot convert or reduce: used as decoded
        return img


@contextmanager
def _decoding(row: int | None) -> Iterator[None]:
    """Pillow's failures while reading an image, as ``InputError`` naming the row."""
    where = f" in row {row}" if row is not None else ""
    try:
        yield
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise limit_error("max_image_pixels", f"the image{where} is a decompression bomb: {exc}") from None
    except Exception as exc:  # Pillow raises many types for damaged files; all mean "not an image".
        raise InputError(
            f"an image{where} cannot be decoded: {exc or type(exc).__name__}",
            hint="images must be PNG/JPEG/... bytes",
        ) from None


def image_size(data: object) -> tuple[int, int]:
    """An image's (width, height) from its header, without decoding it."""
    if data is None:
        raise InputError("an image is missing")
    with open_image(bytes(data)) as img:  # type: ignore[call-overload]
        return img.size


def check_image_headers(
    values: pa.Array | pa.ChunkedArray,
    what: str,
    column: str,
    max_pixels: int,
    *,
    max_batch_pixels: int | None = None,
    counted: int = 0,
) -> int:
    """Refuse an image whose header declares more than ``max_pixels`` pixels, before any is decoded,
    and a batch whose images declare more than ``max_batch_pixels`` together (``counted`` of them in
    the columns checked before this one); returns the pixels counted so far.

    Only the header is read (Pillow decodes lazily), so a decompression bomb costs nothing here.
    Values that are not images at all are left to the featurizer, which names them.
    """
    total = counted
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
        total += width * height
        if max_batch_pixels is not None and total > max_batch_pixels:
            raise limit_error(
                "max_batch_pixels",
                f"the {what}'s images declare {total:,} pixels by row {row} of column {column!r}, over the "
                f"limit of {max_batch_pixels:,} for one batch (max_batch_pixels); every image is decoded "
                "by the gate",
            )
    return total


def gray_pixels(data: object, size: tuple[int, int] | None = None) -> np.ndarray:
    """One image's grayscale pixels (0..255, float64), resized to ``size`` (width, height) when given."""
    return luma_chroma_pixels(data, size, chroma=False)[0]


def luma_chroma_pixels(
    data: object, size: tuple[int, int] | None = None, *, chroma: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """One image decoded once: its grayscale pixels as :func:`gray_pixels` gives them (0..255, float64),
    and, for a colour image (a mode not in ``GRAY_MODES``) when ``chroma``, its chroma: Pillow's YCbCr
    Cb and Cr planes (0..255, uint8, 128 for grey; shape 2 x H x W), else None. Both resized to ``size``
    (width, height) when given."""
    return luma_chroma_of(decoded_for_pixels(data, size), size, chroma=chroma)


def decoded_for_pixels(data: object, size: tuple[int, int] | None = None) -> Image.Image:
    """The image :func:`luma_chroma_pixels` reads its pixels from: ``data`` decoded (shrunk as it is decoded
    when a ``size`` is given, as it is resized anyway); an ``InputError`` when it is missing."""
    if data is None:
        raise InputError("an image is missing")
    return decode_image(bytes(data), shrink=size is not None)  # type: ignore[call-overload]


def luma_chroma_of(
    decoded: Image.Image, size: tuple[int, int] | None = None, *, chroma: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`luma_chroma_pixels` of an image :func:`decoded_for_pixels` gave."""
    img = decoded.convert("L")
    if size is not None and img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    luma = np.asarray(img, dtype=np.float64)
    if not chroma or decoded.mode in GRAY_MODES or decoded.mode.startswith("I;16"):
        return luma, None
    # Through RGB: Pillow converts to YCbCr from RGB (a palette or CMYK image is made RGB first); alpha is
    # dropped, as "L" drops it.
    try:
        colour = (decoded if decoded.mode == "RGB" else decoded.convert("RGB")).convert("YCbCr")
    except (ValueError, OSError):  # a mode Pillow cannot make colour of: read in luma only
        return luma, None
    if size is not None and colour.size != size:
        colour = colour.resize(size, Image.Resampling.BILINEAR)
    return luma, np.moveaxis(np.asarray(colour, dtype=np.uint8)[..., 1:], -1, 0)


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

    def _opened(self, table: pa.Table) -> list[tuple[bytes, Image.Image] | None]:
        """Every image of the column with its bytes, opened lazily: headers read, no pixel decoded yet."""
        out: list[tuple[bytes, Image.Image] | None] = []
        for i, data in enumerate(self.values(table).to_pylist(), start=1):
            if data is None:
                raise InputError(f"the image in row {i} of column {self.column.name!r} is missing")
            # The bytes add nothing held: the opened image reads from them until it is decoded.
            out.append((data, open_image(data, row=i)))
        return out

    def fit(self, table: pa.Table) -> Self:
        self._fit_pixels(table)
        return self

    def fit_transform(self, table: pa.Table) -> np.ndarray:
        """Fit, and return the same images' vectors without decoding them a second time."""
        return (self._fit_pixels(table) - self.mean_).astype(np.float32)

    def _choose(self, images: list[tuple[tuple[int, int], str]]) -> tuple[tuple[int, int], str]:
        """The working size and mode for images of these (size, mode)s."""
        sizes = {size for size, _ in images}
        (w, h) = next(iter(sizes)) if len(sizes) == 1 else (MAX_SIDE, MAX_SIDE)
        if max(w, h) > MAX_SIDE:
            w, h = MAX_SIDE, MAX_SIDE
        return (w, h), "RGB" if any(mode not in GRAY_MODES for _, mode in images) else "L"

    def _fit_pixels(self, table: pa.Table) -> np.ndarray:
        # The size and mode are chosen from the headers, so that each image can be decoded and shrunk
        # in turn: the full-size pixels of the whole batch are never held together.
        images = self._opened(table)
        self.size_, self.mode_ = self._choose([(item[1].size, item[1].mode) for item in images if item is not None])
        decoded: list[tuple[tuple[int, int], str]] = []
        pixels = self._pixels(images, decoded)
        chosen = self._choose(decoded)
        if chosen != (self.size_, self.mode_):
            # A format whose decoded size or mode differs from its header's (rare): chosen as the
            # decoded images say, and decoded again one at a time.
            self.size_, self.mode_ = chosen
            pixels = self._pixels(self._opened(table))
        self.mean_ = pixels.mean(axis=0) if len(pixels) else np.zeros(pixels.shape[1], dtype=np.float32)
        return pixels

    def _pixels(
        self,
        images: list[tuple[bytes, Image.Image] | None],
        decoded: list[tuple[tuple[int, int], str]] | None = None,
    ) -> np.ndarray:
        """The images' vectors, each image decoded, converted and resized in turn, then released;
        ``decoded`` receives each image's size and mode as decoded (before any shrinking). Within a scan,
        the small ones are kept in its memo for the detectors that decode them again (``decode_image``)."""
        w, h = self.size_
        channels = 3 if self.mode_ == "RGB" else 1
        out = np.empty((len(images), w * h * channels), dtype=np.float32)
        memo = image_memo.current()
        for i, item in enumerate(images):
            assert item is not None
            images[i] = None  # the decoded pixels are released with the image, not kept in the list
            data, opened = item
            # Only images over LARGE_IMAGE_PIXELS are shrunk: they are resized to MAX_SIDE anyway.
            size = opened.size
            loaded, mode = load_image(opened, row=i + 1, shrink=True)
            if decoded is not None:
                decoded.append((size if loaded is not opened else loaded.size, mode))
            if memo is not None:
                memo.keep(data, size, loaded)
            img = loaded.convert(self.mode_)
            if img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            out[i] = np.asarray(img, dtype=np.float32).reshape(-1) / 255.0
            for held in {id(x): x for x in (opened, loaded, img)}.values():
                held.close()
        return out

    def transform(self, table: pa.Table) -> np.ndarray:
        return (self._pixels(self._opened(table)) - self.mean_).astype(np.float32)
