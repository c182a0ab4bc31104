"""A batch's one image column as detectors read it: sampled per class, decoded, featurized with a change undone.

Detectors hold Arrow tables of encoded images beside the gate features. The models of a change of the
pixels (``_lens``'s gain field, ``_frame``'s move, ``_resolution``'s capture) work on decoded images; these
helpers take the images out of the tables (a seeded sample of each class, on the lens's grid or at their
stored size) and put changed images back through the gate's fitted featurization.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from PIL import Image

from dataward.domain.schema import ColumnKind, Schema
from dataward.gates.detectors._frame import FrameShift
from dataward.gates.detectors._lens import SAMPLE_PER_CLASS as LENS_SAMPLE
from dataward.gates.detectors._lens import GainField, to_grid
from dataward.gates.detectors._sensor import rows_by_class, sample_per_class
from dataward.gates.features.image import GRAY_MODES, decode_image, image_to_png

PixelChange = GainField | FrameShift
"""A change of every image's pixels that can be undone on a record (a lens's gain field, the frame's move)."""


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


def grid_images(
    values: pa.ChunkedArray, labels: np.ndarray, mode: str, rng: np.random.Generator
) -> dict[int, np.ndarray]:
    """Per class, a seeded sample of its images (at most ``_lens.SAMPLE_PER_CLASS``) on the lens grid."""
    out = {}
    for code, rows in rows_by_class(labels).items():
        taken = values.take(pa.array(sample_per_class(rows, rng, cap=LENS_SAMPLE))).to_pylist()
        out[code] = np.stack([to_grid(decode_image(bytes(data), shrink=True), mode) for data in taken])
    return out


def featurize_undone(
    featurize: Callable[[pa.Table], np.ndarray],
    table: pa.Table,
    column: str,
    positions: np.ndarray,
    change: PixelChange,
    mode: str,
) -> np.ndarray:
    """Gate features of the images at ``positions`` with ``change`` (a lens's gain field or the frame's
    move) undone on their pixels."""
    rows = table.take(pa.array(positions))
    images = []
    for data in rows.column(column).to_pylist():
        # A large image is undone shrunk (it is featurized at a few dozen pixels a side anyway).
        pixels = np.asarray(decode_image(bytes(data), shrink=True).convert(mode), dtype=np.float64) / 255.0
        shaped = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
        restored = np.round(change.undo(shaped) * 255.0).astype(np.uint8)
        images.append(image_to_png(Image.fromarray(restored[..., 0] if mode == "L" else restored, mode)))
    index = rows.schema.get_field_index(column)
    undone = rows.set_column(index, rows.schema.field(index), pa.array(images, type=rows.schema.field(index).type))
    return np.asarray(featurize(undone), dtype=np.float32)
