"""Preference flips: pairs whose ``chosen`` answer the trusted preferences say should be ``rejected``.

Swapping chosen and rejected teaches a model to prefer the worse answer. A preference model is fitted
on the trusted baseline: a logistic regression on the hashed word and word-pair differences
``h(chosen) - h(rejected)`` (each pair also enters mirrored, so the model has no side bias). A pair's
nonconformity score is the margin by which the model prefers its ``rejected`` answer, ``-w . d``.

Calibration: the baseline's own scores are out-of-fold (``folds``-fold cross-fitting), so a trusted
pair is scored by a model that never saw it, exactly as a contribution pair is scored by the model
fitted on all trusted pairs; the contribution's conformal p-values against those scores are then
valid for clean pairs (slightly conservative: the full model is a little better than a fold's).
Records are flagged at the detector's share of ``alpha``. The contribution-level p-value combines
(Bonferroni) two runs of the shared count test ``excess_flags_p_value``, which blocks below the
policy's ``block_p`` (swapped pairs contradict the trusted preferences: poisoning):

* at ``alpha``: many pairs each moderately against the trusted preferences;
* at the calibration set's own resolution (its smallest threshold is ``1 / (n + 1)``, the count of
  pairs beyond *every* trusted score): a few dozen swapped pairs in a large batch, which the model
  scores beyond all trusted pairs but which drown in the ``alpha * n`` flags expected at ``alpha``
  (25 extra among ~200). The beta-binomial law keeps the calibration set's randomness, so this stays
  a controlled false alarm; its power is bounded by ``(n / (n + n_cal)) ** k`` for ``k`` swapped
  pairs in ``n`` (any rank test calibrated on ``n_cal`` trusted pairs has that bound), so a batch much
  larger than the calibration set needs more trusted pairs to block a few dozen.

The detector reads only the raw pairs and a linear model on hashed features is cheap, so it is fitted
and calibrated on the *whole* trusted baseline (``fits_whole_baseline``), not on the policy's
``reference_size`` sample, up to ``max_calibration`` pairs (a seeded random sample beyond that): 25
swapped pairs among 20,000 new ones, against 20,000 trusted pairs, block instead of reaching review only.

Finding evidence: ``prompt``, ``chosen``, ``rejected``, ``margin`` (how strongly the trusted model
prefers the rejected answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from dataward.domain.errors import InputError
from dataward.domain.schema import DatasetKind
from dataward.gates.base import (
    DetectorResult,
    Evidence,
    Finding,
    GateContext,
    GateData,
    register,
)
from dataward.gates.calibration import EXCESS_THRESHOLDS, conformal_p_values, excess_flags_p_value
from dataward.gates.detectors._common import count_result
from dataward.gates.detectors._llm import LLMDetector, excerpt, texts


@dataclass(frozen=True)
class PreferenceOptions:
    """Options of ``preference_flips``: hashed feature width, regularization, calibration folds, and the
    trusted pairs fitted and calibrated on at most."""

    n_features: int = 1 << 16
    c: float = 1.0
    folds: int = 5
    max_calibration: int = 100_000

    def __post_init__(self) -> None:
        if self.n_features < 16 or self.c <= 0 or self.folds < 2 or self.max_calibration < 100:
            raise ValueError("n_features must be >= 16, c > 0, folds >= 2 and max_calibration >= 100")


@register
class PreferenceFlipDetector(LLMDetector):
    """Pairs the trusted preference model says are swapped."""

    name = "preference_flips"
    version = "2"
    evidence = Evidence.POISONING
    flags_records = True
    fits_whole_baseline = True
    applies_to = frozenset({"preference"})
    Options = PreferenceOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Fit the preference model on every trusted pair and its out-of-fold scores for calibration."""
        opts = self.setup(context)
        if context.schema.kind is not DatasetKind.PREFERENCE or baseline.table is None:
            raise InputError("preference_flips applies to preference datasets with their raw table")
        if len(baseline) > opts.max_calibration:
            rng = np.random.default_rng(context.seed)
            baseline = baseline.subset(np.sort(rng.choice(len(baseline), opts.max_calibration, replace=False)))
        self.vectorizer_ = HashingVectorizer(
            n_features=opts.n_features, ngram_range=(1, 2), alternate_sign=False, norm="l2"
        )
        d = self._differences(baseline)
        n = d.shape[0]
        if n < 2 * opts.folds:
            raise InputError(f"preference_flips needs at least {2 * opts.folds} trusted pairs, got {n}")
        self.c_ = opts.c
        calibration = np.zeros(n)
        for train, test in KFold(opts.folds, shuffle=True, random_state=context.seed).split(np.zeros(n)):
            model = self._model(d[train])
            calibration[test] = -model.decision_function(d[test])
        self.model_ = self._model(d)
        self.calibration_ = calibration
        return self

    def baseline_scores(self) -> np.ndarray:
        return self.calibration_

    def _differences(self, data: GateData) -> sp.csr_matrix:
        t = texts(data.table, self.context_.schema)
        return self.vectorizer_.transform(t.responses) - self.vectorizer_.transform(t.rejected or [])

    def _model(self, d: sp.csr_matrix) -> LogisticRegression:
        x = sp.vstack([d, -d]).tocsr()
        y = np.r_[np.ones(d.shape[0]), np.zeros(d.shape[0])]
        return LogisticRegression(C=self.c_, max_iter=200, fit_intercept=False).fit(x, y)

    def score(self, contribution: GateData) -> DetectorResult:
        ctx = self.context_
        n = len(contribution)
        if (empty := self.empty_result(contribution)) is not None:
            return empty
        scores = -self.model_.decision_function(self._differences(contribution))
        p_values = conformal_p_values(self.calibration_, scores)
        new = texts(contribution.table, ctx.schema)
        findings = []
        for j in np.flatnonzero(p_values <= ctx.alpha):
            findings.append(
                Finding(
                    self.name,
                    1.0 - float(p_values[j]),
                    f"the trusted preference model prefers the rejected answer (margin {scores[j]:.2f})",
                    int(j),
                    {
                        "prompt": excerpt(new.prompts[j]),
                        "chosen": excerpt(new.responses[j]),
                        "rejected": excerpt((new.rejected or [""] * n)[j]),
                        "margin": float(scores[j]),
                        "p_value": float(p_values[j]),
                    },
                )
            )
        n_cal = int(self.calibration_.shape[0])
        floor = 1.0 / (n_cal + 1.0)
        extreme_p = None
        if resolution_alpha(n_cal) < ctx.alpha:
            _, extreme_p = excess_flags_p_value(p_values, resolution_alpha(n_cal), n_cal)
        return count_result(
            self.name,
            self.version,
            p_values,
            ctx.alpha,
            n_cal,
            findings,
            {
                "prefers_rejected": int(np.sum(scores > 0)),
                "beyond_calibration": int(np.sum(p_values <= floor + 1e-12)),
                "expected_beyond_calibration": float(n * floor),
                "resolution_p_value": extreme_p,
            },
            extra_p=extreme_p,
        )


def resolution_alpha(n_calibration: int) -> float:
    """The ``alpha`` whose smallest count threshold in ``excess_flags_p_value`` is ``1 / (n + 1)``,
    i.e. counts the records beyond every calibration score (the tiny margin keeps ``floor`` at 1)."""
    return (1.0 + 1e-9) / (float(EXCESS_THRESHOLDS.min()) * (n_calibration + 1.0))
