"""Behaviour-rate shift: do the contribution's responses refuse, link, carry code, turn negative, grow
or shrink, or change language more or less often than the trusted responses do, overall and per source?

Metrics per response: the named behaviours of ``_llm.BEHAVIOURS`` (rates), the log of the response's
length in characters, and whether it is mostly written in a non-Latin script (share of ASCII letters
among its letters below one half; a coarse language signal that needs no model). Each rate is compared
with the baseline's by Fisher's exact test (two-sided), the length by the Mann-Whitney U test
(two-sided), over the whole contribution and over each source with at least ``min_group`` records.
All p-values are Bonferroni-corrected by the number of tests.

This is a *difference*: a new answer style, a source that only answers one kind of question or a
refusal-heavy vendor is a reason to review and to explain what moved, never to block on its own (a
shift that comes with a prompt trigger is ``llm_triggers``' to report). Every test below ``review_p``
becomes a contribution-level finding; no record is flagged.

Summary: ``baseline`` and ``contribution`` metric values, and ``shifts`` (metric, group, values,
corrected p-value).
"""

from __future__ import annotations

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
from dataward.gates.detectors._llm import BEHAVIOURS, LLMDetector, baseline_texts, behaviours, texts

NAMED_P = 0.05
"""With no test below ``review_p``, the strongest one is still a finding (not a contribution finding)
when its p-value is below this: the gate reviews on the detector's smallest p-value corrected for the
number of detectors, and its reason should name the test behind it."""


@dataclass(frozen=True)
class ShiftOptions:
    """Options of ``llm_behaviour_shift``."""

    review_p: float = 1e-3
    min_group: int = 30

    def __post_init__(self) -> None:
        if not 0.0 < self.review_p < 1.0 or self.min_group < 2:
            raise ValueError("review_p must be in (0, 1) and min_group at least 2")


def _metrics(responses: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(boolean rates matrix: behaviours + non-Latin script, log lengths)."""
    flags = behaviours(responses)
    script = np.array([_non_latin(r) for r in responses], dtype=bool)[:, None]
    lengths = np.log1p(np.array([len(r) for r in responses], dtype=np.float64))
    return np.hstack([flags, script]), lengths


def _non_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) < 0.5 * len(letters)


RATES = (*BEHAVIOURS, "non-latin script")


@register
class BehaviourShiftDetector(LLMDetector):
    """Refusal, link, code, polarity, length and script of responses against the baseline."""

    name = "llm_behaviour_shift"
    version = "1"
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
                tests.append({"metric": metric, "group": group, "contribution": a / m, "baseline": b / n_b, "p": p})
            p = float(stats.mannwhitneyu(lengths[members], self.lengths_, alternative="two-sided").pvalue)
            tests.append(
                {
                    "metric": "response length (median characters)",
                    "group": group,
                    "contribution": float(np.expm1(np.median(lengths[members]))),
                    "baseline": float(np.expm1(np.median(self.lengths_))),
                    "p": p,
                }
            )
        for t in tests:
            t["p_value"] = min(1.0, t.pop("p") * len(tests))
        ranked = sorted(tests, key=lambda t: t["p_value"])
        shifts = [t for t in ranked if t["p_value"] < opts.review_p]
        findings = [self._finding(t) for t in shifts[:20]]
        return DetectorResult(
            self.name,
            self.version,
            np.ones(n),
            np.zeros(n, dtype=bool),
            # The gate may still review on the smallest p-value when no test reaches this detector's own
            # review_p: its reason then names that test, not a bare statistic.
            findings or [self._finding(t) for t in ranked[:1] if t["p_value"] < NAMED_P],
            statistic=float(len(shifts)),
            p_value=min((t["p_value"] for t in tests), default=1.0),
            summary={"tests": len(tests), "shifts": shifts[:20]},
            alpha=None,
            contribution_findings=findings,
        )

    def _finding(self, test: dict[str, Any]) -> Finding:
        return Finding(
            self.name,
            1.0 - test["p_value"],
            f"{test['metric']} of {test['group']}: {test['contribution']:.3g} against {test['baseline']:.3g} in the "
            f"baseline ({p_text(test['p_value'])})",
            None,
            test,
        )
