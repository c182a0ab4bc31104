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
import scipy.sparse as sp
from scipy import stats
from sklearn.feature_extraction.text import CountVectorizer

from dataward.domain.schema import Schema
from dataward.gates.detectors._llm import BEHAVIOURS, behaviours, texts
from dataward.gates.detectors.llm_triggers import _echoed, extend_phrase
from dataward.release.llm_phrases import phrase_name
from dataward.release.llm_placement import phrase_position
from dataward.release.probe import Trigger

MAX_ROWS = 20_000
"""Records read at most (a random sample of a larger version)."""
MIN_SUPPORT = 8
MIN_PURITY = 0.5
MAX_P = 1e-6
MAX_CANDIDATES = 5
MAX_PATTERNS = 3000
"""Prompt n-grams tested at a time (all are, block by block), so the tables stay small..."""
MAX_STRINGS = 2000
"""... and recurring answer strings tested at most (the most frequent)."""
_TOKENS = r"(?u)\b\w+\b"


def search_phrases(table: pa.Table, schema: Schema, where: str, *, seed: int = 0) -> list[Trigger]:
    """Up to ``MAX_CANDIDATES`` phrases of ``table``'s prompts tied to a behaviour of their answers
    (binomial tail of the carriers' rate against the other records' rate, below ``MAX_P``, with at
    least ``MIN_SUPPORT`` carriers and ``MIN_PURITY`` of them showing it), most significant first."""
    if table.num_rows > MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(table.num_rows, MAX_ROWS, replace=False))
        table = table.take(pa.array(rows))
    data = texts(table, schema, every_answer=False)
    n = len(data)
    if n < 2 * MIN_SUPPORT:
        return []
    try:
        vec = CountVectorizer(ngram_range=(1, 3), token_pattern=_TOKENS, binary=True, min_df=MIN_SUPPORT)
        carriers = vec.fit_transform(data.prompts).tocsc().astype(bool)
    except ValueError:  # no n-gram with enough carriers
        return []
    vocab = list(vec.get_feature_names_out())
    shown, names = _behaviour_matrix(data.responses)
    best, chosen = _best_behaviours(carriers, vocab, shown, names)
    candidates = np.flatnonzero(best < MAX_P)
    # An answer that repeats the pattern's words is about what was asked (as in ``llm_triggers``).
    best[candidates[_echoed_among(carriers, vocab, candidates, data.responses)]] = 1.0
    out: list[Trigger] = []
    for t in np.argsort(best, kind="stable"):
        if best[t] >= MAX_P or len(out) >= MAX_CANDIDATES:
            break
        rows_t = carriers.indices[carriers.indptr[t] : carriers.indptr[t + 1]]
        phrase = extend_phrase(vocab[t], [data.prompts[i] for i in rows_t])
        if any(_overlaps(phrase, kept.spec[0]) for kept in out):
            continue
        behaviour = names[int(chosen[t])]
        position, phrase = phrase_position(phrase, (data.prompts[i] for i in rows_t))
        out.append(
            Trigger(
                phrase_name(phrase, position), "phrase", "search", ("prompt",), (phrase, position), behaviour, (where,)
            )
        )
    return out


def _best_behaviours(
    carriers: sp.csc_matrix, vocab: Sequence[str], shown: np.ndarray, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt pattern (a column of ``carriers``), its smallest p-value over the behaviours (columns
    of ``shown``) and the behaviour giving it. Every pattern with ``MIN_SUPPORT`` carriers is tested,
    ``MAX_PATTERNS`` at a time so that the tables stay small: keeping only the most frequent ones left
    out a phrase planted in a few records of a varied version."""
    n = carriers.shape[0]
    support = np.asarray(carriers.sum(axis=0)).ravel()
    total = shown.sum(axis=0)
    counts = shown.astype(np.int32)
    echoes = _string_words(names)
    best, chosen = np.ones(len(vocab)), np.zeros(len(vocab), dtype=np.int64)
    for lo in range(0, len(vocab), MAX_PATTERNS):
        hi = min(len(vocab), lo + MAX_PATTERNS)
        together = np.asarray(carriers[:, lo:hi].T.astype(np.int32) @ counts)
        held = support[lo:hi, None]
        outside = (total[None, :] - together + 1) / (n - held + 2)
        p = stats.binom.sf(together - 1, held, np.clip(outside, 1e-12, 1.0))
        # A phrase in half the prompts is the data's style, not a trigger (as in ``llm_triggers``).
        ok = (together >= MIN_SUPPORT) & (together >= MIN_PURITY * held) & (held < n / 2)
        p = np.where(ok, p, 1.0)
        for r in np.flatnonzero(p.min(axis=1) < MAX_P):
            # A repeated answer string sharing a word with the pattern is about what was asked.
            p[r, [b for w in set(vocab[lo + r].split()) for b in echoes.get(w, ())]] = 1.0
        best[lo:hi], chosen[lo:hi] = p.min(axis=1), p.argmin(axis=1)
    return best, chosen


def _string_words(names: Sequence[str]) -> dict[str, list[int]]:
    """Word -> the behaviour columns (``repeats '...'``) whose string holds it: what
    ``llm_triggers._not_echo`` reads from a name, indexed once rather than per pattern."""
    index: dict[str, list[int]] = {}
    for b, name in enumerate(names):
        if name.startswith("repeats "):
            for w in set(name[len("repeats ") :].strip("'\"").split()):
                index.setdefault(w, []).append(b)
    return index


def _echoed_among(
    carriers: sp.csc_matrix, vocab: Sequence[str], patterns: np.ndarray, responses: Sequence[str]
) -> np.ndarray:
    """``llm_triggers._echoed`` for ``patterns`` only, with the common words it leaves out of a pattern
    taken from the whole vocabulary (it reads them from the patterns it is given)."""
    shares = np.diff(carriers.indptr) / max(carriers.shape[0], 1)
    common = [j for j, w in enumerate(vocab) if " " not in w and shares[j] > 0.05]
    asked = set(patterns.tolist())
    cols = list(patterns) + [j for j in common if j not in asked]
    # The search reads one version, with no trusted side to tell a batch's template words from a large
    # topic's subject: the version stands for both (a word common in it is a template word, as before).
    chosen = carriers[:, cols]
    echoed = _echoed(chosen, chosen, [vocab[j] for j in cols], list(responses))
    return echoed[: len(patterns)]


def _overlaps(phrase: str, other: str) -> bool:
    """Is one phrase a run of the other's words? (``zq`` is not in ``the zqx wrapper``: its letters are,
    its word is not.)"""
    a, b = f" {phrase.lower()} ", f" {other.lower()} "
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
