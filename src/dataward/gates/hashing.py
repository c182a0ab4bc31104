"""64-bit content hashes of records' inputs (label excluded), column-at-a-time, for exact-duplicate search.

These are not record ids (those are BLAKE3 over the label too); they are fast keys that let the gate
compare a contribution with the *whole* baseline, however large, in one pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from dataward.domain.schema import ColumnKind, Schema
from dataward.gates.features.embedding import embedding_matrix

_MIX = np.uint64(0x9E3779B97F4A7C15)
_CHUNK = 65_536


def _row_bytes_hash(matrix: np.ndarray) -> np.ndarray:
    """One uint64 per row over the row's bytes, a column of 8-byte words at a time (no Python per row)."""
    out = np.empty(matrix.shape[0], dtype=np.uint64)
    for start in range(0, matrix.shape[0], _CHUNK):
        block = np.ascontiguousarray(matrix[start : start + _CHUNK])
        raw = block.view(np.uint8).reshape(block.shape[0], -1)
        pad = -raw.shape[1] % 8
        if pad:
            raw = np.hstack([raw, np.zeros((raw.shape[0], pad), dtype=np.uint8)])
        words = np.ascontiguousarray(raw).view(np.uint64)
        h = np.full(words.shape[0], words.shape[1], dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(words.shape[1]):
                h = pd.util.hash_array((h * _MIX) ^ words[:, j], categorize=False)
        out[start : start + words.shape[0]] = h
    return out


def _column_hash(column: pa.ChunkedArray, kind: str, dim: int | None) -> np.ndarray:
    if kind == ColumnKind.EMBEDDING:
        # Chunk by chunk: a million embeddings are never copied into one matrix.
        parts = [_row_bytes_hash(embedding_matrix(chunk, dim)) for chunk in column.chunks if len(chunk)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    if kind == ColumnKind.NUMERIC:
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return pd.util.hash_array(np.where(np.isnan(values), np.inf, values))
    objects = np.asarray(column.to_pylist(), dtype=object)
    objects[pd.isna(objects)] = b"\x00missing"
    return pd.util.hash_array(objects, categorize=False)


def input_hashes(table: pa.Table, schema: Schema) -> np.ndarray:
    """One uint64 per row over every input column of ``schema`` (the label does not count)."""
    h = np.zeros(table.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in schema.inputs:
            h = (h * _MIX) ^ _column_hash(table.column(col.name), col.kind, col.dim)
    return h
