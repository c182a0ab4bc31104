"""Text columns as hashed word n-grams under a fixed random projection: nothing is learned.

The default featurizer of the language-model kinds' text fields (``Schema.for_kind``): their detectors
read the raw prompts and responses, so the vectors only serve the report's projection and neighbour
evidence, and a featurizer that needs no fitting keeps a gate run on 20,000 records in seconds. A
policy may name ``tfidf`` or ``minilm`` for a field instead.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Self

import numpy as np
import pyarrow as pa
from sklearn.feature_extraction.text import HashingVectorizer

from dataward.domain.schema import ColumnKind
from dataward.gates.features.base import Featurizer, featurizer

HASH_FEATURES = 1 << 16
DIMS = 128


@lru_cache(maxsize=4)
def _projection(seed: int | None) -> np.ndarray:
    """The sparse random sign projection (Achlioptas) of ``seed``, drawn once per process and read-only:
    drawing its 65,536 x 128 signs took about 0.16 s at every fit, for the same matrix every time."""
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(HASH_FEATURES, DIMS))
    signs.setflags(write=False)
    return signs


@featurizer()
class HashedText(Featurizer):
    """Word 1-2-grams hashed into ``HASH_FEATURES`` buckets, projected to ``DIMS`` dimensions, L2-normalized."""

    name = "hashed"
    kinds = frozenset({ColumnKind.TEXT})

    def fit(self, table: pa.Table) -> Self:
        self._vectorizer = HashingVectorizer(n_features=HASH_FEATURES, ngram_range=(1, 2), alternate_sign=True)
        # A sparse random sign projection (Achlioptas): distances are kept in expectation.
        self._projection = _projection(self.seed)
        return self

    def transform(self, table: pa.Table) -> np.ndarray:
        if not hasattr(self, "_vectorizer"):
            self.fit(table)
        texts = [t if t is not None else "" for t in self.values(table).to_pylist()]
        x = self._vectorizer.transform(texts) @ self._projection
        x = np.asarray(x, dtype=np.float32)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norms > 0, norms, 1.0)
