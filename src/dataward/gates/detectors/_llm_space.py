"""The trusted baseline of a language-model dataset in sentence-embedding space, for ``llm_outliers`` and
``llm_drift``: which trusted records are embedded, how they are split, their topics, and plain names
for those topics.

Embeddings are the offline MiniLM model's (``_llm_clusters.embed``: unit-norm, cached by text within
the process, so the detectors that embed the same texts pay once). At most ``max_reference`` trusted
records are embedded (a seeded random sample): MiniLM costs tens of milliseconds per text on a shared
CPU. The sample is split in two halves at random: the *fit* half defines the topics (k-means centroids)
and the *calibration* half is what contribution records are compared with. Both detectors take the
same sample and split for the same seed, so the texts are embedded once.

Near-twins (``near_twins``, ``trusted_twins``): a trusted sample often asks about one item several times
(a question in two wordings, paraphrase pairs, one prompt with several answers). A trusted record's twin
is then in the trusted sample while a new item's record has none, so a trusted record reads nearer to
trusted data than any new clean record can, and a calibration on trusted records is too tight. Both
detectors measure every record, trusted or new, without its near-twins among the trusted records. Twins
are looked for among trusted records only: a contribution cannot add twins to its own records, and the
calibration is made of trusted records only.
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


TWIN_SHARE = 0.5
"""A trusted record nearer to a record than this share of its distance to its ``rank``-th nearest trusted
record is its near-twin (``near_twins``)."""
TWIN_RANK_FACTOR = 2
"""The rank that sets a record's scale for ``near_twins``, in multiples of the neighbours a detector
counts (``llm_outliers``: ``2 k``, 10 by default; ``llm_drift``, which reads the nearest record: 10 too)."""


def joint(prompts: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Prompt and response side by side, unit norm: one vector per record."""
    return np.hstack([prompts, responses]) / np.sqrt(2.0)


def near_twins(distances: np.ndarray, rank: int) -> np.ndarray:
    """Which trusted records are each record's near-twins: nearer to it (joint cosine distance) than half
    its distance to its ``rank``-th nearest trusted record (``inf`` entries: never a twin, not counted).

    Scale-free and read the same way for a trusted record and a new one, so leaving twins out keeps the
    two exchangeable; it finds groups of up to ``rank - 1`` records about one item (a question asked in
    two wordings, one prompt with several answers)."""
    finite = np.where(np.isfinite(distances), distances, np.inf)
    r = min(rank, finite.shape[1]) - 1
    if r < 1:
        return np.zeros(distances.shape, dtype=bool)
    scale = np.partition(finite, r, axis=1)[:, r]
    return finite < TWIN_SHARE * scale[:, None]


def trusted_twins(
    prompts: np.ndarray, responses: np.ndarray, space: Space, rank: int, own: np.ndarray | None = None
) -> np.ndarray:
    """(records x trusted sample) mask of the trusted records a record is measured without: its near-twins
    among the embedded trusted records (``near_twins`` on joint distances) and, for a trusted record
    (``own[i]``: its row in the sample; None for records from elsewhere), itself. Callers pass at most a
    few thousand records at a time (the distances are a dense block)."""
    distance = 1.0 - (joint(prompts, responses) @ joint(space.prompts, space.responses).T).astype(np.float64)
    rows = np.arange(distance.shape[0])
    if own is not None:
        distance[rows, own] = np.inf  # itself: neither a twin nor counted for the scale
    left_out = near_twins(distance, rank)
    if own is not None:
        left_out[rows, own] = True
    return left_out


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
