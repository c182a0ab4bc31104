"""Outliers: records far from the trusted distribution, overall and within the class they claim.

Four calibrated views, combined per record with a Bonferroni minimum:

* mean distance to the ``k`` nearest reference records (overall), calibrated leave-one-out;
* the same within the record's claimed class (classes with more than ``k`` reference records);
* an isolation forest over the whole reference, fitted on one half and calibrated on the other;
* an isolation forest per class (classes with at least ``min_class_forest`` reference records).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from sklearn.ensemble import IsolationForest

from dataward.gates.base import Detector, DetectorResult, Finding, GateContext, GateData, register
from dataward.gates.calibration import tail_p_values
from dataward.gates.detectors._common import count_result, label_name, reference_scores
from dataward.gates.neighbours import class_distances, knn


def _split_forest(features: np.ndarray, seed: int, trees: int) -> tuple[IsolationForest, np.ndarray] | None:
    """Fit on a random half, return the forest and the other half's anomaly scores (calibration)."""
    n = features.shape[0]
    if n < 20:
        return None
    order = np.random.default_rng(seed).permutation(n)
    fit_part, cal_part = order[: n // 2], order[n // 2 :]
    forest = IsolationForest(n_estimators=trees, random_state=seed, n_jobs=1).fit(features[fit_part])
    return forest, -forest.score_samples(features[cal_part])


@register
class Outliers(Detector):
    """kNN distance and isolation forests against the reference, overall and per claimed class."""

    name = "outliers"
    version = "1"

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        opts = {**context.options_for(self.name), **self.options}
        self.k = int(opts.get("k", 5))
        self.min_class_forest = int(opts.get("min_class_forest", 100))
        self.context, self.baseline = context, baseline
        x, y = baseline.features, baseline.labels
        self.k_eff = min(self.k, len(baseline) - 1)
        self.overall_cal = np.zeros(0)
        if self.k_eff >= 1:
            dist, _ = knn(x, x, self.k_eff, exclude_self=True, labels=y)
            self.overall_cal = dist.mean(axis=1)
        self.class_cal: dict[int, np.ndarray] = {}
        self.class_forest: dict[int, tuple[IsolationForest, np.ndarray]] = {}
        own = class_distances(x, y, x, self.k, exclude_self=True) if self.k_eff >= 1 else {}
        for c in np.unique(y):
            members = x[y == c]
            if members.shape[0] > self.k and int(c) in own:
                self.class_cal[int(c)] = own[int(c)][y == c]
            if members.shape[0] >= self.min_class_forest:
                fitted = _split_forest(members, context.seed + int(c), trees=50)
                if fitted is not None:
                    self.class_forest[int(c)] = fitted
        self.forest = _split_forest(x, context.seed, trees=100)
        return self

    def baseline_scores(self) -> np.ndarray:
        """Scores (1 - p) of the reference's own calibration records, for plots against the contribution."""
        return reference_scores(self.overall_cal)

    def score(self, contribution: GateData) -> DetectorResult:
        ctx = self.context
        n = len(contribution)
        x, y = contribution.features, contribution.labels
        views: dict[str, np.ndarray] = {}
        if self.overall_cal.shape[0] and n:
            dist, _ = knn(self.baseline.features, x, self.k_eff, labels=self.baseline.labels)
            views["knn"] = tail_p_values(self.overall_cal, dist.mean(axis=1))
        if self.class_cal and n:
            p = np.ones(n)
            per_class = class_distances(self.baseline.features, self.baseline.labels, x, self.k)
            for c, cal in self.class_cal.items():
                rows = np.flatnonzero(y == c)
                if rows.size:
                    p[rows] = tail_p_values(cal, per_class[c][rows])
            views["knn_class"] = p
        if self.forest is not None and n:
            forest, cal = self.forest
            views["forest"] = tail_p_values(cal, -forest.score_samples(x))
        if self.class_forest and n:
            p = np.ones(n)
            for c, (forest, cal) in self.class_forest.items():
                rows = np.flatnonzero(y == c)
                if rows.size:
                    p[rows] = tail_p_values(cal, -forest.score_samples(x[rows]))
            views["forest_class"] = p
        if not views:
            return DetectorResult(
                self.name,
                self.version,
                np.ones(n),
                np.zeros(n, bool),
                summary={"skipped": "the baseline has too few records"},
            )
        stacked = np.vstack(list(views.values()))
        p = np.minimum(1.0, len(views) * stacked.min(axis=0))
        flagged = p <= ctx.alpha
        names = list(views)
        findings = []
        for i in np.argsort(p)[:200]:
            if not flagged[i]:
                break
            strongest = names[int(np.argmin(stacked[:, i]))]
            evidence: dict[str, Any] = {"view_p_values": {k: float(v[i]) for k, v in views.items()}}
            what = {
                "knn": "far from every trusted record",
                "knn_class": f"far from the trusted records labelled '{label_name(ctx.classes, y[i])}'",
                "forest": "isolated by a forest fitted on trusted records",
                "forest_class": f"isolated among trusted records labelled '{label_name(ctx.classes, y[i])}'",
            }[strongest]
            findings.append(Finding(self.name, float(1 - p[i]), f"{what}; p={p[i]:.2g}", row=int(i), evidence=evidence))
        n_cal = int(self.overall_cal.shape[0]) or int(self.forest[1].shape[0]) if self.forest else 1
        return count_result(
            self.name,
            self.version,
            p,
            ctx.alpha,
            max(n_cal, 1),
            findings,
            {"views": names, "k": self.k_eff},
            flagged=flagged,
        )
