"""Feature vectors and models the peers and the downstream evaluation share.

Peers need dense vectors (cleanlab's Datalab, IsolationForest, ART's PyTorch model): pixels for the
digits, standardized columns for tabular sets, TF-IDF reduced with truncated SVD for text. The
downstream model is what a user would train on the data a defence lets through: an MLP on pixels,
TF-IDF + logistic regression (by SGD) on text, a random forest on tabular columns (which learns a rare value
combination, where a linear model could not).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from benchmarks.data import IMAGE, LABEL, TEXT, image_matrix
from dataward.domain.errors import InputError
from dataward.domain.schema import Schema

TEXT_SVD_DIMS = 100
WIDE_INPUT = 256
"""Inputs wider than this (the 3,072 values of a 32x32 colour crop) are reduced to ``WIDE_DIMS`` principal
components before the probe's logistic regression: on raw pixels its fit takes minutes per fold."""
WIDE_DIMS = 64


def model_inputs(frame: pd.DataFrame, modality: str, schema: Schema) -> np.ndarray:
    """What a model reads from ``frame``: pixels, raw strings, or the numeric columns."""
    if modality == "image":
        return image_matrix(frame, IMAGE)
    if modality == "text":
        return frame[TEXT].astype(str).to_numpy()
    if modality == "tabular":
        return frame[[c.name for c in schema.inputs]].to_numpy(dtype=np.float64)
    raise InputError(f"unknown modality {modality!r}")


def _tfidf() -> TfidfVectorizer:
    # token_pattern keeps one-letter tokens and tokens such as "cf": triggers are often short.
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b", min_df=1)


def dense_features(fit_on: pd.DataFrame, frames: list[pd.DataFrame], modality: str, schema: Schema) -> list[np.ndarray]:
    """Dense float32 vectors of each of ``frames``, with the transform fitted on ``fit_on``."""
    if modality == "image":
        return [image_matrix(f, IMAGE) for f in frames]
    if modality == "tabular":
        scaler = StandardScaler().fit(model_inputs(fit_on, modality, schema))
        return [scaler.transform(model_inputs(f, modality, schema)).astype(np.float32) for f in frames]
    if modality == "text":
        texts = model_inputs(fit_on, modality, schema)
        dims = max(2, min(TEXT_SVD_DIMS, len(texts) - 1))
        pipe = make_pipeline(_tfidf(), TruncatedSVD(dims, random_state=0), Normalizer()).fit(texts)
        return [pipe.transform(model_inputs(f, modality, schema)).astype(np.float32) for f in frames]
    raise InputError(f"unknown modality {modality!r}")


def _text_classifier(seed: int) -> ClassifierMixin:
    # Logistic loss by SGD: as accurate as lbfgs logistic regression on these texts, 50 times faster.
    return make_pipeline(_tfidf(), SGDClassifier(loss="log_loss", alpha=1e-5, max_iter=30, tol=None, random_state=seed))


class ReduceIfWide(TransformerMixin, BaseEstimator):
    """Principal components of inputs wider than ``max_input`` columns; narrower inputs pass unchanged
    (so the 8x8 digits and the tabular sets keep exactly the probe they always had)."""

    def __init__(self, max_input: int = WIDE_INPUT, dims: int = WIDE_DIMS, seed: int = 0) -> None:
        self.max_input = max_input
        self.dims = dims
        self.seed = seed

    def fit(self, x: np.ndarray, y: object = None) -> ReduceIfWide:
        x = np.asarray(x)
        self.pca_ = None
        if x.shape[1] > self.max_input:
            self.pca_ = PCA(min(self.dims, *x.shape), svd_solver="randomized", random_state=self.seed).fit(x)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x) if self.pca_ is None else self.pca_.transform(x)


def probe_classifier(modality: str, seed: int = 0) -> ClassifierMixin:
    """A fast classifier on ``model_inputs`` for cross-validated probabilities (cleanlab's input)."""
    if modality == "text":
        return _text_classifier(seed)
    return make_pipeline(ReduceIfWide(seed=seed), StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))


def downstream_classifier(modality: str, seed: int = 0) -> ClassifierMixin:
    """The model trained on what a defence lets through, to measure attack success and accuracy."""
    if modality == "image":
        return MLPClassifier(hidden_layer_sizes=(64,), max_iter=200, random_state=seed)
    if modality == "text":
        return _text_classifier(seed)
    if modality == "tabular":
        return RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)
    raise InputError(f"unknown modality {modality!r}")


def train_and_predict(
    train: pd.DataFrame, tests: list[pd.DataFrame | None], modality: str, schema: Schema, seed: int = 0
) -> list[np.ndarray | None]:
    """Fit the downstream model on ``train`` and predict labels on each of ``tests`` (None stays None)."""
    model = clone(downstream_classifier(modality, seed))
    model.fit(model_inputs(train, modality, schema), train[LABEL].astype(str).to_numpy())
    return [None if t is None or len(t) == 0 else model.predict(model_inputs(t, modality, schema)) for t in tests]
