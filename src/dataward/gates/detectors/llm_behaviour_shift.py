"""Behaviour-rate shift: do the contribution's responses refuse, link, carry code, turn negative, grow
or shrink, or change language more or less often than the trusted responses do, overall and per source?

Metrics per response: the named behaviours of ``_llm.BEHAVIOURS`` (rates), the log of the response's
length in characters, and whether it is mostly written in a non-Latin script (share of ASCII letters
among its letters below one half; a coarse language signal that needs no model). Each rate is compared
with the baseline's by Fisher's exact test (two-sided), the length by the Mann-Whitney U test
(two-sided), over the whole contribution and over each source with at least ``min_group`` records.
All p-values are Bonferroni-corrected by the number of tests.

**Effect-size floor** (version 2). With thousands of responses any difference is significant: a trial
sent a batch to review for a median answer one character longer (p = 7e-5). A test therefore counts (as
a finding, in ``shifts`` and in the detector's p-value) only when its change is also material, at least
a conventionally *small* effect, Cohen's d = 0.2, carried to the statistic each test reads:

* length: the Vargha-Delaney A, the probability that a contribution response is longer than a baseline
  one (ties half; ``U / (n1 n2)`` of the Mann-Whitney test itself), at least 0.56 or at most 0.44
  (``length_min_effect`` = 0.06 around 0.5). 0.56 is Vargha and Delaney's own "small" threshold: two
  normal samples d = 0.2 apart give A = Phi(0.2 / sqrt 2) = 0.556. Every answer a character longer is
  A = 0.51 or so; every answer twice as long is A near 1.
* rates: the odds ratio of the behaviour in the contribution against the baseline (each cell + 0.5, so
  that a behaviour absent from one side still has a finite ratio), at least 1.44 or at most 1 / 1.44
  (``rate_min_odds_ratio``). 1.44 = exp(0.2 pi / sqrt 3) is d = 0.2 read through the logistic law
  (Chinn 2000, the usual conversion between odds ratios and d). A ratio, not a difference of rates,
  because a poisoner teaches rare behaviours and plants a fixed number of records: refusals tripled
  from 1% to 3% (odds ratio 3.1) or a link new to the baseline in 25 answers of 20,000 (a ratio far
  above the floor, a difference of rates of 0.1 point) must count whatever the batch's size, while
  10.0% against 10.6% (odds ratio 1.07) is noise a large batch makes significant. Cohen's h was
  rejected: at his "small" (0.2) it misses the tripling from 1% (h = 0.15), and any difference-based
  floor lets a fixed count of planted records fall below it as the batch grows. A rate ratio with an
  absolute difference was rejected too: two numbers, and blind to a large move of a common behaviour
  (30% to 45% is a ratio of 1.5; its odds ratio is 1.9).

The floors come from these conventions, not from the benchmark cases. The tests the floor leaves out
with a corrected p-value below ``NAMED_P`` are listed in the summary (``below_floor``) with their
effect sizes.

This is a *difference*: a new answer style, a source that only answers one kind of question or a
refusal-heavy vendor is a reason to review and to explain what moved, never to block on its own (a
shift that comes with a prompt trigger is ``llm_triggers``' to report). Every test at or above its
floor and below ``review_p`` becomes a contribution-level finding; no record is flagged.

Summary: ``tests`` (how many were run), ``shifts`` (metric, group, contribution and baseline values,
corrected p-value, ``effect`` name and ``effect_size``: the odds ratio or A) and ``below_floor`` (the
tests under the floor with a p-value below ``NAMED_P``, at most 5, the same fields).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy import stats

from dataward.gates.base import (
    DetectorResult,
    Evidence,
    Finding,
    GateContext,
    GateData,
    register,
)
from dataward.gates.calibration import p_text
from dataward.gates.detectors._llm import BEHAVIOURS, LLMDetector, baseline_texts, behaviours, distinct_rows, texts

NAMED_P = 0.05
"""With no test below ``review_p``, the strongest one at or above its floor is still a finding (not a
contribution finding) when its p-value is below this: the gate reviews on the detector's smallest
p-value corrected for the number of detectors, and its reason should name the test behind it."""


@dataclass(frozen=True)
class ShiftOptions:
    """Options of ``llm_behaviour_shift``."""

    review_p: float = 1e-3
    min_group: int = 30
    length_min_effect: float = 0.06
    """A length test counts only when the Vargha-Delaney A is at least 0.5 + this or at most 0.5 - this."""
    rate_min_odds_ratio: float = 1.44
    """A rate test counts only when the odds ratio is at least this or at most its inverse (1: no floor)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.review_p < 1.0 or self.min_group < 2:
            raise ValueError("review_p must be in (0, 1) and min_group at least 2")
        if not 0.0 <= self.length_min_effect < 0.5:
            raise ValueError("length_min_effect must be in [0, 0.5)")
        if not 1.0 <= self.rate_min_odds_ratio < math.inf:
            raise ValueError("rate_min_odds_ratio must be a finite number of at least 1")


def _metrics(responses: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(boolean rates matrix: behaviours + non-Latin script, log lengths)."""
    flags = behaviours(responses)
    distinct, rows = distinct_rows(responses)
    script = np.array([_non_latin(r) for r in distinct], dtype=bool)[rows][:, None]
    lengths = np.log1p(np.array([len(r) for r in responses], dtype=np.float64))
    return np.hstack([flags, script]), lengths


def _non_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) < 0.5 * len(letters)


RATES = (*BEHAVIOURS, "non-latin script")
LENGTH = "response length (median characters)"
ODDS_RATIO = "odds ratio"
SUPERIORITY = "A"
"""The effect sizes' names in a test: the behaviour's odds ratio; the Vargha-Delaney A of the lengths."""


def odds_ratio(a: int, m: int, b: int, n: int) -> float:
    """Odds of a behaviour in ``a`` of ``m`` contribution records against ``b`` of ``n`` baseline records,
    each cell + 0.5 (Haldane-Anscombe): finite when a side has none or all."""
    return ((a + 0.5) * (n - b + 0.5)) / ((m - a + 0.5) * (b + 0.5))


def material(test: dict[str, Any], opts: ShiftOptions) -> bool:
    """Whether a test's effect size reaches its floor."""
    if test["effect"] == SUPERIORITY:
        return abs(test["effect_size"] - 0.5) >= opts.length_min_effect
    ratio = test["effect_size"]
    return max(ratio, 1.0 / ratio) >= opts.rate_min_odds_ratio


@register
class BehaviourShiftDetector(LLMDetector):
    """Refusal, link, code, polarity, length and script of responses against the baseline."""

    name = "llm_behaviour_shift"
    version = "2"
    evidence = Evidence.DIFFERENCE
    Options = ShiftOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """The baseline's behaviour rates and response lengths."""
        self.setup(context)
        self.rates_, self.lengths_ = _metrics(baseline_texts(self.name, baseline, context).responses)
        return self

    def score(self, contribution: GateData) -> DetectorResult:
        opts, ctx = self.opts_, self.context_
        n = len(contribution)
        if (empty := self.empty_result(contribution)) is not None:
            return empty
        rates, lengths = _metrics(texts(contribution.table, ctx.schema).responses)
        sources = contribution.groups.get("source")
        groups: list[tuple[str, np.ndarray]] = [("all", np.ones(n, dtype=bool))]
        if sources is not None:
            for value in sorted(set(sources.tolist())):
                members = sources == value
                if opts.min_group <= int(members.sum()) < n:
                    groups.append((f"source {value}", members))
        tests: list[dict[str, Any]] = []
        n_b = self.rates_.shape[0]
        for group, members in groups:
            m = int(members.sum())
            for k, metric in enumerate(RATES):
                a, b = int(rates[members, k].sum()), int(self.rates_[:, k].sum())
                if a == 0 and b == 0:
                    continue
                p = float(stats.fisher_exact([[a, m - a], [b, n_b - b]])[1])
                tests.append(
                    {
                        "metric": metric,
                        "group": group,
                        "contribution": a / m,
                        "baseline": b / n_b,
                        "p": p,
                        "effect": ODDS_RATIO,
                        "effect_size": odds_ratio(a, m, b, n_b),
                    }
                )
            u = stats.mannwhitneyu(lengths[members], self.lengths_, alternative="two-sided")
            tests.append(
                {
                    "metric": LENGTH,
                    "group": group,
                    "contribution": float(np.expm1(np.median(lengths[members]))),
                    "baseline": float(np.expm1(np.median(self.lengths_))),
                    "p": float(u.pvalue),
                    "effect": SUPERIORITY,
                    # U counts the (contribution, baseline) pairs where the contribution's is longer, ties half.
                    "effect_size": float(u.statistic) / (m * n_b),
                }
            )
        for t in tests:
            t["p_value"] = min(1.0, t.pop("p") * len(tests))
        ranked = sorted(tests, key=lambda t: t["p_value"])
        # Only a material change counts: as a finding, a shift and in the p-value the gate reviews on.
        counted = [t for t in ranked if material(t, opts)]
        shifts = [t for t in counted if t["p_value"] < opts.review_p]
        # What the floor left out: the tests that, without it, would be shifts or the test named behind a review.
        below_floor = [t for t in ranked if t["p_value"] < NAMED_P and not material(t, opts)]
        findings = [self._finding(t) for t in shifts[:20]]
        return DetectorResult(
            self.name,
            self.version,
            np.ones(n),
            np.zeros(n, dtype=bool),
            # The gate may still review on the smallest p-value when no test reaches this detector's own
            # review_p: its reason then names that test, not a bare statistic.
            findings or [self._finding(t) for t in counted[:1] if t["p_value"] < NAMED_P],
            statistic=float(len(shifts)),
            p_value=min((t["p_value"] for t in counted), default=1.0),
            summary={"tests": len(tests), "shifts": shifts[:20], "below_floor": below_floor[:5]},
            alpha=None,
            contribution_findings=findings,
        )

    def _finding(self, test: dict[str, Any]) -> Finding:
        return Finding(
            self.name,
            1.0 - test["p_value"],
            f"{test['metric']} of {test['group']}: {test['contribution']:.3g} against {test['baseline']:.3g} in the "
            f"baseline ({test['effect']} {test['effect_size']:.3g}, {p_text(test['p_value'])})",
            None,
            test,
        )
