"""The featurizer contract: turn one column of a canonical Arrow table into dense float32 vectors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Self

import numpy as np
import pyarrow as pa

from dataward.domain.errors import InputError
from dataward.domain.schema import Column, ColumnKind


class Featurizer(ABC):
    """Fit on trusted data (the baseline), then map any table's column to an ``(n, d)`` float32 array."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[ColumnKind]]
    learns_geometry: ClassVar[bool] = False
    """True when fitting shapes the vector space itself (a vocabulary, an SVD): the records it was fitted
    on then sit differently from new ones, so the gate fits it on both sides being compared."""

    workers: int = 1
    """Threads the featurizer may use (the gate sets its own number); its vectors must not depend on it."""

    def __init__(self, column: Column, *, seed: int = 0) -> None:
        self.column = column
        self.seed = seed

    @abstractmethod
    def fit(self, table: pa.Table) -> Self:
        """Learn vocabulary, scales or categories from ``table[column]``."""

    @abstractmethod
    def transform(self, table: pa.Table) -> np.ndarray:
        """Vectors of every row of ``table[column]``, float32, shape ``(n, d)``."""

    def min_block_scale(self) -> float:
        """The smallest scale the pipeline may divide this featurizer's block by (in the block's own units).

        The pipeline scales every block to unit mean row norm on the fitted table; a featurizer whose
        mean row norm can be far smaller than what one meaningful step of its values measures (a
        numeric column that is almost constant) floors it here. 0: no floor."""
        return 0.0

    def fit_transform(self, table: pa.Table) -> np.ndarray:
        """``fit(table).transform(table)``; featurizers that can reuse work between the two override it."""
        return self.fit(table).transform(table)

    def values(self, table: pa.Table) -> pa.ChunkedArray:
        if self.column.name not in table.column_names:
            raise InputError(f"the table has no column {self.column.name!r}")
        return table.column(self.column.name)


_FEATURIZERS: dict[str, type[Featurizer]] = {}
DEFAULTS: dict[ColumnKind, str] = {}


def featurizer(*, default: bool = False) -> Callable[[type[Featurizer]], type[Featurizer]]:
    """Class decorator: register a featurizer by name (and as the default for its kinds)."""

    def wrap(cls: type[Featurizer]) -> type[Featurizer]:
        _FEATURIZERS[cls.name] = cls
        if default:
            for kind in cls.kinds:
                DEFAULTS[kind] = cls.name
        return cls

    return wrap


def featurizers() -> dict[str, type[Featurizer]]:
    return dict(_FEATURIZERS)


def make_featurizer(column: Column, name: str | None, *, seed: int = 0) -> Featurizer:
    """The featurizer ``name`` (or the default for the column's kind) for ``column``."""
    chosen = name or column.featurizer or DEFAULTS[column.kind]
    cls = _FEATURIZERS.get(chosen)
    if cls is None:
        raise InputError(
            f"unknown featurizer {chosen!r} for column {column.name!r}",
            hint=f"known featurizers: {', '.join(sorted(_FEATURIZERS))}",
        )
    if column.kind not in cls.kinds:
        kinds = ", ".join(sorted(k.value for k in cls.kinds))
        raise InputError(
            f"featurizer {chosen!r} does not apply to the {column.kind.value} column {column.name!r}",
            hint=f"{chosen!r} works on: {kinds}",
        )
    return cls(column, seed=seed)
