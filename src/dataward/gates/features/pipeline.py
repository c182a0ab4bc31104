"""One featurizer per input column, concatenated into a single float32 matrix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import numpy as np
import pyarrow as pa
from sklearn.decomposition import PCA

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.gates.features.base import Featurizer, make_featurizer

MAX_DIMS = 256
"""Concatenated features wider than this (large images, many columns) are reduced with PCA."""


class FeaturePipeline:
    """Fit every column's featurizer on one table, then transform any table to ``(n, d)`` float32.

    Each column block is scaled to unit mean row norm on the fitted table so that no column dominates
    distances merely by its width, by no less than its featurizer's ``min_block_scale`` (an almost
    constant numeric column's half step); blocks wider than ``MAX_DIMS`` in total are PCA-reduced.
    """

    def __init__(self, schema: Schema, overrides: Mapping[str, str] | None = None, *, seed: int = 0) -> None:
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - {c.name for c in schema.inputs})
        if unknown:
            raise InputError(f"featurizer override names unknown column(s): {', '.join(unknown)}")
        self.schema = schema
        self.seed = seed
        self.featurizers: list[Featurizer] = [
            make_featurizer(col, overrides.get(col.name), seed=seed)
            for col in schema.inputs
            # Optional fields of the language-model kinds are often empty in every record.
            if col.name not in schema.optional_columns
        ]

    @property
    def workers(self) -> int:
        """Threads each featurizer may use (``Featurizer.workers``); the vectors do not depend on it."""
        return max([1, *(f.workers for f in self.featurizers)])

    @workers.setter
    def workers(self, count: int) -> None:
        for f in self.featurizers:
            f.workers = count

    @property
    def learns_geometry(self) -> bool:
        """Whether any column's featurizer shapes the space from the data it is fitted on."""
        return any(f.learns_geometry for f in self.featurizers)

    @property
    def names(self) -> dict[str, str]:
        """Column name -> featurizer name actually used."""
        return {f.column.name: f.name for f in self.featurizers}

    def fit(self, table: pa.Table) -> Self:
        self.fit_transform(table)
        return self

    def fit_transform(self, table: pa.Table) -> np.ndarray:
        """Fit on ``table`` and return its own vectors (what ``transform(table)`` would give), featurizing it once."""
        if table.num_rows == 0:
            raise InputError("cannot fit featurizers on an empty table")
        blocks = []
        self.scales_: list[float] = []
        for feat in self.featurizers:
            block = feat.fit_transform(table)
            scale = float(np.mean(np.linalg.norm(block, axis=1))) if block.size else 1.0
            # An almost constant numeric column has a tiny mean row norm: divided by it, one step of
            # its values became hundreds of units (``StandardizedNumeric.min_block_scale``).
            scale = max(scale, feat.min_block_scale())
            self.scales_.append(scale if scale > 0 else 1.0)
            blocks.append(block / self.scales_[-1])
        full = np.hstack(blocks)
        self.pca_: PCA | None = None
        if full.shape[1] > MAX_DIMS and len(self.featurizers) and not self._all_embeddings():
            dims = min(128, full.shape[0] - 1)
            if dims >= 2:
                self.pca_ = PCA(dims, random_state=self.seed, svd_solver="randomized").fit(full)
        self.dims_ = int(self.pca_.n_components_) if self.pca_ is not None else int(full.shape[1])
        if self.pca_ is not None:
            full = self.pca_.transform(full)
        return np.ascontiguousarray(full, dtype=np.float32)

    def _all_embeddings(self) -> bool:
        # Supplied embeddings already have a meaningful geometry: keep them as they are.
        return all(f.name.startswith("embedding") for f in self.featurizers)

    def transform(self, table: pa.Table) -> np.ndarray:
        if table.num_rows == 0:
            return np.zeros((0, self.dims), dtype=np.float32)
        blocks = [f.transform(table) / s for f, s in zip(self.featurizers, self.scales_, strict=True)]
        full = blocks[0] if len(blocks) == 1 else np.hstack(blocks)
        if self.pca_ is not None:
            full = self.pca_.transform(full)
        return np.ascontiguousarray(full, dtype=np.float32)

    @property
    def dims(self) -> int:
        """Width of the transformed vectors (after ``fit``)."""
        return self.dims_
