"""One featurizer per input column, concatenated into a single float32 matrix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Self

import numpy as np
import pyarrow as pa
from sklearn.decomposition import PCA

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema
from dataward.gates.features.base import Featurizer, make_featurizer

MAX_DIMS = 256
"""Concatenated features wider than this (large images, many columns) are reduced with PCA."""

PCA_DIMS = 128
"""Components the PCA reduction keeps (fewer when it is fitted on fewer records)."""

PCA_RECORDS_PER_DIM = 4
"""A PCA reduction fitted on fewer than this many trusted records per component is fitted on the new
records too (``fit_transform``'s ``new``). Fitted on the reference alone, the components follow the
reference's own noise: its rows keep about ``dims / n`` more of their energy than any new row does, so
new rows read as shifted and unlike their class. On 40 x 40 photo crops (3,072 pixels, 128 components),
a clean batch of 600 drawn exactly like 150 trusted crops had 65 to 77 of its 128 features "shifted"
(KS up to 0.42), 337 records "unlike the baseline together", and 33 to 108 records flagged by
``label_consistency``: a ward's clean first import, judged against half of a 300-record validation set,
was blocked. Against 300 trusted crops 1 to 9 features moved, against 1,000 or more none. At 960 trusted
photo crops (the benchmark's), a PCA fitted on the batch too left more clean records queued (a sharpened
batch: 37, against none) and a checkered corner patch unqueued: the reference alone is the better fit
there, so only references under 512 records (4 per component) take the batch in
(``tests/gates/test_small_reference_geometry.py``)."""


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

    def fit_transform(self, table: pa.Table, new: Callable[[], pa.Table] | None = None) -> np.ndarray:
        """Fit on ``table`` and return its own vectors (what ``transform(table)`` would give), featurizing it once.

        ``new`` gives records about to be judged against ``table`` (their input columns), asked for only
        when the PCA reduction would be fitted on fewer than ``PCA_RECORDS_PER_DIM`` records of ``table``
        per component: the PCA is then fitted on both, without labels, so that trusted and new rows are
        alike inside the fit (the column featurizers and their scales stay fitted on ``table`` alone).
        Their vectors follow ``table``'s in the result; ``new_rows_`` says how many (0 when not asked).
        """
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
        self.new_rows_ = 0
        if full.shape[1] > MAX_DIMS and len(self.featurizers) and not self._all_embeddings():
            if new is not None and full.shape[0] < PCA_RECORDS_PER_DIM * min(PCA_DIMS, full.shape[1]):
                added = self._blocks(new())
                self.new_rows_ = added.shape[0]
                full = np.vstack([full, added])
            dims = min(PCA_DIMS, full.shape[0] - 1)
            if dims >= 2:
                self.pca_ = PCA(dims, random_state=self.seed, svd_solver="randomized").fit(full)
        self.dims_ = int(self.pca_.n_components_) if self.pca_ is not None else int(full.shape[1])
        if self.pca_ is not None:
            full = self.pca_.transform(full)
        return np.ascontiguousarray(full, dtype=np.float32)

    def _all_embeddings(self) -> bool:
        # Supplied embeddings already have a meaningful geometry: keep them as they are.
        return all(f.name.startswith("embedding") for f in self.featurizers)

    def _blocks(self, table: pa.Table) -> np.ndarray:
        """The fitted column featurizers' scaled vectors of ``table``, side by side (before any PCA)."""
        blocks = [f.transform(table) / s for f, s in zip(self.featurizers, self.scales_, strict=True)]
        return blocks[0] if len(blocks) == 1 else np.hstack(blocks)

    def transform(self, table: pa.Table) -> np.ndarray:
        if table.num_rows == 0:
            return np.zeros((0, self.dims), dtype=np.float32)
        full = self._blocks(table)
        if self.pca_ is not None:
            full = self.pca_.transform(full)
        return np.ascontiguousarray(full, dtype=np.float32)

    @property
    def dims(self) -> int:
        """Width of the transformed vectors (after ``fit``)."""
        return self.dims_
