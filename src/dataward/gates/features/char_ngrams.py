"""TF-IDF of character n-grams within words, counted once per distinct word.

scikit-learn's ``char_wb`` analyzer cuts a document into its whitespace-separated words and each word,
padded with a space on both sides, into n-grams that never reach into the next word: a document's n-grams
are its words' n-grams one after the other. Its count loop still walks every n-gram of every document in
Python (a dictionary look-up and a counter update each), which was most of the text featurizer's Python
time. ``WordwiseTfidf`` cuts each distinct word once and adds the counts up with numpy; the vocabulary,
numbered in order of first appearance as scikit-learn numbers it, and the count matrix are the same, and so
is everything scikit-learn derives from them (``tests/gates/test_char_ngrams.py`` compares bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain, islice
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

try:  # how scikit-learn hands out its sparse results (sparse arrays or matrices, by its configuration)
    from sklearn.utils._sparse import _align_api_if_sparse
except ImportError:  # pragma: no cover - scikit-learn before 1.8 returned what it built

    def _align_api_if_sparse(x: Any) -> Any:
        return x


BLOCK_DOCUMENTS = 4096
"""Documents whose n-grams are added up together (bounds the memory of one step to a few MB of n-grams)."""
CACHE_WORDS = 200_000
"""Distinct words whose n-grams are kept cut; beyond, the cache starts again (high-entropy text would
otherwise grow it without bound while transforming a large table)."""


class WordwiseTfidf(TfidfVectorizer):
    """``TfidfVectorizer`` that counts ``analyzer="char_wb"`` n-grams a distinct word at a time.

    Same parameters, same results; any other analyzer counts as scikit-learn does."""

    def _count_vocab(self, raw_documents: Iterable[Any], fixed_vocab: bool) -> tuple[dict[str, int], Any]:
        if self.analyzer != "char_wb":
            return super()._count_vocab(raw_documents, fixed_vocab)
        vocabulary: dict[str, int] = self.vocabulary_ if fixed_vocab else {}
        cut = _WordCutter(self._char_wb_ngrams, vocabulary, fixed_vocab)
        # What scikit-learn's char_wb analyzer does before cutting: decode, preprocess (lowercase, accents),
        # then its n-gram function joins runs of whitespace and splits into words.
        decode, preprocess, spaces = self.decode, self.build_preprocessor(), self._white_spaces
        blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        documents = iter(raw_documents)
        while True:
            words = [spaces.sub(" ", preprocess(decode(doc))).split() for doc in islice(documents, BLOCK_DOCUMENTS)]
            if not words:
                break
            blocks.append(cut.count(words))
        if not fixed_vocab and not vocabulary:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        lengths = [np.zeros(1, dtype=np.int64)] + [b[0] for b in blocks]
        indptr = np.cumsum(np.concatenate(lengths))
        # scikit-learn's index width: 32 bits unless the entries need more.
        index_dtype = np.int64 if indptr[-1] > np.iinfo(np.int32).max else np.int32
        indices = np.concatenate([np.zeros(0, dtype=np.int64)] + [b[1] for b in blocks]).astype(index_dtype)
        values = np.concatenate([np.zeros(0, dtype=np.intc)] + [b[2] for b in blocks])
        x = sparse.csr_array(
            (values, indices, indptr.astype(index_dtype)),
            shape=(indptr.shape[0] - 1, len(vocabulary)),
            dtype=self.dtype,
        )
        x.sort_indices()
        return vocabulary, _align_api_if_sparse(x)


class _WordCutter:
    """Each distinct word's n-gram numbers (new n-grams numbered as they first appear, unless the
    vocabulary is fixed: then n-grams out of it are left out), and a block's counts from them."""

    def __init__(self, ngrams: Callable[[str], list[str]], vocabulary: dict[str, int], fixed: bool) -> None:
        self.ngrams, self.vocabulary, self.fixed = ngrams, vocabulary, fixed
        self.cache: dict[str, list[int]] = {}

    def numbers(self, word: str) -> list[int]:
        found = self.cache.get(word)
        if found is not None:
            return found
        vocabulary = self.vocabulary
        # ``ngrams`` of one word (no whitespace in it) is that word's n-grams in scikit-learn's order.
        if self.fixed:
            found = [vocabulary[g] for g in self.ngrams(word) if g in vocabulary]
        else:
            # A new n-gram takes the next number (``len`` is read before ``setdefault`` inserts).
            found = [vocabulary.setdefault(g, len(vocabulary)) for g in self.ngrams(word)]
        if len(self.cache) >= CACHE_WORDS:
            self.cache.clear()
        self.cache[word] = found
        return found

    def count(self, documents: list[list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Entries per document, column numbers (ascending within a document) and counts of a block of
        documents given as their words. Words are numbered in document order, so new n-grams get their
        numbers in the order scikit-learn's walk over every n-gram meets them."""
        local: dict[str, int] = {}
        lists: list[list[int]] = []
        tokens: list[int] = []
        for words in documents:
            for word in words:
                i = local.get(word)
                if i is None:
                    i = local[word] = len(lists)
                    lists.append(self.numbers(word))
                tokens.append(i)
        n_docs = len(documents)
        width = max(len(self.vocabulary), 1)
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        flat = np.fromiter(chain.from_iterable(lists), dtype=np.int64, count=int(lengths.sum()))
        token = np.asarray(tokens, dtype=np.int64)
        per_token = lengths[token]
        # Each token's n-gram numbers, token after token: its word's run of ``flat``.
        ends = np.cumsum(per_token)
        at = np.repeat(np.cumsum(lengths)[token] - lengths[token] - (ends - per_token), per_token)
        numbers = flat[at + np.arange(at.shape[0])]
        document = np.repeat(np.repeat(np.arange(n_docs, dtype=np.int64), [len(w) for w in documents]), per_token)
        keys, counts = np.unique(document * width + numbers, return_counts=True)
        rows = keys // width
        return np.bincount(rows, minlength=n_docs), keys - rows * width, counts.astype(np.intc)
