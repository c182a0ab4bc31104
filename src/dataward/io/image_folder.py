"""Image-folder input: ``ROOT/<label>/<file>``, one class per sub-folder.

Every file under a class folder is a record (hidden files such as ``.DS_Store`` are skipped). Its
bytes are stored exactly as found, after Pillow has checked that they are an image. Records are
ordered by relative path, and numbered from 1 in that order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from dataward.domain.hashing import content_hash, json_hash
from dataward.domain.limits import DEFAULT_LIMITS, InputLimits, limit_problem
from dataward.domain.schema import ColumnKind, Schema
from dataward.io.columns import checked_label
from dataward.io.images import ImageTooLarge, check_image
from dataward.io.location import input_error, limit_exceeded


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def image_files(root: Path) -> list[tuple[str, Path]]:
    """``(relative POSIX path, file)`` of every image file, sorted by relative path."""
    if not root.is_dir():
        raise input_error(root, "is not a folder", hint="an image import reads ROOT/<label>/<image files>")
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    loose = sorted(p.name for p in entries if p.is_file())
    if loose:
        raise input_error(
            root,
            f"holds files outside any class folder: {', '.join(loose[:3])}",
            hint="move each image into a sub-folder named after its label",
        )
    classes = [p for p in entries if p.is_dir()]
    if not classes:
        raise input_error(
            root,
            "has no class sub-folders",
            hint="put each class's images in ROOT/<label>/, e.g. ROOT/cat/1.png",
        )
    files = []
    for folder in classes:
        for file in folder.rglob("*"):
            relative = file.relative_to(root)
            if file.is_file() and not _hidden(relative):
                files.append((relative.as_posix(), file))
    if not files:
        raise input_error(root, "has class sub-folders but no image files in them")
    return sorted(files)


def _check_listing(root: Path, files: list[tuple[str, Path]], limits: InputLimits) -> None:
    """Refuse too many images, one image file over ``max_record_bytes`` or a folder over
    ``max_file_bytes``, from the file sizes alone, before any image is read."""
    if len(files) > limits.max_rows:
        raise limit_exceeded(
            root,
            "max_rows",
            limit_problem("max_rows", limits.max_rows, len(files), what="the number of image files", bytes_=False),
        )
    total = 0
    for relative, file in files:
        size = file.stat().st_size
        if size > limits.max_record_bytes:
            raise limit_exceeded(
                root,
                "max_record_bytes",
                limit_problem("max_record_bytes", limits.max_record_bytes, size, what="the image file"),
                unit="file",
                where=relative,
            )
        total += size
    if total > limits.max_file_bytes:
        raise limit_exceeded(
            root,
            "max_file_bytes",
            limit_problem("max_file_bytes", limits.max_file_bytes, total, what="the folder's images"),
        )


def read_image_folder(
    root: Path, schema: Schema, limits: InputLimits = DEFAULT_LIMITS
) -> tuple[pa.Table, np.ndarray, list[str], str]:
    """Canonical table (without record ids), 1-based record numbers, relative paths, and the
    folder's raw hash: the hash of the sorted ``(relative path, file hash)`` list."""
    images = schema.of_kind(ColumnKind.IMAGE)
    if len(schema.inputs) != 1 or len(images) != 1:
        declared = ", ".join(f"{c.name}:{c.kind.value}" for c in schema.inputs)
        raise input_error(
            root,
            f"an image folder fills exactly one image column, but the schema declares {declared}",
            hint="import the other columns from a CSV, JSON Lines or Parquet file with base64 images",
        )
    column = images[0].name
    files = image_files(root)
    _check_listing(root, files, limits)
    labels: list[str] = []
    blobs: list[bytes] = []
    listing: list[list[str]] = []
    for relative, file in files:
        data = file.read_bytes()
        if len(data) > limits.max_record_bytes:  # the file grew after it was listed
            raise limit_exceeded(
                root,
                "max_record_bytes",
                limit_problem("max_record_bytes", limits.max_record_bytes, len(data), what="the image file"),
                unit="file",
                where=relative,
            )
        try:
            check_image(data, limits.max_image_pixels)
            label = checked_label(relative.split("/", 1)[0])
        except ImageTooLarge as exc:
            raise limit_exceeded(
                root, "max_image_pixels", str(exc), unit="file", where=relative, column=column
            ) from None
        except ValueError as exc:
            raise input_error(root, str(exc), unit="file", where=relative, column=column) from None
        labels.append(label)
        blobs.append(data)
        listing.append([relative, content_hash(data)])
    table = pa.Table.from_arrays(
        [pa.array(blobs, type=pa.large_binary()), pa.array(labels, type=pa.string())],
        schema=schema.arrow_schema(with_record_id=False),
    )
    rows = np.arange(1, len(files) + 1, dtype=np.int64)
    return table, rows, [relative for relative, _ in files], json_hash(listing)
