"""Hostile inputs for the input-limit attacks: decompression bombs, deep JSON, and the ward state to
compare before and after a refusal."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.service.ward import Ward

TEXT_SCHEMA = Schema(label="label", inputs=(Column("text", ColumnKind.TEXT),))
IMAGE_SCHEMA = Schema(label="label", inputs=(Column("image", ColumnKind.IMAGE),))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` pixels: decoding it
    would need width * height bytes (ten gigabytes by default), all zeros, compressed to almost nothing."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    # The first rows of zeros; a decoder would go on inflating to the declared size.
    idat = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def real_png(width: int, height: int) -> bytes:
    """A genuine, fully decodable PNG of zeros (it compresses to a few kilobytes even when large)."""
    out = io.BytesIO()
    Image.fromarray(np.zeros((height, width), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def small_png(value: int = 0) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def ward_state(ward: Ward) -> tuple[object, ...]:
    """Everything a refused import must leave unchanged: ledger head, every file of the ward folder
    (catalog, objects, checkpoints) with its size and content, and the contributions of each dataset."""
    files = {}
    for path in sorted(Path(ward.folder).rglob("*")):
        # SQLite's write-ahead log and shared memory change on reads too; the catalog is compared
        # through the ledger head and the contributions instead.
        if path.is_file() and not path.name.endswith(("-wal", "-shm", "-journal")):
            files[str(path.relative_to(ward.folder))] = path.read_bytes() if "catalog" not in path.name else None
    contributions = {d["name"]: ward.contributions(d["name"]) for d in ward.datasets()}
    return ward.ledger_head(), files, contributions
