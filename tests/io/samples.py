"""Small helpers that make test inputs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(seed: int, size: int = 8) -> bytes:
    """A small random-noise PNG, different for every seed."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path
