"""User-supplied embedding columns: passed through, optionally L2-normalized."""

from __future__ import annotations

from typing import Self

import numpy as np
import pyarrow as pa

from dataward.domain.errors import InputError
from dataward.domain.schema import ColumnKind
from dataward.gates.features.base import Featurizer, featurizer


def embedding_matrix(column: pa.ChunkedArray | pa.Array, dim: int | None) -> np.ndarray:
    """A list/fixed-size-list Arrow column as an ``(n, dim)`` float32 array without a Python loop."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if n == 0:
        return np.zeros((0, dim or 0), dtype=np.float32)
    if arr.null_count:
        raise InputError("an embedding is missing in the table")
    if pa.types.is_fixed_size_list(arr.type):
        width = arr.type.list_size
    else:
        lengths = arr.value_lengths().to_numpy(zero_copy_only=False)
        width = int(lengths[0])
        if not np.all(lengths == width):
            raise InputError("embeddings in one column must all have the same dimension")
    if dim is not None and width != dim:
        raise InputError(f"expected embeddings of dimension {dim}, got {width}")
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat.astype(np.float32, copy=False).reshape(n, width))


@featurizer(default=True)
class PassthroughEmbedding(Featurizer):
    """The embedding as given."""

    name = "embedding"
    kinds = frozenset({ColumnKind.EMBEDDING})

    def fit(self, table: pa.Table) -> Self:
        return self

    def transform(self, table: pa.Table) -> np.ndarray:
        return embedding_matrix(self.values(table), self.column.dim)


@featurizer()
class NormalizedEmbedding(PassthroughEmbedding):
    """The embedding scaled to unit L2 norm (for cosine-style geometry)."""

    name = "embedding_l2"

    def transform(self, table: pa.Table) -> np.ndarray:
        x = super().transform(table)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norms > 0, norms, 1.0)
