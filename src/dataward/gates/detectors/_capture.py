"""A batch of images read through its lower-resolution capture: the tables' side of ``_resolution``.

``_resolution`` models the capture on decoded images. Detectors hold Arrow tables of encoded images and
gate features: this module finds a batch's one image column, samples each class's images to estimate the
capture from, tells which records could have gone through it, and featurizes trusted images taken
through it as the gate featurizes. ``backdoor`` and ``label_consistency`` read misread records against
those captured trusted images; both only excuse records that went through the capture.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from PIL import Image

from dataward.domain.schema import ColumnKind, Schema
from dataward.gates.detectors._lens import SAMPLE_PER_CLASS as LENS_SAMPLE
from dataward.gates.detectors._resolution import Resolution, estimate_resolution
from dataward.gates.detectors._sensor import rows_by_class, sample_per_class
from dataward.gates.features.image import GRAY_MODES, decode_image, image_to_png


def image_input(schema: Schema) -> str | None:
    """The name of the batch's one input column when it is an image column, else None (a change of the
    pixels is modelled on a table of images alone: other inputs would need their own sensor)."""
    if len(schema.inputs) == 1 and schema.inputs[0].kind is ColumnKind.IMAGE:
        return schema.inputs[0].name
    return None


def image_mode(values: pa.ChunkedArray) -> str:
    """ "RGB" when any trusted image is in colour, else "L" (as the pixels featurizer decides); headers only."""
    for data in values.to_pylist():
        if data is None:
            continue
        try:
            with Image.open(io.BytesIO(bytes(data))) as img:
                if img.mode not in GRAY_MODES:
                    return "RGB"
        except Exception:  # not an image: the featurizer has named it already
            continue
    return "L"


def native_images(
    values: pa.ChunkedArray, labels: np.ndarray, mode: str, rng: np.random.Generator
) -> dict[int, list[Image.Image]]:
    """Per class, a seeded sample of its images (at most ``_lens.SAMPLE_PER_CLASS``), decoded in ``mode``
    at their stored size."""
    out = {}
    for code, rows in rows_by_class(labels).items():
        taken = values.take(pa.array(sample_per_class(rows, rng, cap=LENS_SAMPLE))).to_pylist()
        out[code] = [decode_image(bytes(data)).convert(mode) for data in taken]
    return out


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
    return np.array([capture.went_through(decode_image(bytes(data)).convert(mode)) for data in values], dtype=bool)


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
