"""Clean-validation impact: what the contribution does to a probe model's held-out accuracy.

A probe (standardized logistic regression by default, or a small MLP) is trained on the baseline
without the contribution and on the baseline with it, and both are evaluated on the clean
validation set, overall and per class. When the contribution has a ``source`` group, the probe is
also trained on the baseline with the contribution minus each source, to say which source is
responsible (the harm p-value of removing it, overall and per class, as for the whole contribution).
Differences are judged on the same validation records, paired: the one-sided Wilcoxon signed-rank
test of each record's change in log-loss of its true label (``p_value``: it sees a probe made less
sure of the right answer before it gets it wrong), and the one-sided exact McNemar test of right/wrong
(``p_accuracy``).

Both probes are read at the baseline's class priors (``prior_matched``, the label-shift correction): a
batch of one or a few correctly labelled classes moves a probe's boundaries toward its classes and costs
their neighbours accuracy, which is a difference from the baseline (``drift`` reports the priors), not
harm. What is judged is what the records' content does to the probe, which is what a relabelling does.

Contribution level: ``statistic`` = the overall accuracy drop (without - with);
``harm_p`` = 2 x min(overall p, smallest per-class p x number of classes); ``p_value`` = ``harm_p``
when the overall or some class's accuracy drop exceeds ``max_validation_drop``, else 1 (a drop the
policy tolerates is not a reason to stop a contribution, however certain).
The contribution is blocked (``result.block``) when the overall drop or a class's drop exceeds
``max_validation_drop`` by more than one validation record, and the Wilcoxon test on the true labels'
log-loss finds it significant (``p_value`` at most ``significance``, divided by the number of classes
for a per-class drop). "By more than one record": with one of the records that turned from right to
wrong counted right, the drop still exceeds tolerance, ``(worse - better - 1) / records >
max_validation_drop`` (``records_to_block``: 2 records of a class of 36, 4 of 107, 12 of 500). A drop that
a single validation record decides (one benign record of 36 turned wrong while the probe grew a little
less sure of many: 1.000 -> 0.972, McNemar p=0.5) is not harm beyond tolerance established: it is a
contribution-level finding for review, naming the class, and the contribution-level ``p_value`` is held
at ``REVIEW_FLOOR`` so that it cannot block through ``block_p`` either. The McNemar p-value of each drop
is reported beside the log-loss test's; it does not decide (with 18 to 60 validation records of a class
it cannot reach 1% after the correction over classes before about half of them turned wrong). The MLP
confirmation (``confirm``) asks its probe for a drop beyond tolerance with a significant log-loss test,
as before; the margin of more than one record is the logistic probe's to show.

Records: p = 1 (this is a contribution-level test), except the records of a source whose removal
significantly restores accuracy, beside records of other sources in the batch: they get that source's
Bonferroni-corrected p-value. A source that sent the whole batch (a ward's contribution has one) leaves
its records at p = 1: its harm is the contribution's ``p_value`` and ranks no record above another.
Nothing is flagged record by record.

The block itself is typed (``result.block``, ``result.block_reason``): harm beyond tolerance is evidence
of poisoning whatever the batch looks like, while a batch that merely differs from the baseline (a new
sensor, a new topic) and leaves held-out accuracy within tolerance never blocks here.

Speed: the logistic probe standardizes with the baseline's statistics and every refit (with the
contribution, without a source) starts from the fitted baseline probe's weights (warm start), so it
needs a fraction of the iterations of a cold fit.

Summary keys (for the HTML report)::

    overall:   {"with": acc, "without": acc, "drop": without - with, "p_value": p, "p_accuracy": p,
                "log_loss_with": l, "log_loss_without": l, "records": n,
                "worse": records right -> wrong, "better": records wrong -> right}
    per_class: {label: {same keys}}
    per_source: {source: {"records": n, "without_source": acc, "effect": without_source - with,
                          "p_value": p, "per_class_effect": {label: effect}}}
    max_class_drop, harm_p, max_validation_drop, model
    skipped: a reason, when there is no validation set (p = 1 everywhere)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy.stats import binom, wilcoxon
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from dataward.gates.base import (
    Detector,
    DetectorResult,
    Evidence,
    Finding,
    GateContext,
    GateData,
    Requirement,
    build_options,
    register,
)
from dataward.gates.detectors._probe import PROBE_KINDS, fit_probe, sample_positions, single_threaded

CONFIRM_ITER = 200
"""Training epochs of the MLP probe that confirms a block."""
REVIEW_FLOOR = 1e-4
"""A drop beyond tolerance that the flexible probe does not confirm is review-level: its p-value is
never below this, so it cannot block on its own."""


@dataclass(frozen=True)
class CleanValidationOptions:
    """Options of the ``clean_validation`` detector (policy ``options.clean_validation``).

    ``model``: the probe, ``logistic`` or ``mlp``; ``confirm``: a block found with the logistic probe
    stands only when an MLP probe shows the harm too; ``max_validation_drop``: tolerated accuracy drop,
    overall and per class (the gate sets it from the policy's ``max_validation_drop``);
    ``significance``: how sure a drop beyond tolerance must be to block (divided by the number of
    classes for a per-class drop); ``max_train``: baseline and contribution records the probe is trained
    on (each side); ``max_sources``: largest sources tried one by one; ``max_iter``: probe iterations.
    """

    model: str = "logistic"
    confirm: bool = True
    max_validation_drop: float = 0.02
    significance: float = 0.01
    max_train: int = 20000
    max_sources: int = 10
    max_iter: int = 300

    def __post_init__(self) -> None:
        if self.model not in PROBE_KINDS:
            raise ValueError(f"unknown probe model {self.model!r}; use one of: {', '.join(PROBE_KINDS)}")
        if not 0.0 <= self.max_validation_drop <= 1.0:
            raise ValueError("max_validation_drop must be between 0 and 1")
        if not 0.0 < self.significance < 1.0:
            raise ValueError("significance must be between 0 and 1 (exclusive)")
        if self.max_train < 10 or self.max_sources < 0 or self.max_iter < 1:
            raise ValueError("max_train must be at least 10, max_sources zero or more, max_iter at least 1")


@register
class CleanValidationDetector(Detector):
    """Accuracy of a probe on the clean validation set with and without the contribution."""

    name = "clean_validation"
    version = "4"
    evidence = Evidence.POISONING
    requires = frozenset({Requirement.VALIDATION})
    flags_records = False
    Options = CleanValidationOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Train the probe without the contribution and predict the validation set."""
        # The policy's tolerance applies unless this detector's own options name another.
        explicit = {**context.options_for(self.name), **self.options}
        if "max_validation_drop" not in explicit:
            explicit["max_validation_drop"] = context.max_validation_drop
        opts: CleanValidationOptions = build_options(self.name, CleanValidationOptions, explicit)
        self.opts_ = opts
        self.model, self.max_validation_drop, self.significance = (
            opts.model,
            opts.max_validation_drop,
            opts.significance,
        )
        self.max_train, self.max_sources, self.max_iter = opts.max_train, opts.max_sources, opts.max_iter
        self.context_ = context
        self.rng_ = np.random.default_rng(context.seed)
        self.baseline_ = baseline.subset(sample_positions(len(baseline), self.max_train, self.rng_))
        validation = context.validation
        self.correct_without_: _Outcome | None = None
        self.scaler_: StandardScaler | None = None
        self.start_: LogisticRegression | None = None
        if validation is not None and len(validation) and np.unique(self.baseline_.labels).size >= 2:
            if self.model == "logistic":
                self.scaler_ = StandardScaler().fit(self.baseline_.features.astype(np.float64))
            self.correct_without_, _ = self._correct(self.baseline_.features, self.baseline_.labels, keep=True)
        return self

    def _correct(self, features: np.ndarray, labels: np.ndarray, *, keep: bool = False) -> tuple[_Outcome, _Outcome]:
        """The validation outcome of a probe trained on ``features``/``labels``: read at the baseline's
        class priors, and as trained (its own priors)."""
        validation = self.context_.validation
        assert validation is not None
        x = validation.features.astype(np.float64)
        with single_threaded():
            if self.scaler_ is not None:
                probe = self._logistic(self.scaler_.transform(features.astype(np.float64)), labels, keep=keep)
                x = self.scaler_.transform(x)
            else:
                probe = fit_probe(features, labels, kind=self.model, seed=self.context_.seed, max_iter=self.max_iter)
            proba = probe.predict_proba(x)
        return (
            _outcome(proba, probe.classes_, validation.labels, labels, self.baseline_.labels),
            _outcome(proba, probe.classes_, validation.labels, labels, labels),
        )

    def _logistic(self, x: np.ndarray, labels: np.ndarray, *, keep: bool) -> LogisticRegression:
        """A logistic probe on standardized ``x``, warm-started from the baseline probe when the classes match."""
        model = LogisticRegression(max_iter=self.max_iter, C=1.0)
        start = self.start_
        if start is not None and np.array_equal(np.unique(labels), start.classes_):
            model.set_params(warm_start=True)
            model.coef_, model.intercept_ = start.coef_.copy(), start.intercept_.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, labels)
        if keep:
            self.start_ = model
        return model

    def score(self, contribution: GateData) -> DetectorResult:
        ctx = self.context_
        n_c = len(contribution)
        p_values = np.ones(n_c)
        flagged = np.zeros(n_c, bool)
        if ctx.validation is None or len(ctx.validation) == 0:
            return DetectorResult(
                self.name, self.version, p_values, flagged, summary={"skipped": "no clean validation set"}
            )
        if self.correct_without_ is None:
            return DetectorResult(
                self.name,
                self.version,
                p_values,
                flagged,
                summary={"skipped": "the baseline holds fewer than two classes"},
            )
        without = self.correct_without_
        keep = sample_positions(n_c, self.max_train, self.rng_)
        with_, as_trained = self._correct(
            np.vstack([self.baseline_.features, contribution.features[keep]]),
            np.concatenate([self.baseline_.labels, contribution.labels[keep]]),
        )
        val_labels = ctx.validation.labels
        overall, per_class, harm_p, beyond = self._judge(without, with_)
        # A drop the policy tolerates is not a reason to stop the contribution, however certain.
        p_value = harm_p if beyond else 1.0
        block_reason = self._block_reason(overall, per_class, len(per_class))
        confirmation: dict[str, Any] | None = None
        contribution_findings: list[Finding] = []
        floored: str | None = None
        unproven = None if block_reason is not None else self._unproven_reason(overall, per_class, len(per_class))
        if unproven is not None:
            # The probe is less sure of the true labels (log-loss) and the accuracy drop is beyond
            # tolerance, but by no more than one validation record: harm beyond tolerance is not
            # established, so it is said for review and cannot block.
            contribution_findings.append(
                Finding(detector=self.name, score=float(1.0 - max(harm_p, REVIEW_FLOOR)), reason=unproven)
            )
            if p_value < REVIEW_FLOOR:
                floored = "one validation record decides the accuracy drop beyond tolerance"
            p_value = max(p_value, REVIEW_FLOOR)
        if block_reason is not None and self.model == "logistic" and self.opts_.confirm:
            # A linear probe must share its weights between the baseline's domain and a batch from a new
            # sensor or source; what it loses there may be its own limit, not harm. The block stands
            # only when a probe flexible enough to learn both shows the harm too.
            confirmation = self._confirm(contribution, keep)
            if confirmation["block_reason"] is None:
                contribution_findings.append(
                    Finding(
                        detector=self.name,
                        score=float(1.0 - harm_p),
                        reason=(
                            f"a linear probe trained with the batch loses clean-validation accuracy ({block_reason}), "
                            f"but a more flexible probe (MLP) does not (overall "
                            f"{confirmation['overall']['without']:.3f} "
                            f"-> {confirmation['overall']['with']:.3f}, largest class drop "
                            f"{confirmation['max_class_drop']:.3f}): the batch differs from the baseline without "
                            "measurably harming a model that can learn both; review"
                        ),
                    )
                )
                block_reason = None
                if p_value < REVIEW_FLOOR:
                    floored = "the MLP probe does not confirm the harm"
                p_value = max(p_value, REVIEW_FLOOR)
        if block_reason is None and unproven is None and confirmation is None:
            # At its own priors the probe may still lose accuracy beyond tolerance: the batch moved the
            # classes' balance (a one-class source, or flips that swell a class). What a model trained on
            # the merge will do, so a reviewer is told; not content contradicting labels, so not a block.
            # Not after the MLP confirmation: the linear probe did lose accuracy read at the baseline's
            # priors, so "read at the baseline's class priors it does not" would be false (a clean first
            # import whose classes stood 300/300 as in the baseline was told its balance had moved).
            moved_overall, moved_per_class, moved_p, _ = self._judge(without, as_trained)
            moved_reason = self._block_reason(moved_overall, moved_per_class, len(moved_per_class), accuracy_test=False)
            if moved_reason is not None:
                contribution_findings.append(
                    Finding(
                        detector=self.name,
                        score=float(1.0 - moved_p),
                        reason=(
                            f"the batch changes the classes' balance enough that a probe trained with it loses "
                            f"clean-validation accuracy ({moved_reason}); read at the baseline's class priors "
                            "it does not: the records' content does not contradict their labels; review the "
                            "new balance"
                        ),
                    )
                )
                p_value = max(min(p_value, moved_p), REVIEW_FLOOR)

        per_source = self._per_source(contribution, keep, with_, val_labels)
        for source, info in per_source.items():
            corrected = min(1.0, info["p_value"] * max(len(per_source), 1))
            members = np.asarray(contribution.groups["source"]) == source
            # A source that sent every record of the batch is the batch: its harm is the contribution's
            # (``p_value``) and says nothing of one record against another. Given to all of them, it
            # lifted every record's score to about 1 (a ward's contribution has one declared source), and
            # the "most suspicious first" order ranked nothing.
            if corrected <= ctx.alpha and not members.all():
                p_values[members] = np.minimum(p_values[members], corrected)

        summary: dict[str, Any] = {
            "overall": overall,
            "per_class": per_class,
            "per_source": {str(k): v for k, v in per_source.items()},
            "max_class_drop": max((c["drop"] for c in per_class.values()), default=0.0),
            "harm_p": harm_p,
            "max_validation_drop": self.max_validation_drop,
            "model": self.model,
        }
        if confirmation is not None:
            summary["confirmation"] = {k: v for k, v in confirmation.items() if k != "per_class"}
        return DetectorResult(
            detector=self.name,
            version=self.version,
            p_values=p_values,
            flagged=flagged,
            findings=[],
            statistic=float(overall["drop"]),
            p_value=p_value,
            summary=summary,
            block=block_reason is not None,
            block_reason=block_reason,
            contribution_findings=contribution_findings,
            reason=impact_reason(overall, floored) if overall.get("with") is not None else None,
        )

    def _judge(self, without: _Outcome, with_: _Outcome) -> tuple[dict[str, Any], dict[str, Any], float, bool]:
        """Overall and per-class comparison, the harm p-value and whether some drop exceeds tolerance."""
        val_labels = self.context_.validation.labels  # type: ignore[union-attr]
        overall = _compare(without, with_)
        per_class = {
            _label(self.context_, code): _compare(without[val_labels == code], with_[val_labels == code])
            for code in np.unique(val_labels)
        }
        n_classes = max(len(per_class), 1)
        class_p = min((c["p_value"] for c in per_class.values()), default=1.0)
        harm_p = min(1.0, 2.0 * min(overall["p_value"], class_p * n_classes))
        beyond = overall["drop"] > self.max_validation_drop or any(
            c["drop"] > self.max_validation_drop for c in per_class.values()
        )
        return overall, per_class, harm_p, beyond

    def _confirm(self, contribution: GateData, keep: np.ndarray) -> dict[str, Any]:
        """The same comparison with an MLP probe (without and with the contribution)."""
        x = self.context_.validation.features.astype(np.float64)  # type: ignore[union-attr]
        val_labels = self.context_.validation.labels  # type: ignore[union-attr]

        def outcome(features: np.ndarray, labels: np.ndarray) -> _Outcome:
            with single_threaded():
                probe = fit_probe(features, labels, kind="mlp", seed=self.context_.seed, max_iter=CONFIRM_ITER)
                proba = probe.predict_proba(x)
            return _outcome(proba, probe.classes_, val_labels, labels, self.baseline_.labels)

        without = outcome(self.baseline_.features, self.baseline_.labels)
        with_ = outcome(
            np.vstack([self.baseline_.features, contribution.features[keep]]),
            np.concatenate([self.baseline_.labels, contribution.labels[keep]]),
        )
        overall, per_class, harm_p, _ = self._judge(without, with_)
        return {
            "model": "mlp",
            "overall": overall,
            "per_class": per_class,
            "max_class_drop": max((c["drop"] for c in per_class.values()), default=0.0),
            "harm_p": harm_p,
            # The confirmation asks whether the flexible probe loses accuracy beyond tolerance too, with
            # its log-loss test significant; that the drop is more than one record's is the linear
            # probe's to show (the block's own reason).
            "block_reason": self._block_reason(overall, per_class, len(per_class), accuracy_test=False),
        }

    def _per_source(
        self, contribution: GateData, keep: np.ndarray, with_: np.ndarray, val_labels: np.ndarray
    ) -> dict[Any, dict[str, Any]]:
        sources = contribution.groups.get("source")
        if sources is None:
            return {}
        values, counts = np.unique(np.asarray(sources)[keep], return_counts=True)
        if values.size < 1:
            return {}
        out: dict[Any, dict[str, Any]] = {}
        for source in values[np.argsort(-counts, kind="stable")][: self.max_sources]:
            rest = keep[np.asarray(sources)[keep] != source]
            without_source, _ = self._correct(
                np.vstack([self.baseline_.features, contribution.features[rest]]),
                np.concatenate([self.baseline_.labels, contribution.labels[rest]]),
            )
            # "Removing the source helps" is the same test as "adding it hurts", in reverse, overall and
            # per class: a source that relabelled one class is told by that class.
            effect, _, source_p, _ = self._judge(without_source, with_)
            per_class_effect = {
                _label(self.context_, code): float(
                    without_source.correct[val_labels == code].mean() - with_.correct[val_labels == code].mean()
                )
                for code in np.unique(val_labels)
            }
            out[source.item() if hasattr(source, "item") else source] = {
                "records": int(np.sum(np.asarray(sources) == source)),
                "without_source": effect["without"],
                "effect": effect["drop"],
                "p_value": source_p,
                "per_class_effect": per_class_effect,
            }
        return out

    def _block_reason(
        self,
        overall: dict[str, Any],
        per_class: dict[str, dict[str, Any]],
        n_classes: int,
        *,
        accuracy_test: bool = True,
    ) -> str | None:
        """The block's reason: each drop beyond tolerance (overall, and the three classes that lost most)
        by more than one validation record that the log-loss test finds significant at ``significance``
        (divided by ``n_classes`` for a class). ``accuracy_test=False`` asks only that the drop exceed
        tolerance (the review finding on the probe read at its own priors)."""
        return "; ".join(self._drops(overall, per_class, n_classes, accuracy=True if accuracy_test else None)) or None

    def _unproven_reason(
        self, overall: dict[str, Any], per_class: dict[str, dict[str, Any]], n_classes: int
    ) -> str | None:
        """The review reason for drops beyond tolerance, with a significant log-loss test, that one
        validation record decides: counted right, the drop would be within tolerance."""
        drops = self._drops(overall, per_class, n_classes, accuracy=False)
        if not drops:
            return None
        return (
            f"{'; '.join(drops)}: the probe is less sure of the true labels, but the accuracy drop exceeds "
            "tolerance by no more than one validation record (with one of the records that turned wrong "
            "counted right it would be within tolerance), so harm beyond tolerance is not established and "
            "the batch is not blocked on it; review (a larger clean validation set would decide it)"
        )

    def _drops(
        self, overall: dict[str, Any], per_class: dict[str, dict[str, Any]], n_classes: int, *, accuracy: bool | None
    ) -> list[str]:
        """Drops beyond tolerance whose log-loss test is significant, worded: those that exceed tolerance
        by more than one validation record (``accuracy=True``), those that do not (``False``), or both
        (``None``)."""
        tol, alpha = self.max_validation_drop, self.significance
        reasons = []

        def wanted(compared: dict[str, Any], times: int) -> bool:
            if compared["drop"] <= tol or compared["p_value"] * times > alpha:
                return False
            return accuracy is None or beyond_one_record(compared, tol) is accuracy

        if wanted(overall, 1):
            reasons.append(
                f"the contribution lowers clean-validation accuracy from {overall['without']:.3f} to "
                f"{overall['with']:.3f} (drop {overall['drop']:.3f} > tolerance {tol:g}; "
                f"{_tests_text(overall, 1, alpha, tol)})"
            )
        worst = sorted(per_class.items(), key=lambda kv: -kv[1]["drop"])
        for label, c in worst[:3]:
            if wanted(c, n_classes):
                reasons.append(
                    f"the contribution lowers clean-validation accuracy of class {label!r} from "
                    f"{c['without']:.3f} to {c['with']:.3f} (drop {c['drop']:.3f} > tolerance {tol:g}; "
                    f"{_tests_text(c, n_classes, alpha, tol)})"
                )
        return reasons


def beyond_one_record(compared: dict[str, Any], tolerance: float) -> bool:
    """Whether a drop (``_compare``) exceeds ``tolerance`` by more than one validation record: with one of
    the records that turned from right to wrong counted right, it would still exceed it."""
    records = int(compared.get("records") or 0)
    net = int(compared.get("worse", 0)) - int(compared.get("better", 0))
    return records > 0 and (net - 1) / records > tolerance


def records_to_block(records: int, tolerance: float = 0.02) -> int:
    """The fewest validation records (net of those that turned right) that must turn from right to wrong,
    among ``records``, for a drop to exceed ``tolerance`` by more than one record and so block."""
    net = 2
    while (net - 1) / max(records, 1) <= tolerance:
        net += 1
    return net


def _tests_text(
    compared: dict[str, Any], times: int = 1, alpha: float | None = None, tolerance: float | None = None
) -> str:
    """Each p-value of a comparison (``_compare``) named by its own test: the accuracy drop by the exact
    McNemar test on right/wrong, the harm by the Wilcoxon test on the true labels' log-loss; with the
    records that turned wrong and right and, when ``alpha`` and ``tolerance`` are given, what a block
    needs (the log-loss test at ``alpha / times``, the drop beyond tolerance by more than one record)."""
    turned = ""
    if "worse" in compared:
        turned = (
            f"{compared['worse']} of {compared['records']} records right -> wrong, "
            f"{compared['better']} wrong -> right; "
        )
    needs = ""
    if alpha is not None and tolerance is not None and compared.get("records"):
        needs = (
            f"; a block needs log-loss p <= {alpha / times:.2g} and at least "
            f"{records_to_block(int(compared['records']), tolerance)} records net turned wrong"
        )
    return (
        f"{turned}right/wrong McNemar p={compared['p_accuracy']:.2g}, "
        f"true-label log-loss Wilcoxon p={compared['p_value']:.2g}{needs}"
    )


def impact_reason(overall: dict[str, Any], floored: str | None) -> str:
    """The verdict's sentence for the contribution-level statistic, in words: the accuracy change on the
    clean validation set and the true labels' log-loss change. The p-value the verdict prints after it is
    the harm test's (``harm_p``: Wilcoxon on the log-loss, overall and per class), or ``REVIEW_FLOOR``
    when ``floored`` says why it was held there (a drop the MLP probe does not confirm, or one that a
    single validation record decides)."""
    floor = f", held at {REVIEW_FLOOR:g} as {floored}" if floored else ""
    return (
        f"with the batch, a probe's clean-validation accuracy goes from {overall['without']:.3f} to "
        f"{overall['with']:.3f} (drop {overall['drop']:.3g}; right/wrong McNemar p={overall['p_accuracy']:.2g}) "
        f"and its mean log-loss of the true labels from {overall.get('log_loss_without', 0.0):.3g} to "
        f"{overall.get('log_loss_with', 0.0):.3g}: harm by the Wilcoxon test on the log-loss, overall and per "
        f"class{floor}"
    )


def _label(ctx: GateContext, code: int) -> str:
    return ctx.classes[int(code)] if 0 <= int(code) < len(ctx.classes) else str(code)


@dataclass(frozen=True)
class _Outcome:
    """Per validation record: predicted correctly, and the log-loss of its true label."""

    correct: np.ndarray
    loss: np.ndarray

    def __getitem__(self, mask: np.ndarray) -> _Outcome:
        return _Outcome(self.correct[mask], self.loss[mask])


def _outcome(
    proba: np.ndarray, classes: np.ndarray, val_labels: np.ndarray, trained_on: np.ndarray, baseline: np.ndarray
) -> _Outcome:
    """Right/wrong and the log-loss of each validation record's true label, from a probe trained on labels
    ``trained_on``, its probabilities moved to the class priors of ``baseline`` (:func:`prior_matched`)."""
    proba = prior_matched(proba, classes, trained_on, baseline)
    column = {int(c): j for j, c in enumerate(classes)}
    p_true = np.array([proba[i, column[int(y)]] if int(y) in column else 0.0 for i, y in enumerate(val_labels)])
    predicted = np.asarray(classes)[np.argmax(proba, axis=1)]
    return _Outcome(predicted == val_labels, -np.log(np.maximum(p_true, 1e-12)))


def prior_matched(proba: np.ndarray, classes: np.ndarray, trained_on: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """A probe's class probabilities as if it had been trained with the baseline's class priors.

    Adding a batch of one or a few classes (a vendor labelling one category, a class-prior change) moves
    the probe's priors: its boundaries shift toward the new majority and a neighbouring class loses
    accuracy, although no record contradicts its label. That is a difference from the baseline, which
    ``drift`` reports, not harm. The usual label-shift correction (Saerens, Latinne and Decaestecker,
    2002: multiply each class's probability by the ratio of the target prior to the training prior and
    renormalize) takes it out, so what remains is what the records' content does to the probe. A class
    the baseline does not hold keeps its probability (there is no prior to move it to). A probe trained on
    the baseline's own labels is left exactly as it is.
    """
    codes = np.asarray(classes)
    trained = np.array([np.count_nonzero(trained_on == c) for c in codes], dtype=np.float64)
    base = np.array([np.count_nonzero(baseline == c) for c in codes], dtype=np.float64)
    trained_prior, base_prior = trained / max(trained.sum(), 1.0), base / max(base.sum(), 1.0)
    if np.array_equal(trained, base) or np.allclose(trained_prior, base_prior, rtol=0.0, atol=1e-12):
        return proba
    weights = np.where((base > 0) & (trained > 0), base_prior / np.maximum(trained_prior, 1e-300), 1.0)
    moved = proba * weights
    return moved / np.maximum(moved.sum(axis=1, keepdims=True), 1e-300)


def _compare(without: _Outcome, with_: _Outcome) -> dict[str, Any]:
    """Accuracies, drop, and the p-value of "with is worse than without" on the same records.

    ``p_accuracy`` is the one-sided exact McNemar test on right/wrong; ``p_value`` is the one-sided
    Wilcoxon signed-rank test on the paired change of each record's log-loss, which also sees a
    contribution that makes the probe less sure of the right answer before it gets it wrong.
    """
    n = int(without.correct.shape[0])
    if n == 0:
        return {"with": None, "without": None, "drop": 0.0, "p_value": 1.0, "p_accuracy": 1.0, "records": 0}
    worse = int(np.sum(without.correct & ~with_.correct))
    better = int(np.sum(~without.correct & with_.correct))
    p_accuracy = float(binom.sf(worse - 1, worse + better, 0.5)) if worse else 1.0
    diff = with_.loss - without.loss
    p_loss = 1.0
    if np.count_nonzero(np.abs(diff) > 1e-9) >= 2:
        p_loss = float(wilcoxon(diff, alternative="greater", zero_method="zsplit").pvalue)
    return {
        "with": float(with_.correct.mean()),
        "without": float(without.correct.mean()),
        "drop": float(without.correct.mean() - with_.correct.mean()),
        "p_value": p_loss,
        "p_accuracy": p_accuracy,
        "log_loss_with": float(with_.loss.mean()),
        "log_loss_without": float(without.loss.mean()),
        "records": n,
        "worse": worse,
        "better": better,
    }
