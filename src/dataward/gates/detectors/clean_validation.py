"""Clean-validation impact: what the contribution does to a probe model's held-out accuracy.

A probe (standardized logistic regression by default, or a small MLP) is trained on the baseline
without the contribution and on the baseline with it, and both are evaluated on the clean
validation set, overall and per class. When the contribution has a ``source`` group, the probe is
also trained on the baseline with the contribution minus each source, to say which source is
responsible. Differences are judged on the same validation records, paired: the one-sided
Wilcoxon signed-rank test of each record's change in log-loss of its true label (``p_value``: it sees
a probe made less sure of the right answer before it gets it wrong), and the one-sided exact McNemar
test of right/wrong (``p_accuracy``).

Contribution level: ``statistic`` = the overall accuracy drop (without - with);
``harm_p`` = 2 x min(overall p, smallest per-class p x number of classes); ``p_value`` = ``harm_p``
when the overall or some class's accuracy drop exceeds ``max_validation_drop``, else 1 (a drop the
policy tolerates is not a reason to stop a contribution, however certain).
The contribution is blocked (``summary["block"]``) when the overall drop or a class's drop exceeds
``max_validation_drop`` and that drop is significant (``p_value`` below ``significance``, divided by
the number of classes for per-class drops), so a handful of validation records cannot block alone.

Records: p = 1 (this is a contribution-level test), except the records of a source whose removal
significantly restores accuracy: they get that source's Bonferroni-corrected p-value. Nothing is
flagged record by record.

Summary keys (read by the verdict and the HTML report)::

    overall:   {"with": acc, "without": acc, "drop": without - with, "p_value": p, "p_accuracy": p,
                "log_loss_with": l, "log_loss_without": l, "records": n}
    per_class: {label: {same keys}}
    per_source: {source: {"records": n, "without_source": acc, "effect": without_source - with,
                          "p_value": p, "per_class_effect": {label: effect}}}
    max_class_drop, harm_p, max_validation_drop, model, block, block_reason
    skipped: a reason, when there is no validation set (p = 1 everywhere)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy.stats import binom, wilcoxon

from dataward.gates.base import Detector, DetectorResult, GateContext, GateData, register
from dataward.gates.detectors._probe import apply_options, fit_probe, sample_positions, single_threaded

OPTIONS = ("model", "max_validation_drop", "significance", "max_train", "max_sources", "max_iter")


@register
class CleanValidationDetector(Detector):
    """Accuracy of a probe on the clean validation set with and without the contribution."""

    name = "clean_validation"
    version = "1"

    def __init__(
        self,
        *,
        model: str = "logistic",
        max_validation_drop: float = 0.02,
        significance: float = 0.01,
        max_train: int = 20000,
        max_sources: int = 10,
        max_iter: int = 300,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.model = model
        self.max_validation_drop = max_validation_drop
        self.significance = significance
        self.max_train = max_train
        self.max_sources = max_sources
        self.max_iter = max_iter

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Train the probe without the contribution and predict the validation set."""
        apply_options(self, self.name, context.options_for(self.name), OPTIONS)
        self.context_ = context
        self.rng_ = np.random.default_rng(context.seed)
        self.baseline_ = baseline.subset(sample_positions(len(baseline), self.max_train, self.rng_))
        validation = context.validation
        self.correct_without_: _Outcome | None = None
        if validation is not None and len(validation) and np.unique(self.baseline_.labels).size >= 2:
            self.correct_without_ = self._correct(self.baseline_.features, self.baseline_.labels)
        return self

    def _correct(self, features: np.ndarray, labels: np.ndarray) -> _Outcome:
        validation = self.context_.validation
        assert validation is not None
        x = validation.features.astype(np.float64)
        with single_threaded():
            probe = fit_probe(features, labels, kind=self.model, seed=self.context_.seed, max_iter=self.max_iter)
            proba = probe.predict_proba(x)
        column = {int(c): j for j, c in enumerate(probe.classes_)}
        p_true = np.array(
            [proba[i, column[int(y)]] if int(y) in column else 0.0 for i, y in enumerate(validation.labels)]
        )
        return _Outcome(probe.predict(x) == validation.labels, -np.log(np.maximum(p_true, 1e-12)))

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
        with_ = self._correct(
            np.vstack([self.baseline_.features, contribution.features[keep]]),
            np.concatenate([self.baseline_.labels, contribution.labels[keep]]),
        )
        val_labels = ctx.validation.labels
        overall = _compare(without, with_)
        per_class = {}
        for code in np.unique(val_labels):
            members = val_labels == code
            per_class[_label(ctx, code)] = _compare(without[members], with_[members])
        n_classes = max(len(per_class), 1)
        class_p = min((c["p_value"] for c in per_class.values()), default=1.0)
        harm_p = min(1.0, 2.0 * min(overall["p_value"], class_p * n_classes))
        beyond = overall["drop"] > self.max_validation_drop or any(
            c["drop"] > self.max_validation_drop for c in per_class.values()
        )
        # A drop the policy tolerates is not a reason to stop the contribution, however certain.
        p_value = harm_p if beyond else 1.0

        per_source = self._per_source(contribution, keep, with_, val_labels)
        for source, info in per_source.items():
            corrected = min(1.0, info["p_value"] * max(len(per_source), 1))
            if corrected <= ctx.alpha:
                members = contribution.groups["source"] == source
                p_values[members] = np.minimum(p_values[members], corrected)

        block_reason = self._block_reason(overall, per_class, n_classes)
        summary: dict[str, Any] = {
            "overall": overall,
            "per_class": per_class,
            "per_source": {str(k): v for k, v in per_source.items()},
            "max_class_drop": max((c["drop"] for c in per_class.values()), default=0.0),
            "harm_p": harm_p,
            "max_validation_drop": self.max_validation_drop,
            "model": self.model,
            "block": block_reason is not None,
            "block_reason": block_reason,
        }
        return DetectorResult(
            detector=self.name,
            version=self.version,
            p_values=p_values,
            flagged=flagged,
            findings=[],
            statistic=float(overall["drop"]),
            p_value=p_value,
            summary=summary,
        )

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
            without_source = self._correct(
                np.vstack([self.baseline_.features, contribution.features[rest]]),
                np.concatenate([self.baseline_.labels, contribution.labels[rest]]),
            )
            # "Removing the source helps" is the same test as "adding it hurts", in reverse.
            effect = _compare(without_source, with_)
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
                "p_value": effect["p_value"],
                "per_class_effect": per_class_effect,
            }
        return out

    def _block_reason(
        self, overall: dict[str, Any], per_class: dict[str, dict[str, Any]], n_classes: int
    ) -> str | None:
        tol = self.max_validation_drop
        reasons = []
        if overall["drop"] > tol and overall["p_value"] <= self.significance:
            reasons.append(
                f"the contribution lowers clean-validation accuracy from {overall['without']:.3f} to "
                f"{overall['with']:.3f} (drop {overall['drop']:.3f} > tolerance {tol:g}, "
                f"p={overall['p_value']:.2g})"
            )
        worst = sorted(per_class.items(), key=lambda kv: -kv[1]["drop"])
        for label, c in worst[:3]:
            if c["drop"] > tol and c["p_value"] * n_classes <= self.significance:
                reasons.append(
                    f"the contribution lowers clean-validation accuracy of class {label!r} from "
                    f"{c['without']:.3f} to {c['with']:.3f} (drop {c['drop']:.3f} > tolerance {tol:g}, "
                    f"p={c['p_value']:.2g})"
                )
        return "; ".join(reasons) if reasons else None


def _label(ctx: GateContext, code: int) -> str:
    return ctx.classes[int(code)] if 0 <= int(code) < len(ctx.classes) else str(code)


@dataclass(frozen=True)
class _Outcome:
    """Per validation record: predicted correctly, and the log-loss of its true label."""

    correct: np.ndarray
    loss: np.ndarray

    def __getitem__(self, mask: np.ndarray) -> _Outcome:
        return _Outcome(self.correct[mask], self.loss[mask])


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
    }
