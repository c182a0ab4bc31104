"""Content neighbours of a batch's prompts, for the language-model detectors' tests that condition on
content: would a record behave so without the phrase it carries?

A prompt is read as its TF-IDF word vector (l2-normalized, so the dot product is the cosine). For a
pattern's carriers, the neighbours that matter are the batch's most similar prompts that do *not* carry
the pattern: they share the carrier's other words (the command asked about, the operation, the thing
to harden). A new topic asks the same things in several wordings, and its other wordings show its
behaviour too; a planted phrase is added to prompts whose other wordings, in the batch, behave as the
rest of the batch does. This mirrors the labelled ``triggers`` detector's batch tie
(``triggers._ContentTie.batch_ties``), on the prompt's words instead of the gate's features.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import stats
from sklearn.feature_extraction.text import TfidfVectorizer

CONTENT_K = 5
"""Non-carrying neighbours read per carrier (the labelled detector's ``k``)."""
MAX_MATCHED = 200
"""Carriers whose neighbours are read per pattern (the first ones in a seeded order beyond that)."""
_TOKENS = r"(?u)\b\w+\b"


class PromptSpace:
    """The batch's prompts as TF-IDF vectors, with the content tie of a pattern's carriers."""

    def __init__(self, prompts: list[str], seed: int = 0) -> None:
        try:
            self.x = TfidfVectorizer(token_pattern=_TOKENS, sublinear_tf=True).fit_transform(prompts).tocsr()
        except ValueError:  # no word in any prompt
            self.x = sp.csr_matrix((len(prompts), 0))
        self.rank = np.random.default_rng(seed).permutation(len(prompts))

    def nearest(self, rows: np.ndarray, k: int = CONTENT_K) -> np.ndarray:
        """The ``k`` most similar other prompts of each of ``rows`` (rows x k batch indices)."""
        n = self.x.shape[0]
        k = min(k, n - 1)
        if k <= 0 or rows.size == 0:
            return np.zeros((rows.size, 0), dtype=np.int64)
        out = []
        for start in range(0, rows.size, 500):  # a dense block of at most 500 rows by the batch at a time
            chunk = rows[start : start + 500]
            sims = (self.x[chunk] @ self.x.T).toarray()
            sims -= 1e-9 * self.rank[None, :] / max(n, 1)
            sims[np.arange(chunk.size), chunk] = -np.inf
            out.append(np.argpartition(-sims, k - 1, axis=1)[:, :k])
        return np.vstack(out)

    def _outside(self, carriers: np.ndarray, k: int) -> np.ndarray:
        """Per carrier read (at most ``MAX_MATCHED``, in the seeded order), its ``k`` most similar
        non-carrying prompts (carriers read x k batch indices)."""
        n = self.x.shape[0]
        outside = np.ones(n, dtype=bool)
        outside[carriers] = False
        others = np.flatnonzero(outside)
        k = min(k, others.size)
        if k == 0 or carriers.size == 0:
            return np.zeros((0, 0), dtype=np.int64)
        read = carriers[np.argsort(self.rank[carriers], kind="stable")][:MAX_MATCHED]
        sims = (self.x[read] @ self.x[others].T).toarray()
        # Ties (prompts sharing no word with the carrier) are broken by the seeded order, not by row order.
        sims -= 1e-9 * self.rank[others][None, :] / max(n, 1)
        return others[np.argpartition(-sims, k - 1, axis=1)[:, :k]]

    def outside_neighbours(self, carriers: np.ndarray, k: int = CONTENT_K) -> np.ndarray:
        """The distinct non-carrying prompts among the carriers' ``k`` most similar ones, nearest ranks
        first (every carrier's nearest, then every carrier's second...)."""
        idx = self._outside(carriers, k)
        order = idx.T.ravel()
        _, first = np.unique(order, return_index=True)
        return order[np.sort(first)]

    def neighbour_shares(self, carriers: np.ndarray, shows: np.ndarray, k: int = CONTENT_K) -> np.ndarray:
        """Per carrier read, the share of its ``k`` most similar non-carrying prompts whose records show
        the behaviour (``shows``: one per batch record)."""
        idx = self._outside(carriers, k)
        return shows[idx].mean(axis=1) if idx.size else np.zeros(0)

    def content_tie(self, carriers: np.ndarray, shows: np.ndarray, k: int = CONTENT_K) -> tuple[float, float]:
        """``(p, share)``: the one-sided p-value that the carriers show the behaviour more often than
        their most similar non-carrying prompts of the batch do, and the neighbours' mean share showing it
        (what content alone explains of the carriers' purity). Each carrier's chance
        under the null is the share among its ``k`` neighbours, pulled by one pseudo-record towards the
        behaviour's rate among all non-carriers (``(same + rate) / (k + 1)``); the count is
        Poisson-binomial, whose upper tail from one above its mean is at most the binomial tail at the
        mean chance (Hoeffding, 1956)."""
        outside = np.ones(shows.size, dtype=bool)
        outside[carriers] = False
        shares = self.neighbour_shares(carriers, shows, k)
        if not outside.any() or shares.size == 0:
            return 1.0, 1.0
        rate = float(shows[outside].mean())
        kk = min(k, int(outside.sum()))
        chance = float(np.mean((shares * kk + rate) / (kk + 1.0)))
        read = carriers[np.argsort(self.rank[carriers], kind="stable")][:MAX_MATCHED]
        m = int(shows[read].sum())
        share = float(shares.mean())
        if m < read.size * chance + 1:
            return 1.0, share
        return float(stats.binom.sf(m - 1, read.size, chance)), share
