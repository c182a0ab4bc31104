"""Checks on image bytes: decodable by Pillow, never re-encoded, never unpickled."""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from typing import Any

from PIL import Image


def check_image(data: bytes) -> None:
    """Raise ``ValueError`` unless ``data`` is an image Pillow can open and verify.

    The bytes themselves are what gets stored: they are only inspected here, never decoded into a
    new file. A decompression bomb (an image whose pixel count is past Pillow's safety limit) is
    refused like any other undecodable file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
    except Exception as exc:  # Pillow raises many types for damaged files; all mean "not an image".
        reason = str(exc) or type(exc).__name__
        raise ValueError(f"not a decodable image ({reason})") from None


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
