"""The text featurizer's word-wise character n-gram counts are scikit-learn's, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from dataward.domain.schema import Schema
from dataward.gates.features import FeaturePipeline, char_ngrams, text
from dataward.gates.features.char_ngrams import WordwiseTfidf
from dataward.gates.inputs import normalize

# Words chosen for what could tell a word-wise count from a document-wise one: case rules that look at
# neighbours (a Greek final sigma), a capital whose lower case is two characters, combining marks,
# characters that are not whitespace but look like it (zero-width space), short words (shorter than an
# n-gram), and whitespace of several kinds between words (tab, newline, non-breaking space, runs).
WORDS = [
    "a",
    "to",
    "the",
    "cat",
    "Cat",
    "CAT",
    "gates",
    "baseline",
    "naïve",
    "über-long-token",
    "ΟΔΟΣ",
    "οδός",
    "Σ",
    "İstanbul",
    "e\u0301",
    "zero\u200bwidth",
    "x",
    "42",
    "ls(1)",
    "--verbose",
    "日本語",
    "ǅemal",
]
SPACES = [" ", " ", " ", "  ", "\t", "\n", "\u00a0", " \u3000 ", "\r\n"]


def documents(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = rng.choice(WORDS, rng.integers(0, 9))
        gaps = rng.choice(SPACES, len(words) + 1)
        out.append("".join(g + w for g, w in zip(gaps, words, strict=False)) + gaps[-1])
    return out


def same_matrix(a, b) -> None:
    assert type(a) is type(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    for part in ("data", "indices", "indptr"):
        assert getattr(a, part).dtype == getattr(b, part).dtype
        assert np.array_equal(getattr(a, part), getattr(b, part)), part


SETTINGS = [
    # the text featurizer's own settings, with a vocabulary small enough that the cut by frequency has ties
    {"analyzer": "char_wb", "ngram_range": (3, 5), "sublinear_tf": True, "max_features": 150, "min_df": 2},
    {"analyzer": "char_wb", "ngram_range": (1, 3), "min_df": 1},
    {"analyzer": "char_wb", "ngram_range": (2, 2), "lowercase": False, "binary": True, "max_df": 0.5},
    {"analyzer": "char_wb", "ngram_range": (3, 5), "strip_accents": "unicode", "use_idf": False, "norm": None},
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_wordwise_counts_are_scikit_learns(settings):
    fitted, other = documents(600, 0), [*documents(200, 1), "", "unseen qqqq zzzz", "ΟΔΟΣ"]
    ours, theirs = WordwiseTfidf(**settings), TfidfVectorizer(**settings)
    same_matrix(ours.fit_transform(fitted), theirs.fit_transform(fitted))
    assert list(ours.vocabulary_.items()) == list(theirs.vocabulary_.items())
    assert np.array_equal(ours.idf_, theirs.idf_) if settings.get("use_idf", True) else True
    same_matrix(ours.transform(other), theirs.transform(other))
    same_matrix(ours.fit(fitted).transform(fitted), theirs.fit(fitted).transform(fitted))


def test_blocks_and_the_word_cache_change_nothing(monkeypatch):
    fitted = documents(500, 2)
    expected = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2).fit(fitted)
    # Documents counted 7 at a time, the cache of cut words started again every 5 words.
    monkeypatch.setattr(char_ngrams, "BLOCK_DOCUMENTS", 7)
    monkeypatch.setattr(char_ngrams, "CACHE_WORDS", 5)
    ours = WordwiseTfidf(analyzer="char_wb", ngram_range=(3, 5), min_df=2).fit(fitted)
    assert list(ours.vocabulary_.items()) == list(expected.vocabulary_.items())
    same_matrix(ours.transform(fitted[::-1]), expected.transform(fitted[::-1]))


def test_what_scikit_learn_refuses_is_refused():
    with pytest.raises(ValueError, match="empty vocabulary"):
        WordwiseTfidf(analyzer="char_wb").fit(["", "   ", "\t"])
    with pytest.raises(ValueError, match=r"np\.nan is an invalid document"):
        WordwiseTfidf(analyzer="char_wb").fit(["some text", np.nan])
    # Other analyzers count as scikit-learn does.
    docs = documents(100, 3)
    words = WordwiseTfidf(ngram_range=(1, 2)).fit_transform(docs)
    same_matrix(words, TfidfVectorizer(ngram_range=(1, 2)).fit_transform(docs))


def test_the_text_featurizer_counts_word_wise_and_gives_the_same_vectors():
    schema = Schema.from_dict({"label": "y", "inputs": [{"name": "t", "kind": "text"}]})
    texts = documents(400, 4)
    table = normalize(pd.DataFrame({"t": texts, "y": ["a", "b"] * 200}), schema, "baseline").table
    pipeline = FeaturePipeline(schema, seed=1)
    vectors = pipeline.fit_transform(table)
    (featurizer,) = pipeline.featurizers
    assert isinstance(featurizer.char_, WordwiseTfidf)
    # The same featurizer built from scikit-learn's own vectorizers: the same basis, the same vectors.
    word = TfidfVectorizer(**featurizer.word_.get_params()).fit_transform(texts)
    chars = TfidfVectorizer(**featurizer.char_.get_params()).fit_transform(texts)
    matrix = sparse.hstack([word, chars]).tocsr()
    basis = text._svd_basis(matrix, featurizer.basis_.shape[1], 1, 1)
    assert np.array_equal(basis, featurizer.basis_)
    assert np.array_equal(featurizer._reduce(matrix) / pipeline.scales_[0], vectors)
