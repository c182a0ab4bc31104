"""Label consistency: does a record's label agree with its nearest trusted neighbours and a probe model?

Two calibrated views, fused per record (``-log p_knn - log p_cleanlab``, Fisher-style) and the fused
score calibrated once more against the reference's own fused scores, so the result is again a
conformal p-value:

* **kNN margin**: log of the mean distance to the ``k`` nearest reference records of the record's
  own label over the same for the closest other label (continuous, so flips rank cleanly).
  Calibrated on the reference itself with leave-one-out neighbours.
* **confident learning**: cleanlab's label quality (self-confidence) from cross-validated predicted
  probabilities of a logistic-regression probe fit on reference + contribution; the reference
  records' own out-of-fold quality is the calibration set. cleanlab's ``find_label_issues`` verdict is
  reported as evidence. When the schema has text columns the probe reads the raw text itself (sparse
  word 1-2-gram and character 3-5-gram TF-IDF, logistic loss by SGD, next to the dense gate features):
  the SVD-reduced gate features lose the rare words that decide a text's class, and the sparse probe
  separates flipped labels far better at a fraction of the cost.
"""

from __future__ import annotations

import contextlib
from typing import Any, Self

import numpy as np
import pyarrow as pa
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dataward.domain.schema import ColumnKind
from dataward.gates.base import Detector, DetectorResult, Finding, GateContext, GateData, register
from dataward.gates.calibration import tail_p_values
from dataward.gates.detectors._common import count_result, label_name, neighbour_evidence, reference_scores
from dataward.gates.detectors._probe import leave_one_out_p_values
from dataward.gates.neighbours import class_distances, knn


def cross_validated_probs(
    features: np.ndarray, labels: np.ndarray, n_classes: int, *, folds: int, max_train: int, seed: int
) -> np.ndarray:
    """Out-of-fold class probabilities of a logistic-regression probe (columns = all class codes)."""
    n = features.shape[0]
    probs = np.full((n, n_classes), 1.0 / n_classes)
    folds = max(2, min(folds, n))
    rng = np.random.default_rng(seed)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(features):
        if train.shape[0] > max_train:
            train = rng.choice(train, max_train, replace=False)
        present = np.unique(labels[train])
        if present.shape[0] < 2:
            probs[test] = 0.0
            probs[test, present[0]] = 1.0
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=1.0))
        model.fit(features[train], labels[train])
        part = np.full((test.shape[0], n_classes), 1e-6)
        part[:, model.classes_] = model.predict_proba(features[test])
        probs[test] = part / part.sum(axis=1, keepdims=True)
    return probs


def text_probe_matrix(tables: list[pa.Table], columns: list[str], dense: np.ndarray) -> sparse.csr_matrix:
    """Sparse TF-IDF (word 1-2-grams and character 3-5-grams) of the text ``columns`` of ``tables``
    (stacked in order), beside ``dense`` features scaled to a comparable row norm."""
    texts = [" \n ".join(row) for row in zip(*(_strings(tables, c) for c in columns), strict=True)]
    word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b", max_features=200_000)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2, max_features=200_000)
    blocks = [word.fit_transform(texts)]
    # When every character n-gram occurs once (min_df=2 keeps none) the word block alone carries the text.
    with contextlib.suppress(ValueError):
        blocks.append(char.fit_transform(texts))
    scale = float(np.mean(np.linalg.norm(dense, axis=1))) if dense.size else 0.0
    if scale > 0:
        blocks.append(sparse.csr_matrix(dense / scale))
    return sparse.hstack(blocks, format="csr")


def _strings(tables: list[pa.Table], column: str) -> list[str]:
    return [("" if v is None else str(v)) for t in tables for v in t.column(column).to_pylist()]


def cross_validated_text_probs(
    matrix: sparse.csr_matrix, labels: np.ndarray, n_classes: int, *, folds: int, seed: int, repeats: int = 3
) -> np.ndarray:
    """Out-of-fold class probabilities of a logistic-loss SGD probe on a sparse text matrix.

    Averaged over ``repeats`` different fold splits: one split leaves a flipped text's quality to the
    luck of which similar texts shared its training folds, and SGD fits cost little.
    """
    n = matrix.shape[0]
    total = np.zeros((n, n_classes))
    folds = max(2, min(folds, n))
    for repeat in range(repeats):
        probs = np.full((n, n_classes), 1.0 / n_classes)
        split = KFold(folds, shuffle=True, random_state=seed + repeat)
        for train, test in split.split(np.zeros(n)):
            present = np.unique(labels[train])
            if present.shape[0] < 2:
                probs[test] = 1e-6
                probs[test, present[0]] = 1.0
                continue
            model = SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=10, tol=None, random_state=seed + repeat)
            model.fit(matrix[train], labels[train])
            part = np.full((test.shape[0], n_classes), 1e-6)
            part[:, model.classes_] = np.maximum(model.predict_proba(matrix[test]), 1e-6)
            probs[test] = part
        total += probs / probs.sum(axis=1, keepdims=True)
    return total / repeats


@register
class LabelConsistency(Detector):
    """Records whose label disagrees with trusted neighbours and a cross-validated probe model."""

    name = "label_consistency"
    version = "1"

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        opts = {**context.options_for(self.name), **self.options}
        self.k = int(opts.get("k", 5))
        self.use_cleanlab = bool(opts.get("cleanlab", True))
        self.folds = int(opts.get("folds", 5))
        self.max_train = int(opts.get("probe_max_train", 10_000))
        self.context = context
        self.baseline = baseline
        k = min(self.k, len(baseline) - 1)
        self.k_eff = k
        self.context = context
        if k < 1:
            self.calibration = np.zeros(0)
            return self
        self.calibration = self._margin(baseline.features, baseline.labels, exclude_self=True)
        return self

    def _margin(self, features: np.ndarray, labels: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
        """log(own-class kNN distance / nearest other class's kNN distance); large = label looks wrong."""
        per_class = class_distances(
            self.baseline.features, self.baseline.labels, features, self.k_eff, exclude_self=exclude_self
        )
        n = features.shape[0]
        table = np.full((n, len(self.context.classes)), np.inf)
        for c, d in per_class.items():
            table[:, c] = d
        rows = np.arange(n)
        own = table[rows, labels].copy()
        table[rows, labels] = np.inf
        other = table.min(axis=1)
        eps = 1e-6 + 1e-3 * float(np.median(own[np.isfinite(own)])) if np.isfinite(own).any() else 1e-6
        own = np.where(np.isfinite(own), own, 10 * np.nanmax(np.where(np.isfinite(table), table, np.nan)) + 1.0)
        other = np.where(np.isfinite(other), other, own * 10 + 1.0)
        return np.log((own + eps) / (other + eps))

    def baseline_scores(self) -> np.ndarray:
        """Scores (1 - p) of the reference's own calibration records, for plots against the contribution."""
        return reference_scores(self.calibration)

    def score(self, contribution: GateData) -> DetectorResult:
        ctx, base = self.context, self.baseline
        n = len(contribution)
        if self.k_eff < 1 or n == 0:
            return DetectorResult(
                self.name,
                self.version,
                np.ones(n),
                np.zeros(n, bool),
                summary={"skipped": "the baseline has too few records"},
            )
        dist, idx = knn(base.features, contribution.features, self.k_eff, labels=base.labels)
        neighbour_labels = base.labels[idx]
        s_knn = self._margin(contribution.features, contribution.labels)
        p_knn = tail_p_values(self.calibration, s_knn)
        summary: dict[str, Any] = {"k": self.k_eff}
        p = p_knn
        issues = np.zeros(n, dtype=bool)
        quality = None
        if self.use_cleanlab and np.unique(base.labels).shape[0] >= 2:
            p_cl, issues, quality, p_cl_ref = self._confident_learning(contribution)
            # Fuse the two views Fisher-style (-log p1 - log p2) and calibrate the fused score on the
            # reference again: a flip that both views see ranks above a record only one finds odd.
            # The reference's own p-values leave each record out of its calibration set: counted
            # against itself, every reference record would look less extreme than a new record with
            # the same score, shrinking the fused calibration's tail and flagging clean records.
            p_knn_ref = leave_one_out_p_values(self.calibration)
            fused_ref = -np.log(p_knn_ref) - np.log(p_cl_ref)
            p = tail_p_values(fused_ref, -np.log(p_knn) - np.log(p_cl))
            summary["views"] = ["knn_margin", "cleanlab_self_confidence"]
            summary["cleanlab_label_issues"] = int(issues.sum())
        flagged = p <= ctx.alpha
        findings = []
        for i in np.argsort(p)[:200]:
            if not flagged[i]:
                break
            own = label_name(ctx.classes, contribution.labels[i])
            evidence = neighbour_evidence(ctx.classes, base.labels, dist[i], idx[i])
            agree = int((neighbour_labels[i] == contribution.labels[i]).sum())
            evidence["cleanlab_label_issue"] = bool(issues[i])
            if quality is not None:
                evidence["label_quality"] = float(quality[i])
            top = next(iter(evidence["neighbour_labels"]))
            findings.append(
                Finding(
                    self.name,
                    float(1 - p[i]),
                    f"label '{own}' agrees with {agree} of {self.k_eff} nearest trusted records "
                    f"(most are '{top}'); p={p[i]:.2g}",
                    row=int(i),
                    evidence=evidence,
                )
            )
        return count_result(
            self.name, self.version, p, ctx.alpha, self.calibration.shape[0], findings, summary, flagged=flagged
        )

    def _confident_learning(self, contribution: GateData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Contribution p-values, cleanlab issues, label quality, and the reference's own p-values."""
        base, ctx = self.baseline, self.context
        features = np.vstack([base.features, contribution.features])
        labels = np.concatenate([base.labels, contribution.labels])
        present = np.unique(labels)
        remap = np.full(len(ctx.classes) + 1, -1)
        remap[present] = np.arange(present.shape[0])
        dense = remap[labels]
        text_columns = [c.name for c in ctx.schema.of_kind(ColumnKind.TEXT)]
        if text_columns and base.table is not None and contribution.table is not None:
            matrix = text_probe_matrix([base.table, contribution.table], text_columns, features)
            probs = cross_validated_text_probs(matrix, dense, present.shape[0], folds=self.folds, seed=ctx.seed)
        else:
            probs = cross_validated_probs(
                features, dense, present.shape[0], folds=self.folds, max_train=self.max_train, seed=ctx.seed
            )
        quality = get_label_quality_scores(dense, probs, method="self_confidence")
        nb = len(base)
        # -log(quality): confidently wrong labels (quality 1e-4 vs 1e-9) stay apart in the tail.
        surprise = -np.log(np.maximum(quality, 1e-300))
        p_cl = tail_p_values(surprise[:nb], surprise[nb:])
        p_cl_ref = leave_one_out_p_values(surprise[:nb])
        try:
            issues = find_label_issues(dense, probs, filter_by="prune_by_noise_rate", n_jobs=1)[nb:]
        except ValueError:
            issues = np.zeros(len(contribution), dtype=bool)
        return p_cl, issues, quality[nb:], p_cl_ref
