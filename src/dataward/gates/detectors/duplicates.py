"""Duplicates and conflicts: copies of baseline or in-batch records under another label, and mass copies.

A conflict (the same or nearly the same content under another label) is content contradicting its
label: evidence of poisoning, so this detector may block. Mass duplication is a difference (a source
that repeats itself) and is reported as a contribution-level finding for review, never a flag.

Two calibrated views per record, combined with a Bonferroni minimum, and one contribution-level test:

* **exact conflicts**: the record's inputs (a 64-bit content hash, label excluded) equal those of a
  baseline or contribution record with a different label. Its p-value is the baseline's own rate of
  such conflicts, ``(1 + #conflicting baseline records) / (N + 1)``, over the *whole* baseline. A
  conflict with the baseline is flagged whenever that rate is at most alpha (the flag's own
  false-positive rate), even where the Bonferroni minimum over the three views stays above alpha.
* **near conflicts**: the distance to the nearest trusted record with another label (in the reference
  sample; inside the batch it is ambiguous which of two near copies is wrong), relative to the typical
  nearest-neighbour distance; conformal p-values from the reference's leave-one-out distances.
  A near conflict is evidence only while the rest of the batch reads like the trusted data. A batch
  that moved as a whole (a darker camera, a recalibrated instrument) brings whole classes closer to
  other classes' trusted records: its low-texture photo crops, say, beyond every trusted score, in
  numbers no exchangeable batch reaches. That is a difference, for review. So a record whose
  near-conflict p-value is at most ``MOVED_CANDIDATE_P``, in a class whose records as a whole sit
  closer to other labels than the baseline's records of that class (one-sided Mann-Whitney,
  ``class_moved``), and that reads as its *own* label among the batch's own records that are not
  near conflicts, moved with its batch: it is not a near conflict (p = 1 for that view; drift and
  backdoor report the move). The within-batch reading is the one ``backdoor`` excuses such records
  with (``reads_as_own_within_batch``). A copy of another class's content under a wrong label is
  not excused: among the batch's records it still reads as the class it was copied from (and in a
  class that did not move nothing is excused), and the
  near conflicts cannot vouch for one another (they are left out of the batch's reference). Exact
  conflicts are never excused as a move: the same inputs under two labels cannot be one.
* **the baseline's own ambiguity** (version 6): a format coarser than the trusted one (a scraper that keeps a
  man page's name and drops its description) maps records that differ in full onto the same inputs, and
  a name such as 'printf' or 'signal' truly is a page of two sections. Two records of the batch with the
  same inputs under two labels are then true data, not a wrong label. Such a pair is not counted as an
  exact conflict (p = 1 for that view; queued for review, and reported as a finding) when (1) the
  baseline holds its inputs under no label (a conflict with a trusted record always counts), (2) every
  label the inputs carry in the batch is one the baseline gives content like them: each such record's
  kNN margin (``AMBIGUITY_NEIGHBOURS`` trusted records per class, as ``label_consistency`` reads it) has
  a conformal p-value above alpha among the trusted records' own, and (3) the batch is new content: its
  records that are not exact conflicts sit further from their nearest trusted records than the trusted
  records sit from one another, beyond what a share ``NEW_CONTENT_SHARE`` of odd records could make them
  (``reads_further_than_trusted``). In a batch that reads like trusted data, twins under two labels
  still count (an attacker's copy of a clean record under a target label); and content that reads as
  one class under a label the baseline does not give it still counts anywhere.
* **mass duplication** (contribution level): how many times the record's inputs repeat in the
  contribution, against the same count in a baseline sample of the contribution's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from dataward.gates.base import Detector, DetectorResult, Evidence, Finding, GateContext, GateData, register
from dataward.gates.calibration import (
    binomial_p_value,
    conformal_p_values,
    excess_flags_p_value,
    flag_mask,
    tail_p_values,
)
from dataward.gates.detectors._common import count_result, label_name, reference_scores
from dataward.gates.detectors._within_batch import (
    MOVED_CANDIDATE_P,
    WITHIN_BATCH_NEIGHBOURS,
    mostly_misread,
    reads_as_own_within_batch,
    reads_further_than_trusted,
)
from dataward.gates.hashing import input_hashes
from dataward.gates.neighbours import K_MAX, class_distances, knn

AMBIGUITY_NEIGHBOURS = 5
"""Trusted records of each class whose mean distance reads which labels the baseline gives an input
(``label_consistency``'s kNN margin, at its default ``k``)."""
NEW_CONTENT_SHARE = 0.2
"""Twins inside the batch are read as the baseline's own ambiguity only when the batch's records sit
further from the trusted records than a share this large of odd records among them could make them
(``reads_further_than_trusted``'s ``beyond_share``; ``backdoor``'s ``MOVED_CLASS_SHARE``): a batch that is
new content as a whole, not a clean-looking batch with a few records of another kind."""


@dataclass(frozen=True)
class DuplicatesOptions:
    """``k``: trusted neighbours searched for the nearest record with another label."""

    k: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.k <= K_MAX:
            raise ValueError(f"k must be between 1 and {K_MAX} (the neighbour search keeps at most {K_MAX} neighbours)")


def _hashes(data: GateData, context: GateContext) -> np.ndarray:
    if data.table is not None and all(c.name in data.table.column_names for c in context.schema.inputs):
        return input_hashes(data.table, context.schema)
    return pd.util.hash_array(
        np.fromiter((r.tobytes() for r in np.ascontiguousarray(data.features)), dtype=object, count=len(data)),
        categorize=False,
    )


def _nearest_other(dist: np.ndarray, idx: np.ndarray, ref_labels: np.ndarray, own: np.ndarray) -> np.ndarray:
    return _nearest_other_with_position(dist, idx, ref_labels, own)[0]


def _nearest_other_with_position(
    dist: np.ndarray, idx: np.ndarray, ref_labels: np.ndarray, own: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the nearest reference record with another label, and its position (-1 if none in reach)."""
    if not dist.shape[1]:
        return np.full(own.shape[0], np.inf), np.full(own.shape[0], -1)
    masked = np.where(ref_labels[idx] != own[:, None], dist, np.inf)
    column = masked.argmin(axis=1)
    nearest = masked[np.arange(own.shape[0]), column]
    position = np.where(np.isfinite(nearest), idx[np.arange(own.shape[0]), column], -1)
    return nearest, position


def class_table(reference: GateData, query: np.ndarray, n_classes: int, *, exclude_self: bool = False) -> np.ndarray:
    """Mean distance of every ``query`` row to its ``AMBIGUITY_NEIGHBOURS`` nearest ``reference`` records of
    each class (inf: a class the reference does not hold)."""
    table = np.full((query.shape[0], n_classes), np.inf)
    per_class = class_distances(
        reference.features, reference.labels, query, AMBIGUITY_NEIGHBOURS, exclude_self=exclude_self
    )
    for code, d in per_class.items():
        table[:, code] = d
    return table


def label_margin(table: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``log`` of the distance to the label's trusted records over that to the nearest other class's (large:
    the content reads as another class); -inf with no other class in reach, inf with none of its own."""
    rows = np.arange(labels.shape[0])
    own = table[rows, labels]
    others = table.copy()
    others[rows, labels] = np.inf
    other = others.min(axis=1) if table.shape[1] else np.full(labels.shape[0], np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.log(own) - np.log(other)
    margin = np.where(np.isnan(margin), 0.0, margin)  # both at distance 0: as close to one as to the other
    margin = np.where(np.isfinite(other), margin, -np.inf)
    return np.where(np.isfinite(own), margin, np.inf)


def class_moved(score: np.ndarray, labels: np.ndarray, calibration: np.ndarray, cal_labels: np.ndarray) -> np.ndarray:
    """Records of classes whose batch records, as a whole, sit closer to other labels than the baseline's
    records of that class do (one-sided Mann-Whitney, ``SHIFT_P``).

    The whole class is compared, not its bulk below a quantile as ``backdoor`` does: most near-conflict
    scores are censored (no record of another label within the ``k`` searched, a tie at the bottom), and
    a sensor can move one part of a class (its low-texture crops) towards other labels and the rest
    away, so a trimmed bulk misses the move. Relabelled records can make a class look moved; they are
    still not excused, since they do not read as their label among the batch's records.
    """
    out = np.zeros(labels.shape[0], dtype=bool)
    for code in np.unique(labels):
        if reads_further_than_trusted(score[labels == code], calibration[cal_labels == code]):
            out[labels == code] = True
    return out


def moved_with_batch(
    contribution: GateData,
    score: np.ndarray,
    p_near: np.ndarray,
    read_as: np.ndarray,
    calibration: np.ndarray,
    calibration_labels: np.ndarray,
    seed: int,
    trusted: GateData | None = None,
) -> np.ndarray:
    """Near-conflict candidates that moved with their batch rather than contradict their label.

    ``score``: the records' near-conflict scores (larger is closer to another label), ``calibration``
    the reference's own, with their labels; ``read_as``: the label of each record's nearest trusted
    record with another label (-1: none in reach). A candidate (``p_near <= MOVED_CANDIDATE_P``) is
    excused when its class moved towards other labels (``class_moved``) and, among the batch's records
    that are not candidates, it is closer to its own label's records than to ``read_as``'s; or, in a class
    too few of whose records are not candidates, when the class moved as a whole into content no
    ``trusted`` record holds (``_within_batch.wholesale_new_classes``).
    """
    candidates = (p_near <= MOVED_CANDIDATE_P) & (read_as >= 0)
    if not candidates.any():
        return np.zeros(len(contribution), dtype=bool)
    # A record with no other label within reach scores -inf; both sides tie those at one finite floor
    # below every finite score, so that the rank test counts them as least suspicious.
    finite = np.concatenate([score[np.isfinite(score)], calibration[np.isfinite(calibration)]])
    floor = float(finite.min()) - 1.0 if finite.size else -1.0
    score, calibration = np.maximum(score, floor), np.maximum(calibration, floor)
    in_moved_class = candidates & class_moved(score, contribution.labels, calibration, calibration_labels)
    # A class all of whose records are candidates: excused only as a wholesale move into new content.
    in_moved_class |= candidates & mostly_misread(contribution.labels, candidates)
    return reads_as_own_within_batch(
        contribution, in_moved_class, candidates, read_as, WITHIN_BATCH_NEIGHBOURS, seed, trusted=trusted
    )


def conflicts_reason(
    with_baseline: np.ndarray,
    in_batch: np.ndarray,
    flagged: np.ndarray,
    contribution: GateData,
    rate: float,
    ambiguous: np.ndarray | None = None,
) -> str | None:
    """The verdict's sentence for the batch's exact conflicts, in words and with their file rows (None:
    there are none): copies of trusted records' inputs under another label, then pairs inside the batch;
    ``rate`` is the trusted records' own rate of such conflicts (``Duplicates.conflict_rate``);
    ``ambiguous``: the pairs read as the baseline's own ambiguity (not counted as conflicts)."""
    rows = np.asarray(contribution.groups.get("row", np.arange(len(contribution))))

    def where(mask: np.ndarray) -> str:
        count = int(mask.sum())
        return ", ".join(str(int(r)) for r in rows[mask][:10]) + (", ..." if count > 10 else "")

    parts = []
    if with_baseline.any():
        count = int(with_baseline.sum())
        copies = "is an exact copy" if count == 1 else "are exact copies"
        parts.append(
            f"{count} record{'s' if count != 1 else ''} {copies} of trusted records' inputs under another label "
            f"(file rows {where(with_baseline)})"
        )
    if in_batch.any():
        count = int(in_batch.sum())
        share = "shares its" if count == 1 else "share their"
        parts.append(
            f"{count} record{'s' if count != 1 else ''} {share} exact inputs with another record of this batch "
            f"under another label (file rows {where(in_batch)})"
        )
    if not parts:
        return None
    conflicts = with_baseline | in_batch
    queued = int((flagged & conflicts).sum())
    if queued == int(conflicts.sum()):
        said = "each flagged as an exact conflict"
    elif queued == 0:
        said = f"not flagged: trusted records conflict so at a rate of {rate:.2g}, above alpha"
    else:
        said = f"{queued} of them flagged as exact conflicts"
    if ambiguous is not None and ambiguous.any():
        count = int(ambiguous.sum())
        said += (
            f"; {count} of them (file rows {where(ambiguous)}) carry only labels the baseline itself gives "
            "content like theirs, in a batch of content new to it: ambiguous inputs, queued for review and "
            "not counted as evidence of poisoning"
        )
    return f"{'; '.join(parts)}: {said}"


def _ambiguity_findings(ambiguous: np.ndarray, contribution: GateData) -> list[Finding]:
    """One contribution-level finding (review) for twins read as the baseline's own ambiguity."""
    count = int(ambiguous.sum())
    if not count:
        return []
    rows = np.asarray(contribution.groups.get("row", np.arange(len(contribution))))[ambiguous]
    where = ", ".join(str(int(r)) for r in rows[:10]) + (", ..." if count > 10 else "")
    return [
        Finding(
            "duplicates",
            0.5,
            f"{count} records share their exact inputs with a record of this batch under another label (file "
            f"rows {where}), each label one the baseline gives content like theirs, in a batch of content new "
            "to the baseline: inputs that a coarser format leaves ambiguous, for review, not counted as conflicts",
            evidence={"ambiguous_twins": count},
        )
    ]


class LabelledHashes:
    """Sorted (content hash, label) pairs: which labels each set of inputs carries, by binary search."""

    def __init__(self, hashes: np.ndarray, labels: np.ndarray) -> None:
        order = np.lexsort((labels, hashes))
        h, y = hashes[order], labels[order].astype(np.int64)
        keep = np.ones(h.shape[0], dtype=bool)
        keep[1:] = (h[1:] != h[:-1]) | (y[1:] != y[:-1])
        self.hashes, self.labels = h[keep], y[keep]
        # Rows of the original arrays whose inputs carry more than one label: read from the sort,
        # group by group, rather than by a binary search per row (at 100,000,000 baseline rows two
        # searches of random keys cost minutes; this is two passes over the sorted arrays).
        starts = np.ones(h.shape[0], dtype=bool)
        starts[1:] = h[1:] != h[:-1]
        group = np.cumsum(starts) - 1
        labels_per_group = np.bincount(group[keep], minlength=int(group[-1]) + 1 if group.size else 0)
        self.conflicting_rows = np.empty(h.shape[0], dtype=bool)
        self.conflicting_rows[order] = labels_per_group[group] > 1

    def other_labels(self, hashes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Per query, whether the same inputs carry a label other than the query's."""
        first = np.searchsorted(self.hashes, hashes, side="left")
        last = np.searchsorted(self.hashes, hashes, side="right")
        span = last - first
        same = np.zeros(hashes.shape[0], dtype=bool)
        for offset in range(int(span.max()) if span.size else 0):
            pos = np.minimum(first + offset, max(self.hashes.shape[0] - 1, 0))
            same |= (offset < span) & (self.labels[pos] == labels)
        return span - same.astype(np.int64) > 0

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.hashes, hashes, side="left")
        pos = np.minimum(pos, max(self.hashes.shape[0] - 1, 0))
        return (self.hashes.shape[0] > 0) & (self.hashes[pos] == hashes)

    def labels_of(self, h: int) -> set[int]:
        first = np.searchsorted(self.hashes, np.uint64(h), side="left")
        last = np.searchsorted(self.hashes, np.uint64(h), side="right")
        return set(self.labels[first:last].tolist())


def _multiplicity(hashes: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    return counts[inverse].astype(np.float64)


@register
class Duplicates(Detector):
    """Exact and near duplicates carrying another label; one record copied many times."""

    name = "duplicates"
    version = "6"
    evidence = Evidence.POISONING
    Options = DuplicatesOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        self.context = context
        self.baseline = baseline
        self.k = self.resolve_options(context).k
        # Exact conflicts are checked against the whole baseline, not only the sample detectors fit on.
        hashes, labels = context.baseline_hashes or (_hashes(baseline, context), baseline.labels)
        self.base_pairs = LabelledHashes(hashes, labels)
        self.n_full = int(hashes.shape[0])
        self.p_exact_conflict = (1.0 + self.base_pairs.conflicting_rows.sum()) / (self.n_full + 1.0)
        # How often trusted records themselves share their inputs with a record of another label: the
        # false-positive rate of flagging every exact conflict (``conflict_flag_rate``).
        self.conflict_rate = float(self.base_pairs.conflicting_rows.sum()) / max(self.n_full, 1)
        rng = np.random.default_rng(context.seed)
        self.base_hashes = hashes
        self.rng = rng
        self.scale, self.calibration = 1.0, np.zeros(0)
        self.trusted_distance, self.margin_calibration = np.zeros(0), np.zeros(0)
        # With one label in the reference no trusted record has a neighbour of another label: every
        # calibration score would be -inf, and any record of a new label near the reference would read as
        # beyond all of them (p=1e-81 with no record flagged, blocking a clean batch). Near conflicts then
        # have nothing to be calibrated on and are left out, as for a reference of one record.
        if len(baseline) >= 2 and np.unique(baseline.labels).size >= 2:
            dist, idx = knn(baseline.features, baseline.features, self.k, exclude_self=True, labels=baseline.labels)
            # The leave-one-out search keeps neighbours label by label, and a label's only record has none
            # but itself: where every label of the reference has one record (a self-reference fold of a
            # tiny first import, labels a, b), no record has a neighbour to calibrate near conflicts with.
            # The near view is then left out, as for a reference of one record; exact conflicts still count.
            if dist.shape[1]:
                self.scale = float(np.median(dist[:, 0])) or float(np.mean(dist[:, 0])) or 1.0
                self.calibration = -_nearest_other(dist, idx, baseline.labels, baseline.labels) / self.scale
                # How far trusted records sit from one another, and how strongly their content reads as
                # their own label: what twins inside the batch are read against (``ambiguous_twins``).
                self.trusted_distance = dist.mean(axis=1)
                table = class_table(baseline, baseline.features, len(context.classes), exclude_self=True)
                self.margin_calibration = label_margin(table, baseline.labels)
        return self

    def _mass_calibration(self, size: int) -> np.ndarray:
        size = min(size, self.base_hashes.shape[0])
        if size == 0:
            return np.zeros(0)
        sample = self.base_hashes[self.rng.choice(self.base_hashes.shape[0], size, replace=False)]
        return _multiplicity(sample)

    def baseline_scores(self) -> np.ndarray:
        """Scores (1 - p) of the reference's own calibration records, for plots against the contribution."""
        return reference_scores(self.calibration)

    record_stage = True
    record_stage_skips = False  # score_records never raises InputError

    def score(self, contribution: GateData) -> DetectorResult:
        return self.finish(contribution, self.score_records(contribution))

    def score_records(self, chunk: GateData) -> dict[str, np.ndarray]:
        """Input hashes, the nearest trusted record with another label (distance, position), the mean distance
        to the nearest trusted records and the label's kNN margin, per record."""
        out = {"hashes": _hashes(chunk, self.context)}
        if self.calibration.shape[0] and len(chunk):
            dist, idx = knn(self.baseline.features, chunk.features, self.k, labels=self.baseline.labels)
            out["near_other"], out["nearest"] = _nearest_other_with_position(
                dist, idx, self.baseline.labels, chunk.labels
            )
            out["trusted_distance"] = dist.mean(axis=1)
            out["margin"] = label_margin(
                class_table(self.baseline, chunk.features, len(self.context.classes)), chunk.labels
            )
        return out

    def finish(self, contribution: GateData, records: dict[str, np.ndarray]) -> DetectorResult:
        ctx = self.context
        n = len(contribution)
        hashes = records["hashes"] if n else _hashes(contribution, ctx)
        labels = contribution.labels
        # Exact conflicts with the baseline or inside the batch.
        batch_pairs = LabelledHashes(hashes, labels)
        with_baseline = self.base_pairs.other_labels(hashes, labels)
        in_batch = batch_pairs.conflicting_rows
        copies = self.base_pairs.contains(hashes)
        exact_conflict = with_baseline | in_batch
        # Twins inside a batch of new content, under labels the baseline itself gives content like theirs:
        # ambiguous inputs (a page name of two sections), queued for review but not counted as conflicts.
        ambiguous = self.ambiguous_twins(contribution, hashes, in_batch & ~copies, exact_conflict, records)
        p_exact = np.where(exact_conflict & ~ambiguous, self.p_exact_conflict, 1.0)
        # Near conflicts: nearest record with another label, in the reference or the batch.
        p_near = np.ones(n)
        near_other = np.full(n, np.inf)
        moved = np.zeros(n, dtype=bool)
        if self.calibration.shape[0] and n:
            near_other, nearest = records["near_other"], records["nearest"]
            score = -near_other / self.scale
            p_near = tail_p_values(self.calibration, score)
            # Full conformal: with the record added to the reference, its nearest other-labelled record's
            # own score becomes at least as suspicious as the record's (the distance is mutual). A
            # leave-one-out calibration leaves that pair out and, as close pairs count twice among
            # trusted scores and once here, would flag about twice as often as alpha.
            paired = nearest >= 0
            paired[paired] = self.calibration[nearest[paired]] < score[paired]
            n_cal = self.calibration.shape[0]
            p_near = np.where(paired, np.minimum(1.0, p_near + 1.0 / (n_cal + 1.0)), p_near)
            # A record that moved with its batch (its class moved towards other labels, and it reads as
            # its own label among the batch's records) is difference, not a near conflict.
            read_as = np.where(nearest >= 0, self.baseline.labels[np.maximum(nearest, 0)], -1)
            moved = moved_with_batch(
                contribution, score, p_near, read_as, self.calibration, self.baseline.labels, ctx.seed, self.baseline
            )
            p_near = np.where(moved, 1.0, p_near)
        # Mass duplication inside the batch.
        multiplicity = _multiplicity(hashes)
        p_mass = tail_p_values(self._mass_calibration(n), multiplicity) if n else np.ones(0)
        p_mass = np.where(multiplicity > 1, p_mass, 1.0)
        p = np.minimum(1.0, 2.0 * np.minimum(p_exact, p_near))
        n_cal = max(self.calibration.shape[0], 1)
        # An exact conflict (a copy of a trusted record under another label, or two records of the batch
        # with the same inputs and different labels) is singled out whenever trusted data itself holds
        # such conflicts more rarely than alpha: that rate is this flag's false-positive rate. It is the
        # rate the trusted records show (``conflict_rate``), not the p-value's conservative
        # ``(1 + conflicts) / (N + 1)``: with that floor a baseline of fewer than 1 / alpha records (300 at
        # the default alpha shared by three detectors) holding no conflict at all could flag none, and 20
        # exact copies of trusted records under the other label went unflagged and unqueued. An exact
        # conflict is never excused as a move of the batch: the same inputs under two labels cannot be one.
        flagged = flag_mask(p, ctx.alpha, n_cal) | (exact_conflict & (self.conflict_rate <= ctx.alpha))
        findings = []
        for i in [j for j in np.argsort(p, kind="stable") if flagged[j]][:200]:
            own = label_name(ctx.classes, labels[i])
            evidence: dict[str, Any] = {"multiplicity": int(multiplicity[i]), "exact_conflict": bool(exact_conflict[i])}
            if exact_conflict[i]:
                others = (self.base_pairs.labels_of(hashes[i]) | batch_pairs.labels_of(hashes[i])) - {int(labels[i])}
                evidence["other_labels"] = sorted(label_name(ctx.classes, c) for c in others)
                evidence["ambiguous"] = bool(ambiguous[i])
                where = "the baseline" if with_baseline[i] else "this contribution"
                reason = (
                    f"exact copy of a record in {where} labelled "
                    f"{', '.join(repr(x) for x in evidence['other_labels'])}, here labelled '{own}'"
                )
                if ambiguous[i]:
                    reason += (
                        ": every one of these labels is one the baseline gives content like it, in a batch of "
                        "content new to it (ambiguous inputs, for review; not counted as a conflict)"
                    )
            else:
                evidence["distance_to_other_label"] = float(near_other[i])
                reason = (
                    f"near duplicate (distance {near_other[i]:.3g}, typical {self.scale:.3g}) of a record "
                    f"with another label, here labelled '{own}'"
                )
            findings.append(
                Finding(self.name, float(1 - p[i]), f"{reason}; p={p[i]:.2g}", row=int(i), evidence=evidence)
            )
        summary = {
            "exact_conflicts": int(exact_conflict.sum()),
            "exact_copies_of_baseline": int(copies.sum()),
            "in_batch_duplicate_records": int((multiplicity > 1).sum()),
            "max_multiplicity": int(multiplicity.max()) if n else 0,
            "baseline_records_hashed": int(self.n_full),
            "moved_with_batch": int(moved.sum()),
            "ambiguous_twins": int(ambiguous.sum()),
        }
        # Exact conflicts are near-certain evidence: test their count against the baseline's own rate.
        conflict_p = binomial_p_value(int((exact_conflict & ~ambiguous).sum()), n, self.p_exact_conflict)
        result = count_result(
            self.name,
            self.version,
            p,
            ctx.alpha,
            n_cal,
            findings,
            summary,
            flagged=flagged,
            extra_p=conflict_p,
            # An exact conflict is near-certain evidence: it goes to the review queue however few.
            flagged_by_rule=exact_conflict,
            contribution_findings=[
                *self._mass_findings(p_mass, multiplicity, n),
                *_ambiguity_findings(ambiguous, contribution),
            ],
        )
        result.reason = conflicts_reason(
            with_baseline, in_batch & ~with_baseline, flagged, contribution, self.conflict_rate, ambiguous
        )
        return result

    def ambiguous_twins(
        self,
        contribution: GateData,
        hashes: np.ndarray,
        twins: np.ndarray,
        exact_conflict: np.ndarray,
        records: dict[str, np.ndarray],
    ) -> np.ndarray:
        """Records of the batch whose inputs carry two labels in the batch and none in the baseline (``twins``),
        read as the baseline's own ambiguity: every record of the same inputs has a kNN margin the trusted
        records' own reach at a conformal p-value above alpha, and the batch's other records are new
        content (further from their nearest trusted records than trusted records are from one another,
        beyond a share ``NEW_CONTENT_SHARE`` of them)."""
        out = np.zeros(len(contribution), dtype=bool)
        if not twins.any() or "margin" not in records or not self.margin_calibration.shape[0]:
            return out
        rest = ~exact_conflict
        if not reads_further_than_trusted(
            records["trusted_distance"][rest], self.trusted_distance, beyond_share=NEW_CONTENT_SHARE
        ):
            return out
        rows = np.flatnonzero(twins)
        plausible = conformal_p_values(self.margin_calibration, records["margin"][rows]) > self.context.alpha
        # A set of inputs is ambiguous only when every label it carries is plausible (its twins all are).
        _, group = np.unique(hashes[rows], return_inverse=True)
        out[rows] = np.bincount(group, weights=~plausible, minlength=int(group.max()) + 1)[group] == 0
        return out

    def _mass_findings(self, p_mass: np.ndarray, multiplicity: np.ndarray, n: int) -> list[Finding]:
        """One population-level finding when the batch repeats its own records more than trusted data does."""
        n_mass = min(n, self.base_hashes.shape[0])
        _, p = excess_flags_p_value(p_mass, self.context.alpha, n_mass)
        if n == 0 or p >= 1e-3:
            return []
        repeated = int((multiplicity > 1).sum())
        return [
            Finding(
                self.name,
                1.0 - p,
                f"{repeated} of {n} records repeat the same inputs (up to {int(multiplicity.max())} copies), "
                f"more than a trusted sample of the same size does (p={p:.2g})",
                evidence={"repeated_records": repeated, "max_multiplicity": int(multiplicity.max()), "p_value": p},
            )
        ]
