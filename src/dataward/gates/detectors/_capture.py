"""A batch of images read through its lower-resolution capture: the tables' side of ``_resolution``.

``_resolution`` models the capture on decoded images. Detectors hold Arrow tables of encoded images and
gate features: this module estimates the capture from a sample of each class's images, tells which
records could have gone through it, and featurizes trusted images taken through it as the gate
featurizes. ``backdoor`` and ``label_consistency`` read misread records against
those captured trusted images; both only excuse records that went through the capture.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from dataward.gates.detectors._batch_images import native_images
from dataward.gates.detectors._resolution import Resolution, estimate_resolution
from dataward.gates.features.image import decode_image, image_to_png

WENT_THROUGH_BLOCK = 256
"""Records ``went_through`` decodes at a time."""


def batch_capture(
    trusted: pa.ChunkedArray,
    trusted_labels: np.ndarray,
    batch: pa.ChunkedArray,
    batch_labels: np.ndarray,
    mode: str,
    rng: np.random.Generator,
    seed: int,
) -> Resolution | None:
    """The lower resolution the batch's images were captured at (``estimate_resolution`` over a seeded
    sample of each class's images on both sides), or None."""
    return estimate_resolution(
        native_images(trusted, trusted_labels, mode, rng), native_images(batch, batch_labels, mode, rng), seed=seed
    )


def went_through(capture: Resolution, table: pa.Table, column: str, positions: np.ndarray, mode: str) -> np.ndarray:
    """Whether each image at ``positions`` loses no more detail to the capture than a trusted image that
    went through it once (``Resolution.went_through``; never for a flat image, which shows no capture)."""
    values = table.column(column).take(pa.array(positions)).to_pylist()
    out = np.zeros(len(values), dtype=bool)
    # Decoded a block at a time (a batch of large images is never held decoded whole), the sharpness of a
    # block's images read together (``Resolution.went_through_all``).
    for start in range(0, len(values), WENT_THROUGH_BLOCK):
        images = [decode_image(bytes(data)).convert(mode) for data in values[start : start + WENT_THROUGH_BLOCK]]
        out[start : start + len(images)] = capture.went_through_all(images)
    return out


def featurize_captured(
    featurize: Callable[[pa.Table], np.ndarray], table: pa.Table, column: str, capture: Resolution, mode: str
) -> np.ndarray:
    """Gate features of every image of ``table`` taken through ``capture`` (a lower resolution)."""
    images = [
        image_to_png(capture.degrade(decode_image(bytes(data)).convert(mode)))
        for data in table.column(column).to_pylist()
    ]
    index = table.schema.get_field_index(column)
    field = table.schema.field(index)
    return np.asarray(featurize(table.set_column(index, field, pa.array(images, type=field.type))), dtype=np.float32)
