"""Response payloads: links, domains, e-mail addresses, phone numbers, code and shell commands that
the baseline's responses never carry but that recur in the contribution's.

Payloads are read from each response (``_llm.payloads``) and typed (``url:``, ``domain:``, ``email:``,
``phone:``, ``code:``, ``shell:``). Per record, the nonconformity score is the number of payloads it
carries that no *other* trusted response carries; the baseline's scores are computed leaving each
record out, so a contribution record's conformal p-value (``conformal_p_values``) is valid for a clean
record: trusted answers that quote a link of their own are as common as the baseline says.

Contribution level: a payload is *recurring* when at least ``min_support`` contribution responses carry
it and the baseline's responses carry it in at most ``max_baseline_share`` of the records (a payload the
trusted data carries often is not new to it: its rise is ``llm_behaviour_shift``'s to report). A
recurring payload is *enriched* when the batch carries it more often than the baseline does beyond chance:
one-sided Fisher exact test (the hypergeometric tail of the batch's carriers among all carriers) for a
payload the trusted answers carry, a beta-binomial tail at a rate of about one in ``max(batch, trusted
answers)`` for one they never carry (``enrichment_p_value``: a test at a rate the trusted answers alone
bound would weaken as a padded batch grows), Bonferroni over the recurring payloads. Without that test a string the
two sides share by chance (a URL in 9 batch answers and 2 trusted ones, when each is a draw among a few
dozen endpoints) blocked on the counts alone. A recurring exact payload (one URL, one e-mail address,
one phone number, one code snippet
or shell command) enriched at the policy's ``alpha`` flags its carriers, and the detector's p-value is
the smallest corrected one, which the gate reads as for every poisoning detector: below ``block_p`` a
block (one link planted in 25 answers to unrelated prompts, absent from 2,000 trusted ones: p about
3e-8), between ``block_p`` and ``review_p`` a review. A payload that names the subject of its record's
prompt (a word of the prompt that is not a template word, common to the batch's prompts and the
trusted ones), or that most of the record's most similar batch prompts name (``_llm_content``: a topic
asked in several wordings), is left out for that record: an answer about ``wget`` may show a ``wget``
command, and a batch may ask about one tool many times. A recurring payload excused so, by a name alone,
that the answers to the record's most similar prompts mostly lack is *unanswered* (a lookalike link that
names the topic, swapped into some of its answers): enriched, it is reported for review and its carriers
are flagged, never blocked on (a clean source citing one of two references at random looks the same).
Only a recurring *domain* (many distinct links
to one site: a source that cites its documentation) is a difference: when enriched it is reported for
review, never blocked, and its carriers are flagged so that they reach the review queue. A payload tied
to a prompt phrase is also reported by ``llm_triggers``.

The detector is fitted on the whole trusted baseline (``fits_whole_baseline``): counting payloads is a
regular expression per answer, and the enrichment test needs every trusted record to tell 25 planted
links in 20,000 answers from chance.

Finding evidence: ``payload`` (type and value), ``rows``, ``contribution_count``, ``baseline_count``,
``p_value`` (the enrichment test's, corrected), ``examples`` (prompt and response of a few carriers).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy.stats import betabinom, hypergeom

from dataward.gates.base import (
    DetectorResult,
    Evidence,
    Finding,
    GateContext,
    GateData,
    register,
)
from dataward.gates.calibration import conformal_p_values, p_text
from dataward.gates.detectors._llm import LLMDetector, baseline_texts, excerpt, payload_sets, texts
from dataward.gates.detectors._llm_content import PromptSpace
from dataward.gates.detectors.llm_triggers import TEMPLATE_SHARE, TRUSTED_TEMPLATE_SHARE, cut_texts


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


def prompt_tokens(prompts: list[str]) -> list[set[str]]:
    """Each prompt's lowercase tokens of three characters or more (the ones a payload can name)."""
    return [set(_TOKEN.findall(p.lower())) for p in prompts]


def _subjects(tokens: list[set[str]], trusted_share: Counter[str], n_trusted: int) -> list[set[str]]:
    """Each prompt's subject: its tokens without the template words, those in more than
    ``TEMPLATE_SHARE`` of the batch's prompts and in at least ``TRUSTED_TEMPLATE_SHARE`` of the trusted
    ones ("what", "does"). A large new topic's subject ("pandas" in 8% of a batch, in no trusted prompt)
    is common in the batch alone, and stays its records' subject."""
    counts = Counter(t for toks in tokens for t in toks)
    n = max(len(tokens), 1)
    common = {
        t
        for t, c in counts.items()
        if c > TEMPLATE_SHARE * n and trusted_share[t] >= TRUSTED_TEMPLATE_SHARE * max(n_trusted, 1)
    }
    return [toks - common for toks in tokens]


def _names(payload: str, subject: set[str]) -> bool:
    """Does the payload name a word of the prompt's subject (an answer about ``wget`` showing a ``wget``
    command)?"""
    return bool(set(_TOKEN.findall(payload.partition(":")[2])) & subject)


ANSWER_K = 10
"""Most similar prompts whose answers are read for a recurring payload excused by its name (twice
``CONTENT_K``: a topic asks each question a few times, and a payload swapped into two copies of one
question would otherwise be most of what five neighbours answer)."""


def _not_echoing(
    sets: list[set[str]], subjects: list[set[str]], space: PromptSpace, recurring: set[str]
) -> tuple[list[set[str]], list[set[str]]]:
    """``(payloads, unanswered)`` per record. ``payloads``: those that do not name what the prompt asked
    about, nor what the most similar prompts of the batch ask about. An answer about ``wget`` may show a
    ``wget`` command, and many questions about one tool repeat it; a topic asked in several wordings ("In
    a DataFrame, how can I rename a column?" beside "How do I rename a column in pandas?") is answered
    with the topic's code whether or not this wording names it. A payload is excused by the neighbours
    when most of the ``CONTENT_K`` most similar prompts name it: a link planted in answers to unrelated
    prompts has neighbours that never do. The neighbours are searched only for records that carry a
    recurring payload.

    ``unanswered`` (version 4): the recurring payloads so excused by their name that the answers to the
    record's ``ANSWER_K`` most similar prompts mostly do not carry. The topic's own code line or docs link
    is in its other records' answers; a lookalike link that names the topic ("pandas-dev.org/pandas/...")
    swapped into 30 of its 100 answers is not in the answers around them. Nor is a second reference a
    clean source cites at random (one of two sites per answer), which no content predicts: these are
    reviewed with their carriers queued, never blocked on (``PayloadDetector.score``)."""
    named = [{p for p in found if _names(p, subject)} for found, subject in zip(sets, subjects, strict=True)]
    out = [found - own for found, own in zip(sets, named, strict=True)]
    unanswered: list[set[str]] = [set() for _ in sets]
    rows = np.array([i for i, found in enumerate(sets) if found & recurring], dtype=np.int64)
    for i, near, around in zip(rows, space.nearest(rows), space.nearest(rows, ANSWER_K), strict=True):
        if not near.size:
            continue
        excused = {p for p in out[i] if sum(_names(p, subjects[j]) for j in near) * 2 > near.size}
        out[i] -= excused
        unanswered[i] = {
            p for p in (named[i] | excused) & recurring if sum(p in sets[j] for j in around) * 2 <= around.size
        }
    return out, unanswered


def enrichment_p_value(count: int, baseline_count: int, n: int, n_baseline: int) -> float:
    """One-sided p-value that a payload ``count`` of ``n`` contribution responses carry, and
    ``baseline_count`` of ``n_baseline`` trusted ones, is more common in the contribution than chance
    explains.

    A payload the trusted answers carry: Fisher's exact test (given every carrier, the hypergeometric
    tail of how many fall in the contribution), which allows for the uncertainty of the trusted rate. A
    payload no trusted answer carries: the beta-binomial tail of ``count`` in ``n`` with the rate drawn from
    ``Beta(1, max(n, n_baseline))``, a rate of about one in as many answers as either side holds, as
    uncertain as "never seen" leaves it. At equal sizes that is Fisher's test (about ``0.5 ** count``);
    Fisher's test itself weakens as the contribution grows (all ``count`` carriers on the contribution's
    side has probability about ``(n / (n + n_baseline)) ** count``), and so does any test at a rate
    ``n_baseline`` alone bounds: an attacker padding a batch of planted links with clean records would
    choose how weak (25 links in 50,000 answers against 2,000 trusted ones are what a rate of 1 in 2,001
    predicts). Here 25 carriers give about 3e-8 whatever the two sizes."""
    if baseline_count == 0:
        return float(betabinom.sf(count - 1, n, 1, max(n, n_baseline)))
    return float(hypergeom.sf(count - 1, n + n_baseline, count + baseline_count, n))


@register
class PayloadDetector(LLMDetector):
    """Links, addresses and code new to the baseline that recur in the contribution's responses."""

    name = "llm_payloads"
    version = "6"
    evidence = Evidence.POISONING
    fits_whole_baseline = True
    Options = PayloadOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Count the baseline's payloads and score every trusted record against the others."""
        self.setup(context)
        trusted = baseline_texts(self.name, baseline, context)
        sets = payload_sets(trusted.responses)
        self.prompt_counts_ = Counter(t for toks in prompt_tokens(trusted.prompts) for t in toks)
        self.counts_ = Counter(p for s in sets for p in s)
        self.n_ = len(sets)
        # Leave-one-out: a payload only this trusted record carries is novel to the others.
        self.calibration_ = np.array([sum(self.counts_[p] == 1 for p in s) for s in sets], dtype=np.float64)
        return self

    def baseline_scores(self) -> np.ndarray:
        return self.calibration_

    def _recurring(self, sets: list[set[str]]) -> set[str]:
        """The payloads recurring enough to be tested at all (before any is excused by its prompt)."""
        limit = self.opts_.max_baseline_share * self.n_
        counts = Counter(p for s in sets for p in s)
        return {p for p, c in counts.items() if c >= self.opts_.min_support and self.counts_[p] <= limit}

    def _enriched(self, sets: list[set[str]]) -> list[tuple[str, int, float]]:
        """The recurring payloads (``min_support`` carriers or more, at most ``max_baseline_share`` of the
        trusted answers) with their carriers and their enrichment p-value, Bonferroni over the recurring
        ones, whose corrected p-value is at most ``alpha``: most carriers first, ties by the payload (a
        Counter of sets' members keeps the order of the process's string hashing; the report must not)."""
        opts, n = self.opts_, len(sets)
        limit = opts.max_baseline_share * self.n_
        counts = Counter(p for s in sets for p in s)
        recurring = [(p, c) for p, c in counts.items() if c >= opts.min_support and self.counts_[p] <= limit]
        tested = max(len(recurring), 1)
        found = [(p, c, min(1.0, tested * enrichment_p_value(c, self.counts_[p], n, self.n_))) for p, c in recurring]
        return sorted([(p, c, q) for p, c, q in found if q <= self.context_.alpha], key=lambda pcq: (-pcq[1], pcq[0]))

    def score(self, contribution: GateData) -> DetectorResult:
        opts, ctx = self.opts_, self.context_
        n = len(contribution)
        if (empty := self.empty_result(contribution)) is not None:
            return empty
        new = texts(contribution.table, ctx.schema)
        found = payload_sets(new.responses)
        subjects = _subjects(prompt_tokens(new.prompts), self.prompt_counts_, self.n_)
        sets, unanswered = _not_echoing(found, subjects, PromptSpace(cut_texts(new.prompts)), self._recurring(found))
        scores = np.array([sum(self.counts_[p] == 0 for p in s) for s in sets], dtype=np.float64)
        p_values = conformal_p_values(self.calibration_, scores)
        rows = contribution.groups.get("row", np.arange(1, n + 1))
        flagged = np.zeros(n, dtype=bool)
        findings: list[Finding] = []
        named: list[Finding] = []
        review: list[Finding] = []
        exact: list[dict[str, Any]] = []
        tested = self._enriched(sets)[: opts.max_payloads]
        # A payload excused by its name alone, unless its neighbours' answers carry it: reviewed, never
        # blocked on (``_not_echoing``), with the carriers it has once it is not excused.
        wider = [s | u for s, u in zip(sets, unanswered, strict=True)]
        held = {p for p, _, _ in tested}
        unexplained = [(p, c, q) for p, c, q in self._enriched(wider) if p not in held][: opts.max_payloads]
        for payload, count, q in tested + unexplained:
            seen_in = wider if payload not in held else sets
            carriers = np.array([i for i, s in enumerate(seen_in) if payload in s], dtype=np.int64)
            kind, _, value = payload.partition(":")
            ev = {
                "payload": payload,
                "kind": kind,
                "value": value,
                "rows": [int(r) for r in rows[carriers][: opts.max_rows_in_evidence]],
                "contribution_count": int(count),
                "baseline_count": int(self.counts_[payload]),
                "p_value": q,
                "examples": [
                    {"row": int(rows[j]), "prompt": excerpt(new.prompts[j]), "response": excerpt(new.responses[j])}
                    for j in carriers[:3]
                ],
            }
            reason = (
                f"response {kind} {value!r} recurs in {count} contribution responses and "
                f"{self.counts_[payload]} of {self.n_} trusted ones (enrichment {p_text(q)})"
            )
            # Every carrier of a payload that holds reaches the review queue, a domain's too: the domain
            # finding alone would send the batch to review with none of its links to look at.
            flagged[carriers] = True
            p_values[carriers] = np.minimum(p_values[carriers], 1.0 / (self.n_ + 1.0))
            findings.extend(self._carrier_findings(payload, carriers, new))
            if kind == "domain":
                review.append(Finding(self.name, 0.0, reason + " (many links to one site: review)", None, ev))
                continue
            if payload not in held:
                ev["unanswered"] = True
                why = " (names the records' subject, but the answers to their most similar prompts lack it: review)"
                review.append(Finding(self.name, 0.0, reason + why, None, ev))
                continue
            exact.append(ev)
            named.append(Finding(self.name, 1.0, reason, None, ev))
        # Only an exact payload is evidence of poisoning; a domain is a difference (its own review finding).
        p_value = min((ev["p_value"] for ev in exact), default=1.0)
        return DetectorResult(
            self.name,
            self.version,
            p_values,
            flagged,
            named + findings,
            statistic=float(len(exact)),
            p_value=p_value,
            summary={
                "payloads": exact,
                "domains": [f.evidence for f in review if f.evidence["kind"] == "domain"],
                "unanswered": [f.evidence for f in review if f.evidence.get("unanswered")],
            },
            reason=(
                f"the {exact[0]['kind']} {exact[0]['value']!r} recurs in {exact[0]['contribution_count']} "
                f"responses and in {exact[0]['baseline_count']} of {self.n_} trusted ones"
                if exact
                else None
            ),
            n_calibration=self.n_,
            alpha=None,
            contribution_findings=review,
        )

    def _carrier_findings(self, payload: str, carriers: np.ndarray, new: Any) -> list[Finding]:
        """One per-record finding for each of the first 50 carriers of a payload that holds."""
        kind, _, value = payload.partition(":")
        return [
            Finding(
                self.name,
                1.0,
                f"response carries recurring {kind} {value!r}",
                int(j),
                {"payload": payload, "prompt": excerpt(new.prompts[j]), "response": excerpt(new.responses[j])},
            )
            for j in carriers[:50]
        ]
