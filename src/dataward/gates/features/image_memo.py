"""Small images decoded once per scan: a bounded memo of decoded pixels, keyed by the encoded bytes.

One scan reads each image several times: the pixels featurizer, the trigger detector's grayscale
patterns, the lens, frame and capture models of ``backdoor`` and ``label_consistency``. Decoding a small
PNG costs about ten times what converting and resizing its pixels does, so ``scan`` opens a memo
(``decoded_images``) for its duration and ``decode_image`` keeps what it decodes there.

What is kept is exactly what Pillow decoded from those bytes (a copy, detached from the file), keyed by
the bytes themselves, never a digest of them: a hit is the image a decode would give, and the report is
the same with or without the memo. Only images whose header declares at most ``MEMO_MAX_PIXELS`` pixels
are kept (never a large image, which ``load_image`` may shrink as it decodes), and the memo holds at most
``MEMO_BYTES`` of pixels and keys: once full, it keeps nothing more (a sequential read of more images
than it holds would find none of them in a memo that forgot the oldest). Outside a scan there is no memo
and every call decodes, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from PIL import Image

MEMO_BYTES = 64 * 1024 * 1024
"""The most a scan's memo holds: encoded bytes (its keys) and decoded pixels together."""

MEMO_MAX_PIXELS = 128 * 128
"""The largest image (declared by its header) the memo keeps: four times the featurizer's working size."""

_ENTRY_OVERHEAD = 512
"""Bytes counted per kept image beyond its key and pixels (the Pillow image and dictionary entry)."""


class DecodedImages:
    """Decoded small images keyed by their encoded bytes, at most ``budget`` bytes of them; thread-safe
    (a scan's detectors may run on several threads)."""

    def __init__(self, budget: int = MEMO_BYTES) -> None:
        self.budget = budget
        self.used = 0
        self._images: dict[bytes, Image.Image] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._images)

    def get(self, data: bytes) -> Image.Image | None:
        """The image decoded from ``data``, shared: callers copy or convert it, never change it."""
        return self._images.get(data)

    def keep(self, data: bytes, header_size: tuple[int, int], decoded: Image.Image) -> None:
        """Keep a copy of ``decoded``, the image Pillow decoded from ``data`` whose header declared
        ``header_size``, if it is small and the memo has room; otherwise nothing."""
        width, height = header_size
        if width * height > MEMO_MAX_PIXELS or decoded.size != header_size:
            return
        # Pillow holds up to 4 bytes a pixel (RGB is stored as RGBX).
        cost = len(data) + 4 * width * height + _ENTRY_OVERHEAD
        if self.used + cost > self.budget or data in self._images:
            return
        # A copy: the decoded image keeps its file (and so the bytes) open, and the caller may close it.
        kept = decoded.copy()
        with self._lock:
            if self.used + cost <= self.budget and data not in self._images:
                self._images[bytes(data)] = kept
                self.used += cost


_memo: ContextVar[DecodedImages | None] = ContextVar("dataward_decoded_images", default=None)


def current() -> DecodedImages | None:
    """The memo of the calling context (a scan's), or None outside a scan."""
    return _memo.get()


@contextmanager
def decoded_images(budget: int = MEMO_BYTES) -> Iterator[DecodedImages]:
    """Keep the small images decoded in the block, for the block only (released when it ends)."""
    memo = DecodedImages(budget)
    token = _memo.set(memo)
    try:
        yield memo
    finally:
        _memo.reset(token)
