"""Shared helpers of the advanced detectors: probe models, row numbers, sampling, p-values.

Small probe models are shared by the backdoor and clean-validation detectors.

A probe is a cheap scikit-learn model trained on gate features. Its job is not to be a good model
but to reveal how a contribution changes what is learned: hidden representations (backdoor) or
held-out accuracy (clean validation). Features are standardized with statistics of the data the
probe is trained on, so raw pixels and embeddings behave the same.
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from dataward.domain.errors import InputError
from dataward.gates.base import GateData
from dataward.gates.blas_threads import limit_threads
from dataward.gates.calibration import leave_one_out_p_values, tail_p_values  # noqa: F401  (re-exported)

ROW_COLUMN = "row"

PROBE_KINDS = ("logistic", "mlp")


def single_threaded() -> AbstractContextManager[Any]:
    """Limit BLAS/OpenMP pools to one thread: probes are small, and on a shared machine oversubscribed
    thread pools make them tens of times slower, not faster."""
    return limit_threads(1)


def fit_probe(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    kind: str = "logistic",
    seed: int = 0,
    hidden: int = 64,
    max_iter: int = 300,
) -> Pipeline:
    """Train a standardized ``logistic`` or one-hidden-layer ``mlp`` probe on ``features``."""
    if kind not in PROBE_KINDS:
        raise InputError(f"unknown probe model {kind!r}", hint=f"use one of: {', '.join(PROBE_KINDS)}")
    if kind == "logistic":
        model = LogisticRegression(max_iter=max_iter, C=1.0)
    else:
        model = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=max_iter, random_state=seed, alpha=1e-3)
    pipe = make_pipeline(StandardScaler(), model)
    # A probe that has not fully converged still reveals what we need; the warning is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(np.asarray(features, dtype=np.float64), labels)
    return pipe


def hidden_activations(probe: Pipeline, features: np.ndarray) -> np.ndarray:
    """Activations of the last hidden layer of an ``mlp`` probe for ``features``.

    scikit-learn does not expose them, so they are recomputed from ``coefs_`` and ``intercepts_``
    with the network's own activation function.
    """
    scaler: StandardScaler = probe[0]
    mlp = probe[-1]
    if not isinstance(mlp, MLPClassifier):
        raise TypeError("hidden activations need an mlp probe")
    act = {
        "relu": lambda a: np.maximum(a, 0.0),
        "tanh": np.tanh,
        "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
        "identity": lambda a: a,
    }[mlp.activation]
    out = scaler.transform(np.asarray(features, dtype=np.float64))
    for weights, bias in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1], strict=True):
        out = act(out @ weights + bias)
    return out


def row_numbers(data: GateData) -> np.ndarray:
    """Row numbers in the submitted file: ``groups["row"]`` or the table's ``row`` column when the gate
    passes them, else 1-based positions in the contribution."""
    given = data.groups.get(ROW_COLUMN)
    if given is not None and np.shape(given) == (len(data),):
        return np.asarray(given).astype(np.int64)
    table = data.table
    if table is not None and ROW_COLUMN in table.column_names:
        rows = np.asarray(table.column(ROW_COLUMN).to_numpy(zero_copy_only=False))
        if rows.shape == (len(data),):
            return rows.astype(np.int64)
    return np.arange(1, len(data) + 1, dtype=np.int64)


def sample_positions(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of at most ``limit`` of ``n`` records, chosen uniformly at random."""
    if n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def apply_options(detector: object, name: str, options: dict[str, object], allowed: tuple[str, ...]) -> None:
    """Set the policy's options for ``name`` on ``detector``; an unknown option is an input error."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(
            f"unknown option(s) for detector {name!r}: {', '.join(unknown)}",
            hint=f"known options: {', '.join(allowed)}",
        )
    for key, value in options.items():
        setattr(detector, key, value)
