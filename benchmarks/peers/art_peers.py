"""IBM ART's poisoning defences as peers: ``SpectralSignatureDefense`` and ``ActivationDefence``.

Both read the hidden representations of a model trained on the data under suspicion, so each run
trains a small PyTorch MLP (one hidden layer of 64 units) on the dense features of baseline plus
contribution, wraps it in ART's ``PyTorchClassifier`` and asks the defence which records are poison.
ART's own parameters are kept at their defaults (``expected_pp_poison=0.33`` for spectral signatures,
two clusters reduced to 10 PCA dimensions for activation clustering): a user does not know the poison
rate in advance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
from art.estimators.classification import PyTorchClassifier
from torch import nn

from benchmarks.data import LABEL
from benchmarks.features import dense_features
from benchmarks.peers.base import MethodResult, label_codes, modality_of, peer_verdict
from dataward.domain.schema import Schema

HIDDEN = 64
EPOCHS = 30
BATCH = 64


def trained_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> PyTorchClassifier:
    """A small MLP trained on ``(x, y)`` and wrapped for ART."""
    # One intra-op thread: PyTorch's default pool fights the other processes on a small machine and
    # turns a two-second fit into a minute.
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, n_classes))
    classifier = PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        input_shape=(x.shape[1],),
        nb_classes=n_classes,
        device_type="cpu",
    )
    classifier.fit(x, np.eye(n_classes, dtype=np.float32)[y], batch_size=BATCH, nb_epochs=EPOCHS, verbose=False)
    return classifier


def _prepare(baseline: pd.DataFrame, contribution: pd.DataFrame, schema: Schema, seed: int):
    union = pd.concat([baseline, contribution], ignore_index=True)
    (x,) = dense_features(union, [union], modality_of(schema), schema)
    y, classes = label_codes(union, label=LABEL)
    x = x.astype(np.float32)
    return x, y, len(classes), trained_classifier(x, y, len(classes), seed)


class ArtSpectral:
    """Spectral signatures: suspicion = a record's within-class rank of its spectral score (ART's
    ``spectral_signature_scores``, computed per class as the defence does); flags = ART's own
    ``detect_poison`` decision."""

    name = "art_spectral"

    def score(
        self, baseline: pd.DataFrame, contribution: pd.DataFrame, schema: Schema, *, seed: int = 0, **_: object
    ) -> MethodResult:
        x, y, n_classes, classifier = _prepare(baseline, contribution, schema, seed)
        defence = SpectralSignatureDefense(classifier, x, np.eye(n_classes, dtype=np.float32)[y])
        _, is_clean = defence.detect_poison()
        flags = np.asarray(is_clean) == 0
        activations = classifier.get_activations(x, layer=len(classifier.layer_names) - 1, batch_size=BATCH)
        activations = np.reshape(activations, (len(x), -1))
        suspicion = np.zeros(len(x))
        for cls in range(n_classes):
            rows = np.flatnonzero(y == cls)
            if len(rows) < 2:
                continue
            raw = SpectralSignatureDefense.spectral_signature_scores(activations[rows]).ravel()
            # per-class scores live on different scales: compare records by their rank within the class
            suspicion[rows] = (np.argsort(np.argsort(raw)) + 1) / len(rows)
        nb = len(baseline)
        verdict, reasons = peer_verdict(flags[nb:], flags[:nb])
        return MethodResult(suspicion[nb:], flags[nb:], verdict, reasons)


class ArtActivation:
    """Activation clustering: per class, two k-means clusters of the reduced activations; the smaller
    cluster is poison. ART gives no per-record score, so suspicion is the 0/1 decision itself."""

    name = "art_activation"

    def score(
        self, baseline: pd.DataFrame, contribution: pd.DataFrame, schema: Schema, *, seed: int = 0, **_: object
    ) -> MethodResult:
        x, y, n_classes, classifier = _prepare(baseline, contribution, schema, seed)
        defence = ActivationDefence(classifier, x, np.eye(n_classes, dtype=np.float32)[y])
        _, is_clean = defence.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA")
        flags = np.asarray(is_clean) == 0
        nb = len(baseline)
        verdict, reasons = peer_verdict(flags[nb:], flags[:nb])
        return MethodResult(flags[nb:].astype(float), flags[nb:], verdict, reasons)
