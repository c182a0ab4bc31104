"""Checks on image bytes: decodable by Pillow, never re-encoded, never unpickled."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from typing import Any

from dataward.domain.limits import DEFAULT_LIMITS, limit_problem

_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")
"""A Python object's default repr, as Pillow's errors quote the buffer they read."""


READABLE_MODES = frozenset(
    {
        "1",
        "L",
        "LA",
        "P",
        "PA",
        "RGB",
        "RGBA",
        "RGBa",
        "RGBX",
        "CMYK",
        "YCbCr",
        "I",
        "I;16",
        "I;16L",
        "I;16B",
        "I;16N",
        "F",
    }
)
"""The Pillow modes the gate reads an image in: each converts to grayscale ("L") and to colour ("RGB").
Pillow opens a few files in others (a CIELab TIFF is "LAB") that it cannot convert to either: such an
image, accepted, made every gate run that decoded it fail with Pillow's ``ValueError`` (a contributor's
batch that could never be judged, a trusted one that stopped every later gate of its dataset)."""


def unreadable_mode(mode: str) -> str | None:
    """Why an image of Pillow mode ``mode`` cannot be read by the gate, or None when it can."""
    if mode in READABLE_MODES:
        return None
    return f"an image of mode {mode!r}, which the gate cannot read in grayscale or colour (convert it to RGB)"


class ImageTooLarge(ValueError):
    """An image whose header declares more pixels than the limit: refused before any decoding."""


def image_pixels_problem(width: int, height: int, max_pixels: int) -> str:
    """The message for an image over ``max_image_pixels``."""
    return limit_problem(
        "max_image_pixels",
        max_pixels,
        what=f"the image ({width} x {height} = {width * height:,} pixels)",
        bytes_=False,
    )


def check_image(data: bytes, max_pixels: int = DEFAULT_LIMITS.max_image_pixels) -> None:
    """Raise ``ValueError`` unless ``data`` is an image Pillow can open and verify.

    The bytes themselves are what gets stored: they are only inspected here, never decoded into a
    new file. The pixel count is read from the header and checked against ``max_pixels`` before
    anything is decompressed (``ImageTooLarge``), so a decompression bomb (a small file declaring
    a huge image) costs nothing; Pillow's own bomb check (``Image.MAX_IMAGE_PIXELS``) still applies
    above it.
    """
    from PIL import Image  # here, not at import: most commands never read an image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageTooLarge(image_pixels_problem(width, height, max_pixels))
                unreadable = unreadable_mode(image.mode)
                image.verify()
    except ImageTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"the image is a decompression bomb ({exc}) (max_image_pixels)") from None
    except Exception as exc:  # Pillow raises many types for damaged files; all mean "not an image".
        # Pillow names the in-memory buffer it read ('<_io.BytesIO object at 0x7f...>'), which says
        # nothing to the person whose file it is.
        reason = " ".join(_OBJECT_REPR.sub("", str(exc)).split()) or type(exc).__name__
        raise ValueError(f"not a decodable image ({reason})") from None
    if unreadable is not None:
        raise ValueError(f"not a readable image ({unreadable})")


def decode_base64_image(value: Any) -> bytes | None:
    """Image bytes from the base64 text that CSV and JSON Lines files carry (empty or null: missing)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected the image as a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the image is not valid base64") from None


def encode_base64_image(data: bytes | None) -> str | None:
    """The base64 text written for an image in CSV and JSON Lines exports."""
    return None if data is None else base64.b64encode(data).decode("ascii")
