"""Response payloads: links, domains, e-mail addresses, phone numbers, code and shell commands that
the baseline's responses never carry but that recur in the contribution's.

Payloads are read from each response (``_llm.payloads``) and typed (``url:``, ``domain:``, ``email:``,
``phone:``, ``code:``, ``shell:``). Per record, the nonconformity score is the number of payloads it
carries that no *other* trusted response carries; the baseline's scores are computed leaving each
record out, so a contribution record's conformal p-value (``conformal_p_values``) is valid for a clean
record: trusted answers that quote a link of their own are as common as the baseline says.

Contribution level: a payload is *recurring* when at least ``min_support`` contribution responses carry
it and the baseline's responses carry it in at most ``max_baseline_share`` of the records. A recurring
exact payload (one URL, one e-mail address, one phone number, one code snippet or shell command)
planted in many answers to unrelated prompts is what a link or code-injection poisoning looks like:
it blocks, and its carriers are flagged. A payload that names the subject of its record's prompt (a
word of the prompt that is not one of the batch's common template words) is left out for that record:
an answer about ``wget`` may show a ``wget`` command, and a batch may ask about one tool many times.
Only a recurring *domain* (many distinct links to one site: a source that cites its documentation)
is a difference: it is reported for review, never blocked.
A payload tied to a prompt phrase is also reported by ``llm_triggers``.

Finding evidence: ``payload`` (type and value), ``rows``, ``contribution_count``, ``baseline_count``,
``examples`` (prompt and response of a few carriers).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from dataward.gates.base import (
    DetectorResult,
    Evidence,
    Finding,
    GateContext,
    GateData,
    register,
)
from dataward.gates.calibration import conformal_p_values
from dataward.gates.detectors._llm import LLMDetector, baseline_texts, excerpt, payload_sets, texts


@dataclass(frozen=True)
class PayloadOptions:
    """Options of ``llm_payloads`` (see the module docstring)."""

    min_support: int = 8
    max_baseline_share: float = 0.001
    max_payloads: int = 10
    max_rows_in_evidence: int = 200

    def __post_init__(self) -> None:
        if self.min_support < 2:
            raise ValueError("min_support must be at least 2")
        if not 0.0 <= self.max_baseline_share < 1.0:
            raise ValueError("max_baseline_share must be in [0, 1)")


_TOKEN = re.compile(r"[a-z0-9]{3,}")


def _with_prompts(prompts: list[str], sets: list[set[str]]) -> list[tuple[set[str], set[str], set[str]]]:
    """Each record's payloads, its prompt's tokens, and the tokens common to the batch's prompts."""
    tokens = [set(_TOKEN.findall(p.lower())) for p in prompts]
    counts = Counter(t for toks in tokens for t in toks)
    common = {t for t, c in counts.items() if c > 0.05 * max(len(prompts), 1)}
    return [(found, toks, common) for found, toks in zip(sets, tokens, strict=True)]


def _not_echoing(found: set[str], prompt: set[str], common: set[str]) -> set[str]:
    """The payloads that do not name what the prompt asked about: an answer about ``wget`` may show a
    ``wget`` command, and many questions about one tool repeat it. The batch's template words
    ("what", "does") do not count as the prompt's subject."""
    subject = prompt - common
    return {p for p in found if not (set(_TOKEN.findall(p.partition(":")[2])) & subject)}


@register
class PayloadDetector(LLMDetector):
    """Links, addresses and code new to the baseline that recur in the contribution's responses."""

    name = "llm_payloads"
    version = "1"
    evidence = Evidence.POISONING
    Options = PayloadOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Count the baseline's payloads and score every trusted record against the others."""
        self.setup(context)
        sets = payload_sets(baseline_texts(self.name, baseline, context).responses)
        self.counts_ = Counter(p for s in sets for p in s)
        self.n_ = len(sets)
        # Leave-one-out: a payload only this trusted record carries is novel to the others.
        self.calibration_ = np.array([sum(self.counts_[p] == 1 for p in s) for s in sets], dtype=np.float64)
        return self

    def baseline_scores(self) -> np.ndarray:
        return self.calibration_

    def score(self, contribution: GateData) -> DetectorResult:
        opts, ctx = self.opts_, self.context_
        n = len(contribution)
        if (empty := self.empty_result(contribution)) is not None:
            return empty
        new = texts(contribution.table, ctx.schema)
        sets = [
            _not_echoing(found, prompt, common)
            for found, prompt, common in _with_prompts(new.prompts, payload_sets(new.responses))
        ]
        scores = np.array([sum(self.counts_[p] == 0 for p in s) for s in sets], dtype=np.float64)
        p_values = conformal_p_values(self.calibration_, scores)
        recurring = Counter(p for s in sets for p in s)
        limit = opts.max_baseline_share * self.n_
        # Most carriers first, ties by the payload itself: a Counter of sets' members keeps the order of the
        # process's string hashing, and the report must not depend on it.
        ranked = sorted(recurring.items(), key=lambda pc: (-pc[1], pc[0]))
        found = [(p, c) for p, c in ranked if c >= opts.min_support and self.counts_[p] <= limit]
        rows = contribution.groups.get("row", np.arange(1, n + 1))
        flagged = np.zeros(n, dtype=bool)
        findings: list[Finding] = []
        review: list[Finding] = []
        blocking: list[dict[str, Any]] = []
        for payload, count in found[: opts.max_payloads]:
            carriers = np.array([i for i, s in enumerate(sets) if payload in s], dtype=np.int64)
            kind, _, value = payload.partition(":")
            ev = {
                "payload": payload,
                "kind": kind,
                "value": value,
                "rows": [int(r) for r in rows[carriers][: opts.max_rows_in_evidence]],
                "contribution_count": int(count),
                "baseline_count": int(self.counts_[payload]),
                "examples": [
                    {"row": int(rows[j]), "prompt": excerpt(new.prompts[j]), "response": excerpt(new.responses[j])}
                    for j in carriers[:3]
                ],
            }
            reason = (
                f"response {kind} {value!r} recurs in {count} contribution responses and "
                f"{self.counts_[payload]} of {self.n_} trusted ones"
            )
            if kind == "domain":
                review.append(Finding(self.name, 0.0, reason + " (many links to one site: review)", None, ev))
                continue
            blocking.append(ev)
            flagged[carriers] = True
            p_values[carriers] = np.minimum(p_values[carriers], 1.0 / (self.n_ + 1.0))
            findings.append(Finding(self.name, 1.0, reason, None, ev))
            for j in carriers[:50]:
                findings.append(
                    Finding(
                        self.name,
                        1.0,
                        f"response carries recurring {kind} {value!r}",
                        int(j),
                        {"payload": payload, "prompt": excerpt(new.prompts[j]), "response": excerpt(new.responses[j])},
                    )
                )
        block = bool(blocking)
        return DetectorResult(
            self.name,
            self.version,
            p_values,
            flagged,
            findings,
            statistic=float(len(blocking)),
            p_value=1.0,
            summary={"payloads": blocking, "domains": [f.evidence for f in review]},
            block=block,
            block_reason=(
                f"the {blocking[0]['kind']} {blocking[0]['value']!r} recurs in {blocking[0]['contribution_count']} "
                f"responses and in {blocking[0]['baseline_count']} trusted ones"
                if block
                else None
            ),
            n_calibration=self.n_,
            alpha=None,
            contribution_findings=review,
        )
