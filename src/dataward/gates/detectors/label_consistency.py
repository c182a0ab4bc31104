"""Label consistency: does a record's content contradict its label, judged by trusted records?

Views, each a nonconformity score (large = the content points to another label), each calibrated
against the reference's own scores computed the same way (leave-one-out or out-of-fold):

* **kNN margin** (every kind): ``log`` of the mean distance to the ``k`` nearest reference records of
  the record's own label over the same for the closest other label, on the gate features.
  Calibrated on the reference with leave-one-out neighbours.
* **trusted probe**, trained on the reference only, so that flips in the contribution cannot teach it
  their labels (a targeted flip of many records of one class would otherwise vouch for itself):

  - with text columns: multinomial naive Bayes on hashed, TF-IDF-weighted word 1-2-grams and
    character 3-5-grams of the raw text (the SVD-reduced gate features lose the rare words that
    decide a text's class). Naive Bayes has exact leave-one-out scores at the cost of one fit, so the
    reference's calibration scores cost nothing extra, and no fold split leaves a record's score to
    the luck of which similar records shared its folds;
  - otherwise: a standardized logistic regression, ``folds``-fold on the reference; each contribution
    record is scored by one fold model chosen at random, exactly as the held-out reference records
    of that fold are, so both sides stay exchangeable.

  The score is the probe's log-probability margin: ``log max_{c != y} p(c|x) - log p(y|x)``.
* **contribution probe** (text only, option ``contribution_probe``): the same naive Bayes, leave-one-out
  over reference and contribution together, each record left out with its near-copies of the same label
  (``dataward.gates.near_copies``; version 8): a flipped line sent five times would otherwise vouch for
  its own label four times over. A text batch's clean records teach the model words the
  baseline never had; on images and tabular features the trusted probe already knows the space, and
  the batch's own flips would only blur it.

The views' p-values are fused Fisher-style (``-sum log p``) and the fused score is calibrated once more
against the reference's own fused scores (each reference record's p-values leave it out of its own
calibration set). Records flag at ``flag_mask(p, alpha)``: a p-value from the extrapolated tail beyond
every calibration score never flags on its own. Ties inside one calibration bin are broken by the
fused score, moving p by less than ``5e-4 / (n + 1)``.

Flags, and the contribution-level count, are limited to records that are typical members of another
trusted class (``min_typicality``): a flipped record is an ordinary member of the class it came from,
while a shifted source's records, which trusted models misread, resemble no trusted class. Those make
one contribution-level finding for review instead. Every record's p-value still ranks it.

A record that does resemble another trusted class but moved with its batch (a class whose
unsuspected records read further from their label than its trusted records do, and among the batch's
own records the record still reads as its label) is not flagged or counted either; its rank is kept
(``_within_batch``, as ``backdoor`` and ``duplicates`` read it).

Content that contradicts its label is evidence of poisoning (``Evidence.POISONING``). The detector
never sets ``block`` itself: its contribution-level p-value is the excess of small p-values over the
baseline's own rate (``count_result``), combined with Fisher's sum of ``-log p`` over the batch
(``fisher_excess_p_value``: label noise in hard data is many records each only moderately unlikely),
and the gate blocks when that is below ``policy.block_p``. Only records that each contradict their
label may make that block (version 5): unless the records flagged at alpha, finer, or beyond every
trusted record are themselves more than calibration explains (``flagged_count_p_value`` at alpha) and
none of the batch reads as new content (no shift finding, no class moved with its batch), the whole
test is held at ``REVIEW_FLOOR`` and only its part about those records
(``excess_flags_p_value(finest=True)``, with the order statistics) can still reach ``block_p``. Records
each only mildly against their label (the counts at 4 and 16 alpha, Fisher's sum) are what a correctly
labelled selection of hard examples, or a new scanner's boundary records, look like too: alone, they
are a reason to review, worded in ``reason`` (how many, at what threshold, against how many expected).
cleanlab's ``find_label_issues`` on the probe's probabilities is reported with each finding.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, replace
from typing import Any, Self

import numpy as np
import pyarrow as pa
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from dataward.domain.schema import ColumnKind
from dataward.gates.base import Detector, DetectorResult, Evidence, Finding, GateContext, GateData, register
from dataward.gates.calibration import (
    conformal_p_values,
    excess_flags_count,
    excess_flags_p_value,
    fisher_excess_p_value,
    flag_mask,
    flagged_count_p_value,
    leave_one_out_p_values,
    leave_one_out_tail_p_values,
    mondrian_p_values,
    p_text,
    resolution_flags,
    tail_p_values,
)
from dataward.gates.detectors._batch_images import featurize_undone, grid_images, image_input, image_mode
from dataward.gates.detectors._capture import batch_capture, featurize_captured, went_through
from dataward.gates.detectors._common import count_result, label_name, neighbour_evidence, reference_scores
from dataward.gates.detectors._frame import estimate_frame_shift
from dataward.gates.detectors._within_batch import (
    MOVED_CANDIDATE_P,
    WITHIN_BATCH_NEIGHBOURS,
    classes_moved_apart_from,
    mostly_misread,
    reads_as_own_within_batch,
)
from dataward.gates.fit_memo import MEMO, fit_key
from dataward.gates.near_copies import RARE_BELOW, TOKEN_PATTERN, near_copies
from dataward.gates.neighbours import K_MAX, class_distances, knn
from dataward.gates.new_labels import rows_text

UNREAD_P = MOVED_CANDIDATE_P
"""A second reading (through a batch's capture, or with its frame's move undone) that finds a record this far
against its label while the record resembles no trusted class cannot read it: the first reading stands."""

CAPTURE_STREAM = 41
"""Seed stream of the images sampled to estimate a batch's capture (``_through_capture``)."""

FRAME_STREAM = 43
"""Seed stream of the images sampled to estimate the frame's move (``_moved_back``)."""

DEAD_MIN_RECORDS = 10
"""Records a batch needs before a column holding one value in all of them is read as not measured (a
handful of records may share a value by chance)."""


@dataclass(frozen=True)
class Options:
    """Options of ``label_consistency`` (policy ``options.label_consistency``)."""

    k: int = 5
    """Neighbours per class in the kNN margin (1 to 20)."""
    folds: int = 0
    """Cross-validation folds of the logistic-regression probe; 0: 10 below 2,000 reference records, else 5."""
    probe_max_train: int = 10_000
    """At most this many records train one logistic-regression fold model."""
    contribution_probe: bool = True
    """Text: also a naive Bayes probe leave-one-out over reference + contribution."""
    text_max_chars: int = 2_000
    """Characters of each text the naive Bayes probe reads."""
    cleanlab: bool = True
    """Report cleanlab's ``find_label_issues`` verdict on the probe's probabilities with each finding."""
    min_typicality: float = 0.05
    """A record is flagged only when it is a typical member of another trusted class: its kNN distance
    to that class has a conformal p-value above this among the class's own records."""

    def __post_init__(self) -> None:
        if not 1 <= self.k <= K_MAX:
            raise ValueError(f"k must be between 1 and {K_MAX}, got {self.k}")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"folds must be 0 (automatic) or at least 2, got {self.folds}")
        if self.probe_max_train < 10:
            raise ValueError(f"probe_max_train must be at least 10, got {self.probe_max_train}")
        if self.text_max_chars < 1:
            raise ValueError(f"text_max_chars must be positive, got {self.text_max_chars}")
        if not 0.0 <= self.min_typicality < 1.0:
            raise ValueError(f"min_typicality must be in [0, 1), got {self.min_typicality}")


NB_SMOOTHING = 0.1
"""Additive smoothing of the naive Bayes feature counts."""
HASH_BITS = 18
"""Each n-gram block hashes into ``2 ** HASH_BITS`` columns (compacted to the columns in use)."""
TIE_BREAK = 5e-4
"""Ties inside one calibration bin are broken by moving p by less than ``TIE_BREAK / (n + 1)``."""
MAX_FINDINGS = 200
PROBE_BLOCK = 65_536
"""Contribution rows the feature probe scores at a time."""
REVIEW_FLOOR = 1e-4
"""The contribution-level p-value is never below this on the mild evidence alone (the coarser counts,
Fisher's sum): records each only mildly against their label are a reason to review, not evidence of
poisoning (``backdoor`` and ``clean_validation`` hold their review-level evidence at the same floor)."""
SHIFT_FINDING_P = 1e-3
"""Below this, disagreeing records that resemble no trusted class are reported for review."""


@register
class LabelConsistency(Detector):
    """Records whose content contradicts their label, by trusted neighbours and trusted probe models."""

    name = "label_consistency"
    version = "8"
    evidence = Evidence.POISONING
    Options = Options

    reads_without_dead = False
    """True for the detector fitted again without a batch's dead columns (``_without_columns``)."""
    reads_captured = False
    """True for the detector fitted again on trusted images taken through a batch's lower-resolution
    capture (``_through_capture``)."""

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        self.opts: Options = self.resolve_options(context)
        self.context, self.baseline = context, baseline
        self.n_classes = len(context.classes)
        self.k_eff = min(self.opts.k, len(baseline) - 1)
        self.calibration: dict[str, np.ndarray] = {}
        self.text_columns: list[str] = []
        if self.k_eff < 1:
            return self
        table = self._class_table(baseline.features, exclude_self=True)
        # Each trusted record's distance to its own class: how far a typical member of a class sits.
        self.own_class_distance, others = _own_and_others(table, baseline.labels)
        self.calibration["knn_margin"] = _margin_of(self.own_class_distance, others)
        if np.unique(baseline.labels).shape[0] >= 2:
            columns = [c.name for c in context.schema.of_kind(ColumnKind.TEXT)]
            if columns and baseline.table is not None:
                self.text_columns = columns
                self.calibration["text_probe"] = self._fit_text_probe(baseline)
            else:
                self.calibration["probe"] = self._fit_dense_probe(baseline)
        return self

    def baseline_scores(self) -> np.ndarray:
        """Scores (1 - p) of the reference's own kNN-margin calibration records, for plots."""
        return reference_scores(self.calibration.get("knn_margin", np.zeros(0)))

    # --- kNN margin ----------------------------------------------------------------------------

    def _class_table(self, features: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
        """Mean distance of every row to its ``k`` nearest reference records of each class (inf: no such class)."""
        per_class = class_distances(
            self.baseline.features, self.baseline.labels, features, self.k_eff, exclude_self=exclude_self
        )
        table = np.full((features.shape[0], self.n_classes), np.inf)
        for c, d in per_class.items():
            table[:, c] = d
        return table

    def _typicality(self, others: np.ndarray) -> np.ndarray:
        """Per record: how typical a member it would be of the nearest trusted class other than its label.

        Conformal p-value of its kNN distance to that class among the class's own records' distances
        (leave-one-out). A flipped record is an ordinary member of the class it came from; a record
        from a shifted source (a new scanner, a recalibrated instrument) sits far from every class, so
        the trusted models' disagreement with its label says more about the shift than about the label.
        """
        nearest = others.argmin(axis=1)
        distance = others[np.arange(others.shape[0]), nearest]
        p, _ = mondrian_p_values(
            self.own_class_distance, self.baseline.labels, np.where(np.isfinite(distance), distance, 1e300), nearest
        )
        return np.where(np.isfinite(distance), p, 0.0)

    # --- text probe ----------------------------------------------------------------------------

    def _fit_text_probe(self, base: GateData) -> np.ndarray:
        parts = _column_strings(base.table, self.text_columns)
        texts = _joined(parts, self.opts.text_max_chars)
        self.ref_columns = _cut_columns(parts, self.opts.text_max_chars)
        self.blocks = [_word_counts(texts), _char_counts(texts)]
        self.idf = [_reference_idf(b) for b in self.blocks]
        self.ref_matrix = _weighted(self.blocks, self.idf, reference=True)
        self.nb = NaiveBayes(self.ref_matrix, base.labels, self.n_classes)
        # Kept for finish (cleanlab's view of the reference without the contribution probe).
        self.ref_log_joint = self.nb.loo_log_joint()
        return log_margin(self.ref_log_joint, base.labels)

    # --- dense probe ---------------------------------------------------------------------------

    def _fit_dense_probe(self, base: GateData) -> np.ndarray:
        """Each trusted record's log-margin under a probe fitted on the other folds (the fold models and
        the records' log-probabilities are kept for scoring). It depends on the trusted records, the seed
        and the options alone: a process fits it once for the same ones (``fit_memo``)."""
        x, y = base.features.astype(np.float64), base.labels
        folds = self.opts.folds or (10 if x.shape[0] < 2000 else 5)
        probe_max_train, seed, n_classes = self.opts.probe_max_train, self.context.seed, self.n_classes
        key = fit_key("label_consistency.dense_probe", x, y, n_classes, folds, probe_max_train, seed)
        fitted = MEMO.get_or_fit(
            key, lambda: _cross_fitted_probes(x, y, n_classes, folds, probe_max_train, seed), _ProbeFit.weight
        )
        self.fold_models, self.ref_log_proba = fitted.models, fitted.log_proba
        return fitted.margins

    # --- scoring -------------------------------------------------------------------------------

    record_stage = True
    record_stage_skips = False  # score_records never raises InputError

    def score(self, contribution: GateData) -> DetectorResult:
        return self.finish(contribution, self.score_records(contribution))

    def score_records(self, chunk: GateData) -> dict[str, np.ndarray]:
        """Mean distance of each record to the nearest trusted records of its own class and of every other."""
        if not self.calibration or len(chunk) == 0:
            return {}
        own, others = _own_and_others(self._class_table(chunk.features), chunk.labels)
        return {"own": own, "others": others}

    def finish(self, contribution: GateData, records: dict[str, np.ndarray]) -> DetectorResult:
        n = len(contribution)
        if not self.calibration or n == 0:
            return DetectorResult(
                self.name,
                self.version,
                np.ones(n),
                np.zeros(n, bool),
                summary={"skipped": "the baseline has too few records"} if n else {},
            )
        if (dead := self._dead_columns(contribution)) is not None:
            return self._without_columns(dead, contribution)
        reading = self._read(contribution, records)
        capture = frame = None
        if (column := self._changed_images(contribution, reading)) is not None:
            mode = image_mode(self.baseline.table.column(column))
            reading, capture = self._through_capture(contribution, reading, column, mode)
            if capture is None:
                reading, frame = self._moved_back(contribution, reading, column, mode)
        return self._result(contribution, reading, capture, frame)

    def _read(self, contribution: GateData, records: dict[str, np.ndarray]) -> _Reading:
        """Every record read against the trusted records: its p-value, and the masks that keep it from a
        flag (a record that resembles no trusted class, moved with its batch, or carries a new label)."""
        ctx, base = self.context, self.baseline
        n = len(contribution)
        calibration = dict(self.calibration)
        own, others = records["own"], records["others"]
        test = {"knn_margin": _margin_of(own, others)}
        log_proba, ref_log_proba = None, None
        if "text_probe" in calibration:
            parts = _column_strings(contribution.table, self.text_columns)
            texts = _joined(parts, self.opts.text_max_chars)
            matrix = _new_rows_matrix(texts, self.idf)
            log_proba = self.nb.log_joint(matrix)
            test["text_probe"] = log_margin(log_proba, contribution.labels)
            ref_log_proba = self.ref_log_joint
            if self.opts.contribution_probe:
                # Leave-one-out over reference + contribution: both sides are scored alike.
                # Each record is read without its near-copies of the same label, trusted or not: a flipped
                # line sent five times would otherwise vouch for its own label four times over.
                labels = np.concatenate([base.labels, contribution.labels])
                union = NaiveBayes(sparse.vstack([self.ref_matrix, matrix], format="csr"), labels, self.n_classes)
                columns = _cut_columns(parts, self.opts.text_max_chars)
                copies = near_copies(
                    [ref + new for ref, new in zip(self.ref_columns, columns, strict=True)],
                    labels,
                    token_pattern=TOKEN_PATTERN,
                    rare_below=RARE_BELOW,
                )
                joint = union.loo_log_joint(copies.group)
                margins = log_margin(joint, labels)
                nb = len(base)
                calibration["contribution_probe"], test["contribution_probe"] = margins[:nb], margins[nb:]
                log_proba, ref_log_proba = joint[nb:], joint[:nb]
        elif "probe" in calibration:
            assign = np.random.default_rng(ctx.seed + 1).integers(len(self.fold_models), size=n)
            log_proba = np.zeros((n, self.n_classes))
            # A block of rows at a time: the features as float64 all at once would be 8 bytes per value
            # of the whole contribution (they may be memory-mapped from a partitioned scan's spill).
            for start in range(0, n, PROBE_BLOCK):
                x = contribution.features[start : start + PROBE_BLOCK].astype(np.float64)
                block, part = assign[start : start + PROBE_BLOCK], log_proba[start : start + PROBE_BLOCK]
                for j, model in enumerate(self.fold_models):
                    rows = block == j
                    if rows.any():
                        part[rows] = model.log_proba(x[rows])
            test["probe"] = log_margin(log_proba, contribution.labels)
            ref_log_proba = self.ref_log_proba
        p, fused_calibration, fused_test = _fuse(calibration, test, strongest="contribution_probe")
        n_cal = fused_calibration.shape[0]
        # Break ties inside a calibration bin by the fused score (less than a bin's width).
        rank = np.argsort(np.argsort(fused_test, kind="stable"), kind="stable") / max(1, n - 1)
        p = np.maximum(p - (TIE_BREAK / (n_cal + 1.0)) * rank, 0.0)
        # Only content that looks like another trusted class contradicts a label. A record the trusted
        # models disagree with but that resembles no trusted class is new content, not a flip: it is
        # left to the outlier and drift detectors (review), and counted below as one shift finding.
        typical = self._typicality(others) > self.opts.min_typicality
        shifted_p = np.where(typical, 1.0, p)
        ranking_p, p = p, np.where(typical, p, 1.0)
        # A record that does look like another trusted class may only have moved with its batch (a
        # scanner shifted one column turns zeros towards sixes): in a class that moved, a candidate
        # that reads as its own label among the batch's own records is a difference for review, not
        # a flip; as ``backdoor`` and ``duplicates`` read it (``_within_batch``). A flip stays closer
        # to the batch's records of the class its content came from. Its rank is kept.
        moved = self._moved_with_batch(contribution, p, ranking_p, fused_test, fused_calibration, others)
        p = np.where(moved, 1.0, p)
        # A label no trusted record carries has nothing its content could contradict: the trusted models
        # give it no probability at all. Such records are a new class (drift reports it, for review),
        # named in the finding below. (A trusted label written differently, '1.0' for '1', is that label
        # already: ``scan`` reads it so for every detector.)
        unknown = np.bincount(base.labels, minlength=len(ctx.classes))[contribution.labels] == 0
        p = np.where(unknown, 1.0, p)
        # How close each record sits to the nearest trusted class, whichever: which of two readings places it
        # among trusted records (``_moved_back``), asked without its label.
        nearest = np.minimum(own, np.min(others, axis=1, initial=np.inf))
        return _Reading(ranking_p, p, shifted_p, moved, n_cal, list(calibration), log_proba, ref_log_proba, nearest)

    def _result(
        self,
        contribution: GateData,
        reading: _Reading,
        capture: dict[str, Any] | None,
        frame: dict[str, Any] | None = None,
    ) -> DetectorResult:
        """The detector's result from the batch's reading: flags, the counts and the verdict's sentence."""
        ctx, base = self.context, self.baseline
        n = len(contribution)
        p, ranking_p, shifted_p, moved, n_cal = (
            reading.p,
            reading.ranking_p,
            reading.shifted_p,
            reading.moved,
            reading.n_cal,
        )
        log_proba, ref_log_proba = reading.log_proba, reading.ref_log_proba
        by_resolution = resolution_flags(p, ctx.alpha, n_cal)
        flagged = _flags(p, ctx.alpha, n_cal)

        # Only records that each contradict their label may block: the count at the threshold a record
        # is flagged at or finer, and beyond every trusted record. Many records each only mildly
        # against their label (the coarser counts, Fisher's sum) are what a selection of hard examples
        # or a new source's boundary records look like too: alone, a reason to review, never to block.
        # They weigh in only once the flagged records are themselves more than calibration explains (at
        # alpha): label noise in short texts is a few records flagged and many just short of it.
        fine_p = excess_flags_p_value(p, ctx.alpha, n_cal, beyond_calibration=True, finest=True)[1]
        flagged_count_p = flagged_count_p_value(p, ctx.alpha, n_cal)
        coarse_count_p = excess_flags_p_value(p, ctx.alpha, n_cal, beyond_calibration=True, finest=False)[1]
        # Flipped labels in hard data are many records each only moderately unlikely: add them up.
        fisher_p = fisher_excess_p_value(p, n_cal)
        coarse_p = min(1.0, 2.0 * min(coarse_count_p, fisher_p))
        summary: dict[str, Any] = {
            "k": self.k_eff,
            "views": reading.views,
            "disagreeing_but_atypical": int(flag_mask(shifted_p, ctx.alpha, n_cal).sum()),
            "moved_with_batch": int(moved.sum()),
            "capture": capture,
            "frame": frame,
            # The count behind the contribution-level p-value, for the reason a reviewer reads: the
            # blocking (fine) count's, and the coarser evidence's beside it.
            "count_test": excess_flags_count(p, ctx.alpha, n_cal, beyond_calibration=True, finest=True),
            "fine_p": float(min(1.0, 2.0 * fine_p)),
            "flagged_count_p": float(flagged_count_p),
            "mild_test": {
                **excess_flags_count(p, ctx.alpha, n_cal, finest=False),
                "count_p": float(coarse_count_p),
                "fisher_p": float(fisher_p),
                "p_value": float(coarse_p),
            },
        }
        issues, quality = None, None
        if log_proba is not None:
            probs = _softmax(log_proba)
            quality = probs[np.arange(n), contribution.labels]
            if self.opts.cleanlab and ref_log_proba is not None:
                issues = _cleanlab_issues(
                    np.concatenate([base.labels, contribution.labels]), np.vstack([_softmax(ref_log_proba), probs])
                )
                if issues is not None:
                    issues = issues[len(base) :]
                    summary["cleanlab_label_issues"] = int(issues.sum())
        findings = self._findings(contribution, p, flagged, quality, issues)
        shift_findings = self._shift_findings(shifted_p, n_cal)
        # The detector read part of the batch as new content (records that resemble no trusted class
        # beyond alpha's rate, or a class that moved with its batch): a new source's records at the edge
        # of their class read mildly against their label too, so the mild evidence cannot add to a block.
        new_content = bool(shift_findings) or bool(moved.any()) or capture is not None or frame is not None
        summary["new_content"] = new_content
        summary["new_content_shift"] = bool(shift_findings)
        result = count_result(
            self.name,
            self.version,
            p,
            ctx.alpha,
            n_cal,
            findings,
            summary,
            flagged=flagged,
            # Flipped labels in hard data are many records each only moderately unlikely: add them up.
            extra_p=fisher_p,
            contribution_findings=shift_findings + self._new_label_findings(contribution),
            flagged_by_rule=by_resolution,
            # Every p-value is conformal against the same n_cal fused reference statistics (one pooled
            # calibration, no per-class tails), so the count beyond all of them has its exact law.
            beyond_calibration=True,
        )
        # With an excess of flagged records in a batch none of which reads as new content, the whole test
        # (every count and Fisher's sum) measures it. Otherwise the whole test is held at REVIEW_FLOOR, so
        # that it reviews (and leads the records' combined score) but cannot reach block_p; only the
        # flagged records' own part may still block.
        held = False
        if flagged_count_p > ctx.alpha or new_content:
            whole = result.p_value
            result.p_value = float(min(1.0, 2.0 * fine_p, max(whole, REVIEW_FLOOR)))
            held = whole < result.p_value
        result.summary["held_for_review"] = held
        result.reason = self._reason(result.summary, len(contribution), flagged, result.p_value, held, n_cal)
        result.summary["reason_complete"] = True
        # Every record keeps its own p-value for ranking (a flip whose content is also unusual still
        # ranks high); only flags and the contribution-level count are limited to typical records.
        result.p_values = ranking_p
        return result

    def _dead_columns(self, contribution: GateData) -> np.ndarray | None:
        """The numeric columns that hold one value for every record of the batch where the trusted records
        spread (a measurement a site does not take, exported as 0), when the batch has some and keeps
        others; else None. Only for tables whose every input is numeric (one feature per column): a
        category every record shares is information, not a measurement left out."""
        if self.reads_without_dead or "probe" not in self.calibration or len(contribution) < DEAD_MIN_RECORDS:
            return None
        if not all(c.kind is ColumnKind.NUMERIC for c in self.context.schema.inputs):
            return None
        batch, trusted = contribution.features, self.baseline.features
        dead = np.all(batch == batch[:1], axis=0) & np.any(trusted != trusted[:1], axis=0)
        return dead if dead.any() and not dead.all() else None

    def _without_columns(self, dead: np.ndarray, contribution: GateData) -> DetectorResult:
        """The detector fitted and run again on the other columns. Left in, a column the batch does not
        measure sits every record standard deviations from every trusted one: the batch reads as new
        content, and the evidence of relabelled records in it is held (20 malignant tumours sent as
        'benign' in a batch whose symmetry columns were 0 went to review). Out, the records are read on
        what they carry, as any model trained on them will have to."""
        kept = ~dead
        base = self.baseline
        inner = type(self)()
        inner.reads_without_dead = True
        inner.fit(GateData(np.ascontiguousarray(base.features[:, kept]), base.labels, base.table), self.context)
        sliced = np.ascontiguousarray(contribution.features[:, kept])
        result = inner.score(GateData(sliced, contribution.labels, contribution.table, contribution.groups))
        names = [c.name for c in self.context.schema.inputs]
        result.summary["columns_left_out"] = [names[i] for i in np.flatnonzero(dead)]
        return result

    def _reason(
        self, summary: dict[str, Any], n: int, flagged: np.ndarray, p_value: float, held: bool, n_cal: int
    ) -> str:
        """The verdict's sentence: each count beside the p-value of its own test, and what decided.

        The flagged records (at alpha, or finer, or beyond every trusted record) first, then the records
        that read mildly against their label (the coarser count) and Fisher's sum; when the flagged
        records are not more than calibration explains (``held``), that the rest is held for review.
        Against fewer trusted records than alpha needs (``n_cal < 1/alpha - 1``) no record is flagged at
        alpha: those flagged are the pile at the lowest p-value reached (``calibration.resolution_flags``),
        and the sentence says so (it said "flagged at alpha" beside a limit saying no record could be); none
        flagged, it says so as ever."""
        alpha = self.context.alpha
        fine, mild = summary.get("count_test") or {}, summary["mild_test"]
        if 1.0 / (n_cal + 1.0) <= alpha or not flagged.any():
            said = (
                f"{int(flagged.sum())} of {n} records flagged at alpha={alpha:.3g}, where {alpha * n:.1f} are expected"
            )
        else:
            said = (
                f"{int(flagged.sum())} of {n} records flagged together as more than clean records pile at the "
                f"lowest p-value reached (against {n_cal} trusted records no single record can reach "
                f"alpha={alpha:.3g})"
            )
        if fine and not math.isclose(fine["threshold"], alpha, rel_tol=0.05):
            said += f"; {int(fine['count'])} at p<={fine['threshold']:.2g}, where {fine['expected']:.1f} are expected"
        said += f" (count p={summary['flagged_count_p']:.2g})"
        if mild.get("count") is not None:
            said += (
                f"; {int(mild['count'])} read mildly against their label, at p<={mild['threshold']:.2g}, where "
                f"{mild['expected']:.1f} are expected (count p={mild['count_p']:.2g})"
            )
        said += f"; Fisher's sum of -log p over the batch p={mild['fisher_p']:.2g}"
        if frame := summary.get("frame"):
            said += (
                f"; {frame['read_moved_back']} records read with the frame's move undone ({frame['description']}): "
                f"{frame['flagged_before']} flagged as sent, {frame['flagged_after']} so"
            )
        if capture := summary.get("capture"):
            said += (
                f"; {capture['read_through']} records read against the trusted images taken through the batch's "
                f"capture ({capture['description']}): {capture['flagged_before']} flagged against the trusted "
                f"images as they are, {capture['flagged_after']} so"
            )
        if not held:
            return f"{said}; together with the order statistics of the smallest p-values: {p_text(p_value)}"
        if summary["flagged_count_p"] > alpha:
            why = "The flagged records are not more than calibration explains"
        else:
            what = []
            if summary["new_content_shift"]:
                what.append("more records resembling no trusted class than alpha explains")
            if summary["moved_with_batch"]:
                what.append(f"{summary['moved_with_batch']} records of classes that moved with the batch")
            if summary["capture"]:
                what.append("images captured at a lower resolution")
            if summary["frame"]:
                what.append("images framed off the baseline's frame")
            why = f"Part of the batch reads as new content ({' and '.join(what)}: a shifted source)"
        return (
            f"{said}. {why} (flagged records and the smallest p-values: p={summary['fine_p']:.2g}): the records "
            "that read mildly against their label are at the edge of their class (hard examples, a new source), "
            f"not records whose content contradicts it. Held at p={REVIEW_FLOOR:g} for review"
        )

    def _moved_with_batch(
        self,
        contribution: GateData,
        p: np.ndarray,
        ranking_p: np.ndarray,
        fused_test: np.ndarray,
        fused_calibration: np.ndarray,
        others: np.ndarray,
    ) -> np.ndarray:
        """Candidates (``p <= MOVED_CANDIDATE_P``) in classes that moved (``classes_moved_apart_from`` on
        the fused scores, the trusted records' own fused scores beside them) that read as their own
        label among the batch's records that are not candidates."""
        candidates = p <= MOVED_CANDIDATE_P
        # Every record the ranking calls suspect, atypical ones included, is left out of the class-move
        # test and of the batch's reference: records that resemble no class cannot vouch for flips.
        suspects = ranking_p <= MOVED_CANDIDATE_P
        if not candidates.any():
            return np.zeros(len(contribution), bool)
        labels = contribution.labels
        n_ref = fused_calibration.shape[0]
        in_moved = candidates & classes_moved_apart_from(
            fused_test,
            labels,
            suspects,
            fused_calibration,
            # Both sides censored at the same pooled level: trusted records that would be suspects
            # themselves (pooled leave-one-out p <= MOVED_CANDIDATE_P) are left out, as the batch's are.
            np.where(
                leave_one_out_p_values(fused_calibration) * (n_ref / (n_ref + 1.0)) > MOVED_CANDIDATE_P,
                self.baseline.labels,
                -1,
            ),
            bulk_quantile=None,
        )
        # A class every record of which is a suspect cannot be tested for a move as above (nothing is left
        # to test); its candidates go to the within-batch reading, which excuses them only when the class
        # moved as a whole into content no trusted record holds (``wholesale_new_classes``).
        in_moved |= candidates & mostly_misread(labels, suspects)
        read_as = others.argmin(axis=1)
        return reads_as_own_within_batch(
            contribution, in_moved, suspects, read_as, WITHIN_BATCH_NEIGHBOURS, self.context.seed, trusted=self.baseline
        )

    def _changed_images(self, contribution: GateData, reading: _Reading) -> str | None:
        """The batch's one image column, when its first reading found something a change of every image could
        explain (flagged records beyond calibration, records resembling no trusted class, a class that moved)
        and both tables and the gate's featurization are at hand; else None."""
        ctx, base = self.context, self.baseline
        if self.reads_captured or "probe" not in self.calibration:
            return None
        n_cal = reading.n_cal
        excess = flagged_count_p_value(reading.p, ctx.alpha, n_cal) <= ctx.alpha
        if not (excess or reading.moved.any() or self._shift_findings(reading.shifted_p, n_cal)):
            return None
        column = image_input(ctx.schema)
        if column is None or ctx.featurize is None or contribution.table is None or base.table is None:
            return None
        return column

    def _moved_back(
        self, contribution: GateData, reading: _Reading, column: str, mode: str
    ) -> tuple[_Reading, dict[str, Any] | None]:
        """``reading`` with the records that sit among trusted records once the frame's move is undone on their
        pixels (``_frame``: a scanner that places every page a pixel further right) read so, and the move for
        the summary (None when none was looked for or found).

        Moved, a '6' sent as '0' resembles no trusted class, reads as new content and is not flagged; moved
        back, it reads as the '6' it is. Which reading applies to a record is asked without its label: the one
        that places it nearer to trusted records of some class. A record that never went through the move is
        moved away by the undoing and keeps its first reading."""
        ctx, base = self.context, self.baseline
        rng = np.random.default_rng([ctx.seed, FRAME_STREAM])
        move = estimate_frame_shift(
            grid_images(base.table.column(column), base.labels, mode, rng),
            grid_images(contribution.table.column(column), contribution.labels, mode, rng),
            seed=ctx.seed,
        )
        if move is None:
            return reading, None
        features = featurize_undone(ctx.featurize, contribution.table, column, np.arange(len(contribution)), move, mode)
        undone = GateData(features, contribution.labels, contribution.table, contribution.groups)
        again = self._read(undone, self.score_records(undone))
        back = again.nearest < reading.nearest
        alpha, n_cal = ctx.alpha, reading.n_cal
        merged = reading.through(again, back)
        return merged, {
            "rows": move.rows,
            "columns": move.columns,
            "read_moved_back": int(again.reads(back).sum()),
            "flagged_before": int(_flags(reading.p, alpha, n_cal).sum()),
            "flagged_after": int(_flags(merged.p, alpha, n_cal).sum()),
            "description": move.describe(),
        }

    def _through_capture(
        self, contribution: GateData, reading: _Reading, column: str, mode: str
    ) -> tuple[_Reading, dict[str, Any] | None]:
        """``reading`` with every record that went through the batch's lower-resolution capture read again
        against the trusted images taken through it (``_capture``), and the capture for the summary (None
        when none was looked for or found).

        A blurred '1' from an old scanner reads as a trusted '8' while it is what it says, and a whole batch
        of them reads as relabelled; a blurred '3' sent as '8' reads as new content, resembling no trusted
        class, and is not flagged at all. Against trusted images captured the same way, each reads as what it
        is. Looked for only where the reading found something a capture could explain: flagged records beyond
        calibration, records resembling no trusted class (the shift finding), or a class that moved. The
        detector is fitted again on the captured trusted images. A record keeps its first reading when it
        could not have gone through the capture: a sharp record is far from every blurred trusted record and,
        read against them, would resemble no class and pass for any label."""
        ctx, base = self.context, self.baseline
        alpha, n_cal = ctx.alpha, reading.n_cal
        rng = np.random.default_rng([ctx.seed, CAPTURE_STREAM])
        capture = batch_capture(
            base.table.column(column),
            base.labels,
            contribution.table.column(column),
            contribution.labels,
            mode,
            rng,
            ctx.seed,
        )
        if capture is None:
            return reading, None
        inner = type(self)()
        inner.reads_captured = True
        captured = featurize_captured(ctx.featurize, base.table, column, capture, mode)
        inner.fit(GateData(captured, base.labels, base.table), ctx)
        again = inner._read(contribution, inner.score_records(contribution))
        through = went_through(capture, contribution.table, column, np.arange(len(contribution)), mode)
        merged = reading.through(again, through)
        return merged, {
            "scale": capture.scale,
            "read_through": int(again.reads(through).sum()),
            "not_through": int((~through).sum()),
            "flagged_before": int(_flags(reading.p, alpha, n_cal).sum()),
            "flagged_after": int(_flags(merged.p, alpha, n_cal).sum()),
            "description": capture.describe(),
        }

    def _shift_findings(self, shifted_p: np.ndarray, n_cal: int) -> list[Finding]:
        """One population-level finding when many records contradict the trusted models without looking
        like any other trusted class: a reviewer decides whether the source moved or the labels did."""
        excess, p = excess_flags_p_value(shifted_p, self.context.alpha, n_cal, beyond_calibration=True)
        if p >= SHIFT_FINDING_P:
            return []
        # The count named is the one whose threshold the test found most telling (often coarser than
        # alpha: the records flagged at alpha may be none), so that the number and the p-value beside it
        # describe the same test.
        counted = excess_flags_count(shifted_p, self.context.alpha, n_cal, beyond_calibration=True)
        count, n = int(counted["count"]), shifted_p.shape[0]
        return [
            Finding(
                self.name,
                1.0 - p,
                f"{count} of {n} records disagree with what trusted records of their label look like "
                f"(p<={counted['threshold']:.2g}, where {counted['expected']:.1f} are expected; count p="
                f"{counted['p_value']:.2g}), yet resemble no other trusted class either: new content (a shifted "
                f"source) rather than flipped labels (p={p:.2g} over every threshold and the smallest p-values)",
                evidence={
                    "records": count,
                    "threshold": float(counted["threshold"]),
                    "expected": float(counted["expected"]),
                    "excess": float(excess),
                    "p_value": float(p),
                },
            )
        ]

    def _new_label_findings(self, contribution: GateData) -> list[Finding]:
        """One finding naming the labels of the batch that no trusted record carries, with their counts:
        a new class, which this detector cannot judge."""
        classes = self.context.classes
        trusted = np.bincount(self.baseline.labels, minlength=len(classes))
        counts = np.bincount(contribution.labels, minlength=len(classes))
        new = sorted(np.flatnonzero((counts > 0) & (trusted == 0)).tolist(), key=lambda c: -counts[c])
        if not new:
            return []
        # File rows where the scan gave them (positions in the batch otherwise), so a reviewer finds them.
        rows = np.asarray(contribution.groups.get("row", np.arange(len(contribution))))
        where = {c: sorted(int(r) for r in rows[contribution.labels == c]) for c in new}
        named = "; ".join(
            f"'{label_name(classes, c)}' ({int(counts[c])}) at file row{'s' if counts[c] != 1 else ''} "
            f"{rows_text(where[c])}"
            for c in new
        )
        return [
            Finding(
                self.name,
                1.0,
                f"{int(counts[new].sum())} records carry labels no trusted record has, a new class or a mistyped "
                f"label that content cannot be judged against: {named}",
                evidence={
                    "labels": {label_name(classes, c): int(counts[c]) for c in new},
                    "rows": {label_name(classes, c): where[c] for c in new},
                },
            )
        ]

    def _findings(
        self,
        contribution: GateData,
        p: np.ndarray,
        flagged: np.ndarray,
        quality: np.ndarray | None,
        issues: np.ndarray | None,
    ) -> list[Finding]:
        ctx, base = self.context, self.baseline
        rows = [int(i) for i in np.argsort(p, kind="stable")[:MAX_FINDINGS] if flagged[i]]
        if not rows:
            return []
        dist, idx = knn(base.features, contribution.features[rows], self.k_eff, labels=base.labels)
        findings = []
        for j, i in enumerate(rows):
            own = label_name(ctx.classes, contribution.labels[i])
            evidence = neighbour_evidence(ctx.classes, base.labels, dist[j], idx[j])
            agree = int((base.labels[idx[j]] == contribution.labels[i]).sum())
            if quality is not None:
                evidence["label_quality"] = float(quality[i])
            if issues is not None:
                evidence["cleanlab_label_issue"] = bool(issues[i])
            top = next(iter(evidence["neighbour_labels"]))
            findings.append(
                Finding(
                    self.name,
                    float(1 - p[i]),
                    f"label '{own}' agrees with {agree} of {self.k_eff} nearest trusted records "
                    f"(most are '{top}'); p={p[i]:.2g}",
                    row=i,
                    evidence=evidence,
                )
            )
        return findings


@dataclass(frozen=True)
class _Reading:
    """One reading of a batch against a reference (``LabelConsistency._read``)."""

    ranking_p: np.ndarray
    """Every record's p-value, which ranks it."""
    p: np.ndarray
    """The p-value a flag and the counts read: 1 for a record that resembles no trusted class, moved with its
    batch or carries a label no trusted record has."""
    shifted_p: np.ndarray
    """The p-value of records the trusted models disagree with that resemble no trusted class (1 elsewhere)."""
    moved: np.ndarray
    """Records that moved with their batch."""
    n_cal: int
    """Calibration records behind every p-value."""
    views: list[str]
    """The views fused."""
    log_proba: np.ndarray | None
    ref_log_proba: np.ndarray | None
    nearest: np.ndarray
    """Each record's mean distance to its nearest trusted records of the class it sits closest to."""

    def reads(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` but the records this reading cannot read either way (``through``)."""
        return rows & ~(self.shifted_p <= UNREAD_P)

    def through(self, again: _Reading, rows: np.ndarray) -> _Reading:
        """This reading with ``again``'s at ``rows`` (both calibrated on as many trusted records), except where
        ``again`` cannot read a record either way: it disagrees with the record's label there
        (``UNREAD_P``) and resembles no trusted class. The change ``again`` models then does not explain the
        record (relabelled digits blurred by another filter than the batch's scanner read so against the
        trusted images taken through the scanner), and this reading stands."""
        if again.n_cal != self.n_cal:
            raise ValueError("readings calibrated on different numbers of records cannot be merged")
        rows = again.reads(rows)

        def pick(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.where(rows.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)

        proba = None
        if self.log_proba is not None and again.log_proba is not None:
            proba = pick(self.log_proba, again.log_proba)
        return replace(
            self,
            ranking_p=pick(self.ranking_p, again.ranking_p),
            p=pick(self.p, again.p),
            shifted_p=pick(self.shifted_p, again.shifted_p),
            moved=pick(self.moved, again.moved),
            log_proba=proba,
            nearest=pick(self.nearest, again.nearest),
        )


# --- fusion ---------------------------------------------------------------------------------------


def _fuse(
    calibration: dict[str, np.ndarray], test: dict[str, np.ndarray], strongest: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fisher fusion of the views' conformal p-values, calibrated against the reference's own fused scores.

    Both sides use plain conformal p-values on the same grid ``1/(n+1) .. 1``: a contribution record
    against all ``n`` reference records, a reference record against the ``n - 1`` others (counted
    against itself it would look less extreme than a new record with the same score). No view's
    extrapolated tail enters the fusion: a new record beyond a view's largest calibration score
    would otherwise outscore every reference record that tops the same view, and clean records would
    flag at several times alpha. Returns the p-values (tail-extrapolated beyond the largest fused
    reference score, for ranking), the reference's statistics they are calibrated on, and the
    contribution's fused scores with each view's tail (to break ties).

    ``strongest``: a view that also speaks alone. Fisher's sum saturates at ``log(n + 1)`` per view,
    so a record that one view places far beyond every trusted record (a flip the contribution probe
    sees at once) and the others only a little ties with, or falls below, trusted records that every
    view finds mildly odd. The statistic is then the stronger of two pieces of evidence, each a
    p-value against the reference: the fusion's and that view's own (tail-refined for both; the
    reference's by ``leave_one_out_tail_p_values``, against the others). It is calibrated once more
    on the reference's statistics computed the same way, which pays for taking the stronger of two:
    a reference record that tops either piece tops the statistic too.
    """
    names = list(calibration)
    if len(names) == 1:
        only = names[0]
        return tail_p_values(calibration[only], test[only]), calibration[only], test[only]
    n = calibration[names[0]].shape[0]
    fused_ref = sum(-np.log(leave_one_out_p_values(calibration[v]) * n / (n + 1.0)) for v in names)
    fused_test = sum(-np.log(conformal_p_values(calibration[v], test[v])) for v in names)
    ranking = sum(-np.log(tail_p_values(calibration[v], test[v])) for v in names)
    if strongest not in names:
        return tail_p_values(fused_ref, fused_test), fused_ref, ranking
    grid = n / (n + 1.0)  # a reference record's p against n - 1 others, put on the grid 1/(n+1) .. 1
    statistic_ref = np.maximum(
        _neg_log(leave_one_out_tail_p_values(fused_ref) * grid),
        _neg_log(leave_one_out_tail_p_values(calibration[strongest]) * grid),
    )
    statistic_test = np.maximum(
        _neg_log(tail_p_values(fused_ref, fused_test)), _neg_log(tail_p_values(calibration[strongest], test[strongest]))
    )
    # Ties of the statistic (both pieces inside a calibration bin) are broken by the views' tails.
    return tail_p_values(statistic_ref, statistic_test), statistic_ref, statistic_test + 1e-9 * ranking


def _flags(p: np.ndarray, alpha: float, n_cal: int) -> np.ndarray:
    """The records flagged at ``alpha``: at it or finer, or beyond every one of the ``n_cal`` trusted records."""
    return flag_mask(p, alpha, n_cal) | resolution_flags(p, alpha, n_cal)


def _neg_log(p: np.ndarray) -> np.ndarray:
    """``-log p`` with p floored at the smallest normal double (an extrapolated tail can underflow)."""
    return -np.log(np.maximum(p, 1e-300))


def _own_and_others(table: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a class-distance table into each row's distance to its own class and the table with that
    column set to inf (the other classes)."""
    rows = np.arange(labels.shape[0])
    own = table[rows, labels].copy()
    others = table.copy()
    others[rows, labels] = np.inf
    return own, others


def _margin_of(own: np.ndarray, others: np.ndarray) -> np.ndarray:
    """log(own-class kNN distance / nearest other class's kNN distance); large = the label looks wrong."""
    other = others.min(axis=1)
    eps = 1e-6 + 1e-3 * float(np.median(own[np.isfinite(own)])) if np.isfinite(own).any() else 1e-6
    own = np.where(np.isfinite(own), own, 10 * np.nanmax(np.where(np.isfinite(others), others, np.nan)) + 1.0)
    other = np.where(np.isfinite(other), other, own * 10 + 1.0)
    return np.log((own + eps) / (other + eps))


def log_margin(log_joint: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``log max_{c != y} p(c|x) - log p(y|x)`` from unnormalized log-probabilities (rows)."""
    rows = np.arange(labels.shape[0])
    own = log_joint[rows, labels]
    other = log_joint.copy()
    other[rows, labels] = -np.inf
    return other.max(axis=1) - own


def _softmax(log_joint: np.ndarray) -> np.ndarray:
    z = log_joint - log_joint.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _cleanlab_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray | None:
    present = np.unique(labels)
    if present.shape[0] < 2:
        return None
    remap = np.full(probs.shape[1], -1)
    remap[present] = np.arange(present.shape[0])
    sub = np.maximum(probs[:, present], 1e-12)
    sub /= sub.sum(axis=1, keepdims=True)
    # Imported here, not with the module: cleanlab's package import pulls in its Datalab and Hugging Face
    # ``datasets`` (about 0.35 s), which every CLI command that loads the gates would pay.
    from cleanlab.filter import find_label_issues

    try:
        return find_label_issues(remap[labels], sub, filter_by="prune_by_noise_rate", n_jobs=1)
    except ValueError:
        return None


# --- probes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ProbeFit:
    """Probes fitted fold by fold on the trusted records, and what they say of the held-out records."""

    models: tuple[_Probe, ...]
    log_proba: np.ndarray
    """Each trusted record's log-probabilities under the probe that did not see it."""
    margins: np.ndarray
    """Each trusted record's log-margin (its label against the likeliest other class) under that probe."""

    def weight(self) -> int:
        """About the bytes held (each fold's coefficients and scaler are small beside the arrays)."""
        return int(self.log_proba.nbytes + self.margins.nbytes) + sum(m.weight() for m in self.models)


def _cross_fitted_probes(
    x: np.ndarray, y: np.ndarray, n_classes: int, folds: int, probe_max_train: int, seed: int
) -> _ProbeFit:
    n = x.shape[0]
    counts = np.bincount(y)
    folds = max(2, min(folds, n))
    rng = np.random.default_rng(seed)
    try:
        split = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y))
        if int(counts[counts > 0].min()) < folds:
            raise ValueError
    except ValueError:
        split = list(KFold(folds, shuffle=True, random_state=seed).split(x))
    models: list[_Probe] = []
    margins = np.zeros(n)
    log_proba = np.zeros((n, n_classes))
    for train, test in split:
        if train.shape[0] > probe_max_train:
            train = np.sort(rng.choice(train, probe_max_train, replace=False))
        model = _Probe(x[train], y[train], n_classes)
        models.append(model)
        log_p = model.log_proba(x[test])
        log_proba[test] = log_p
        margins[test] = log_margin(log_p, y[test])
    return _ProbeFit(tuple(models), log_proba, margins)


class _Probe:
    """A standardized logistic regression whose log-probabilities cover every class code."""

    def __init__(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        self.n_classes = n_classes
        self.present = np.unique(y)
        self.scaler = StandardScaler().fit(x)
        self.model = (
            LogisticRegression(C=1.0, max_iter=300).fit(self.scaler.transform(x), y)
            if self.present.shape[0] >= 2
            else None
        )

    def weight(self) -> int:
        """About the bytes held: the coefficients and the scaler's moments."""
        held = self.scaler.mean_.nbytes + self.scaler.scale_.nbytes
        return int(held + (self.model.coef_.nbytes + self.model.intercept_.nbytes if self.model is not None else 0))

    def log_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.full((x.shape[0], self.n_classes), np.log(1e-9))
        if self.model is None:
            out[:, self.present[0]] = 0.0
            return out
        out[:, self.model.classes_] = np.log(np.maximum(self.model.predict_proba(self.scaler.transform(x)), 1e-12))
        return out


class NaiveBayes:
    """Multinomial naive Bayes on non-negative sparse features, with exact leave-one-out scores.

    Columns are compacted to those the training rows use: hashed spaces are mostly empty, and the
    smoothing mass ``a * V`` must count real features only. A new row's features that no training
    row has are left out, and so are a training row's features that only it has when it is scored
    leave-one-out, so both are scored alike.
    """

    def __init__(self, matrix: sparse.csr_matrix, labels: np.ndarray, n_classes: int, a: float = NB_SMOOTHING):
        self.a, self.labels = a, labels
        self.columns = np.unique(matrix.indices)
        self.column_map = np.full(matrix.shape[1], -1, dtype=np.int64)
        self.column_map[self.columns] = np.arange(self.columns.shape[0])
        self.matrix = self._compact(matrix)
        onehot = sparse.csr_matrix(
            (np.ones(labels.shape[0]), (labels, np.arange(labels.shape[0]))), shape=(n_classes, labels.shape[0])
        )
        self.counts = np.asarray((onehot @ self.matrix).todense(), dtype=np.float64)
        self.v = self.matrix.shape[1]
        self.totals = self.counts.sum(axis=1)
        self.df = np.bincount(self.matrix.indices, minlength=self.v)
        self.prior = np.bincount(labels, minlength=n_classes).astype(np.float64)
        self.log_theta = np.log(self.counts + a) - np.log(self.totals + a * self.v)[:, None]

    def _compact(self, matrix: sparse.csr_matrix) -> sparse.csr_matrix:
        new = self.column_map[matrix.indices]
        keep = new >= 0
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        per_row = np.bincount(rows[keep], minlength=matrix.shape[0])
        indptr = np.concatenate([[0], np.cumsum(per_row)])
        return sparse.csr_matrix(
            (matrix.data[keep].astype(np.float64), new[keep], indptr), shape=(matrix.shape[0], self.columns.shape[0])
        )

    def _joint(self, matrix: sparse.csr_matrix) -> np.ndarray:
        return np.asarray(matrix @ self.log_theta.T) + np.log(np.maximum(self.prior, 1e-9))[None, :]

    def log_joint(self, matrix: sparse.csr_matrix) -> np.ndarray:
        """Log joint probabilities of new rows (in the uncompacted feature space)."""
        return self._joint(self._compact(sparse.csr_matrix(matrix)))

    def loo_log_joint(self, groups: np.ndarray | None = None) -> np.ndarray:
        """Log joint probabilities of each training row under the model fitted without it, or without
        its whole group when ``groups`` (one id per row; rows of a group share their label) is given:
        a record's near-copies are its own evidence, and must not vouch for its label."""
        x, y = self.matrix, self.labels
        n = x.shape[0]
        size = np.ones(n)
        if groups is not None:
            _, groups = np.unique(groups, return_inverse=True)
            groups = groups.ravel()
            size = np.bincount(groups).astype(np.float64)[groups]
            rows = np.repeat(np.arange(n), np.diff(x.indptr))
            by_group = sparse.csr_matrix(
                (x.data, (groups[rows], x.indices)), shape=(int(groups.max(initial=-1)) + 1, self.v)
            )
            present = sparse.csr_matrix((np.ones_like(x.data), (groups[rows], x.indices)), shape=by_group.shape)
            del rows
            by_group.sum_duplicates()
            present.sum_duplicates()
        joint = np.empty((n, self.counts.shape[0]))
        kept = np.empty(n)
        alone: list[np.ndarray] = []
        # ``TEXT_ROWS`` rows at a time (each entry's arrays below are 8 bytes per stored count): every
        # number is a row's own, so the blocks give the same bits as the whole matrix at once.
        for start in range(0, n, TEXT_ROWS):
            stop = min(n, start + TEXT_ROWS)
            lo, hi = x.indptr[start], x.indptr[stop]
            local = np.repeat(np.arange(stop - start), np.diff(x.indptr[start : stop + 1]))
            rows = local + start
            f, v = x.indices[lo:hi], x.data[lo:hi]
            # What leaving out takes away from each entry's class count (the group's sum of the feature),
            # and how many rows carry the feature in the group (a feature only the group has is left out,
            # as a single row's own features are).
            taken, carried = v, np.ones(f.shape[0])
            if groups is not None:
                taken = np.asarray(by_group[groups[rows], f]).ravel()
                carried = np.asarray(present[groups[rows], f]).ravel()
            shared = self.df[f] > carried
            block = sparse.csr_matrix(
                (np.where(shared, v, 0.0), f, x.indptr[start : stop + 1] - lo), shape=(stop - start, x.shape[1])
            )
            part = joint[start:stop]
            part[...] = self._joint(block)
            own = self.counts[y[rows], f]
            correction = np.where(
                shared, v * (np.log(np.maximum(own - taken, 0.0) + self.a) - np.log(own + self.a)), 0.0
            )
            part[np.arange(stop - start), y[start:stop]] += np.bincount(local, correction, minlength=stop - start)
            # The refit's denominators (below): only the row's mass on the features the refit keeps reads them.
            kept[start:stop] = np.bincount(local, np.where(shared, v, 0.0), minlength=stop - start)
            owner = rows if groups is None else groups[rows]
            alone.append(owner[~shared] * np.int64(self.v) + f[~shared])
        idx = np.arange(n)
        sums = np.asarray(x.sum(axis=1)).ravel()
        removed = sums if groups is None else np.bincount(groups, sums)[groups]
        # The refit's denominators: every class's smoothing loses the features only the left-out rows carry
        # (the refit's vocabulary is smaller), and the row's own class loses their whole mass.
        # A feature only the group carries appears once per carrying row: count it once per group.
        pairs = np.unique(np.concatenate(alone)) if alone else np.zeros(0, np.int64)
        only = np.bincount(pairs // self.v, minlength=n if groups is None else int(groups.max(initial=-1)) + 1)
        av = self.a * self.v
        av_refit = self.a * (self.v - (only if groups is None else only[groups]))
        joint -= kept[:, None] * (np.log(self.totals[None, :] + av_refit[:, None]) - np.log(self.totals + av)[None, :])
        totals = self.totals[y]
        joint[idx, y] -= kept * (np.log(np.maximum(totals - removed, 0.0) + av_refit) - np.log(totals + av_refit))
        joint[idx, y] += np.log(np.maximum(self.prior[y] - size, 1e-9)) - np.log(np.maximum(self.prior[y], 1e-9))
        return joint


# --- hashed text features -------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_NON_WORD = re.compile(r"[\W_]+")
_FNV_PRIME = np.uint64(1099511628211)


def _column_strings(table: pa.Table, columns: list[str]) -> list[list[str]]:
    """Each text column's values as strings (missing as empty)."""
    return [["" if v is None else str(v) for v in table.column(c).to_pylist()] for c in columns]


def _joined(parts: list[list[str]], max_chars: int) -> list[str]:
    """Each record's text columns as one text, cut to ``max_chars`` (what the naive Bayes reads)."""
    return [" \n ".join(row)[:max_chars] for row in zip(*parts, strict=True)]


def _cut_columns(parts: list[list[str]], max_chars: int) -> list[list[str]]:
    """Each text column's values cut to ``max_chars`` (what near-copies are read in)."""
    return [[v[:max_chars] for v in column] for column in parts]


def _mix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    return h ^ (h >> np.uint64(33))


def _bucket(h: np.ndarray) -> np.ndarray:
    return (_mix(h) >> np.uint64(64 - HASH_BITS)).astype(np.int64)


def _counts(rows: np.ndarray, columns: np.ndarray, n_docs: int) -> sparse.csr_matrix:
    """Sublinear term frequencies ``1 + log(count)`` of (document, column) pairs."""
    matrix = sparse.csr_matrix((np.ones(rows.shape[0], np.float64), (rows, columns)), shape=(n_docs, 1 << HASH_BITS))
    matrix.sum_duplicates()
    matrix.data = 1.0 + np.log(matrix.data)
    return matrix


def _word_counts(texts: list[str]) -> sparse.csr_matrix:
    """Hashed word unigrams and bigrams (lower-cased ``\\w+`` tokens)."""
    vocabulary: dict[str, int] = {}
    ids: list[int] = []
    lengths = np.empty(len(texts), np.int64)
    for i, text in enumerate(texts):
        tokens = _WORD.findall(text.lower())
        lengths[i] = len(tokens)
        ids.extend(vocabulary.setdefault(w, len(vocabulary)) for w in tokens)
    hashes = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in vocabulary), np.uint64, len(vocabulary))
    tokens = hashes[np.asarray(ids, np.int64)] if ids else np.zeros(0, np.uint64)
    doc = np.repeat(np.arange(len(texts)), lengths)
    same = doc[1:] == doc[:-1]
    unigrams = _bucket(tokens * np.uint64(2) + np.uint64(1))
    bigrams = _bucket(tokens[:-1] * np.uint64(0x9E3779B97F4A7C15) + tokens[1:] * np.uint64(2))
    return _counts(np.concatenate([doc, doc[:-1][same]]), np.concatenate([unigrams, bigrams[same]]), len(texts))


def _char_counts(texts: list[str], sizes: tuple[int, ...] = (3, 4, 5)) -> sparse.csr_matrix:
    """Hashed character n-grams of the lower-cased text with punctuation folded to spaces."""
    encoded = [(" " + _NON_WORD.sub(" ", t.lower()).strip() + " ").encode("utf-8") for t in texts]
    lengths = np.fromiter((len(e) for e in encoded), np.int64, len(encoded))
    chars = np.frombuffer(b"".join(encoded), np.uint8).astype(np.uint64)
    doc = np.repeat(np.arange(len(texts)), lengths)
    rows, columns = [], []
    for size in sizes:
        m = chars.shape[0] - size + 1
        if m <= 0:
            continue
        h = np.full(m, np.uint64(size))
        for j in range(size):
            h = h * _FNV_PRIME + chars[j : j + m]
        inside = doc[:m] == doc[size - 1 :]
        rows.append(doc[:m][inside])
        columns.append(_bucket(h[inside]))
    if not rows:
        return sparse.csr_matrix((len(texts), 1 << HASH_BITS), dtype=np.float64)
    return _counts(np.concatenate(rows), np.concatenate(columns), len(texts))


TEXT_ROWS = 8192
"""Contribution texts counted and weighted at a time, and rows of the naive Bayes' leave-one-out read at
a time: each held about ten arrays of 8 bytes per stored n-gram count at once, 1.1 GB for 60,000 lines
of a few words. Rows are independent in both: the matrix and the scores are the same bits."""


def _new_rows_matrix(texts: list[str], idfs: list[tuple[np.ndarray, int]]) -> sparse.csr_matrix:
    """``_weighted([_word_counts(texts), _char_counts(texts)], idfs, reference=False)``, ``TEXT_ROWS``
    texts at a time: each row is counted, weighted and normalized alone, so the stacked blocks are the
    same matrix."""
    if len(texts) <= TEXT_ROWS:
        return _weighted([_word_counts(texts), _char_counts(texts)], idfs, reference=False)
    blocks = []
    for start in range(0, len(texts), TEXT_ROWS):
        part = texts[start : start + TEXT_ROWS]
        blocks.append(_weighted([_word_counts(part), _char_counts(part)], idfs, reference=False))
    return sparse.vstack(blocks, format="csr")


def _reference_idf(block: sparse.csr_matrix) -> tuple[np.ndarray, int]:
    return np.bincount(block.indices, minlength=block.shape[1]), block.shape[0]


def _weighted(blocks: list[sparse.csr_matrix], idfs: list[tuple[np.ndarray, int]], *, reference: bool):
    """TF-IDF with the reference's document frequencies, each block L2-normalized, side by side.

    A reference row counts in its own document frequencies; a new row is counted the same way (as if
    added to the reference: ``df + 1`` of ``n + 1`` documents), so both sides are weighted alike.
    """
    out = []
    for block, (df, n) in zip(blocks, idfs, strict=True):
        idf = np.log((1.0 + n) / (1.0 + df)) + 1.0 if reference else np.log((2.0 + n) / (2.0 + df)) + 1.0
        weighted = sparse.csr_matrix(block.multiply(idf[None, :]))
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        out.append(sparse.csr_matrix(sparse.diags(1.0 / norms) @ weighted))
    return sparse.hstack(out, format="csr")
