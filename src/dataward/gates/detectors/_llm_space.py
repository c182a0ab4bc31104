"""The trusted baseline of a language-model dataset in sentence-embedding space, for ``llm_outliers`` and
``llm_drift``: which trusted records are embedded, how they are split, their topics, and plain names
for those topics.

Embeddings are the offline MiniLM model's (``_llm_clusters.embed``: unit-norm, cached by text within
the process, so the detectors that embed the same texts pay once). At most ``max_reference`` trusted
records are embedded (a seeded random sample): MiniLM costs tens of milliseconds per text on a shared
CPU. The sample is split in two halves at random: the *fit* half defines the topics (k-means centroids)
and the *calibration* half is what contribution records are compared with. Both detectors take the
same sample and split for the same seed, so the texts are embedded once.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from dataward.domain.errors import InputError
from dataward.gates.detectors._llm import Texts
from dataward.gates.detectors._llm_clusters import embed, unavailable

_WORD = re.compile(r"[a-z][a-z0-9_+-]{2,}")


@dataclass(frozen=True)
class Space:
    """Embedded trusted records: ``prompts`` and ``responses`` (rows: the sampled records, in the order
    of ``index``), the ``fit`` and ``calibration`` halves (positions into those rows)."""

    index: np.ndarray
    prompts: np.ndarray
    responses: np.ndarray
    fit: np.ndarray
    calibration: np.ndarray
    texts: Texts


def embedded_baseline(detector: str, texts: Texts, max_reference: int, seed: int, min_records: int = 20) -> Space:
    """Embed at most ``max_reference`` trusted records and split them into fit and calibration halves.

    Raises ``InputError`` (the gate then skips the detector with the reason) when the sentence model is
    not installed or the baseline has fewer than ``min_records`` records."""
    missing = unavailable()
    if missing is not None:
        raise InputError(f"{detector} needs sentence embeddings: {missing}")
    n = len(texts)
    if n < min_records:
        raise InputError(f"{detector} needs at least {min_records} trusted records, got {n}")
    rng = np.random.default_rng(seed)
    index = np.arange(n) if n <= max_reference else np.sort(rng.choice(n, max_reference, replace=False))
    order = rng.permutation(index.shape[0])
    half = index.shape[0] // 2
    prompts = embed([texts.prompts[i] for i in index])
    responses = embed([texts.responses[i] for i in index])
    return Space(index, prompts, responses, np.sort(order[:half]), np.sort(order[half:]), texts)


TOPIC_RECORDS = 20
"""The fewest records a topic is fitted from: ``topics`` makes fewer clusters for fewer records."""


def topics(vectors: np.ndarray, count: int, seed: int) -> KMeans | None:
    """k-means with ``count`` clusters (fewer for few records: at least ``TOPIC_RECORDS`` records a
    cluster), or None when fewer than two clusters can be made."""
    k = min(count, vectors.shape[0] // TOPIC_RECORDS)
    if k < 2:
        return None
    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(vectors)


def topic_names(texts: list[str], assigned: np.ndarray, k: int, words: int = 4) -> list[str]:
    """A plain name per cluster: the words its texts use far more often than the other clusters' texts."""
    docs = [set(_WORD.findall(t.lower())) - ENGLISH_STOP_WORDS for t in texts]
    overall = Counter(w for d in docs for w in d)
    names = []
    for c in range(k):
        members = [docs[i] for i in np.flatnonzero(assigned == c)]
        if not members:
            names.append(f"cluster {c + 1}")
            continue
        inside = Counter(w for d in members for w in d)
        rest = max(len(docs) - len(members), 1)
        # Share inside minus share outside, for words at least a fifth of the cluster's texts use.
        lift = {
            w: cnt / len(members) - (overall[w] - cnt) / rest for w, cnt in inside.items() if cnt >= 0.2 * len(members)
        }
        top = [w for w, v in sorted(lift.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0][:words]
        names.append(", ".join(top) if top else f"cluster {c + 1}")
    return names


def knn(
    queries: np.ndarray, index: np.ndarray, k: int, skip: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances (1 - cos, ascending) and positions of each unit-norm query's ``k`` nearest rows of
    ``index``; ``skip[i]`` is a row of ``index`` that query ``i`` must not count (itself), or -1."""
    k = min(k, index.shape[0] - (0 if skip is None else 1))
    dist = np.empty((queries.shape[0], k), dtype=np.float64)
    pos = np.empty((queries.shape[0], k), dtype=np.int64)
    step = 2048
    for start in range(0, queries.shape[0], step):
        sims = (queries[start : start + step] @ index.T).astype(np.float64)
        if skip is not None:
            rows = np.flatnonzero(skip[start : start + step] >= 0)
            sims[rows, skip[start + rows]] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.argsort(-sims, axis=1)
        near = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-near, axis=1)
        pos[start : start + step] = np.take_along_axis(part, order, axis=1)
        dist[start : start + step] = 1.0 - np.take_along_axis(near, order, axis=1)
    return dist, pos
