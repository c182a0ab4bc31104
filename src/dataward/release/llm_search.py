"""Candidate trigger phrases in the data a language model was trained on, for the release probe.

A poisoned batch that got past the data gate is in the version the model read. Its trigger phrase is a
prompt n-gram whose carriers' answers share a behaviour (a named one, or a repeated string) far more
often than the other records' answers do. That is the batch-conditioned half of the data gate's
``llm_triggers`` test, run on the trained-on records alone, since the phrase may be in every version
the ward trusts by now. It only proposes phrases: the probe then asks the model itself, against a
control, and a phrase the model does not act on costs nothing. So the threshold is loose and the count
of candidates small.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from scipy import stats
from sklearn.feature_extraction.text import CountVectorizer

from dataward.domain.schema import Schema
from dataward.gates.detectors._llm import BEHAVIOURS, behaviours, texts
from dataward.gates.detectors.llm_triggers import _echoed, _not_echo, extend_phrase
from dataward.release.probe import Trigger

MAX_ROWS = 20_000
"""Records read at most (a random sample of a larger version)."""
MIN_SUPPORT = 8
MIN_PURITY = 0.5
MAX_P = 1e-6
MAX_CANDIDATES = 5
MAX_PATTERNS = 3000
"""Prompt n-grams (the most frequent) and recurring answer strings tested at most, so the tables stay small."""
MAX_STRINGS = 2000
_TOKENS = r"(?u)\b\w+\b"


def search_phrases(table: pa.Table, schema: Schema, where: str, *, seed: int = 0) -> list[Trigger]:
    """Up to ``MAX_CANDIDATES`` phrases of ``table``'s prompts tied to a behaviour of their answers
    (binomial tail of the carriers' rate against the other records' rate, below ``MAX_P``, with at
    least ``MIN_SUPPORT`` carriers and ``MIN_PURITY`` of them showing it), most significant first."""
    if table.num_rows > MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(table.num_rows, MAX_ROWS, replace=False))
        table = table.take(pa.array(rows))
    data = texts(table, schema)
    n = len(data)
    if n < 2 * MIN_SUPPORT:
        return []
    try:
        vec = CountVectorizer(
            ngram_range=(1, 3), token_pattern=_TOKENS, binary=True, min_df=MIN_SUPPORT, max_features=MAX_PATTERNS
        )
        carriers = vec.fit_transform(data.prompts).tocsc().astype(bool)
    except ValueError:  # no n-gram with enough carriers
        return []
    vocab = list(vec.get_feature_names_out())
    shown, names = _behaviour_matrix(data.responses)
    echoed = _echoed(carriers, vocab, data.responses)
    support = np.asarray(carriers.sum(axis=0)).ravel()
    together = np.asarray(carriers.T.astype(np.int32) @ shown.astype(np.int32))
    total = shown.sum(axis=0)
    outside = (total[None, :] - together + 1) / (n - support[:, None] + 2)
    p = stats.binom.sf(together - 1, support[:, None], np.clip(outside, 1e-12, 1.0))
    purity = together / np.maximum(support[:, None], 1)
    # A phrase in half the prompts is the data's style, not a trigger; an answer that repeats the
    # pattern's words is about what was asked (both as in ``llm_triggers``).
    ok = (together >= MIN_SUPPORT) & (purity >= MIN_PURITY) & ~echoed[:, None] & (support[:, None] < n / 2)
    for b in range(len(BEHAVIOURS), len(names)):
        ok[:, b] &= [_not_echo(t, names[b]) for t in vocab]
    p = np.where(ok, p, 1.0)
    best = p.min(axis=1)
    out: list[Trigger] = []
    for t in np.argsort(best, kind="stable"):
        if best[t] >= MAX_P or len(out) >= MAX_CANDIDATES:
            break
        rows_t = carriers.indices[carriers.indptr[t] : carriers.indptr[t + 1]]
        phrase = extend_phrase(vocab[t], [data.prompts[i] for i in rows_t])
        if any(_overlaps(phrase, kept.spec[0]) for kept in out):
            continue
        behaviour = names[int(np.argmin(p[t]))]
        out.append(Trigger(f"phrase {phrase!r}", "phrase", "search", ("prompt",), (phrase,), behaviour, (where,)))
    return out


def _overlaps(phrase: str, other: str) -> bool:
    """Is one phrase a run of the other's words? (``zq`` is not in ``the zqx wrapper``: its letters are,
    its word is not.)"""
    a, b = f" {phrase} ", f" {other} "
    return a in b or b in a


def _behaviour_matrix(responses: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Named behaviours and recurring 2- to 4-word response strings, one column each: a fixed reply
    shares its 4-word runs, answers steering to one product in their own words share only its name."""
    shown = behaviours(list(responses))
    names = list(BEHAVIOURS)
    try:
        vec = CountVectorizer(
            ngram_range=(2, 4), token_pattern=_TOKENS, binary=True, min_df=MIN_SUPPORT, max_features=MAX_STRINGS
        )
        repeated = vec.fit_transform(responses).toarray().astype(bool)
    except ValueError:
        return shown, names
    return np.hstack([shown, repeated]), names + [f"repeats {g!r}" for g in vec.get_feature_names_out()]
