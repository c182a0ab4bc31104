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

When the batch as a whole moved (at least ``MOVED_BATCH_SHARE`` of its records unlike the baseline, in a
batch of at least ``MIN_MOVED_BATCH``: a fax machine that prints every pixel full ink or blank, a noisier
sensor), the baseline no longer says what "out of place" means for one record, and each record is also
judged against its own batch: its *isolation* (the distance to its ``ceil(population_k / 2)``-th nearest
batch peer, over the batch's median isolation) gets a conformal p-value against the trusted records' own
isolation, measured the same way among a seeded sample of them (``_Isolation``). Only the batch's median
comes from the batch, so records planted to be out of place in it cannot widen what counts as in place
(a radius scaled by the batch's spread did, and covered digits shifted and relabelled in a faxed batch).
A record is flagged only when it is out of place on both counts (the larger of the two p-values) and
the baseline's rule does not put it in a group; one that reads as in place among its batch (isolation p
above ``UNLIKE_BASELINE``) is counted in the contribution-level finding. The batch's rule only takes flags
away: a sensor that changes the shape of its records' isolation (a low-resolution capture collapses many
digits onto a few images, so the batch's median isolation shrinks) cannot flag what the baseline's rule
kept in a group.

Telling the two apart needs each unusual record's nearest batch peers. Up to ``EXACT_PEERS_MAX``
records this is an exact search over the whole contribution, ``O(n^2 d)``, in the contribution stage.
Above it, the peers are estimated from a seeded sample of ``PEER_SAMPLE`` contribution records,
gathered before the record stage, so that each partition (or Dask worker) does its own records' part,
``O(m s d)`` for its ``m`` unusual records (``see _group_from_sample`` for the estimate and its error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from sklearn.ensemble import IsolationForest

from dataward.gates.base import (
    POSITION,
    Detector,
    DetectorResult,
    Evidence,
    Finding,
    GateContext,
    GateData,
    register,
)
from dataward.gates.calibration import excess_flags_count, flag_mask, tail_p_values
from dataward.gates.detectors._common import count_result, label_name, reference_scores
from dataward.gates.fit_memo import MEMO, fit_key
from dataward.gates.neighbours import K_MAX, class_distances, knn


def _split_forest(features: np.ndarray, seed: int, trees: int) -> tuple[IsolationForest, np.ndarray] | None:
    """Fit on a random half, return the forest and the other half's anomaly scores (calibration).

    The fit depends on the trusted records, the seed and the number of trees alone: a process fits
    it once for the same ones (``fit_memo``)."""
    n = features.shape[0]
    if n < 20:
        return None

    def fit() -> tuple[IsolationForest, np.ndarray]:
        order = np.random.default_rng(seed).permutation(n)
        fit_part, cal_part = order[: n // 2], order[n // 2 :]
        forest = IsolationForest(n_estimators=trees, random_state=seed, n_jobs=1).fit(features[fit_part])
        return forest, -forest.score_samples(features[cal_part])

    return MEMO.get_or_fit(fit_key("outliers.split_forest", features, seed, trees), fit, _forest_weight)


def _forest_weight(fitted: tuple[IsolationForest, np.ndarray]) -> int:
    """About what a fitted forest holds: its trees' nodes (about 100 bytes each) and its calibration."""
    forest, calibration = fitted
    return sum(int(tree.tree_.node_count) for tree in forest.estimators_) * 100 + int(calibration.nbytes)


UNLIKE_BASELINE = 0.05
"""A batch peer counts as equally out of place when its own p-value is at most this."""
PEER_SLACK = 1.5
"""A peer is near when closer than this times the baseline's 95th percentile of neighbour distances."""
EXACT_PEERS_MAX = 20_000
"""Contributions of at most this many records get the exact batch-peer search, ``O(n^2 d)`` (3 CPU
seconds for 20,000 64-d records with faiss here; 100 times that at 200,000). Every test, and every
detection benchmark of at most this size, keeps the report it had before the estimate existed; larger
contributions (the 50,000-record fixed-count attacks, the scale benchmarks) are judged from the sample."""
PEER_SAMPLE = 20_000
"""Contribution records drawn (seeded) to estimate the batch peers of a larger contribution. Just above
the threshold the sample is nearly the whole contribution. Its cost: its records' own p-values, once
in the scanning process (scoring 20,000 more records), and per partition ``m x s`` distances for the
partition's ``m`` records unlike the baseline, about what the reference search (``reference_size``
= 10,000, every record) costs."""
PEER_CHUNK = 256
"""Unusual records compared with the sample at a time (bounds the distance block's memory)."""
VIEWS = ("knn", "knn_class", "forest", "forest_class")
MOVED_BATCH_SHARE = 0.5
"""A batch of which at least this share is unlike the baseline (p <= ``UNLIKE_BASELINE``, where clean
data put ``UNLIKE_BASELINE`` = 5%) moved as a whole: each record is judged against its batch peers."""
MIN_MOVED_BATCH = 20
"""Records a batch (and the trusted sample its isolation is compared with) needs before it can be said
to have moved as a whole: below it, a median isolation says nothing, and the baseline's rule holds."""
ISOLATION_SAMPLE = 2_000
"""Trusted records (seeded) whose isolation among one another calibrates a moved batch's records'."""


@dataclass(frozen=True)
class PeerSample:
    """The sampled contribution records the record stage compares unusual records with."""

    features: np.ndarray
    """The sample's features, centred on ``centre`` (float32)."""
    centre: np.ndarray
    unlike: np.ndarray
    """Whether each sampled record is itself unlike the baseline (p <= ``UNLIKE_BASELINE``)."""
    positions: np.ndarray
    """Sorted positions of the sampled records in the contribution."""
    n: int
    """Records in the whole contribution."""
    isolation: _Isolation | None
    """For a batch that moved as a whole, how its records' isolation is judged (else None)."""


@dataclass(frozen=True)
class _Isolation:
    """A moved batch's isolation test: the trusted records' isolation among a sample of themselves, each
    over their median (sorted: the calibration), and the batch's median isolation at the density its
    records' isolation is measured at."""

    calibration: np.ndarray
    batch_median: float

    def p_values(self, isolation: np.ndarray) -> np.ndarray:
        """Conformal p-values of records' isolation, floored at the calibration's resolution (no flag
        rests on an extrapolated tail)."""
        n = self.calibration.shape[0]
        scaled = isolation / self.batch_median if self.batch_median > 0 else np.zeros_like(isolation)
        return np.maximum(tail_p_values(self.calibration, scaled), 1.0 / (n + 1.0))


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
    version = "3"
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
    record_stage_skips = False  # score_records never raises InputError
    peers: PeerSample | None = None

    def score(self, contribution: GateData) -> DetectorResult:
        n = len(contribution)
        positions = self.contribution_sample(n)
        if positions is not None:
            self.see_sample(contribution.subset(positions), positions, n)
        return self.finish(contribution, self.score_records(contribution))

    def contribution_sample(self, n: int) -> np.ndarray | None:
        """Above ``EXACT_PEERS_MAX`` records, a seeded sample of ``PEER_SAMPLE`` positions (the batch-peer
        estimate's); at most that, None (the exact search in ``finish``)."""
        self.peers = None
        if n <= EXACT_PEERS_MAX:
            return None
        rng = np.random.default_rng([self.context.seed, 0x9EE5])
        return np.sort(rng.choice(n, min(PEER_SAMPLE, n), replace=False))

    def see_sample(self, sample: GateData, positions: np.ndarray, n: int) -> None:
        _, _, p = _combined(self._views(sample))
        unlike = p <= UNLIKE_BASELINE if p is not None else np.zeros(len(sample), dtype=bool)
        x = np.asarray(sample.features, dtype=np.float32)
        centre = (
            x.mean(axis=0, dtype=np.float64).astype(np.float32) if len(sample) else np.zeros(x.shape[1], np.float32)
        )
        isolation = None
        if self._moved(unlike, n):
            own, _ = knn(sample.features, sample.features, self._rank(len(sample)), exclude_self=True)
            isolation = self._isolation(own[:, -1], len(sample))
        self.peers = PeerSample(
            np.ascontiguousarray(x - centre), centre, unlike, np.asarray(positions, np.int64), n, isolation
        )

    def score_records(self, chunk: GateData) -> dict[str, np.ndarray]:
        """Each view's p-value and the mean distance to the nearest trusted records, record by record;
        with a peer sample, also whether each record is in an unusual group (``in_group``)."""
        out = self._views(chunk)
        if self.peers is not None and len(chunk):
            _, _, p = _combined(out)
            if p is not None:
                positions = chunk.groups.get(POSITION)
                if positions is None:
                    positions = np.arange(len(chunk))
                out["in_group"], batch_p = self._group_from_sample(chunk.features, p, positions)
                if batch_p is not None:
                    out["batch_p"] = batch_p
        return out

    def _views(self, chunk: GateData) -> dict[str, np.ndarray]:
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
        views, stacked, p = _combined(records)
        to_baseline = records.get("to_baseline", np.full(n, np.inf))
        if stacked is None or p is None:
            return DetectorResult(
                self.name,
                self.version,
                np.ones(n),
                np.zeros(n, bool),
                summary={"skipped": "the baseline has too few records"},
            )
        n_cal = max(int(self.overall_cal.shape[0]) or (int(self.forest[1].shape[0]) if self.forest else 0), 1)
        summary: dict[str, Any] = {}
        if "in_group" in records:
            group = records["in_group"].astype(bool)
            batch_p = records.get("batch_p")
            assert self.peers is not None
            summary["batch_peers"] = {"estimated_from_sample": int(self.peers.positions.shape[0]), "of": n}
        else:
            group, batch_p = self._in_unusual_group(x, p, to_baseline)
        if batch_p is not None:
            # The batch moved as a whole: a record is out of place only if it is in its batch too.
            p = np.maximum(p, batch_p)
            summary["moved_as_a_whole"] = True
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
        # p-values than calibration explains" is about lone outliers. Its count is named in the verdict's
        # sentence (``count_test``): a tail driven by records at a wider level than alpha, with none flagged
        # at alpha, read as "0 flagged (p=1e-17)" and said nothing of what was counted.
        lone = np.where(group, 1.0, p)
        return count_result(
            self.name,
            self.version,
            lone,
            ctx.alpha,
            n_cal,
            findings,
            {
                "views": names,
                "k": self.k_eff,
                "in_unusual_groups": int(group.sum()),
                "count_test": excess_flags_count(lone, ctx.alpha, n_cal),
                **summary,
            },
            flagged=flagged,
            contribution_findings=self._group_findings(group, p, n_cal),
        )

    def _in_unusual_group(
        self, x: np.ndarray, p: np.ndarray, to_baseline: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Records unlike the baseline that are members of a new group, not lone outliers, and for a batch
        that moved as a whole every record's isolation p-value among its batch (else None).

        A member's nearest batch peers are mostly unlike the baseline too, and as near to it as trusted
        records are to one another: a new population keeps the baseline's density, while lone outliers
        (and records blown up by a bad scale) are far from everything. In a batch that moved as a whole
        a record in place among its batch is a member too (isolation p above ``UNLIKE_BASELINE``): the
        batch's rule only ever adds members, so it never flags a record the baseline's rule would not."""
        n, k = x.shape[0], min(self.population_k, x.shape[0] - 1)
        if k < 1:
            return np.zeros(n, dtype=bool), None
        unlike = p <= UNLIKE_BASELINE
        dist, idx = knn(x, x, k, exclude_self=True)
        peers = (p[idx] <= UNLIKE_BASELINE) & (dist <= self._near())
        group = unlike & (peers.sum(axis=1) >= math.ceil(k / 2))
        if not self._moved(unlike, n):
            return group, None
        # The isolation is the distance to the ``_rank``-th nearest peer, already among the ``k`` found.
        isolation = dist[:, self._rank(n) - 1]
        # Records like the baseline keep their own p-value (0 here: the larger of the two is theirs).
        batch_p = np.where(unlike, self._isolation(isolation, n).p_values(isolation), 0.0)
        return group | (unlike & (batch_p > UNLIKE_BASELINE)), batch_p

    def _near(self) -> float:
        return PEER_SLACK * float(np.quantile(self.overall_cal, 0.95)) if self.overall_cal.size else 0.0

    def _rank(self, n: int) -> int:
        """Which nearest peer a record's isolation is its distance to: the ``ceil(k / 2)``-th, the one the
        baseline's rule needs near (at least that many of ``k`` peers)."""
        return max(1, min(math.ceil(self.population_k / 2), n - 1))

    def _moved(self, unlike: np.ndarray, n: int) -> bool:
        """Whether the batch moved as a whole: at least ``MOVED_BATCH_SHARE`` of it unlike the baseline, in
        a batch and a baseline of at least ``MIN_MOVED_BATCH`` records each."""
        return (
            min(n, len(self.baseline)) >= MIN_MOVED_BATCH
            and bool(unlike.size)
            and float(unlike.mean()) >= MOVED_BATCH_SHARE
        )

    def _isolation(self, batch_isolation: np.ndarray, n: int) -> _Isolation:
        """The isolation test of a moved batch whose ``n`` records (or sampled records) have these
        isolations among one another: the trusted side is a seeded sample of the baseline of at most as
        many records (and ``ISOLATION_SAMPLE``), each record's isolation among the sample over the
        sample's median. Distances shrink as records are added; their ratio to the median much less so."""
        base = self.baseline.features
        m = min(n, base.shape[0], ISOLATION_SAMPLE)
        rows = np.sort(np.random.default_rng([self.context.seed, 0x150]).choice(base.shape[0], m, replace=False))
        trusted, _ = knn(base[rows], base[rows], self._rank(m), exclude_self=True)
        trusted = trusted[:, -1]
        median = float(np.median(trusted))
        calibration = np.sort(trusted / median) if median > 0 else np.zeros(m)
        return _Isolation(calibration, float(np.median(batch_isolation)))

    def _group_from_sample(
        self, x: np.ndarray, p: np.ndarray, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``_in_unusual_group`` estimated from the peer sample, for the records of one chunk.

        In a batch that moved as a whole, a record's isolation is its distance to its ``_rank``-th nearest
        *sampled* peer, judged against the sample's own median isolation (the same density).

        The exact rule: a record unlike the baseline is in a group when at least ``h = ceil(k/2)`` of its
        ``k`` nearest batch peers are unlike it too and near. With a sample of ``s`` of the ``n``
        records, for each unusual record ``u`` sampled peers are unlike and near and ``t`` are near,
        and ``T = t (n-1) / s'`` estimates its near peers in the whole contribution (``s'`` sampled
        peers, the record itself left out). Its ``k`` nearest peers are all near when ``T >= k``, and
        then a share ``u / t`` of them is estimated unlike: the record is in a group when ``u >= h`` and
        (``T < k`` or ``k u >= h t``).

        Error: requiring ``u >= h`` sampled peers (not ``h`` estimated ones) makes the estimate err
        towards lone outliers: a record with fewer than ``h`` unlike near peers in the whole contribution
        is never put in a group, so sampling hides no lone outlier. A member of a group with ``G`` unlike
        near peers is recognised with the probability that at least ``h`` of them are sampled,
        ``P(Binomial(G, s/n) >= h)``: with the default ``k = 5`` (``h = 3``), 0.95 at ``G = 6.3 n / s``,
        that is 315 near peers at 1,000,000 records and 3,150 at 10,000,000 with ``s = 20,000``. Members
        of smaller groups are judged one by one, like lone outliers, and can be flagged (a review, never
        a block: this detector does not block). The
        majority test on ``u / t`` has the sampling error of a proportion over ``t`` draws.
        Distances come from a float32 product; pairs within its rounding of the radius are recomputed
        one by one in float64, so a record's answer does not depend on the partition it is scored in
        (``_band_within``: each distinct pair of vectors once, so a block whose every pair sits on the
        radius, as identical one-hot records do, costs its distinct vectors, not its pairs).
        """
        peers = self.peers
        assert peers is not None
        group = np.zeros(x.shape[0], dtype=bool)
        # As in ``_in_unusual_group``: only records unlike the baseline are judged against their batch.
        batch_p = np.zeros(x.shape[0]) if peers.isolation is not None else None
        k = min(self.population_k, peers.n - 1)
        candidates = np.flatnonzero(p <= UNLIKE_BASELINE)
        if k < 1 or not candidates.size or not peers.positions.size:
            return group, batch_p
        h = math.ceil(k / 2)
        near = self._near()
        near_sq = np.float32(near) ** 2
        ref = peers.features
        ref_sq = np.einsum("ij,ij->i", ref, ref)
        s = peers.positions.shape[0]
        ref_unique: list[_UniqueRows] = []

        def distinct_ref() -> _UniqueRows:
            if not ref_unique:
                ref_unique.append(_UniqueRows(ref))
            return ref_unique[0]

        for start in range(0, candidates.size, PEER_CHUNK):
            rows = candidates[start : start + PEER_CHUNK]
            q = np.asarray(x[rows], dtype=np.float32) - peers.centre
            q_sq = np.einsum("ij,ij->i", q, q)
            scale = q_sq[:, None] + ref_sq[None, :]
            d2 = scale - 2.0 * (q @ ref.T)
            pos = positions[rows]
            j = np.minimum(np.searchsorted(peers.positions, pos), s - 1)
            own = peers.positions[j] == pos
            if peers.isolation is not None and batch_p is not None:
                batch_p[rows] = self._sampled_isolation_p(q, ref, d2, np.flatnonzero(own), j[own], distinct_ref)
            # The product's rounding error is far below 1e-3 of the squared norms for any practical d.
            tol = np.float32(1e-3) * scale + np.float32(1e-6)
            within = d2 + tol < near_sq
            band_r, band_c = np.nonzero(np.abs(d2 - near_sq) <= tol)
            del d2, scale, tol
            distinct = distinct_ref() if band_r.size > BAND_PAIRS else None
            within[band_r, band_c] = _band_within(q, ref, band_r, band_c, near, distinct)
            # Leave each record itself out of its own peers.
            within[np.flatnonzero(own), j[own]] = False
            u = (within & peers.unlike[None, :]).sum(axis=1)
            t = within.sum(axis=1)
            sampled = s - own.astype(np.int64)
            estimated_near = t * (peers.n - 1) / np.maximum(sampled, 1)
            group[rows] = (u >= h) & ((estimated_near < k) | (k * u >= h * t))
            if batch_p is not None:
                group[rows] |= batch_p[rows] > UNLIKE_BASELINE
        return group, batch_p

    def _sampled_isolation_p(
        self,
        q: np.ndarray,
        ref: np.ndarray,
        d2: np.ndarray,
        own_rows: np.ndarray,
        own_cols: np.ndarray,
        distinct_ref: Any = None,
    ) -> np.ndarray:
        """Isolation p-values of records ``q`` against the peer sample ``ref`` (``d2``: their float32
        squared distances), each record itself left out; the ``_rank``-th nearest distances are recomputed
        in float64 so that a record's answer does not depend on the partition it is scored in."""
        peers = self.peers
        assert peers is not None and peers.isolation is not None
        rank = self._rank(peers.positions.shape[0])
        d2 = d2.copy()
        d2[own_rows, own_cols] = np.inf
        # A few more candidates than needed, then exact distances: the float32 order may swap near ties.
        take = min(rank + 8, d2.shape[1])
        nearest = _nearest_candidates(d2, take, distinct_ref)
        diff = q[:, None, :].astype(np.float64) - ref[nearest].astype(np.float64)
        exact = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        exact[np.isinf(np.take_along_axis(d2, nearest, axis=1))] = np.inf
        isolation = np.sort(exact, axis=1)[:, rank - 1]
        return peers.isolation.p_values(isolation)

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


BAND_PAIRS = 65_536
"""Pairs of a distance block recomputed in float64 at a time; a block with more in the re-check band
recomputes each distinct pair of vectors once (``_band_within``)."""


class _UniqueRows:
    """The distinct rows of a float32 matrix, compared byte for byte, and each row's index among them."""

    def __init__(self, x: np.ndarray) -> None:
        x = np.ascontiguousarray(x)
        as_bytes = x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
        _, first, self.inverse = np.unique(as_bytes, return_index=True, return_inverse=True)
        self.inverse = self.inverse.ravel()
        self.rows = x[first]


def _pairs_within(q: np.ndarray, ref: np.ndarray, rows: np.ndarray, cols: np.ndarray, near: float) -> np.ndarray:
    """Whether each pair ``q[rows[i]]``, ``ref[cols[i]]`` is within ``near``: its distance in float64, one
    pair at a time (``BAND_PAIRS`` per step), rounded to float32."""
    out = np.empty(rows.shape[0], dtype=bool)
    for b in range(0, rows.shape[0], BAND_PAIRS):
        r, c = rows[b : b + BAND_PAIRS], cols[b : b + BAND_PAIRS]
        diff = q[r].astype(np.float64) - ref[c].astype(np.float64)
        out[b : b + BAND_PAIRS] = np.sqrt(np.einsum("ij,ij->i", diff, diff)).astype(np.float32) <= near
    return out


def _band_within(
    q: np.ndarray,
    ref: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    near: float,
    ref_unique: _UniqueRows | None = None,
) -> np.ndarray:
    """``_pairs_within`` of the band's pairs, the same booleans. A pair's answer depends on its two
    vectors alone, so when the band holds more pairs than the block has distinct pairs of vectors (records
    that share a vector: every record of an unseen category is the same one-hot vector, and every pair of
    them sits on a radius of 0), each distinct pair is computed once, with the same arithmetic, and read
    back for every pair: 30,000 records of distinct unseen categories put 600 million pairs of their 20,000
    sampled peers in the band, which took 100 seconds one pair at a time."""
    if rows.shape[0] <= BAND_PAIRS or ref_unique is None:
        return _pairs_within(q, ref, rows, cols, near)
    q_unique = _UniqueRows(q)
    nq, nr = q_unique.rows.shape[0], ref_unique.rows.shape[0]
    if nq * nr >= rows.shape[0]:
        return _pairs_within(q, ref, rows, cols, near)
    grid_r, grid_c = np.divmod(np.arange(nq * nr, dtype=np.int64), nr)
    table = _pairs_within(q_unique.rows, ref_unique.rows, grid_r, grid_c, near).reshape(nq, nr)
    return table[q_unique.inverse[rows], ref_unique.inverse[cols]]


def _nearest_candidates(d2: np.ndarray, take: int, distinct_ref: Any = None) -> np.ndarray:
    """``np.argpartition(d2, take - 1, axis=1)[:, :take]``, up to a choice among ties that cannot change
    what is read of them: a row whose ``take`` smallest distances are all its minimum, reached only at
    copies of one peer vector (``distinct_ref()``, a ``_UniqueRows`` of the peers), takes the first
    ``take`` of those copies, whose exact distances are the same numbers whichever are taken. Numpy's
    introselect is quadratic on a row of equal values and one larger one (0.4 s for 256 rows of 20,000:
    one record of each unseen category and its sampled peers, all the same one-hot vector, the record
    itself left out as infinity), which made it most of the gate's time on such a batch."""
    low = d2.min(axis=1)
    tied = d2 == low[:, None]
    easy = (tied.sum(axis=1) >= take) & np.isfinite(low)
    if distinct_ref is None or not easy.any():
        return np.argpartition(d2, take - 1, axis=1)[:, :take]
    ids = distinct_ref().inverse
    first = ids[np.argmax(tied, axis=1)]
    easy &= ~(tied & (ids[None, :] != first[:, None])).any(axis=1)
    nearest = np.empty((d2.shape[0], take), dtype=np.intp)
    if (~easy).any():
        nearest[~easy] = np.argpartition(d2[~easy], take - 1, axis=1)[:, :take]
    if easy.any():
        # Which copies are taken changes nothing: the first ``take`` of each row, found in its first
        # columns when they hold enough.
        ties = tied[easy]
        width = min(ties.shape[1], max(1024, 8 * take))
        if (ties[:, :width].sum(axis=1) >= take).all():
            ties = ties[:, :width]
        _, columns = np.nonzero(ties)
        starts = np.concatenate([[0], np.cumsum(ties.sum(axis=1))[:-1]])
        nearest[easy] = columns[starts[:, None] + np.arange(take)]
    return nearest


def _combined(
    records: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray | None]:
    """The views present, stacked, and each record's Bonferroni minimum over them (None without views)."""
    views = {k: records[k] for k in VIEWS if k in records}
    if not views:
        return views, None, None
    stacked = np.vstack(list(views.values()))
    return views, stacked, np.minimum(1.0, len(views) * stacked.min(axis=0))
