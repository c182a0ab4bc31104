"""Numeric and categorical columns: robust standardization and one-hot categories."""

from __future__ import annotations

from typing import Self

import numpy as np
import pyarrow as pa

from dataward.domain.schema import ColumnKind
from dataward.gates.features.base import Featurizer, featurizer

MAX_STANDARDIZED = 1e30
"""The largest standardized value a numeric feature takes (in standard deviations from the median):
far beyond any real column, and low enough that sums over millions of records stay finite in float32."""


STEP_SHARE = 0.5
"""The smallest scale of a numeric column, as a share of its value step (``value_step``): one step of its
values counts at most ``1 / STEP_SHARE`` = 2 units, what it counts in a column whose records are half one
value and half the next. The pipeline scales each column to unit mean row norm, its mean absolute
deviation from the median; a column that almost never leaves one value has nearly none (a single 1 among
700 trusted zeros: 1/700), and one step of it counted 700 units, a faint pixel an extreme outlier."""


def value_step(values: np.ndarray) -> float:
    """The median gap between consecutive distinct values: the column's resolution as its trusted records
    write it (1 for counts and 0-16 pixels), robust to a stray tiny gap. 0 when fewer than two values."""
    distinct = np.unique(values)
    return float(np.median(np.diff(distinct))) if distinct.size > 1 else 0.0


@featurizer(default=True)
class StandardizedNumeric(Featurizer):
    """Median-imputed, standardized numbers (one dimension per column)."""

    name = "standard"
    kinds = frozenset({ColumnKind.NUMERIC})

    def _raw(self, table: pa.Table) -> np.ndarray:
        col = self.values(table)
        return col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)

    def fit(self, table: pa.Table) -> Self:
        raw = self._raw(table)
        finite = raw[np.isfinite(raw)]
        self.median_ = float(np.median(finite)) if finite.size else 0.0
        std = float(np.std(finite)) if finite.size else 0.0
        self.scale_ = std if std > 0 else 1.0
        self.step_ = value_step(finite)
        return self

    def min_block_scale(self) -> float:
        """``STEP_SHARE`` of the column's value step, in standard deviations. It binds only where the
        column's mean absolute deviation is below half a step (an almost constant column): columns whose
        values spread (every column of wine, breast cancer and iris, 3 to 90 steps) keep their scale to
        the bit. A constant column has no step and keeps its raw units, as before."""
        return STEP_SHARE * self.step_ / self.scale_

    def transform(self, table: pa.Table) -> np.ndarray:
        raw = self._raw(table)
        raw = np.where(np.isfinite(raw), raw, self.median_)
        # A finite number of 1e39 standard deviations or more is infinite in float32: one such record
        # failed the whole gate (backdoor's probe, then its eigendecomposition, met inf and NaN). It is
        # held at MAX_STANDARDIZED, still the most extreme value by far; nothing below it changes.
        z = np.clip((raw - self.median_) / self.scale_, -MAX_STANDARDIZED, MAX_STANDARDIZED)
        return z.astype(np.float32)[:, None]


@featurizer(default=True)
class OneHotCategorical(Featurizer):
    """One-hot of the categories seen in the baseline (up to ``max_categories``); unseen map to 'other'."""

    name = "onehot"
    kinds = frozenset({ColumnKind.CATEGORICAL})
    max_categories = 64

    def _raw(self, table: pa.Table) -> np.ndarray:
        return np.asarray(self.values(table).cast(pa.string()).fill_null("").to_pylist(), dtype=object)

    def fit(self, table: pa.Table) -> Self:
        values, counts = np.unique(self._raw(table).astype(str), return_counts=True)
        keep = values[np.argsort(-counts, kind="stable")][: self.max_categories]
        self.categories_ = {v: i for i, v in enumerate(sorted(keep))}
        return self

    def transform(self, table: pa.Table) -> np.ndarray:
        raw = self._raw(table).astype(str)
        out = np.zeros((raw.shape[0], len(self.categories_) + 1), dtype=np.float32)
        other = len(self.categories_)
        idx = np.fromiter((self.categories_.get(v, other) for v in raw), dtype=np.int64, count=raw.shape[0])
        out[np.arange(raw.shape[0]), idx] = 1.0
        return out
