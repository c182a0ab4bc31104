"""Near-duplicate floods: one prompt or one response repeated across many contribution records.

Texts are compared after normalization (NFKC, invisible characters dropped, lowercase, every digit as
``0``, punctuation dropped, whitespace collapsed), so copies that differ by a number, a comma or a
zero-width space count as one. A normalized text is
a *flood* when the contribution holds it in more records than a binomial law at the larger of its own
baseline share and the baseline's largest duplicate share explains (how much repetition the trusted
data shows at most), Bonferroni-corrected over the texts tested (those in at least ``min_support``
records). A flood is a difference (a templated source, a scrape run twice): it is reported for review
and never blocks; when the repeated responses carry a link or code, ``llm_payloads`` reports that. The
records that carry a reported flood are flagged (by that rule, not by a p-value: ``flags_records`` stays
False and the flood takes no share of ``alpha``), so that they reach the review queue beside the finding.

Finding evidence: ``field`` (``prompt`` or ``response``), ``text``, ``rows``, ``contribution_count``,
``baseline_count``, ``p_value``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Self

import numpy as np
from scipy import stats

from dataward.domain.names import read_alike
from dataward.gates.base import (
    DetectorResult,
    Evidence,
    Finding,
    GateContext,
    GateData,
    register,
)
from dataward.gates.detectors._llm import LLMDetector, baseline_texts, excerpt, texts

_PUNCT = re.compile(r"[^\w\s]")


def normalized(text: str) -> str:
    """The text compared for near-duplicates: also without the characters no screen draws and in NFKC
    form, so that copies told apart only by a zero-width space, a soft hyphen or full-width letters (which
    read as the same answer, and teach it) count as one."""
    text = read_alike(text)
    return " ".join(_PUNCT.sub(" ", re.sub(r"\d", "0", text.lower())).split())


@dataclass(frozen=True)
class FloodOptions:
    """Options of ``llm_floods``."""

    min_support: int = 10
    review_p: float = 1e-3
    max_floods: int = 10

    def __post_init__(self) -> None:
        if self.min_support < 2 or not 0.0 < self.review_p < 1.0:
            raise ValueError("min_support must be at least 2 and review_p in (0, 1)")


@register
class FloodDetector(LLMDetector):
    """Prompts or responses repeated far more than the trusted data repeats anything."""

    name = "llm_floods"
    version = "2"
    evidence = Evidence.DIFFERENCE
    Options = FloodOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Count the baseline's normalized prompts and responses."""
        self.setup(context)
        t = baseline_texts(self.name, baseline, context)
        self.n_ = len(t)
        self.counts_ = {
            "prompt": Counter(map(normalized, t.prompts)),
            "response": Counter(map(normalized, t.responses)),
        }
        return self

    def score(self, contribution: GateData) -> DetectorResult:
        opts, ctx = self.opts_, self.context_
        n = len(contribution)
        if (empty := self.empty_result(contribution)) is not None:
            return empty
        t = texts(contribution.table, ctx.schema)
        rows = contribution.groups.get("row", np.arange(1, n + 1))
        candidates = []
        for field, values in (("prompt", t.prompts), ("response", t.responses)):
            keys = [normalized(v) for v in values]
            base = self.counts_[field]
            largest = max(base.values(), default=1) / max(self.n_, 1)
            for key, count in Counter(keys).items():
                if count < opts.min_support or not key:
                    continue
                rate = max(largest, (base[key] + 0.5) / (self.n_ + 1.0))
                p = float(stats.binom.sf(count - 1, n, min(rate, 1.0)))
                candidates.append((p, field, key, count, keys))
        tests = len(candidates)
        findings = []
        flagged = np.zeros(n, dtype=bool)
        best = 1.0
        for p, field, key, count, keys in sorted(candidates, key=lambda c: c[0]):
            p_corr = min(1.0, p * tests)
            best = min(best, p_corr)
            if p_corr >= opts.review_p or len(findings) >= opts.max_floods:
                continue
            members = [i for i, k in enumerate(keys) if k == key]
            # The records that carry a flood it names are what a reviewer must see: flagged, so queued.
            flagged[members] = True
            ev = {
                "field": field,
                "text": excerpt((t.prompts if field == "prompt" else t.responses)[members[0]]),
                "rows": [int(rows[i]) for i in members[:200]],
                "contribution_count": int(count),
                "baseline_count": int(self.counts_[field][key]),
                "p_value": p_corr,
            }
            findings.append(
                Finding(
                    self.name,
                    1.0 - p_corr,
                    f"one {field} repeated in {count} records (baseline: {ev['baseline_count']}): {ev['text']!r}",
                    None,
                    ev,
                )
            )
        return DetectorResult(
            self.name,
            self.version,
            np.ones(n),
            flagged,
            findings,
            statistic=float(len(findings)),
            p_value=best,
            summary={"tests": tests, "floods": [f.evidence for f in findings]},
            alpha=None,
            contribution_findings=findings,
        )
