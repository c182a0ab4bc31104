"""Clean validation for language-model data: would the contribution change what validation prompts get?

The clean validation set of an instruction, chat or preference dataset is a set of prompts with their
expected answers (a dataset of the same kind); a prompt's *expected behaviours* are the named ones its
expected answer shows (``_llm.BEHAVIOURS``: a link, code, a shell command, a refusal, negative
polarity...). Any other named behaviour in an answer to it is a violation.

There is no language model to fine-tune in the gate, so the model is a retrieval proxy of one: it
answers a prompt with the answer of the most similar training prompt (TF-IDF word 1-2-grams, cosine),
which is what a fine-tuned model reproduces for a prompt close to one it was taught. Two proxies
answer every probe: one on the baseline, one on the baseline with the contribution.

Probes are the validation prompts as they are, and each with a *suspected trigger* appended: the
contribution's prompt n-grams that are over-represented against the baseline beyond chance (Fisher,
Bonferroni over the n-grams with ``min_support`` carriers), at most ``max_probes``. A backdoor's phrase
appended to a clean prompt retrieves a poisoned record, whose answer carries the taught behaviour; a
benign new phrase (a new topic) retrieves a clean answer that violates nothing.

For each probe set: the one-sided exact McNemar test of the paired violations (baseline-only proxy
against the proxy with the contribution), Bonferroni over probe sets. The contribution blocks when a
probe set's violation rate rises by more than the policy's ``max_validation_drop`` and that rise is
significant at ``alpha``: harm on the clean validation set, evidence of poisoning. The contribution
records that the harmful answers came from are flagged (those answers *are* the harm), and the finding
names the phrase, the behaviour and a validation prompt with its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy import stats
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from dataward.domain.errors import InputError
from dataward.domain.wording import a_or_an
from dataward.gates.base import (
    DetectorResult,
    Evidence,
    Finding,
    GateContext,
    GateData,
    Requirement,
    register,
)
from dataward.gates.detectors._llm import BEHAVIOURS, LLMDetector, baseline_texts, behaviours, excerpt, texts
from dataward.gates.detectors.llm_triggers import LLMTriggerOptions, _prompt_patterns, cut_texts, extend_phrase


@dataclass(frozen=True)
class LLMValidationOptions:
    """Options of ``llm_validation``: probe phrases tried at most, and the carriers a phrase needs."""

    max_probes: int = 10
    min_support: int = 8

    def __post_init__(self) -> None:
        if self.max_probes < 0 or self.min_support < 2:
            raise ValueError("max_probes must be >= 0 and min_support >= 2")


@register
class LLMValidationDetector(LLMDetector):
    """Violations of validation prompts' expected behaviours, with and without the contribution."""

    name = "llm_validation"
    version = "1"
    evidence = Evidence.POISONING
    requires = LLMDetector.requires | {Requirement.VALIDATION}
    Options = LLMValidationOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Keep the baseline's prompts and answers and the validation prompts' expected behaviours."""
        self.setup(context)
        self.base_ = baseline_texts(self.name, baseline, context)
        if context.validation is None or context.validation.table is None:
            raise InputError("llm_validation needs the clean validation set's prompts and expected answers")
        self.val_ = texts(context.validation.table, context.schema)
        self.expected_ = behaviours(self.val_.responses)
        return self

    def score(self, contribution: GateData) -> DetectorResult:
        ctx = self.context_
        n_c = len(contribution)
        if n_c == 0 or contribution.table is None or len(self.val_) == 0:
            return DetectorResult(self.name, self.version, np.ones(n_c), np.zeros(n_c, bool))
        new = texts(contribution.table, ctx.schema)
        probes = ["", *self._suspected_phrases(new)]
        prompts = self.base_.prompts + new.prompts
        answers = self.base_.responses + new.responses
        cut = cut_texts(prompts)  # the vocabulary is built whole: bounded per record
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b").fit(cut)
        index = normalize(vec.transform(cut))
        n_b = len(self.base_)
        rows = contribution.groups.get("row", np.arange(1, n_c + 1))
        p_values = np.ones(n_c)
        flagged = np.zeros(n_c, dtype=bool)
        results: list[dict[str, Any]] = []
        for phrase in probes:
            queries = normalize(vec.transform([f"{v} {phrase}".strip() for v in self.val_.prompts]))
            sims = (queries @ index.T).toarray()
            without = np.argmax(sims[:, :n_b], axis=1)
            with_ = np.argmax(sims, axis=1)
            bad_without = _violations(behaviours([answers[i] for i in without]), self.expected_)
            bad_with = _violations(behaviours([answers[i] for i in with_]), self.expected_)
            worse = bad_with.any(axis=1) & ~bad_without.any(axis=1)
            better = ~bad_with.any(axis=1) & bad_without.any(axis=1)
            k, m = int(worse.sum()), int(worse.sum() + better.sum())
            p = float(stats.binom.sf(k - 1, m, 0.5)) if k else 1.0
            rise = (k - int(better.sum())) / len(self.val_)
            counts = bad_with[worse].sum(axis=0)
            behaviour = (
                ", ".join(BEHAVIOURS[i] for i in np.flatnonzero(counts >= max(1, counts.max() // 2))) if k else None
            )
            sources = sorted({int(i) - n_b for i in with_[worse] if i >= n_b})
            example = int(np.flatnonzero(worse)[0]) if k else None
            results.append(
                {
                    "probe": phrase,
                    "behaviour": behaviour,
                    "violations_with": int(bad_with.any(axis=1).sum()),
                    "violations_without": int(bad_without.any(axis=1).sum()),
                    "validation_prompts": len(self.val_),
                    "rise": rise,
                    "p_value": min(1.0, p * len(probes)),
                    "sources": sources,
                    "example": None
                    if example is None
                    else {
                        "prompt": excerpt(f"{self.val_.prompts[example]} {phrase}".strip()),
                        "answer": excerpt(answers[int(with_[example])]),
                        "expected": excerpt(self.val_.responses[example]),
                    },
                }
            )
        harmful = [r for r in results if r["p_value"] < ctx.alpha and r["rise"] > ctx.max_validation_drop]
        harmful.sort(key=lambda r: r["p_value"])
        findings: list[Finding] = []
        for r in harmful:
            src = np.asarray(r["sources"], dtype=np.int64)
            flagged[src] = True
            p_values[src] = np.minimum(p_values[src], r["p_value"])
            what = f"with {r['probe']!r} appended" if r["probe"] else "as they are"
            reason = (
                f"validation prompts {what} get {a_or_an(r['behaviour'])} answer their expected answer lacks: "
                f"{r['violations_with']} of {r['validation_prompts']} with the contribution, "
                f"{r['violations_without']} without it (p={r['p_value']:.2g})"
            )
            r["rows"] = [int(x) for x in rows[src][:200]]
            findings.append(Finding(self.name, 1.0 - r["p_value"], reason, None, dict(r)))
            for j in src[:50]:
                findings.append(
                    Finding(
                        self.name,
                        1.0 - r["p_value"],
                        f"answers validation prompts {what} with {a_or_an(r['behaviour'])} answer",
                        int(j),
                        {
                            "trigger": r["probe"],
                            "prompt": excerpt(new.prompts[j]),
                            "response": excerpt(new.responses[j]),
                        },
                    )
                )
        block = bool(harmful)
        return DetectorResult(
            self.name,
            self.version,
            p_values,
            flagged,
            findings,
            statistic=max((r["rise"] for r in results), default=0.0),
            p_value=min((r["p_value"] for r in results), default=1.0),
            summary={"probes": results, "max_validation_drop": ctx.max_validation_drop},
            block=block,
            block_reason=findings[0].reason if block else None,
            alpha=None,
        )

    def _suspected_phrases(self, new: Any) -> list[str]:
        """The contribution's prompt n-grams over-represented against the baseline beyond chance."""
        opts, ctx = self.opts_, self.context_
        if opts.max_probes == 0:
            return []
        vocab, pc, pb, style = _prompt_patterns(new, self.base_, LLMTriggerOptions(min_support=opts.min_support))
        # Phrases only: a probe appends words to the validation prompts (formatting comes last, left out).
        words = int((~style).sum())
        vocab, pc, pb = vocab[:words], pc[:, :words], pb[:, :words]
        if not vocab:
            return []
        n_c, n_b = pc.shape[0], pb.shape[0]
        n_t, n_tb = np.diff(pc.indptr), np.diff(pb.indptr)
        p = stats.hypergeom.sf(n_t - 1, n_c + n_b, n_t + n_tb, n_c) * len(vocab)
        # Most significant first; among ties (the n-grams of one planted phrase) the longest.
        order = sorted((int(t) for t in np.flatnonzero(p < ctx.alpha)), key=lambda t: (p[t], -len(vocab[t])))
        phrases: list[str] = []
        for t in order:
            # The n-grams of one planted phrase are one probe: the whole phrase its carriers share.
            carriers = pc.indices[pc.indptr[t] : pc.indptr[t + 1]]
            phrase = extend_phrase(vocab[t], [new.prompts[j] for j in carriers])
            if not any(phrase in kept or kept in phrase for kept in phrases):
                phrases.append(phrase)
            if len(phrases) >= opts.max_probes:
                break
        return phrases


def _violations(found: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Named behaviours an answer shows that the expected answer does not."""
    return found & ~expected
