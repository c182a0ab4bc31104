"""Outliers: records far from the trusted distribution, overall and within the class they claim.

Four calibrated views, combined per record with a Bonferroni minimum:

* mean distance to the ``k`` nearest reference records (overall), calibrated leave-one-out;
* the same within the record's claimed class (classes with more than ``k`` reference records);
* an isolation forest over the whole reference, fitted on one half and calibrated on the other;
* an isolation forest per class (classes with at least ``min_class_forest`` reference records).

Being unlike the baseline is a difference, not evidence of poisoning, so this detector never blocks.
A flag says one record is out of place *on its own*: a record that is unlike the baseline but sits
among batch peers that are just as unlike it (a new sub-population, a shifted sensor moving the whole
batch) is not flagged; those records are counted in one contribution-level finding for review.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from sklearn.ensemble import IsolationForest

from dataward.gates.base import Detector, DetectorResult, Evidence, Finding, GateContext, GateData, register
from dataward.gates.calibration import flag_mask, tail_p_values
from dataward.gates.detectors._common import count_result, label_name, reference_scores
from dataward.gates.neighbours import K_MAX, class_distances, knn


def _split_forest(features: np.ndarray, seed: int, trees: int) -> tuple[IsolationForest, np.ndarray] | None:
    """Fit on a random half, return the forest and the other half's anomaly scores (calibration)."""
    n = features.shape[0]
    if n < 20:
        return None
    order = np.random.default_rng(seed).permutation(n)
    fit_part, cal_part = order[: n // 2], order[n // 2 :]
    forest = IsolationForest(n_estimators=trees, random_state=seed, n_jobs=1).fit(features[fit_part])
    return forest, -forest.score_samples(features[cal_part])


UNLIKE_BASELINE = 0.05
"""A batch peer counts as equally out of place when its own p-value is at most this."""
PEER_SLACK = 1.5
"""A peer is near when closer than this times the baseline's 95th percentile of neighbour distances."""


@dataclass(frozen=True)
class OutliersOptions:
    """``k`` neighbours for the distances; ``min_class_forest`` trusted records for a per-class forest;
    ``population_k`` batch peers looked at to tell a lone outlier from a new group."""

    k: int = 5
    min_class_forest: int = 100
    population_k: int = 5

    def __post_init__(self) -> None:
        if not (1 <= self.k <= K_MAX and 1 <= self.population_k <= K_MAX) or self.min_class_forest < 20:
            raise ValueError(
                f"k and population_k must be between 1 and {K_MAX} (the neighbour search keeps at most "
                f"{K_MAX} neighbours), min_class_forest at least 20"
            )


@register
class Outliers(Detector):
    """kNN distance and isolation forests against the reference, overall and per claimed class."""

    name = "outliers"
    version = "2"
    evidence = Evidence.DIFFERENCE
    Options = OutliersOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        opts = self.resolve_options(context)
        self.k = opts.k
        self.min_class_forest = opts.min_class_forest
        self.population_k = opts.population_k
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

    record_stage = True

    def score(self, contribution: GateData) -> DetectorResult:
        return self.finish(contribution, self.score_records(contribution))

    def score_records(self, chunk: GateData) -> dict[str, np.ndarray]:
        """Each view's p-value and the mean distance to the nearest trusted records, record by record."""
        n = len(chunk)
        x, y = chunk.features, chunk.labels
        out: dict[str, np.ndarray] = {}
        if self.overall_cal.shape[0] and n:
            dist, _ = knn(self.baseline.features, x, self.k_eff, labels=self.baseline.labels)
            out["to_baseline"] = dist.mean(axis=1)
            out["knn"] = tail_p_values(self.overall_cal, out["to_baseline"])
        if self.class_cal and n:
            p = np.ones(n)
            per_class = class_distances(self.baseline.features, self.baseline.labels, x, self.k)
            for c, cal in self.class_cal.items():
                rows = np.flatnonzero(y == c)
                if rows.size:
                    p[rows] = tail_p_values(cal, per_class[c][rows])
            out["knn_class"] = p
        if self.forest is not None and n:
            forest, cal = self.forest
            out["forest"] = tail_p_values(cal, -forest.score_samples(x))
        if self.class_forest and n:
            p = np.ones(n)
            for c, (forest, cal) in self.class_forest.items():
                rows = np.flatnonzero(y == c)
                if rows.size:
                    p[rows] = tail_p_values(cal, -forest.score_samples(x[rows]))
            out["forest_class"] = p
        return out

    def finish(self, contribution: GateData, records: dict[str, np.ndarray]) -> DetectorResult:
        ctx = self.context
        n = len(contribution)
        x, y = contribution.features, contribution.labels
        views = {k: records[k] for k in ("knn", "knn_class", "forest", "forest_class") if k in records}
        to_baseline = records.get("to_baseline", np.full(n, np.inf))
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
        n_cal = max(int(self.overall_cal.shape[0]) or (int(self.forest[1].shape[0]) if self.forest else 0), 1)
        group = self._in_unusual_group(x, p, to_baseline)
        flagged = flag_mask(p, ctx.alpha, n_cal) & ~group
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
        # Members of an unusual group are reported once, as that group; the count test of "more small
        # p-values than calibration explains" is about lone outliers.
        return count_result(
            self.name,
            self.version,
            np.where(group, 1.0, p),
            ctx.alpha,
            n_cal,
            findings,
            {"views": names, "k": self.k_eff, "in_unusual_groups": int(group.sum())},
            flagged=flagged,
            contribution_findings=self._group_findings(group, p, n_cal),
        )

    def _in_unusual_group(self, x: np.ndarray, p: np.ndarray, to_baseline: np.ndarray) -> np.ndarray:
        """Records unlike the baseline whose nearest batch peers are mostly unlike it too, and as near to
        them as trusted records are to one another: members of a new group, not lone outliers."""
        n, k = x.shape[0], min(self.population_k, x.shape[0] - 1)
        if k < 1:
            return np.zeros(n, dtype=bool)
        dist, idx = knn(x, x, k, exclude_self=True)
        # "Near" as trusted records are near one another: a new population keeps the baseline's density,
        # while lone outliers (and records blown up by a bad scale) are far from everything.
        near = PEER_SLACK * float(np.quantile(self.overall_cal, 0.95)) if self.overall_cal.size else 0.0
        peers = (p[idx] <= UNLIKE_BASELINE) & (dist <= near)
        return (p <= UNLIKE_BASELINE) & (peers.sum(axis=1) >= math.ceil(k / 2))

    def _group_findings(self, group: np.ndarray, p: np.ndarray, n_cal: int) -> list[Finding]:
        """One population-level finding when more records sit in unusual groups than alpha explains."""
        n, members = group.shape[0], int(group.sum())
        expected = UNLIKE_BASELINE * n
        if members < 5 or members <= 2 * expected:
            return []
        return [
            Finding(
                self.name,
                float(members / n),
                f"{members} of {n} records are unlike the baseline together (groups of similar records none of "
                f"which resembles trusted data: a new sub-population, source or sensor); they are not flagged one "
                f"by one",
                evidence={"records": members, "rows_sample": np.flatnonzero(group)[:20].tolist()},
            )
        ]
