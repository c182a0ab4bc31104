"""Backdoor signatures in the hidden representations of a probe model.

A one-hidden-layer MLP probe is trained on baseline + contribution, so whatever shortcut a poisoned
batch teaches (a patch, a token) shapes its hidden layer. Per class, over the pooled records of
that class (baseline and contribution treated alike):

* **spectral signature**: the representations are centred and projected onto their top singular
  vector; poisoned records, a second population inside the class, score high (Tran et al., 2018);
* **neighbour distance**: distance to the k-th nearest *baseline* record of the class in the
  PCA-reduced representation space; a record relabelled into a class it does not look like is far
  from every trusted member;
* **activation clustering**: the PCA-reduced representations are split with k-means (k = 2 and 3;
  Chen et al., 2018). Rather than removing a fixed fraction, each small cluster is tested for
  holding more contribution records than the class's contribution share explains
  (hypergeometric test; the clustering never sees which records are new, so the test is exact
  when the contribution is drawn like the baseline). Bonferroni over clusters and classes.

Record p-values are conformal: both record scores are put on a robust scale (median and MAD of the
baseline records of the class), the larger is the nonconformity score, and that score is calibrated
on the baseline records of every class (ties beyond the largest baseline score are broken by an
exponential tail fit, see ``tail_p_values``). Contribution records inside a significant cluster get the
smaller of their own p-value and the cluster's corrected p-value, and are flagged.

Contribution level: ``p_value`` = 2 x min(activation-clustering p, the test of more records with
small p-values than the calibration explains (``excess_flags_p_value``: beta-binomial, so the
calibration set's own randomness does not raise alarms)); ``statistic`` = number of flagged records.
Summary keys: ``classes`` (per label: ``records``, ``contribution``, ``silhouette``,
``cluster_p``, ``flagged``), ``clusters`` (significant clusters), ``mode``.
With no baseline (self-reference mode) the contribution's own records are the reference.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from scipy.stats import hypergeom
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors

from dataward.gates.base import Detector as _Detector
from dataward.gates.base import (
    DetectorResult,
    Finding,
    GateContext,
    GateData,
    register,
)
from dataward.gates.calibration import excess_flags_p_value
from dataward.gates.detectors._probe import (
    apply_options,
    fit_probe,
    hidden_activations,
    row_numbers,
    sample_positions,
    single_threaded,
    tail_p_values,
)

MIN_REFERENCE = 20
"""Fewer baseline records than this means self-reference mode."""

MIN_CLASS_REFERENCE = 5
CLUSTER_COUNTS = (2, 3, 4, 5)
"""k-means splits tried per class: a poisoned cluster may hide inside a class that has sub-modes."""
OPTIONS = (
    "hidden",
    "max_iter",
    "n_components",
    "neighbours",
    "max_train",
    "max_reference_per_class",
    "max_cluster_fraction",
    "max_findings",
)


@register
class BackdoorDetector(_Detector):
    """Spectral signatures and activation clustering over a probe model's hidden layer."""

    name = "backdoor"
    version = "1"

    def __init__(
        self,
        *,
        hidden: int = 64,
        max_iter: int = 200,
        n_components: int = 10,
        neighbours: int = 5,
        max_train: int = 20000,
        max_reference_per_class: int = 2000,
        max_cluster_fraction: float = 0.35,
        max_findings: int = 200,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.hidden = hidden
        self.max_iter = max_iter
        self.n_components = n_components
        self.neighbours = neighbours
        self.max_train = max_train
        self.max_reference_per_class = max_reference_per_class
        self.max_cluster_fraction = max_cluster_fraction
        self.max_findings = max_findings

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Keep the baseline: the probe is trained later, on baseline and contribution together."""
        apply_options(self, self.name, context.options_for(self.name), OPTIONS)
        self.baseline_ = baseline
        self.context_ = context
        return self

    def baseline_scores(self) -> np.ndarray:
        """Scores (1 - leave-one-out p-value) of the baseline records the last ``score`` calibrated on."""
        return getattr(self, "baseline_scores_", np.zeros(0))

    def score(self, contribution: GateData) -> DetectorResult:
        with single_threaded():
            return self._score(contribution)

    def _score(self, contribution: GateData) -> DetectorResult:
        ctx = self.context_
        n_c = len(contribution)
        if n_c == 0:
            return DetectorResult(self.name, self.version, np.ones(0), np.zeros(0, bool))
        rng = np.random.default_rng(ctx.seed)
        baseline = self.baseline_
        self_reference = len(baseline) < MIN_REFERENCE
        if self_reference:
            baseline = GateData(np.zeros((0, contribution.features.shape[1]), np.float32), np.zeros(0, np.int64))
        n_b = len(baseline)
        features = np.vstack([baseline.features, contribution.features]).astype(np.float64)
        labels = np.concatenate([baseline.labels, contribution.labels]).astype(np.int64)
        is_new = np.r_[np.zeros(n_b, bool), np.ones(n_c, bool)]

        train = sample_positions(len(labels), self.max_train, rng)
        if np.unique(labels[train]).size < 2:
            return _single_class_result(self, n_c, self_reference)
        probe = fit_probe(
            features[train],
            labels[train],
            kind="mlp",
            seed=ctx.seed,
            hidden=self.hidden,
            max_iter=self.max_iter,
        )
        reps = hidden_activations(probe, features)

        combined_new = np.full(n_c, np.nan)
        combined_ref: list[np.ndarray] = []
        cluster_flag = np.zeros(n_c, bool)
        details: dict[int, dict[str, float]] = {}
        per_class: dict[str, dict[str, Any]] = {}
        cluster_tests: list[dict[str, Any]] = []
        for code in np.unique(contribution.labels):
            members = np.flatnonzero(labels == code)
            if self_reference:
                reference = members
            else:
                reference = members[~is_new[members]]
                if reference.size > self.max_reference_per_class:
                    reference = np.sort(rng.choice(reference, self.max_reference_per_class, replace=False))
            new = members[is_new[members]]
            pool = np.union1d(reference, new)
            label = ctx.classes[code] if code < len(ctx.classes) else str(code)
            if reference.size < MIN_CLASS_REFERENCE:
                per_class[label] = {"records": int(pool.size), "contribution": int(new.size), "skipped": True}
                continue
            cls = _score_class(reps[pool], np.isin(pool, reference), np.isin(pool, new), self, rng, self_reference)
            new_pos = np.searchsorted(pool, new)
            combined_new[new - n_b] = cls["combined"][new_pos]
            if not self_reference:
                combined_ref.append(cls["combined"][np.searchsorted(pool, reference)])
            for local, pos in zip(new_pos, new - n_b, strict=True):
                details[int(pos)] = {
                    "spectral_score": float(cls["spectral"][local]),
                    "neighbour_distance": float(cls["distance"][local]),
                }
            for test in cls["clusters"]:
                test["label"] = label
                test["members"] = (pool[test.pop("local")] - n_b).tolist()
                cluster_tests.append(test)
            per_class[label] = {
                "records": int(pool.size),
                "contribution": int(new.size),
                "silhouette": cls["silhouette"],
            }

        p_values = _calibrate(combined_new, combined_ref, self_reference)
        if combined_ref:
            pooled = np.concatenate(combined_ref)
            self.baseline_scores_ = 1.0 - tail_p_values(pooled, pooled, leave_one_out=True)
        n_tests = max(1, len(cluster_tests))
        clusters_out = []
        best_cluster_p = 1.0
        for test in cluster_tests:
            corrected = min(1.0, test["p_value"] * n_tests)
            best_cluster_p = min(best_cluster_p, corrected)
            if corrected <= ctx.alpha:
                members = np.asarray(test["members"], dtype=np.int64)
                members = members[members >= 0]
                cluster_flag[members] = True
                p_values[members] = np.minimum(p_values[members], corrected)
                clusters_out.append({**test, "p_value": corrected, "members": members.tolist()})
            per_class[test["label"]]["cluster_p"] = min(per_class[test["label"]].get("cluster_p", 1.0), corrected)

        flagged = (p_values <= ctx.alpha) | cluster_flag
        n_calibration = sum(len(r) for r in combined_ref) if not self_reference else n_c - 1
        _, count_p = excess_flags_p_value(p_values, ctx.alpha, n_calibration)
        p_value = min(1.0, 2.0 * min(best_cluster_p, count_p))
        rows = row_numbers(contribution)
        findings = _cluster_findings(self.name, clusters_out, rows)
        for pos in np.argsort(p_values)[: self.max_findings]:
            if not flagged[pos]:
                break
            code = int(contribution.labels[pos])
            label = ctx.classes[code] if code < len(ctx.classes) else str(code)
            findings.append(
                Finding(
                    detector=self.name,
                    score=float(1.0 - p_values[pos]),
                    row=int(pos),
                    reason=(
                        f"the probe model's hidden representation of this record is unlike the baseline "
                        f"records labelled {label!r} (p={p_values[pos]:.2g})"
                    ),
                    evidence={"label": label, **details.get(int(pos), {})},
                )
            )
        for label, info in per_class.items():
            code = ctx.classes.index(label) if label in ctx.classes else -1
            info["flagged"] = int(np.sum(flagged & (contribution.labels == code)))
        return DetectorResult(
            detector=self.name,
            version=self.version,
            p_values=p_values,
            flagged=flagged,
            findings=findings,
            statistic=float(flagged.sum()),
            p_value=p_value,
            summary={
                "mode": "self-reference" if self_reference else "baseline",
                "classes": per_class,
                "clusters": [
                    {k: v for k, v in c.items() if k != "members"} | {"records": len(c["members"])}
                    for c in clusters_out
                ],
                "cluster_p": best_cluster_p,
                "count_p": count_p,
            },
        )


def _calibrate(combined_new: np.ndarray, combined_ref: list[np.ndarray], self_reference: bool) -> np.ndarray:
    """Final p-values: the combined signature calibrated on every reference record, all classes pooled.

    Records of classes that could not be scored (too few reference records) get p = 1.
    """
    scored = ~np.isnan(combined_new)
    p = np.ones(combined_new.shape[0])
    if self_reference:
        p[scored] = tail_p_values(combined_new[scored], combined_new[scored], leave_one_out=True)
    elif combined_ref:
        p[scored] = tail_p_values(np.concatenate(combined_ref), combined_new[scored])
    return p


def _single_class_result(det: BackdoorDetector, n: int, self_reference: bool) -> DetectorResult:
    return DetectorResult(
        det.name,
        det.version,
        np.ones(n),
        np.zeros(n, bool),
        summary={
            "mode": "self-reference" if self_reference else "baseline",
            "skipped": "fewer than 2 classes",
        },
    )


def _score_class(
    reps: np.ndarray,
    is_reference: np.ndarray,
    is_new: np.ndarray,
    det: BackdoorDetector,
    rng: np.random.Generator,
    self_reference: bool,
) -> dict[str, Any]:
    """Record p-values and cluster tests for the records of one class (reference + new)."""
    centred = reps - reps.mean(axis=0)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(sing > 1e-8 * max(float(sing[0]) if sing.size else 0.0, 1e-12)))
    dims = max(1, min(det.n_components, rank))
    reduced = centred @ vt[:dims].T
    spectral = reduced[:, 0] ** 2

    ref = np.flatnonzero(is_reference)
    k = min(det.neighbours, ref.size - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(reduced[ref])
    dist, idx = nn.kneighbors(reduced)
    # A reference record must not count itself as its own neighbour.
    self_hit = ref[idx] == np.arange(reduced.shape[0])[:, None]
    dist = np.where(self_hit, np.inf, dist)
    distance = np.sort(dist, axis=1)[:, k - 1]

    # Each signature is put on a robust common scale (median and MAD of the reference records), and
    # a record's nonconformity is its most extreme signature. The same function is applied to
    # reference and new records, so they stay exchangeable for the calibration that follows.
    combined = np.maximum(_robust_z(np.abs(reduced[:, 0]), ref), _robust_z(distance, ref))

    clusters: list[dict[str, Any]] = []
    silhouette = None
    n = reduced.shape[0]
    n_new = int(is_new.sum())
    if not self_reference and n >= 10 and 0 < n_new < n:
        for n_clusters in CLUSTER_COUNTS:
            km = KMeans(n_clusters=n_clusters, n_init=4, random_state=int(rng.integers(1 << 31)))
            assign = km.fit_predict(reduced)
            if np.unique(assign).size < 2:
                continue
            if n_clusters == 2:
                silhouette = float(silhouette_score(reduced, assign, random_state=0)) if n <= 5000 else None
            for c in range(n_clusters):
                in_cluster = assign == c
                size = int(in_cluster.sum())
                if size > det.max_cluster_fraction * n:
                    continue
                hits = int(np.sum(in_cluster & is_new))
                expected = size * n_new / n
                p_c = float(hypergeom.sf(hits - 1, n, n_new, size)) if hits else 1.0
                clusters.append(
                    {
                        "k": n_clusters,
                        "size": size,
                        "contribution_count": hits,
                        "expected": round(expected, 3),
                        "p_value": p_c,
                        "local": np.flatnonzero(in_cluster & is_new),
                    }
                )
    return {
        "combined": combined,
        "spectral": spectral,
        "distance": distance,
        "clusters": clusters,
        "silhouette": silhouette,
    }


def _robust_z(score: np.ndarray, ref: np.ndarray) -> np.ndarray:
    centre = float(np.median(score[ref]))
    spread = 1.4826 * float(np.median(np.abs(score[ref] - centre)))
    return (score - centre) / max(spread, 1e-9)


def _cluster_findings(detector: str, clusters: list[dict[str, Any]], rows: np.ndarray) -> list[Finding]:
    findings = []
    for c in clusters:
        members = np.asarray(c["members"], dtype=np.int64)
        findings.append(
            Finding(
                detector=detector,
                score=float(1.0 - c["p_value"]),
                row=None,
                reason=(
                    f"activation clustering: a cluster of {c['size']} records labelled {c['label']!r} holds "
                    f"{c['contribution_count']} contribution records where {c['expected']:.1f} are expected "
                    f"(p={c['p_value']:.2g})"
                ),
                evidence={
                    "label": c["label"],
                    "rows": rows[members].tolist(),
                    "cluster_size": c["size"],
                    "contribution_count": c["contribution_count"],
                    "expected": c["expected"],
                    "k": c["k"],
                },
            )
        )
    return findings
