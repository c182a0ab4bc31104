"""Trigger patterns: content that is over-represented in the contribution and tied to one label.

A backdoor needs a pattern the model can latch on to (a token, a pixel patch, a value combination)
that co-occurs with the target label far more in the poisoned batch than anywhere in the trusted
data. Every input column is turned into binary patterns, read from the raw table:

* text: lowercase n-grams of tokens (1..``max_ngram`` tokens), via scikit-learn's ``CountVectorizer``;
  a token is a word (``\\w+``) or a run of punctuation and symbols that is not inside a word (an
  appended " ...", a ``;)``, an emoji, a trailing "!!"; not the hyphen of ``openssl-req``), since a
  trigger need not be a word (``TOKEN_PATTERN``); and its formatting (``dataward.gates.formatting``: casing, unusual
  whitespace, invisible characters, mixed alphabets), which the n-grams and the featurizers fold away;
* images: each image decoded once with Pillow, read in grayscale (luma) at a small fixed size; a pixel
  is *bright* / *dark* when it lies beyond the baseline's 99th / 1st percentile of that pixel; a colour
  image is also read in chroma (Pillow's YCbCr: Cb, blue against the luma, and Cr, red against it), each
  plane's pixel beyond the baseline's 99th / 1st percentile and beyond every trusted value of it
  (*blue-* / *yellow-leaning*, *red-* / *green-leaning*): a patch of a colour whose luma is ordinary
  (magenta is mid-grey) shows there only. Pairs of pixels are made in luma only;
* numeric and embedding values: below the baseline's 1st percentile, above its 99th, or in one of
  the baseline's quintile bins (numeric columns only); categorical values: each category;
* tabular pairs: co-occurrences of two patterns of different numeric/categorical columns (rare value
  combinations), when the table has at most ``max_pair_columns`` such columns.

For each pattern ``t`` and label ``L`` with at least ``min_support`` contribution records carrying
``t`` with label ``L`` these one-sided tests are run:

* label tie: among the contribution's carriers of ``t``, more are labelled ``L`` than the baseline's
  smoothed ``P(L | t)`` explains, or that probability moved to the batch's class shares when larger
  (``_prior_shifted_tie``: a batch of mostly ``L`` has mostly ``L`` among any pattern's carriers)
  (binomial tail); ``z`` is the matching z-score;
* over-representation (novelty): "carries ``t`` and is labelled ``L``" is more frequent in the
  contribution than in the baseline (Fisher's exact test, as a hypergeometric tail). Given its margin
  it cannot fall below ``(n_c / (n_c + n_b)) ** (m + b)``: once the batch outgrows the baseline, a rare
  pattern cannot be shown to be new (25 carriers in 50,000 records against none in 4,000: 0.15);
* batch tie: the carriers bear ``L`` more often than batch records of similar content without ``t``
  (``_ContentTie.batch_ties``: nearest non-carriers of the batch, Hoeffding's binomial bound on the
  Poisson-binomial count). It needs no baseline.

A further test conditions on content, so that a pattern that is simply common in a batch of one class,
or that comes with a global shift (a darker scanner, a new topic), is not a trigger:

* content tie: would a carrier be labelled ``L`` without the pattern? A carrier's agreement with
  ``L`` is the share of ``L`` among the trusted records among its ``content_k`` nearest records that
  do not carry the pattern (the baseline's reading of its content, never the batch's own records);
  carriers must agree with ``L`` markedly less than the batch's other records labelled ``L`` do (when
  every record of ``L`` in the batch carries it, than the batch's other records agree with their own
  labels: how well the baseline reads this batch at all) (``_ContentTie``). A backdoor's carriers look
  like another class; a one-class source's or a shifted sensor's carriers look like their label as much
  as their batch peers do.

A trigger passes one of two intersection-union tests (each valid whatever the dependence of its
halves), the better of the two paid for twice (Bonferroni over the two routes):

* route A (novelty): tie and over-representation, each Bonferroni-corrected by Tarone's count of the
  (pattern, label) pairs that could reach significance at all given their margins
  (``_testable_count``), then content, corrected by the number of route A's candidates (content where
  the features say nothing of the label vetoes nothing). For a pattern fewer than ``UNSEEN_BELOW``
  trusted records carry, the tie is read against the baseline's own ``P(L | t)`` (Tarone's count with
  it), not moved to the batch's class shares: content compares the carriers with the batch's own
  records of ``L``, which a source labelling mostly ``L`` moves alike, so the shares excuse nothing
  content can judge (a dirty-label backdoor hidden in a one-class vendor is caught). Where content
  says nothing of the label, or the carriers resemble nothing trusted (a new topic's pages sit among
  each other: ``_ContentTie.familiar``), the tie is read at the batch's shares. Content confirms no
  tie that the baseline's own carriers of the pattern and label show too: they must read as ``L``
  clearly better than the batch's carriers (``MIN_TRUSTED_CARRIERS``);
* route B (batch): tie, batch tie and content, each corrected by Tarone's count on the tie's margins
  alone (``novelty=False``). Content is paid for over every testable pair here, not over the
  candidates, and must be informative: without novelty it is the only evidence that the tie is not how
  clean data of this kind are (docs/gates.md, "Triggers: two routes").

So a clean contribution raises a trigger with probability at most ``alpha``, and thousands of rare
n-grams that could never be significant do not dilute a trigger's evidence. Significant
patterns that share nearly the same carrier records are merged into one finding (a 3x3 patch is
nine bright pixels; a phrase is several n-grams).

A batch's near-copies (``dataward.gates.near_copies``: one label, the same text but for a span of at most
three rare tokens) are one record's evidence: each round tests one record of each group, and a reported
trigger flags every copy that carries it. Only rare tokens may differ, so every pattern that can be tested
is carried by all copies of a group or by none (docs/gates.md, "Near-copies count once in text"). A trigger
that only counting copy by copy finds (the peeling run once more, when the batch has near-copies) is a
contribution-level finding for review, every copy carrying it flagged: never a block.

Cost: the neighbour searches are confined to the rows the tests read, searched once per scan and
shared by every pair (``_LazyNeighbours``): the batch tie reads the carriers of route B's pairs (at
most ``MAX_MATCHED`` per pair, a seeded sample in one random order of the pool, so that pairs share
rows), for all pairs at once; content reads, only for the pairs that are still candidates, their
carriers and at most ``MAX_PEERS`` other records of the label in the batch and in the baseline.

Record p-values: ``min(1, c * p_min)`` over the ``c`` tested patterns a record carries with its own
label (Bonferroni per record, so ``P(p <= a) <= a`` for a clean record), or the trigger's corrected
p-value for the records carrying a reported trigger; patterns merged into a reported trigger are
left out for the other records. ``flagged``: only the carriers of a reported trigger (its lead
pattern, with its label). Records sharing a pattern share its evidence, so flags from record
p-values alone would come in correlated batches that a count of flags would overrate; the record
p-values still rank every record.
Contribution level: ``statistic`` = number of triggers found, ``p_value`` = the smallest
corrected p-value. Summary keys: ``triggers`` (the evidence of each finding), ``tests``
(pattern-label pairs tested), ``testable`` (Tarone's count of them paid for on route A),
``testable_tie`` (on route B), ``patterns``, ``near_copies`` (records folded into another's group),
``repeated`` (the evidence of the triggers only the copies' repetition makes),
``block`` (true when a trigger was found) and ``block_reason``.
Options (constructor or policy ``options["triggers"]``, see ``TriggerOptions``):
``max_ngram``, ``min_support``, ``max_pair_columns``, ``merge_overlap``, ``max_triggers``,
``max_rows_in_evidence``, ``content_k``, ``min_purity`` (the share of a pattern's contribution carriers
that must bear the label: a pattern most of whose carriers bear other labels teaches no backdoor, and
is what a global shift looks like).

Finding evidence: ``trigger`` (the pattern, e.g. ``"cf"`` or ``"bright pixels rows 5-7, columns
5-7"``), ``column``, ``kind`` (``ngram``, ``style``, ``pixels``, ``value``, ``combination``), ``label``,
``rows`` (row numbers in the submitted file), ``z``, ``baseline_count`` / ``contribution_count``
(records carrying the pattern), ``label_count`` (contribution carriers with the label),
``baseline_label_count``, ``content_label_share`` (the carriers' mean agreement with the label by
content), ``batch_label_share`` (the mean share of the label among batch records like the carriers
without the pattern; null when route B was not tried), ``p_value``, ``related`` (other patterns merged
into it).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Self

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from PIL import Image
from scipy.sparse.csgraph import connected_components
from scipy.special import bdtrc
from scipy.stats import binom, hypergeom, mannwhitneyu
from sklearn.feature_extraction.text import CountVectorizer

from dataward.domain.errors import InputError
from dataward.domain.schema import ColumnKind
from dataward.gates.base import (
    Detector,
    DetectorResult,
    Evidence,
    Finding,
    GateContext,
    GateData,
    Requirement,
    register,
)
from dataward.gates.detectors._probe import row_numbers
from dataward.gates.features.embedding import embedding_matrix
from dataward.gates.features.image import decoded_for_pixels, image_size, luma_chroma_of
from dataward.gates.features.text import cut_text
from dataward.gates.formatting import excess_purity, formatting_patterns
from dataward.gates.near_copies import TOKEN_PATTERN, NearCopies, near_copies
from dataward.gates.neighbours import K_MAX, _search

TEXT_MAX_CHARS = 100_000
"""Characters of each text value whose n-grams are counted (the rest is left out). The n-gram vocabulary is
built whole before ``min_support`` prunes it, about 75 bytes per character of high-entropy text: one 4 MiB
record of random words cost some 300 MB. 100,000 characters (dozens of pages) is far above ordinary
records and five times what the featurizers read (``features.text.TEXT_MAX_CHARS``). A trigger placed
past it, in records that long, is not seen by this detector (docs/gates.md, "Input sizes")."""
MAX_IMAGE_SIDE = 32
TAIL_QUANTILE = 0.01
BIN_QUANTILES = (0.2, 0.4, 0.6, 0.8)
LABEL_PRIOR_WEIGHT = 2.0
"""Pseudo-count pulling the baseline's P(label | pattern) towards its overall label share."""
BATCH_WIDE_SHARE = 0.5
"""A pattern carried by at least this share of the batch's records of every class the baseline holds ..."""
BATCH_WIDE_MIN = 10
"""... each class with at least this many records in the batch, is a property of the batch, not a trigger: a
trigger teaches a label only where the other classes' records do not carry it, and here each class's own
records carry it. A sender who leaves the source class out of the batch, or sends few of its records, leaves
the pattern tested as before. The same holds of a pattern at least this share of the *baseline's* records of
every class carry (each class with at least this many trusted records): a model trained on the trusted
records sees it with every label, so no batch's carriers can teach it one; their labels are the batch's class
shares (a source of one class: 50 of 54 genuine '7's held the blank top-right corner that 990 of 1,000 trusted
digits hold, and the batch was blocked). The sender cannot move that side."""


PAIR_ENTRIES = 1 << 22
"""Pair carrier entries (record, pair) enumerated at a time when every record's pairs are walked."""


class PatternMatrix:
    """Binary patterns of one side, records x patterns, in blocks: explicit sparse columns, and pair
    columns kept implicit.

    A pair column is the co-occurrence of two columns ``i`` and ``j`` of a *base* matrix (two extreme
    pixels, two value bins). Written out, the pairs of 32x32 photos hold about 2,600 entries per record
    (a million pixel pairs, a dark photo carrying a hundred thousand of them), and building them through
    column products took 17,000 per record (890M entries for 50,000 photos). Kept implicit, everything
    the tests read is computed from the base: counts per label from the base's co-occurrence matrices,
    one pair's carriers as the intersection of two base columns, every record's pairs a bounded block
    of records at a time. Each answer is exactly what the written-out matrix gives.
    """

    def __init__(self, n_rows: int, blocks: list[tuple[Any, ...]]) -> None:
        self.n_rows = n_rows
        self.blocks = blocks
        widths = [b[1].shape[1] if b[0] == "x" else b[2].shape[0] for b in blocks]
        self.offsets = np.concatenate([[0], np.cumsum(widths, dtype=np.int64)]).astype(np.int64)

    @classmethod
    def of(cls, x: PatternMatrix | sp.spmatrix) -> PatternMatrix:
        if isinstance(x, PatternMatrix):
            return x
        x = sp.csc_matrix(x)
        return cls(x.shape[0], [("x", x)])

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_rows, int(self.offsets[-1])

    def _block(self, t: int) -> tuple[tuple[Any, ...], int]:
        b = int(np.searchsorted(self.offsets, t, side="right")) - 1
        return self.blocks[b], t - int(self.offsets[b])

    def take_rows(self, index: np.ndarray) -> PatternMatrix:
        """The rows ``index``, in that order (matrices shared between blocks are taken once)."""
        if index.shape[0] == self.n_rows and np.array_equal(index, np.arange(self.n_rows)):
            return self
        taken: dict[int, sp.csc_matrix] = {}

        def take(x: sp.csc_matrix) -> sp.csc_matrix:
            if id(x) not in taken:
                taken[id(x)] = sp.csc_matrix(x[index])
            return taken[id(x)]

        return PatternMatrix(index.shape[0], [(b[0], take(b[1]), *b[2:]) for b in self.blocks])

    @staticmethod
    def vstack(top: PatternMatrix, bottom: PatternMatrix) -> PatternMatrix:
        """``top`` above ``bottom``: two sides with the same blocks (the same pairs of base columns)."""
        stacked: dict[tuple[int, int], sp.csc_matrix] = {}

        def stack(a: sp.csc_matrix, b: sp.csc_matrix) -> sp.csc_matrix:
            if (id(a), id(b)) not in stacked:
                stacked[(id(a), id(b))] = sp.vstack([a, b], format="csc")
            return stacked[(id(a), id(b))]

        blocks = [(a[0], stack(a[1], b[1]), *a[2:]) for a, b in zip(top.blocks, bottom.blocks, strict=True)]
        return PatternMatrix(top.n_rows + bottom.n_rows, blocks)

    def label_counts(self, y: sp.csc_matrix) -> np.ndarray:
        """``x.T @ y`` as a dense (patterns x labels) array."""
        out = np.zeros((self.shape[1], y.shape[1]))
        y = sp.csc_matrix(y)
        for b, lo, hi in zip(self.blocks, self.offsets[:-1], self.offsets[1:], strict=True):
            if b[0] == "x":
                out[lo:hi] = np.asarray((b[1].T @ y).todense())
                continue
            _, base, i_idx, j_idx = b
            for c in range(y.shape[1]):
                span = slice(y.indptr[c], y.indptr[c + 1])
                rows = y.indices[span]
                if rows.size == 0:
                    continue
                part = sp.csr_matrix(base[rows])
                weighted = sp.diags(y.data[span]) @ part
                out[lo:hi, c] = _pick(sp.csr_matrix(part.T @ weighted), i_idx, j_idx)
        return out

    def backoff_rates(self, y: sp.csc_matrix, prior: np.ndarray, weight: float) -> np.ndarray:
        """Per (pattern, label), what this side says of ``P(L | pattern)`` before reading the pattern's
        own carriers: the larger of its two parts' smoothed ``P(L | part)`` for a pair, the label's
        prior for any other pattern.

        A combination the baseline never saw still has parts it saw: a width typical of one class
        keeps that class when it meets a length the baseline never held (a column written in another
        unit). Backing off to the parts asks a pair to be tied to a label beyond what either part
        already is, not merely beyond the label's share."""
        out = np.tile(prior, (self.shape[1], 1))
        y = sp.csc_matrix(y)
        for b, lo, hi in zip(self.blocks, self.offsets[:-1], self.offsets[1:], strict=True):
            if b[0] != "pairs":
                continue
            _, base, i_idx, j_idx = b
            counts = np.asarray((base.T @ y).todense())
            sums = np.asarray(base.sum(axis=0)).ravel()
            rate = (counts + weight * prior) / (sums + weight)[:, None]
            out[lo:hi] = np.maximum(rate[i_idx], rate[j_idx])
        return out

    def explicit_row_sums(self) -> np.ndarray:
        """Per record, how many of the explicit (not pair) columns it carries."""
        out = np.zeros(self.n_rows)
        for b in self.blocks:
            if b[0] == "x":
                out += np.asarray(b[1].sum(axis=1)).ravel()
        return out

    def column_sums(self) -> np.ndarray:
        out = np.zeros(self.shape[1])
        for b, lo, hi in zip(self.blocks, self.offsets[:-1], self.offsets[1:], strict=True):
            if b[0] == "x":
                out[lo:hi] = np.asarray(b[1].sum(axis=0)).ravel()
            else:
                _, base, i_idx, j_idx = b
                out[lo:hi] = _pick(sp.csr_matrix(base.T @ base), i_idx, j_idx)
        return out

    def column(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(record positions, values) of column ``t``'s stored entries."""
        b, t = self._block(t)
        if b[0] == "x":
            x = b[1]
            span = slice(x.indptr[t], x.indptr[t + 1])
            return x.indices[span], x.data[span]
        _, base, i_idx, j_idx = b
        si = slice(base.indptr[i_idx[t]], base.indptr[i_idx[t] + 1])
        sj = slice(base.indptr[j_idx[t]], base.indptr[j_idx[t] + 1])
        rows, a, c = np.intersect1d(base.indices[si], base.indices[sj], assume_unique=True, return_indices=True)
        return rows.astype(base.indices.dtype), base.data[si][a] * base.data[sj][c]

    def select(self, columns: np.ndarray) -> sp.csc_matrix:
        """The columns ``columns``, written out."""
        parts = [self.column(int(t)) for t in columns]
        indptr = np.concatenate([[0], np.cumsum([r.shape[0] for r, _ in parts], dtype=np.int64)])
        indices = np.concatenate([r for r, _ in parts]) if parts else np.zeros(0, np.int32)
        data = np.concatenate([d for _, d in parts]) if parts else np.zeros(0)
        return sp.csc_matrix((data, indices, indptr), shape=(self.n_rows, len(columns)))

    def entries(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored entry as (record positions, pattern columns), in bounded blocks of records."""
        for b, lo in zip(self.blocks, self.offsets[:-1], strict=True):
            if b[0] == "x":
                coo = sp.coo_matrix(b[1])
                yield coo.row.astype(np.int64), coo.col.astype(np.int64) + lo
                continue
            _, base, i_idx, j_idx = b
            n_base = base.shape[1]
            keys = i_idx.astype(np.int64) * n_base + j_idx
            order = np.argsort(keys)
            keys = keys[order]
            lookup = SortedKeys(keys, n_base * n_base)
            rows_x = sp.csr_matrix(base)
            rows_x.sort_indices()
            size = np.diff(rows_x.indptr).astype(np.int64)
            ends = np.cumsum(size * (size - 1) // 2)
            r0 = 0
            while r0 < self.n_rows:
                done = ends[r0 - 1] if r0 else 0
                r1 = max(int(np.searchsorted(ends, done + PAIR_ENTRIES, side="right")), r0 + 1)
                rows, first, second = _row_pairs(rows_x.indptr[r0 : r1 + 1], r0)
                at = lookup.find(rows_x.indices[first].astype(np.int64) * n_base + rows_x.indices[second])
                hit = at >= 0
                yield rows[hit], order[at[hit]] + lo
                r0 = r1


DENSE_LOOKUP_KEYS = 1 << 24
"""The widest key range looked up through a table (4 bytes a key of the range, 64 MB at most)."""


class SortedKeys:
    """Where query keys sit in a sorted array of non-negative integer keys: the position of the first
    equal key, -1 for a key not in it.

    The walks over every record's carrier entries look up tens of millions of (pattern, label) and pixel
    pair keys among a million or more: a binary search per key (``searchsorted``) took most of the walk.
    Where the keys' range is at most ``DENSE_LOOKUP_KEYS`` wide, a table indexed by the key answers each
    in one read; a wider range is searched as before. Both give the same positions."""

    def __init__(self, keys: np.ndarray, key_range: int) -> None:
        self.keys = keys
        self.table: np.ndarray | None = None
        if 0 < keys.size < np.iinfo(np.int32).max and key_range <= DENSE_LOOKUP_KEYS and keys[0] >= 0:
            first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            self.table = np.full(key_range, -1, np.int32)
            self.table[keys[first]] = first

    def find(self, q: np.ndarray) -> np.ndarray:
        """Positions (int64) of the first key equal to each of ``q``, -1 where none is."""
        if self.keys.size == 0:
            return np.full(q.shape[0], -1, np.int64)
        if self.table is not None:
            inside = (q >= 0) & (q < self.table.shape[0])
            if inside.all():
                return self.table[q].astype(np.int64)
            found = np.full(q.shape[0], -1, np.int64)
            found[inside] = self.table[q[inside]]
            return found
        at = np.minimum(np.searchsorted(self.keys, q), self.keys.size - 1)
        return np.where(self.keys[at] == q, at, -1)


def _max_by_row(best: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """``best[r] = max(best[r], values of row r)`` for every row ``r`` in ``rows`` (``np.maximum.at``
    without its per-element cost: the values are grouped by row, rows walked in order already need no
    sort)."""
    if rows.size == 0:
        return
    if rows.size > 1 and not (rows[1:] >= rows[:-1]).all():
        order = np.argsort(rows, kind="stable")
        rows, values = rows[order], values[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    at = rows[starts]
    best[at] = np.maximum(best[at], np.maximum.reduceat(values, starts))


def _pick(co: sp.csr_matrix, i_idx: np.ndarray, j_idx: np.ndarray) -> np.ndarray:
    """Entries ``(i_idx[p], j_idx[p])`` of a sparse matrix, zero where not stored."""
    if i_idx.size == 0:
        return np.zeros(0)
    co.sum_duplicates()
    return np.asarray(co[i_idx, j_idx]).ravel().astype(np.float64)


def _row_pairs(indptr: np.ndarray, r0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the rows of a CSR slice (``indptr``, first row ``r0``): every pair of stored positions of one
    row, the first before the second, as (row, first position, second position)."""
    n_rows = indptr.shape[0] - 1
    size = np.diff(indptr).astype(np.int64)
    row_of = np.repeat(np.arange(n_rows), size)
    pos = np.arange(indptr[0], indptr[-1], dtype=np.int64)
    after = indptr[1:][row_of] - pos - 1
    total = int(after.sum())
    first = np.repeat(pos, after)
    step = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(after) - after, after)
    return np.repeat(row_of, after) + r0, first, first + 1 + step


Cells = list[tuple[int, int, int, int]]
"""The pixels a pixel pattern covers: (row, column, height, width) of the grid it was read on."""


class PairCells:
    """The cells of pair patterns, each the cells of its two halves, made when asked for: a batch of
    images has hundreds of thousands of pixel pairs, and only a reported trigger's are ever read."""

    def __init__(self, cells: Sequence[Cells], i_idx: np.ndarray, j_idx: np.ndarray) -> None:
        self._cells, self._i, self._j = cells, i_idx, j_idx

    def __len__(self) -> int:
        return len(self._i)

    def __getitem__(self, p: int) -> Cells:
        return self._cells[int(self._i[p])] + self._cells[int(self._j[p])]


CellBlock = Sequence[Cells] | PairCells
"""The cells of a block of patterns added together: a list of them, or pairs' made when asked for."""


class PatternCells:
    """Each pattern's cells, kept per block of patterns added together (no cells: a block of None)."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._blocks: list[CellBlock | None] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, count: int, cells: CellBlock | None) -> None:
        self._starts.append(self._size)
        self._blocks.append(cells)
        self._size += count

    def __getitem__(self, i: int) -> Cells:
        if not 0 <= i < self._size:
            raise IndexError(i)
        k = bisect.bisect_right(self._starts, i) - 1
        block = self._blocks[k]
        return [] if block is None else block[i - self._starts[k]]


@dataclass
class Patterns:
    """Binary pattern matrices of both sides with one description per pattern column."""

    names: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    cells: PatternCells = field(default_factory=PatternCells)
    contribution: list[tuple[Any, ...]] = field(default_factory=list)
    baseline: list[tuple[Any, ...]] = field(default_factory=list)
    planes: dict[tuple[str, tuple[str, str]], sp.csc_matrix] = field(default_factory=dict)
    """Each image column's chroma planes: the contribution's single-pixel patterns (upper tail, then lower),
    to name the colour of a patch found in one plane by the other's (``_hue``)."""

    def _describe(self, names: list[str], column: str | list[str], kind: str, cells: CellBlock | None) -> None:
        self.names += names
        self.columns += [column] * len(names) if isinstance(column, str) else column
        self.kinds += [kind] * len(names)
        self.cells.extend(len(names), cells)

    def add(
        self,
        names: list[str],
        column: str | list[str],
        kind: str,
        contribution: sp.spmatrix,
        baseline: sp.spmatrix,
        cells: CellBlock | None = None,
    ) -> None:
        if not names:
            return
        self._describe(names, column, kind, cells)
        self.contribution.append(("x", sp.csc_matrix(contribution, dtype=np.float64)))
        self.baseline.append(("x", sp.csc_matrix(baseline, dtype=np.float64)))

    def add_pairs(self, names: list[str], column: str | list[str], kind: str, pairs: PairColumns) -> None:
        """Pair columns, kept implicit (``PatternMatrix``)."""
        if not names:
            return
        self._describe(names, column, kind, pairs.cells)
        self.contribution.append(("pairs", pairs.contribution, pairs.i_idx, pairs.j_idx))
        self.baseline.append(("pairs", pairs.baseline, pairs.i_idx, pairs.j_idx))

    def stacked(self, n_c: int, n_b: int) -> tuple[PatternMatrix, PatternMatrix]:
        return PatternMatrix(n_c, list(self.contribution)), PatternMatrix(n_b, list(self.baseline))


@dataclass
class PairColumns:
    """Pair patterns: columns ``i_idx[p]`` and ``j_idx[p]`` of the base matrices of both sides."""

    contribution: sp.csc_matrix
    baseline: sp.csc_matrix
    i_idx: np.ndarray
    j_idx: np.ndarray
    cells: CellBlock | None = None


@dataclass(frozen=True)
class TriggerOptions:
    """Options of the trigger detector (see the module docstring)."""

    max_ngram: int = 3
    min_support: int = 3
    max_pair_columns: int = 20
    merge_overlap: float = 0.7
    max_triggers: int = 10
    max_rows_in_evidence: int = 500
    content_k: int = 10
    min_purity: float = 0.6
    prior_shift_min_effect: float = 0.2
    """Smallest total variation between the batch's class shares (a pattern's non-carriers) and the
    baseline's at which the tie is read at the batch's shares: a source that sends mostly some classes.
    Below it the baseline's own ``P(L | t)`` is kept. A modest change of shares moves ``P(L | t)`` by
    little, yet over a few dozen carriers it moves the tie's p-value by orders of magnitude, and that
    is where a poisoned batch's own tie lies (the demo's scraper batch, 0.14 from its baseline: its
    trigger's tie 15 times weaker at the batch's shares, and reviewed instead of blocked). Twice
    ``drift``'s ``prior_min_effect``, between that batch and ``class_prior_text`` (0.37), both tuning
    cases (docs/gates.md, "Triggers: two routes")."""

    def __post_init__(self) -> None:
        if self.min_support < 1 or self.max_ngram < 1 or self.max_triggers < 1 or not 1 <= self.content_k < K_MAX:
            raise ValueError(f"min_support, max_ngram, max_triggers must be at least 1, content_k in 1..{K_MAX - 1}")
        if not 0.0 < self.merge_overlap <= 1.0 or not 0.0 <= self.min_purity <= 1.0:
            raise ValueError("merge_overlap must be in (0, 1] and min_purity in [0, 1]")
        if not 0.0 <= self.prior_shift_min_effect <= 1.0:
            raise ValueError("prior_shift_min_effect must be in [0, 1]")


@dataclass(frozen=True)
class _Scan:
    """What every peeling of one scan shares: the patterns of both sides and the content test's searches."""

    contribution: GateData
    patterns: Patterns
    xc: PatternMatrix
    xb: PatternMatrix
    yb: sp.csc_matrix
    n_classes: int
    content: _ContentTie
    counts: _BaselineCounts | None


@dataclass
class _Peeled:
    """One peeling's triggers: record p-values and flags, findings with their evidence and flagged records
    (by trigger and label), and the first round's figures for the summary."""

    p_values: np.ndarray
    flagged: np.ndarray
    findings: list[Finding]
    evidence: list[dict[str, Any]]
    members_of: dict[tuple[str, str], np.ndarray]
    first_tests: int
    first_testable: int
    first_testable_tie: int
    first_p: float
    batch_wide: list[str]


@register
class TriggerDetector(Detector):
    """Tokens, n-grams, pixel patches and value combinations tied to one label in the contribution."""

    name = "triggers"
    version = "16"
    evidence = Evidence.POISONING
    requires = frozenset({Requirement.BASELINE, Requirement.RAW_TABLE})
    flags_records = False
    Options = TriggerOptions
    MAX_BATCH_WIDE_NAMED = 10
    """The summary names at most this many batch-wide patterns."""
    UNSEEN_BELOW = 3
    """Route A reads the tie of a pattern carried by fewer trusted records than this against the baseline's own
    ``P(L | t)`` (content judging the batch's class shares); of one it carries more often, at those shares."""

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Keep the baseline: patterns are read from the contribution, then counted on both sides."""
        opts = self.resolve_options(context)
        for name in TriggerOptions.__dataclass_fields__:
            setattr(self, name, getattr(opts, name))
        if baseline.table is None and len(baseline):
            raise InputError("the triggers detector needs the baseline's raw table")
        self.baseline_ = baseline
        self.context_ = context
        return self

    def score(self, contribution: GateData) -> DetectorResult:
        ctx = self.context_
        n_c = len(contribution)
        if n_c == 0:
            return DetectorResult(self.name, self.version, np.ones(0), np.zeros(0, bool))
        if contribution.table is None:
            raise InputError("the triggers detector needs the contribution's raw table")
        baseline = self.baseline_
        patterns = self._patterns(contribution.table, baseline.table, len(baseline))
        xc, xb = patterns.stacked(n_c, len(baseline))
        n_classes = max(len(ctx.classes), int(contribution.labels.max(initial=0)) + 1)
        yb = _one_hot(baseline.labels, n_classes)
        stripped = (
            _StrippedCarriers(patterns, xc, contribution.table, ctx.featurize)
            if ctx.featurize is not None and "ngram" in patterns.kinds
            else None
        )
        content = _ContentTie(baseline, contribution, xb, xc, n_classes, self.content_k, ctx.seed, stripped)
        scan = _Scan(contribution, patterns, xc, xb, yb, n_classes, content, _BaselineCounts.of(xb, yb))
        # A batch's near-copies (a line split into a line per name it lists, a template filled in) are one
        # record's evidence: each round tests one of each group, the one carrying the most patterns.
        copies = self._near_copies(contribution, patterns, xc)
        counted = np.zeros(n_c, bool)
        counted[copies.representatives(xc.explicit_row_sums())] = True
        peeled = self._peel(scan, counted)
        repeated: list[Finding] = []
        if copies.folded():
            # What only the repetition makes a trigger: counted copy by copy, a pattern the copies share is
            # tied to their label as a trigger is. One line sent in near-copies is no evidence of poisoning (a
            # summary split into a line per page it names), and a few poisoned templates sent many times
            # look the same: not a block, but a finding for review with every copy queued.
            # Only its findings are read: the records are ranked on the folded counts above.
            whole = self._peel(scan, np.ones(n_c, bool), rank_records=False)
            found = {(ev["trigger"], ev["label"]) for ev in peeled.evidence}
            for finding in whole.findings:
                ev = finding.evidence
                if (ev["trigger"], ev["label"]) in found:
                    continue
                members = whole.members_of[(ev["trigger"], ev["label"])]
                if peeled.flagged[members].all():
                    continue
                peeled.flagged[members] = True
                ev = ev | {"counted_once": True, "groups": int(np.unique(copies.group[members]).shape[0])}
                repeated.append(
                    Finding(detector=self.name, score=finding.score, row=None, reason=_repeated_reason(ev), evidence=ev)
                )
        return DetectorResult(
            detector=self.name,
            version=self.version,
            p_values=peeled.p_values,
            flagged=peeled.flagged,
            findings=peeled.findings,
            contribution_findings=repeated,
            statistic=float(len(peeled.findings)),
            p_value=peeled.first_p,
            summary={
                "triggers": peeled.evidence,
                "repeated": [f.evidence for f in repeated],
                "near_copies": copies.folded(),
                "tests": peeled.first_tests,
                "testable": peeled.first_testable,
                "testable_tie": peeled.first_testable_tie,
                "patterns": len(patterns.names),
                # Patterns most records of every class carry: the batch's, not a label's (``BATCH_WIDE_SHARE``).
                "batch_wide": peeled.batch_wide,
            },
            # A trigger the content does not explain blocks the contribution whatever the other detectors say.
            block=bool(peeled.findings),
            block_reason=peeled.findings[0].reason if peeled.findings else None,
        )

    def _peel(self, scan: _Scan, counted: np.ndarray, rank_records: bool = True) -> _Peeled:
        """Triggers found among the ``counted`` records (the others are near-copies of them), peeled off
        one at a time, and every record's p-value (only the carriers' of a trigger unless ``rank_records``)."""
        ctx, contribution, patterns, xc, xb = self.context_, scan.contribution, scan.patterns, scan.xc, scan.xb
        baseline = self.baseline_
        n_c, n_classes, yb = len(contribution), scan.n_classes, scan.yb
        content, baseline_counts = scan.content, scan.counts
        labels = contribution.labels
        rows_out = row_numbers(contribution)
        p_values = np.ones(n_c)
        flagged = np.zeros(n_c, bool)
        active = np.ones(n_c, bool)
        findings: list[Finding] = []
        evidence_list: list[dict[str, Any]] = []
        members_of: dict[tuple[str, str], np.ndarray] = {}
        first_tests, first_testable, first_testable_tie, first_p = 0, 0, 0, 1.0
        first_round: tuple[dict[str, np.ndarray], np.ndarray, _Carriers] | None = None
        batch_wide_names: list[str] = []
        explained: set[tuple[int, int]] = set()
        style = np.asarray(patterns.kinds, dtype=object) == "style"
        # Peel triggers off one at a time: once the records carrying the strongest trigger are set
        # aside, patterns that were only its side effects (e.g. the source class's own pixels among
        # relabelled images) lose their support and are not reported as triggers of their own.
        for round_ in range(self.max_triggers):
            index = np.flatnonzero(active & counted)
            if index.size == 0:
                break
            sub = xc.take_rows(index)
            tests = _association(
                sub,
                xb,
                _one_hot(labels[index], n_classes),
                yb,
                self.min_support,
                self.prior_shift_min_effect,
                baseline_counts,
            )
            # Route A's tie for a pattern the baseline (nearly) never saw is read against its own P(L | t),
            # and paid for over the pairs that could reach significance so: the batch's class shares are
            # then content's to judge. A pattern the baseline knows keeps the shares (Bayes' rule under
            # label shift): its carriers of L are selected by the pattern, and a value typical of another
            # class brings the batch's borderline records of L, which content reads as less like L.
            unseen = tests["k_b"] < self.UNSEEN_BELOW
            tie_a = np.where(unseen, tests["p_tie_own"], tests["p_tie"])
            n_novel = _testable_count(
                tests | {"pi": np.where(unseen, tests["pi_own"], tests["pi"])},
                len(index),
                len(baseline),
                ctx.alpha,
                novelty=True,
            )
            n_tests = _testable_count(tests, len(index), len(baseline), ctx.alpha, novelty=False)
            n_pairs = len(tests["pattern"])
            carriers = _Carriers(sub, labels[index], tests, index, xc, labels)
            # A pattern most of whose carriers bear other labels teaches no backdoor (and is what a global
            # shift looks like: a darker scanner's dark pixels turn up in every class).
            pure = tests["m"] >= self.min_purity * tests["k_c"]
            # A formatting pattern is never rare in clean text (a proper name of capitalised words, an
            # acronym), so its trusted rate of carriers dilutes a trigger written in it: its purity is that
            # of the carriers beyond what the baseline's rate explains, of the label and in all.
            rows = style[tests["pattern"]]
            pure[rows] = (
                excess_purity(
                    tests["m"][rows],
                    tests["b"][rows],
                    tests["k_c"][rows],
                    tests["k_b"][rows],
                    len(index),
                    len(baseline),
                    self.min_support,
                )
                >= self.min_purity
            )
            # Two routes to a trigger, each an intersection-union test, the better of the two paid for
            # twice (Bonferroni over the routes):
            # (A) novelty: tie and over-representation against the baseline, each at alpha / n_novel
            #     (Tarone's count with both halves' reachable p-values), then content at alpha / the
            #     number of route A's candidates;
            # (B) batch: tie, content and batch tie (against content-matched non-carriers of the batch),
            #     each at alpha / n_tests (Tarone's count of the tie alone). No baseline evidence of
            #     novelty is asked for, so content is paid for like a count test, over every testable
            #     pair: clean data also have words that their other words do not explain.
            route_a = np.minimum(1.0, np.maximum(tests["p_enrich"], tie_a) * max(n_novel, 1))
            route_b = np.minimum(1.0, tests["p_tie"] * max(n_tests, 1))
            # Nor does a pattern most records of every class carry (``BATCH_WIDE_SHARE``). Its records keep their
            # p-values: a batch that drifted slowly is ranked by what moved.
            batch_wide = pure & tests["batch_wide"]
            route_a[~pure | batch_wide], route_b[~pure | batch_wide] = 1.0, 1.0
            # Nor one most trusted records of every class carry. It is still paid for among route A's
            # candidates (below), so that every other pair's correction is what it was without the rule.
            n_content = max(int(np.count_nonzero(2.0 * route_a <= ctx.alpha)), 1)
            baseline_wide = pure & tests["baseline_wide"] & ~batch_wide
            route_a[baseline_wide], route_b[baseline_wide] = 1.0, 1.0
            batch_wide |= baseline_wide
            candidates_a = np.flatnonzero(2.0 * route_a <= ctx.alpha)
            candidates_b = np.flatnonzero(2.0 * route_b <= ctx.alpha)
            tests["p_content"], tests["content_share"] = np.ones(n_pairs), np.full(n_pairs, np.nan)
            tests["p_batch"], tests["batch_share"] = np.ones(n_pairs), np.full(n_pairs, np.nan)
            p_content_b = np.ones(n_pairs)
            # Content runs only where a route's count tests already point at a trigger; on route A it is
            # corrected for route A's candidates alone (a clean batch has none but with probability
            # alpha), counted above. The batch tie runs only where route B can still pass: tie and content
            # at its bar.
            # The batch tie reads only the carriers' neighbour lists: it runs, for all of route B's pairs
            # at once, before content, which reads the label's other records too.
            p_batch, tests["batch_share"][candidates_b] = content.batch_ties(
                xc,
                index,
                tests["pattern"][candidates_b],
                tests["label"][candidates_b],
                ctx.alpha / (2.0 * max(n_tests, 1)),
            )
            tests["p_batch"][candidates_b] = p_batch
            route_b = np.maximum(route_b, tests["p_batch"] * max(n_tests, 1))
            to_test = np.union1d(candidates_a, np.flatnonzero(2.0 * route_b <= ctx.alpha)).astype(np.int64)
            content.prefetch([(int(tests["pattern"][i]), int(tests["label"][i]), carriers[i]) for i in to_test])
            for i in to_test:
                pattern, label = int(tests["pattern"][i]), int(tests["label"][i])
                p_content, share, informative = content.test(pattern, label, carriers[i])
                tests["p_content"][i], tests["content_share"][i] = p_content, share
                # Where content says nothing of the label, it vetoes nothing on route A, and route B,
                # which stands on content, cannot pass.
                p_content_b[i] = p_content if informative else 1.0
                if unseen[i] and (not informative or not content.familiar(pattern, label, carriers[i])):
                    # Nor can content judge the batch's class shares, where it says nothing of the label or
                    # the carriers resemble nothing trusted (a new topic's naming conventions read as
                    # other sections): route A's tie is then read at the shares (a source labelling
                    # mostly L has mostly L among any pattern's carriers).
                    route_a[i] = min(1.0, max(tests["p_enrich"][i], tests["p_tie"][i]) * max(n_novel, 1))
            route_a = np.minimum(1.0, np.maximum(route_a, tests["p_content"] * n_content))
            route_b = np.maximum(route_b, p_content_b * max(n_tests, 1))
            corrected = np.minimum(1.0, 2.0 * np.minimum(route_a, route_b))
            for i in np.union1d(candidates_a, candidates_b).astype(np.int64):
                if corrected[i] > ctx.alpha:
                    explained.add((int(tests["pattern"][i]), int(tests["label"][i])))
            if round_ == 0:
                first_tests, first_testable, first_testable_tie = n_pairs, n_novel, n_tests
                first_p = float(corrected.min()) if n_tests else 1.0
                first_round = (tests, corrected, carriers)
                wide = np.unique(tests["pattern"][batch_wide])
                batch_wide_names = [patterns.names[int(t)] for t in wide[: self.MAX_BATCH_WIDE_NAMED]]
            significant = [int(i) for i in np.flatnonzero(corrected <= ctx.alpha)]
            if not significant:
                break
            group = _lead_first(_merge(significant, tests, carriers, patterns, self.merge_overlap)[0], tests, patterns)
            explained |= {(int(tests["pattern"][i]), int(tests["label"][i])) for i in group}
            # The lead pattern's carriers are the records flagged, near-copies included; patterns merged into
            # it describe the same trigger but may also match a few clean records of the label.
            members = carriers.with_copies(group[0], active)
            flagged[members] = True
            active[members] = False
            p_values[members] = np.minimum(p_values[members], corrected[group[0]])
            evidence = self._evidence(group[0], group, members, tests, corrected, patterns, ctx, rows_out)
            evidence_list.append(evidence)
            members_of[(evidence["trigger"], evidence["label"])] = members
            findings.append(
                Finding(
                    detector=self.name,
                    score=float(1.0 - corrected[group[0]]),
                    row=None,
                    reason=_reason(evidence),
                    evidence=evidence,
                )
            )
            if not active.any():
                break
        if first_round is not None and rank_records:
            # Every record is judged on the patterns it carries with its own label (Bonferroni over
            # those, not over the whole vocabulary: the guarantee asked of a record's p-value is about
            # that record), leaving out patterns already explained by a reported trigger.
            tests, _, _ = first_round
            keep = ~_pairs_in(tests["pattern"], tests["label"], explained)
            record_p = _record_p_values(xc, labels, n_classes, tests, keep)
            p_values = np.minimum(p_values, record_p)
        return _Peeled(
            p_values,
            flagged,
            findings,
            evidence_list,
            members_of,
            first_tests,
            first_testable,
            first_testable_tie,
            first_p,
            batch_wide_names,
        )

    # --- patterns -------------------------------------------------------------------------------

    def _patterns(self, contribution: pa.Table, baseline: pa.Table | None, n_b: int) -> Patterns:
        schema = self.context_.schema
        patterns = Patterns()
        tabular: list[tuple[str, sp.csc_matrix, sp.csc_matrix, list[str]]] = []
        numeric: set[str] = set()
        for col in schema.inputs:
            if col.name not in contribution.column_names:
                raise InputError(f"the contribution has no column {col.name!r}")
            if col.kind == ColumnKind.EMBEDDING:
                # From Arrow's buffers, one dimension at a time: as Python lists, a million 64-d
                # embeddings would take about 2 GB. The values are the same float32 numbers.
                c_mat = embedding_matrix(contribution.column(col.name), col.dim)
                has_b = baseline is not None and n_b
                b_mat = embedding_matrix(baseline.column(col.name), c_mat.shape[1]) if has_b else None
                for d in range(c_mat.shape[1]):
                    names, xc, xb = _numeric_patterns(
                        f"{col.name}[{d}]",
                        c_mat[:, d].astype(np.float64),
                        b_mat[:, d].astype(np.float64) if b_mat is not None else np.zeros(0),
                        bins=False,
                    )
                    patterns.add(names, col.name, "value", xc, xb)
                continue
            c_values = contribution.column(col.name).to_pylist()
            b_values = baseline.column(col.name).to_pylist() if baseline is not None and n_b else []
            match col.kind:
                case ColumnKind.TEXT:
                    names, xc, xb = self._text(c_values, b_values)
                    patterns.add(names, col.name, "ngram", xc, xb)
                    # How the text is written (casing, whitespace, invisible characters): changes the
                    # n-grams and the featurizers fold away, which a model reading the raw text still sees.
                    names, xc, xb = formatting_patterns(_cut(c_values), _cut(b_values))
                    patterns.add(names, col.name, "style", xc, xb)
                case ColumnKind.IMAGE:
                    # Luma (bright, dark), then each chroma plane of colour images: a patch of a colour
                    # whose luma is ordinary (magenta is mid-grey) shows in chroma only.
                    for plane, (names, xc, xb, cells) in enumerate(_image_patterns(c_values, b_values)):
                        patterns.add(names, col.name, "pixels", xc, xb, cells)
                        if plane:
                            # Chroma pixels alone: pairs would multiply the patterns of each plane by the
                            # square, and a colour outside the trusted tails is rare enough on its own.
                            patterns.planes[(col.name, CHROMA_WORDS[plane - 1])] = patterns.contribution[-1][1]
                            continue
                        # A patch is several extreme pixels at once: pairs of pixels are far rarer in
                        # the baseline than any single one. Pairs are made within a plane.
                        owner = np.arange(len(names)) % (len(names) // 2)
                        p_names, p_cols, pairs = _pair_patterns(
                            patterns.contribution[-1][1], patterns.baseline[-1][1], names, owner, self.min_support
                        )
                        p_cols.cells = PairCells(cells, p_cols.i_idx, p_cols.j_idx)
                        patterns.add_pairs(p_names, col.name, "pixels", p_cols)
                case ColumnKind.NUMERIC:
                    names, xc, xb = _numeric_patterns(col.name, c_values, b_values, bins=True)
                    patterns.add(names, col.name, "value", xc, xb)
                    if names:
                        tabular.append((col.name, xc, xb, names))
                        numeric.add(col.name)
                case ColumnKind.CATEGORICAL:
                    names, xc, xb = _categorical_patterns(col.name, c_values, b_values, self.min_support)
                    patterns.add(names, col.name, "value", xc, xb)
                    tabular.append((col.name, xc, xb, names))
        if 2 <= len(tabular) <= self.max_pair_columns:
            owner = np.concatenate([[k] * len(t[3]) for k, t in enumerate(tabular)])
            names, p_cols, pairs = _pair_patterns(
                sp.hstack([t[1] for t in tabular], format="csc"),
                sp.hstack([t[2] for t in tabular], format="csc"),
                [n for t in tabular for n in t[3]],
                owner,
                self.min_support,
            )
            cols = [f"{tabular[owner[i]][0]}, {tabular[owner[j]][0]}" for i, j in pairs]
            patterns.add_pairs(names, cols, "combination", p_cols)
        elif len(numeric) > self.max_pair_columns:
            # Too many columns for every pair of bins: pair only the extreme values (tails).
            tails = [(t[0], t[1][:, :2], t[2][:, :2], t[3][:2]) for t in tabular if t[0] in numeric]
            owner = np.concatenate([[k] * 2 for k in range(len(tails))])
            names, p_cols, pairs = _pair_patterns(
                sp.hstack([t[1] for t in tails], format="csc"),
                sp.hstack([t[2] for t in tails], format="csc"),
                [n for t in tails for n in t[3]],
                owner,
                self.min_support,
            )
            cols = [f"{tails[owner[i]][0]}, {tails[owner[j]][0]}" for i, j in pairs]
            patterns.add_pairs(names, cols, "combination", p_cols)
        return patterns

    def _near_copies(self, contribution: GateData, patterns: Patterns, xc: PatternMatrix) -> NearCopies:
        """The contribution's near-copy groups (``dataward.gates.near_copies``), read in its text columns;
        every record a group of its own when it has none (tables and images are not folded). Copies must
        also carry the same formatting patterns (casing, unusual whitespace, invisible characters), which
        the tokens fold away: a trigger written in formatting is never what two copies differ in."""
        table = contribution.table
        assert table is not None
        inputs = [col for col in self.context_.schema.inputs if col.name in table.column_names]
        texts = [_cut(table.column(col.name).to_pylist()) for col in inputs if col.kind == ColumnKind.TEXT]
        if not texts:
            return NearCopies(np.arange(len(contribution), dtype=np.int64))
        others: list[list[Any]] = [table.column(col.name).to_pylist() for col in inputs if col.kind != ColumnKind.TEXT]
        style = np.flatnonzero(np.asarray(patterns.kinds, dtype=object) == "style")
        if style.size:
            rows = sp.csr_matrix(xc.select(style))
            rows.eliminate_zeros()
            rows.sort_indices()
            others.append([tuple(rows.indices[rows.indptr[i] : rows.indptr[i + 1]]) for i in range(rows.shape[0])])
        return near_copies(texts, contribution.labels, others, token_pattern=TOKEN_PATTERN, rare_below=self.min_support)

    def _text(self, c_values: list[Any], b_values: list[Any]) -> tuple[list[str], sp.spmatrix, sp.spmatrix]:
        c_docs, b_docs = _cut(c_values), _cut(b_values)
        vectorizer = CountVectorizer(
            token_pattern=TOKEN_PATTERN,
            lowercase=True,
            ngram_range=(1, self.max_ngram),
            binary=True,
            min_df=min(self.min_support, len(c_docs)),
        )
        try:
            xc = vectorizer.fit_transform(c_docs)
        except ValueError:
            # No n-gram reaches the minimum support (or every text is empty): nothing to test.
            return [], sp.csc_matrix((len(c_docs), 0)), sp.csc_matrix((len(b_docs), 0))
        xb = vectorizer.transform(b_docs) if b_docs else sp.csc_matrix((0, xc.shape[1]))
        return list(vectorizer.get_feature_names_out()), xc, xb

    def _evidence(
        self,
        lead: int,
        group: list[int],
        members: np.ndarray,
        tests: dict[str, np.ndarray],
        corrected: np.ndarray,
        patterns: Patterns,
        ctx: GateContext,
        rows_out: np.ndarray,
    ) -> dict[str, Any]:
        t = int(tests["pattern"][lead])
        code = int(tests["label"][lead])
        label = ctx.classes[code] if code < len(ctx.classes) else str(code)
        kind = patterns.kinds[t]
        trigger = patterns.names[t]
        column = patterns.columns[t]
        if kind in ("value", "combination") and len(group) > 1:
            # Values that always travel together are one trigger: name their conjunction.
            conditions = [part for i in group for part in patterns.names[int(tests["pattern"][i])].split(" and ")]
            trigger = " and ".join(dict.fromkeys(conditions).keys())
            columns = [part for i in group for part in patterns.columns[int(tests["pattern"][i])].split(", ")]
            column = ", ".join(dict.fromkeys(columns).keys())
            kind = "combination"
        if kind == "pixels":
            kind_word = patterns.names[t].split()[0]
            pixels = [int(tests["pattern"][i]) for i in group]
            cells = [c for i in pixels if patterns.names[i].split()[0] == kind_word for c in patterns.cells[i]]
            if kind_word in CHROMA:
                kind_word = _hue(kind_word, patterns, column, members, cells)
            trigger = _patch_name(kind_word, cells)
        return {
            "trigger": trigger,
            "column": column,
            "kind": kind,
            "label": label,
            "rows": rows_out[members][: self.max_rows_in_evidence].tolist(),
            "z": round(float(tests["z"][lead]), 3),
            "baseline_count": int(tests["k_b"][lead]),
            "contribution_count": int(tests["k_c"][lead]),
            "label_count": int(tests["m"][lead]),
            "baseline_label_count": int(tests["b"][lead]),
            "content_label_share": round(float(tests["content_share"][lead]), 3),
            "batch_label_share": (
                None if np.isnan(tests["batch_share"][lead]) else round(float(tests["batch_share"][lead]), 3)
            ),
            "p_value": float(corrected[lead]),
            "related": [patterns.names[int(tests["pattern"][i])] for i in group[1:]][:20],
        }


def _cut(values: list[Any]) -> list[str]:
    """Text values as the detector reads them: missing as empty, at most ``TEXT_MAX_CHARS`` characters."""
    return [cut_text(v or "", TEXT_MAX_CHARS) for v in values]


# --- statistics ---------------------------------------------------------------------------------


def _one_hot(labels: np.ndarray, n_classes: int) -> sp.csc_matrix:
    n = labels.shape[0]
    return sp.csc_matrix((np.ones(n), (np.arange(n), labels.astype(np.int64))), shape=(n, n_classes))


@dataclass(frozen=True)
class _BaselineCounts:
    """The baseline's side of every (pattern, label) test: the same in every peeling round."""

    label_counts: np.ndarray  # trusted carriers per (pattern, label)
    column_sums: np.ndarray  # trusted carriers per pattern
    prior: np.ndarray  # the baseline's class shares
    backoff: np.ndarray  # what the baseline says of each pattern's parts, or the prior
    wide: np.ndarray  # per pattern: carried by most trusted records of every class (``BATCH_WIDE_SHARE``)

    @classmethod
    def of(cls, xb: PatternMatrix, yb: sp.csc_matrix) -> _BaselineCounts | None:
        """Counted once per scan; None for an empty baseline (the batch's own shares stand in, per round)."""
        n_b = xb.shape[0]
        if not n_b:
            return None
        prior = np.asarray(yb.sum(axis=0)).ravel() / n_b
        label_counts = xb.label_counts(yb)
        backoff = xb.backoff_rates(yb, prior, LABEL_PRIOR_WEIGHT)
        return cls(label_counts, xb.column_sums(), prior, backoff, _wide(label_counts, prior * n_b, prior > 0))


def _wide(carriers: np.ndarray, class_sizes: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per pattern: carried by at least ``BATCH_WIDE_SHARE`` of the records of every ``known`` class, each with
    at least ``BATCH_WIDE_MIN`` records, of at least two such classes (``carriers``: per pattern and class)."""
    covered = (carriers >= BATCH_WIDE_SHARE * class_sizes[None, :]) & (class_sizes[None, :] >= BATCH_WIDE_MIN)
    return covered[:, known].all(axis=1) & (int(known.sum()) >= 2)


def _association(
    xc: PatternMatrix,
    xb: PatternMatrix,
    yc: sp.csc_matrix,
    yb: sp.csc_matrix,
    min_support: int,
    prior_shift_min_effect: float = TriggerOptions.prior_shift_min_effect,
    baseline: _BaselineCounts | None = None,
) -> dict[str, np.ndarray]:
    """Both one-sided tests for every (pattern, label) pair with enough labelled carriers (``baseline``:
    the baseline's counts when already worked out, as ``_BaselineCounts.of(xb, yb)`` gives them)."""
    n_c, n_b = xc.shape[0], xb.shape[0]
    m_all = xc.label_counts(yc)  # contribution carriers per label
    k_c_all = xc.column_sums()
    if n_b:
        counts = baseline if baseline is not None else _BaselineCounts.of(xb, yb)
        b_all, k_b_all, prior, backoff = counts.label_counts, counts.column_sums, counts.prior, counts.backoff
    else:
        b_all, k_b_all = np.zeros_like(m_all), np.zeros_like(k_c_all)
        prior = np.asarray(yc.sum(axis=0)).ravel() / n_c
        backoff = np.tile(prior, (m_all.shape[0], 1))
    pattern, label = np.nonzero(m_all >= min_support)
    # A pattern most of the batch's records of every class carry (a column exported as 0 by one
    # hospital's software, a scanner's dark corner) is a property of the batch: each class's own records
    # are its counterexamples, so no model learns from it to give one label (``BATCH_WIDE_SHARE``).
    # So is one most of the baseline's records of every class carry: its trusted records are the
    # counterexamples, whatever the batch holds.
    class_sizes = np.asarray(yc.sum(axis=0)).ravel()
    known = (prior > 0) if n_b else (class_sizes > 0)
    batch_wide = _wide(m_all, class_sizes, known)
    baseline_wide = counts.wide if n_b else np.zeros_like(batch_wide)
    m = m_all[pattern, label]
    b = b_all[pattern, label]
    k_c = k_c_all[pattern]
    k_b = k_b_all[pattern]
    # Scipy evaluates the hypergeometric tail one pair at a time; pairs share few distinct (m, b). The
    # counts are whole numbers (sums of 0/1 carriers), so one integer key stands for each pair
    # (``np.unique`` along an axis sorts the pairs as structured values, far slower).
    span = int(b.max(initial=0)) + 1
    distinct, inverse = np.unique(m.astype(np.int64) * span + b.astype(np.int64), return_inverse=True)
    m_d, b_d = np.divmod(distinct, span)
    p_enrich = hypergeom.sf(m_d - 1, n_c + n_b, m_d + b_d, n_c)[inverse.ravel()]
    # The baseline's P(L | t), smoothed towards what it says of the pattern's parts (a pair's) or the prior.
    pi = (b + LABEL_PRIOR_WEIGHT * backoff[pattern, label]) / (k_b + LABEL_PRIOR_WEIGHT)
    pi_own = np.clip(pi, 1e-6, 1 - 1e-6)
    p_tie_own = binom.sf(m - 1, k_c, pi_own)
    if n_b:
        shifted = _prior_shifted_tie(pattern, label, m_all, b_all, k_b_all, prior, yc, prior_shift_min_effect)
        pi = np.maximum(pi, shifted)
    pi = np.clip(pi, 1e-6, 1 - 1e-6)
    p_tie = binom.sf(m - 1, k_c, pi)
    z = (m - k_c * pi) / np.sqrt(k_c * pi * (1 - pi))
    return {
        "pattern": pattern,
        "label": label,
        "m": m,
        "b": b,
        "k_c": k_c,
        "k_b": k_b,
        "p_enrich": np.asarray(p_enrich, dtype=np.float64),
        "p_tie": np.asarray(p_tie, dtype=np.float64),
        "p_tie_own": np.asarray(p_tie_own, dtype=np.float64),
        "pi_own": pi_own,
        "z": z,
        "pi": pi,
        "batch_wide": batch_wide[pattern],
        "baseline_wide": baseline_wide[pattern],
    }


def _prior_shifted_tie(
    pattern: np.ndarray,
    label: np.ndarray,
    m_all: np.ndarray,
    b_all: np.ndarray,
    k_b_all: np.ndarray,
    prior: np.ndarray,
    yc: sp.csc_matrix,
    min_effect: float,
) -> np.ndarray:
    """The baseline's ``P(L | t)`` moved to the batch's class shares, for every (pattern, label) pair.
    Pairs whose batch shares lie within ``min_effect`` (total variation) of the baseline's keep the
    baseline's own ``P(L | t)``.

    A batch with a larger share of label ``L`` than the baseline (a source that labels mostly one
    category) has more carriers of any pattern labelled ``L``, with no tie of its own. When
    ``P(t | L)`` is what the baseline shows (label shift), Bayes' rule gives the batch's
    ``P(L | t)`` as the baseline's, reweighted by ``pi_batch(l) / pi_baseline(l)`` and renormalised
    over the labels (Saerens et al., 2002). The batch's shares are read from the pattern's
    *non-carriers*, so that poisoned carriers do not excuse themselves, with one pseudo-record per
    class at the baseline's shares (a class absent from a small batch keeps some weight). The caller
    keeps the larger of this and the baseline's own ``P(L | t)``: the correction only ever excuses a
    tie, and a batch that holds as much ``L`` as the baseline is tested exactly as before.
    """
    if not len(pattern):
        return np.zeros(0)
    n_classes = prior.shape[0]
    batch_counts = np.asarray(yc.sum(axis=0)).ravel()
    # Each pattern's class shares are worked out once, however many of its labels are tested (a photo
    # batch tests a million pixel patterns, most of them with several labels); each row is computed
    # on its own, so the values are those of one row per (pattern, label) pair.
    pattern, per_pair = np.unique(pattern, return_inverse=True)
    p_given_t = (b_all[pattern] + LABEL_PRIOR_WEIGHT * prior) / (k_b_all[pattern] + LABEL_PRIOR_WEIGHT)[:, None]
    others = np.maximum(batch_counts[None, :] - m_all[pattern], 0.0)
    pseudo = float(n_classes)
    batch_share = (others + pseudo * prior) / (others.sum(axis=1) + pseudo)[:, None]
    ratio = np.divide(batch_share, prior, out=np.ones_like(batch_share), where=prior > 0)
    # A batch whose shares moved less than a source sending mostly some classes moves them is read at
    # the baseline's shares (``TriggerOptions.prior_shift_min_effect``).
    ratio[0.5 * np.abs(batch_share - prior).sum(axis=1) < min_effect] = 1.0
    moved = p_given_t * ratio
    total = moved.sum(axis=1)[per_pair]
    return np.divide(moved[per_pair, label], total, out=np.zeros(len(label)), where=total > 0)


def _testable_count(tests: dict[str, np.ndarray], n_c: int, n_b: int, alpha: float, *, novelty: bool = True) -> int:
    """Tarone's count of the (pattern, label) tests that could reach significance at all.

    Both count tests are exact given their margins: the enrichment test given the pattern-label
    pair's carriers in both sets (``m + b``), the tie test given the pattern's carriers in the batch
    (``k_c``). The smallest p-value a test can reach is then fixed before its outcome is seen: all
    ``m + b`` labelled carriers in the batch, all ``k_c`` carriers bearing the label. A pair whose
    smallest reachable p-value exceeds ``alpha / k`` can never be significant at that level and need
    not be paid for (Tarone, 1990); ``k`` is the smallest count with at most ``k`` pairs able to reach
    ``alpha / k``. Bonferroni over ``k`` then bounds the chance of any false trigger by ``alpha``, as
    over every pair, while a batch full of rare n-grams no longer dilutes a trigger's evidence (25
    carriers of a new token in 5,000 texts were outweighed by thousands of n-grams seen three times).
    """
    n = len(tests["pattern"])
    if n == 0:
        return 0
    reachable = np.exp(tests["k_c"] * np.log(tests["pi"]))
    if novelty:
        totals, inverse = np.unique(tests["m"] + tests["b"], return_inverse=True)
        enrich = hypergeom.pmf(np.minimum(totals, n_c), n_c + n_b, totals, n_c)[inverse.ravel()]
        reachable = np.maximum(reachable, enrich)
    reachable = np.sort(reachable)
    k = np.arange(1, n + 1)
    fits = np.searchsorted(reachable, alpha / k, side="right") <= k  # true at k = n at the latest
    return int(k[np.argmax(fits)])


@dataclass(frozen=True)
class _ContentPlan:
    carries: np.ndarray
    own: np.ndarray
    peers: np.ndarray
    """Records whose agreement with their own label the carriers' is compared with ..."""
    peer_labels: np.ndarray
    """... those labels ..."""
    peer_shares: np.ndarray
    """... and each one's share of the pool's non-carriers (chance agreement)."""
    trusted: np.ndarray
    trusted_carriers: np.ndarray
    """Trusted records that carry the pattern with the label (a seeded sample)."""
    share: float


class _ContentTie:
    """Is a pattern's tie to a label explained by the content of the records that carry it?

    A record's *agreement* with a label is the share of that label among the *trusted* records (baseline, gate
    features) among its ``k`` nearest records of the pool that do not carry the pattern: what the baseline knows of
    content as near as the batch's own (none such: agreement 1/2, unknown). (Read among the batch's records as well,
    a new topic's carriers had only the topic's other pages nearby, and its naming conventions, a D-Bus interface
    page in section 5, read as labels their content contradicted.) A backdoor's carriers look like the class they
    came from, so their agreement with the target label is low; records of that label without the pattern agree with
    it as usual. The test compares the carriers' agreement with that of non-carriers of the same label *in the same
    batch* (same source, same sensor, same topic, so a global shift or a one-class source moves both alike). When
    every record of the label in the batch carries the pattern (a new software family whose library pages are all
    named after it), it compares with the batch's other records, each against its own label: how well the baseline
    reads this batch at all (compared with the baseline's own records of the label, which it reads at home, a new
    topic's carriers read as contradicting labels that content merely did not confirm). Only when the batch has
    too few of those either does it fall back to the baseline's records of the label. Agreement is read as lift
    above chance (a label's share of the pool), so that records of different labels compare. One-sided
    Mann-Whitney test, and the mean lift must drop by at least ``MIN_DROP`` of the peers' lift, and by
    ``MIN_ABSOLUTE_DROP`` outright: the neighbour vote is noisy, and
    a small drop on a large batch is not evidence of a backdoor. Where the features do not predict the label at all
    (trusted records of the label agree with it by less than ``MIN_INFORMATIVE`` above its share of the pool), the
    content test has nothing to say and leaves the verdict to the other two.
    """

    MIN_DROP = 0.6
    """Carriers must lose at least this share of the label's agreement above chance ..."""
    MIN_ABSOLUTE_DROP = 0.15
    """... and at least this much agreement outright."""
    MIN_INFORMATIVE = 0.1
    """Trusted records of a label must agree with it by at least this much above its share of the pool
    for content to count as evidence at all (text features agree by about 0.25, meaningless ones by 0)."""
    MIN_COMPARISON = 10
    MIN_TRUSTED_CARRIERS = 3
    """Trusted records carrying the pattern with the label that can show the carriers' reading is the usual one."""
    FAMILIAR_SHARE = 0.5
    """Carriers are *familiar* content when the trusted records' share among their nearest records that do not
    carry the pattern is at least this much of the trusted records' share of all such records: i.i.d. content
    relabelled by a vendor sits among trusted records as any record does (0.9 to 1.1 times that share on
    man-page lines), a new topic's pages among each other (0.1 to 0.35 times)."""
    MAX_QUERY = 500
    """A test reads the neighbours of at most this many carriers (a seeded sample beyond) ..."""
    MAX_PEERS = 1000
    """... and of at most this many records of the label to compare them with."""
    MAX_MATCHED = 200
    """The batch tie reads the neighbours of at most this many carriers per pair (a seeded sample)."""
    CHUNK = 50_000
    """Carrier entries whose neighbour lists are read at a time by the batch tie ..."""
    MARK_CELLS = 2**26
    """... against a table of at most this many (record, pair) cells."""

    def __init__(
        self,
        baseline: GateData,
        contribution: GateData,
        xb: PatternMatrix,
        xc: PatternMatrix,
        n_classes: int,
        k: int,
        seed: int = 0,
        stripped: _StrippedCarriers | None = None,
    ) -> None:
        self.n_b, self.k = len(baseline), k
        self.stripped = stripped
        self.pool_features = np.ascontiguousarray(np.vstack([baseline.features, contribution.features]), np.float32)
        self.pool_patterns = PatternMatrix.vstack(xb, xc)
        self.pool_labels = np.concatenate([baseline.labels, contribution.labels])
        n = self.pool_labels.shape[0]
        # Neighbour lists are searched only for the rows a test reads, once per scan, and kept for the
        # other tests (patterns of one label share their peers; a phrase's words share their carriers).
        # Content is read from the trusted records among a record's nearest records of the pool: what
        # the baseline knows of content as near as the batch's own. The batch's records may be poisoned,
        # and in a new topic they are all a carrier has nearby, so they read the topic's naming
        # conventions (a D-Bus interface page in section 5) as labels its content contradicted; trusted
        # records farther than the batch's own (a new topic, a shifted scanner) say little either way.
        self.neighbours = _LazyNeighbours(self.pool_features, K_MAX)
        batch = self.pool_features[self.n_b :]
        self.batch_neighbours = [_LazyNeighbours(batch, width) for width in (K_MAX, 8 * K_MAX)]
        # Samples are taken in one seeded random order of the pool, so that the tests of different
        # patterns read mostly the same records and share their searches; the order does not depend
        # on the labels, so a test on a sample is as valid as on every record.
        self.rank = np.random.default_rng(seed).permutation(n)
        # Per (pattern, label, carriers): the content test's result and whether the carriers are familiar.
        self.results: dict[tuple[int, int, bytes], tuple[tuple[float, float, bool], bool]] = {}
        # Features that are the same for every record (none were computed) say nothing about content.
        pool = self.pool_features
        self.constant = pool.size == 0 or not bool(np.any(pool != pool[:1]))

    def _sample(self, rows: np.ndarray, cap: int) -> np.ndarray:
        if rows.size <= cap:
            return rows
        return np.sort(rows[np.argsort(self.rank[rows], kind="stable")[:cap]])

    def _carries(self, pattern: int) -> np.ndarray:
        rows, data = self.pool_patterns.column(pattern)
        carries = np.zeros(self.pool_patterns.shape[0], bool)
        carries[rows[data > 0]] = True
        return carries

    def _agreement(
        self, rows: np.ndarray, label: int | np.ndarray, carries: np.ndarray, idx: np.ndarray | None = None
    ) -> np.ndarray:
        """Each row's agreement with ``label`` (one label, or one per row); ``idx``: the rows' nearest records
        of the pool when not the rows' own (the carriers read without their pattern)."""
        idx = self.neighbours.get(rows) if idx is None else idx
        usable = ~carries[idx] & (idx < self.n_b)  # trusted records among the nearest of the pool
        usable &= np.cumsum(usable, axis=1) <= self.k
        same = usable & (self.pool_labels[idx] == np.reshape(label, (-1, 1)))
        return (same.sum(axis=1) + 0.5) / (usable.sum(axis=1) + 1.0)

    def _plan(self, pattern: int, label: int, carriers: np.ndarray) -> _ContentPlan:
        """The rows a content test reads: carriers, the records to compare them with and the label's trusted
        records (each at most a seeded sample).

        The comparison is made in the carriers' own batch (same source, sensor and topic): with its other
        records of the label; too few of those (every record of the label carries the pattern), with its
        other records of any label, each against its own label, how well the baseline reads this batch's
        content at all; too few of those too, with the baseline's records of the label."""
        carries = self._carries(pattern)
        non_carriers = self.pool_labels[~carries]
        shares = np.bincount(non_carriers, minlength=int(self.pool_labels.max()) + 1) / max(non_carriers.size, 1)
        of_label = (self.pool_labels == label) & ~carries
        batch_peers = np.flatnonzero(of_label[self.n_b :]) + self.n_b
        batch_others = np.flatnonzero(~carries[self.n_b :]) + self.n_b
        if batch_peers.size >= self.MIN_COMPARISON:
            peers = batch_peers
        elif batch_others.size >= self.MIN_COMPARISON:
            peers = batch_others
        else:
            peers = np.flatnonzero(of_label[: self.n_b])
        peers = self._sample(peers, self.MAX_PEERS)
        trusted = np.flatnonzero(of_label[: self.n_b])
        trusted_carriers = np.flatnonzero(carries[: self.n_b] & (self.pool_labels[: self.n_b] == label))
        return _ContentPlan(
            carries=carries,
            own=self._sample(carriers, self.MAX_QUERY) + self.n_b,
            peers=peers,
            peer_labels=self.pool_labels[peers],
            peer_shares=shares[self.pool_labels[peers]],
            trusted=self._sample(trusted, self.MAX_PEERS),
            trusted_carriers=self._sample(trusted_carriers, self.MAX_PEERS),
            share=float(shares[label]),
        )

    def prefetch(self, pairs: list[tuple[int, int, np.ndarray]]) -> None:
        """Search in one go the neighbours that the content tests of these (pattern, label, carriers) will read.

        The rows are gathered in one mask of the pool, one plan at a time: a batch crafted so that hundreds
        of thousands of patterns reach the content test would otherwise hold every plan at once and ask
        for every row as many times as plans read it (29 GiB of neighbour indices for 720 photo crops)."""
        if self.constant:
            return
        wanted = np.zeros(self.pool_labels.shape[0], bool)
        for pair in pairs:
            if pair[2].size:
                plan = self._plan(*pair)
                wanted[plan.own] = True
                wanted[plan.peers] = True
                wanted[plan.trusted] = True
                wanted[plan.trusted_carriers] = True
        if wanted.any():
            self.neighbours.get(np.flatnonzero(wanted))

    def familiar(self, pattern: int, label: int, carriers: np.ndarray) -> bool:
        """Whether the carriers' content is like the trusted records' (``FAMILIAR_SHARE``): where it is not (a
        new topic), what the baseline reads of it says less of the label than where it is. Read from the
        plan of the pair's content test, when it runs."""
        if carriers.size == 0 or self.constant:
            return True
        self.test(pattern, label, carriers)
        return self.results[(pattern, label, carriers.tobytes())][1]

    def _familiar(self, plan: _ContentPlan) -> bool:
        idx = self.neighbours.get(plan.own)
        usable = ~plan.carries[idx]
        near_trusted = (usable & (idx < self.n_b)).sum(axis=1) / np.maximum(usable.sum(axis=1), 1)
        others = ~plan.carries
        expected = float(others[: self.n_b].sum()) / max(float(others.sum()), 1.0)
        return float(near_trusted.mean()) >= self.FAMILIAR_SHARE * expected

    def test(self, pattern: int, label: int, carriers: np.ndarray) -> tuple[float, float, bool]:
        """(p-value of "the carriers' label is explained by their content", their mean agreement with it,
        whether content says anything about this label at all).

        ``carriers`` are contribution positions of the records carrying the pattern with ``label``.
        """
        if carriers.size == 0:
            return 1.0, float("nan"), True
        key = (pattern, label, carriers.tobytes())
        if key not in self.results:
            plan = self._plan(pattern, label, carriers)
            self.results[key] = (self._test(label, plan, pattern), self.constant or self._familiar(plan))
        return self.results[key][0]

    def _own_agreement(self, pattern: int, label: int, plan: _ContentPlan) -> np.ndarray:
        """The carriers' agreement with ``label``, read on their content without the pattern where it can be
        taken out (a text pattern and the constant phrase it sits in: ``_StrippedCarriers``). Left in, a phrase
        the sender puts before every trigger pulls every carrier towards the trusted records that use its
        words: "see the GNU manual for full details zx7q" read as 'commands' 45% of the time, the trigger
        alone 23%, and the tie was vetoed."""
        features = None if self.stripped is None else self.stripped.features(pattern, plan.own - self.n_b)
        if features is None:
            return self._agreement(plan.own, label, plan.carries)
        _, idx = _search(self.pool_features, np.ascontiguousarray(features, np.float32), K_MAX)
        return self._agreement(plan.own, label, plan.carries, idx)

    def _test(self, label: int, plan: _ContentPlan, pattern: int) -> tuple[float, float, bool]:
        if plan.peers.size < 2:
            return 1.0, float("nan"), True
        own = self._own_agreement(pattern, label, plan)
        # Do trusted records of the label agree with it by content more than its share of the pool?
        informative = not self.constant and (
            plan.trusted.size < 2
            or float(self._agreement(plan.trusted, label, plan.carries).mean()) - plan.share >= self.MIN_INFORMATIVE
        )
        if not informative:
            # The features do not predict the label at all: content can explain nothing, so it vetoes
            # nothing either (route A); nor is it evidence of anything (route B).
            return 0.0, float(own.mean()), False
        # Agreement is read as lift above chance (the label's share of the pool), so that peers of other
        # labels compare; the drop is judged against how far the peers stand above chance: weak features
        # (short texts) never give a drop as large as sharp ones (digits) do.
        own_lift = own - plan.share
        usual_lift = self._agreement(plan.peers, plan.peer_labels, plan.carries) - plan.peer_shares
        drop = float(usual_lift.mean() - own_lift.mean())
        if drop < self.MIN_DROP * max(float(usual_lift.mean()), 0.0) or drop < self.MIN_ABSOLUTE_DROP:
            return 1.0, float(own.mean()), True
        if plan.trusted_carriers.size >= self.MIN_TRUSTED_CARRIERS:
            # The baseline's own records of the pattern and the label read as little like the label: that is
            # how such records are (Perl modules named 'Dpkg::*' describe what a command does), not a sign
            # that the batch's were relabelled. Clean-label seeds of a trigger read as their label.
            trusted_own = self._agreement(plan.trusted_carriers, label, plan.carries)
            if float(trusted_own.mean() - own.mean()) < self.MIN_ABSOLUTE_DROP:
                return 1.0, float(own.mean()), True
        return float(mannwhitneyu(own_lift, usual_lift, alternative="less").pvalue), float(own.mean()), True

    def batch_ties(
        self, xc: PatternMatrix, active: np.ndarray, patterns: np.ndarray, labels: np.ndarray, bar: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batch tie of each (pattern, label) pair: (p-values, mean expected shares of the label among the
        carriers), all pairs at once.

        The null: given content, the label does not depend on the pattern. Each active carrier of the
        pattern (whatever its label; at most ``MAX_MATCHED`` of them, a seeded sample) is matched to its
        ``k`` nearest records *of the contribution* that do not carry the pattern (gate features, exact
        search); its chance of bearing the label under the null is their share of it, pulled by one
        pseudo-record towards the label's share among the batch's non-carriers:
        ``q_i = (same_i + s) / (k + 1)``. The carriers' count of the label is then a Poisson-binomial
        variable, whose upper tail from one above its mean is at most the binomial tail with the mean
        chance ``q`` (Hoeffding, 1956): that tail is the p-value. It needs no baseline, so its power does
        not fall when the batch outgrows the baseline. A one-class batch or a new topic labels the
        matched records like the carriers (``q`` near 1); a backdoor's carriers sit among records of the
        classes they came from.

        ``xc`` holds the patterns of the whole contribution, ``active`` the positions still tested.
        """
        n_pairs = patterns.shape[0]
        p_out, q_out = np.ones(n_pairs), np.full(n_pairs, np.nan)
        batch_labels = self.pool_labels[self.n_b :]
        n_c = batch_labels.shape[0]
        if n_pairs == 0 or self.batch_neighbours[0].width == 0:
            return p_out, q_out
        every = xc.select(patterns)
        every.eliminate_zeros()
        # The share of the label among each pattern's non-carriers, over the whole batch.
        n_carry = np.diff(every.indptr)
        carry_label = np.asarray((every.T @ _one_hot(batch_labels, int(self.pool_labels.max()) + 1)).todense())
        n_label = np.bincount(batch_labels, minlength=carry_label.shape[1])
        n_others = n_c - n_carry
        share = (n_label[labels] - carry_label[np.arange(n_pairs), labels]) / np.maximum(n_others, 1)
        k = np.minimum(self.k, n_others)
        # The carriers read: active carriers of each pattern, the first MAX_MATCHED in the seeded order.
        is_active = np.zeros(n_c, bool)
        is_active[active] = True
        col = np.repeat(np.arange(n_pairs), n_carry)
        row = every.indices
        keep = is_active[row]
        col, row = col[keep], row[keep]
        order = np.lexsort((self.rank[row + self.n_b], col))
        col, row = col[order], row[order]
        starts = np.searchsorted(col, np.arange(n_pairs))
        keep = np.arange(col.shape[0]) - starts[col] < self.MAX_MATCHED
        col, row = col[keep], row[keep]
        same = np.zeros(col.shape[0])
        # Whether a neighbour carries the pattern is read from a dense table of records x pairs, a slice
        # of pairs at a time. Other carriers may crowd a record's list (a cluster of alike carriers): such
        # records are read again in a wider list; where even that holds fewer than k non-carriers, the
        # missing ones are counted as bearing the label, which can only raise q and the p-value.
        per_slice = max(1, self.MARK_CELLS // n_c)
        found = np.zeros(col.shape[0], np.int64)
        short = np.arange(col.shape[0])
        for lists in self.batch_neighbours:
            if short.size == 0:
                break
            for p0 in range(0, n_pairs, per_slice):
                p1 = min(p0 + per_slice, n_pairs)
                lo, hi = np.searchsorted(col[short], [p0, p1])
                if lo == hi:
                    continue
                mark = np.zeros((n_c, p1 - p0), bool)
                span = slice(every.indptr[p0], every.indptr[p1])
                mark[every.indices[span], np.repeat(np.arange(p1 - p0), n_carry[p0:p1])] = True
                for s0 in range(lo, hi, self.CHUNK):
                    at = short[s0 : min(s0 + self.CHUNK, hi)]
                    c, r = col[at], row[at]
                    idx = lists.get(r)
                    usable = ~mark[idx, (c - p0)[:, None]]
                    usable &= np.cumsum(usable, axis=1, dtype=np.int16) <= k[c][:, None]
                    found[at] = usable.sum(axis=1)
                    same[at] = (usable & (batch_labels[idx] == labels[c][:, None])).sum(axis=1)
            short = short[found[short] < k[col[short]]]
        same[short] += k[col[short]] - found[short]
        n_read = np.bincount(col, minlength=n_pairs)
        m = np.bincount(col, weights=batch_labels[row] == labels[col], minlength=n_pairs)
        chance = (same + share[col]) / (k[col] + 1.0)
        tested = (n_read > 0) & (k > 0)
        q_out[tested] = np.bincount(col, weights=chance, minlength=n_pairs)[tested] / n_read[tested]
        # Hoeffding's bound holds from one above the mean.
        tail = tested & (m >= n_read * np.nan_to_num(q_out) + 1)
        p_out[tail] = bdtrc(m[tail] - 1, n_read[tail], q_out[tail])
        # Carriers that are each other's near neighbours (lines of one page, one document's phrase) are
        # not independent draws: where the tie could pass, they are counted as one unit each.
        starts = np.searchsorted(col, np.arange(n_pairs + 1))
        for c in np.flatnonzero(p_out <= bar):
            span = slice(starts[c], starts[c + 1])
            p_out[c] = max(
                p_out[c], self._unit_tie(row[span], batch_labels[row[span]] == labels[c], chance[span], int(k[c]))
            )
        return p_out, q_out

    def _unit_tie(self, rows: np.ndarray, bears: np.ndarray, chance: np.ndarray, k: int) -> float:
        """The batch tie over units: carriers joined when one is among the other's ``k`` nearest batch
        records. A unit bears the label when all its members do, which under the null has a chance at
        most its members' mean chance; units are independent draws, and Hoeffding's bound applies again."""
        order = np.argsort(rows)
        rows, bears, chance = rows[order], bears[order], chance[order]
        idx = self.batch_neighbours[0].get(rows)[:, :k]
        at = np.minimum(np.searchsorted(rows, idx), rows.shape[0] - 1)
        linked = rows[at] == idx
        src = np.repeat(np.arange(rows.shape[0]), linked.sum(axis=1))
        graph = sp.coo_matrix((np.ones(src.shape[0]), (src, at[linked])), shape=(rows.shape[0],) * 2)
        n_units, unit = connected_components(graph, directed=True, connection="weak")
        size = np.bincount(unit, minlength=n_units)
        m = int(np.sum(np.bincount(unit, weights=bears, minlength=n_units) == size))
        q = float(np.mean(np.bincount(unit, weights=chance, minlength=n_units) / size))
        if m < n_units * q + 1:
            return 1.0
        return float(bdtrc(m - 1, n_units, q))


class _StrippedCarriers:
    """Gate features of a text pattern's carriers with the pattern taken out together with the constant
    phrase it sits in: the tokens next to it that at least ``RUN_SHARE`` of the carriers hold at the same
    place, extended a token at a time on either side (at most ``MAX_RUN`` each way). A phrase a sender
    puts before every trigger is such a run, however long and whatever else the batch holds; what is left
    of each carrier is its own content.

    Only a run longer than the pattern changes the reading (None otherwise): words that merely recur in
    the carriers (a new topic's 'configuration' in its section-5 pages) are their content, and cutting
    them out made eight clean new-topic batches read as relabelled. This is the probe the content test
    asks for: would the carrier read as its label were the pattern not there? The gate's fitted
    featurization reads the stripped texts as it read the batch."""

    RUN_SHARE = 0.9
    MAX_RUN = 32
    TEMPLATE_SHARE = 0.5
    """A token at least this share of the batch's records hold is the batch's template (a register that
    writes "DOC: " before every line), not a phrase of the carriers': the run stops at it."""

    def __init__(
        self, patterns: Patterns, xc: PatternMatrix, table: pa.Table, featurize: Callable[[pa.Table], np.ndarray]
    ) -> None:
        self.patterns, self.xc, self.table, self.featurize = patterns, xc, table, featurize
        self.text = np.asarray(patterns.kinds, dtype=object) == "ngram"
        self.cache: dict[tuple[int, bytes], np.ndarray | None] = {}

    @cached_property
    def template(self) -> set[str]:
        """The batch's template tokens, counted only once a content test asks (most scans run none)."""
        held = self.xc.column_sums()
        limit = self.TEMPLATE_SHARE * self.xc.shape[0]
        return {
            name for i, name in enumerate(self.patterns.names) if self.text[i] and " " not in name and held[i] >= limit
        }

    def features(self, pattern: int, rows: np.ndarray) -> np.ndarray | None:
        """Features of the carriers at contribution positions ``rows`` without the pattern's run; None for a
        pattern that is not text or that sits in no constant phrase longer than itself."""
        if not self.text[pattern] or rows.size == 0:
            return None
        key = (pattern, rows.tobytes())
        if key not in self.cache:
            self.cache[key] = self._features(pattern, rows)
        return self.cache[key]

    def _features(self, pattern: int, rows: np.ndarray) -> np.ndarray | None:
        column = self.patterns.columns[pattern]
        taken = self.table.take(pa.array(rows))
        texts = [v or "" for v in taken.column(column).to_pylist()]
        pattern_tokens = self.patterns.names[pattern].split(" ")
        stripped = _without_run(texts, pattern_tokens, self.RUN_SHARE, self.MAX_RUN, self.template)
        if stripped is None:
            return None
        index = taken.schema.get_field_index(column)
        field = taken.schema.field(index)
        edited = taken.set_column(index, field, pa.array(stripped, type=field.type))
        return np.asarray(self.featurize(edited), np.float32)


_TOKEN = re.compile(TOKEN_PATTERN)


def _without_run(
    texts: list[str], pattern: list[str], share: float, max_run: int, template: AbstractSet[str] = frozenset()
) -> list[str] | None:
    """``texts`` with the first occurrence of ``pattern`` (tokens as the detector reads them, case folded) cut
    out with the constant run around it: the token just before (after) it, where at least ``share`` of the
    texts hold the same one there and it is not one of ``template`` (the batch's own), then the next, at
    most ``max_run`` each way. None when no run is longer than the pattern."""
    width = len(pattern)
    runs: list[list[Any]] = []  # [text index, tokens (word, start, end), first token of the run, one past its last]
    for i, text in enumerate(texts):
        tokens = [(m.group(0).lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
        words = [t[0] for t in tokens]
        at = next((k for k in range(len(words) - width + 1) if words[k : k + width] == pattern), None)
        if at is not None:
            runs.append([i, tokens, at, at + width])
    grown = False
    for side, end in ((-1, 2), (1, 3)):
        for _ in range(max_run):
            # The token just past each run's end on this side, where the text has one.
            nexts = {
                r: run[1][j][0]
                for r, run in enumerate(runs)
                if 0 <= (j := run[end] - 1 if side < 0 else run[end]) < len(run[1])
            }
            if not nexts:
                break
            token, count = max(Counter(nexts.values()).items(), key=lambda kv: (kv[1], kv[0]))
            if count < share * len(runs) or token in template:
                break
            for r, word in nexts.items():
                if word == token:
                    runs[r][end] += side
            grown = True
    if not grown:
        return None
    out = list(texts)
    for i, tokens, left, right in runs:
        out[i] = " ".join((texts[i][: tokens[left][1]] + " " + texts[i][tokens[right - 1][2] :]).split())
    return out


class _LazyNeighbours:
    """Each row's ``width`` nearest rows of ``features`` (itself excluded), searched only when first asked for."""

    def __init__(self, features: np.ndarray, width: int) -> None:
        self.features = features
        n = features.shape[0]
        self.width = max(min(width, n - 1), 0)
        self.known = np.zeros(n, bool)
        self.rows = np.full(n, -1, np.int64)
        self.store = np.zeros((0, self.width), np.int64)
        self.used = 0

    def get(self, rows: np.ndarray) -> np.ndarray:
        missing = np.unique(rows[~self.known[rows]])
        if missing.size and self.width:
            _, idx = _search(self.features, self.features[missing], self.width + 1)
            own = idx == missing[:, None]
            # Leave out the row itself where found, else the farthest of the width + 1.
            own[~own.any(axis=1), -1] = True
            own &= np.cumsum(own, axis=1) == 1
            # Only the rows asked for are kept, in a store that doubles when full.
            used = self.used + missing.size
            if used > self.store.shape[0]:
                grown = np.zeros((max(used, 2 * self.store.shape[0]), self.width), np.int64)
                grown[: self.used] = self.store[: self.used]
                self.store = grown
            self.rows[missing] = np.arange(self.used, used)
            self.store[self.used : used] = idx[~own].reshape(missing.size, self.width)
            self.used = used
        self.known[missing] = True
        return self.store[self.rows[rows]]


class _Carriers:
    """Contribution positions of the records carrying a tested pattern with the tested label."""

    def __init__(
        self,
        x: PatternMatrix,
        labels: np.ndarray,
        tests: dict[str, np.ndarray],
        index: np.ndarray,
        full: PatternMatrix,
        all_labels: np.ndarray,
    ) -> None:
        self.x, self.labels, self.tests, self.index = x, labels, tests, index
        self.full, self.all_labels = full, all_labels
        self.cache: dict[int, np.ndarray] = {}

    def with_copies(self, i: int, active: np.ndarray) -> np.ndarray:
        """Contribution positions of every active record carrying test ``i``'s pattern with its label, the
        near-copies left out of ``index`` included (``full``: the whole contribution's patterns)."""
        rows, data = self.full.column(int(self.tests["pattern"][i]))
        rows = np.sort(rows[data > 0])
        return rows[active[rows] & (self.all_labels[rows] == self.tests["label"][i])]

    def every(self, i: int) -> np.ndarray:
        """Contribution positions of every record carrying test ``i``'s pattern, whatever its label."""
        rows, data = self.x.column(int(self.tests["pattern"][i]))
        return self.index[np.sort(rows[data > 0])]

    def __getitem__(self, i: int) -> np.ndarray:
        if i not in self.cache:
            rows, data = self.x.column(int(self.tests["pattern"][i]))
            rows = np.sort(rows[data > 0])
            self.cache[i] = self.index[rows[self.labels[rows] == self.tests["label"][i]]]
        return self.cache[i]


def _merge(
    order: list[int],
    tests: dict[str, np.ndarray],
    carriers: _Carriers,
    patterns: Patterns,
    overlap: float,
) -> list[list[int]]:
    """Group significant patterns of one label whose carriers nearly coincide with a lead's (Jaccard >= overlap).

    Among equally significant patterns the longest description leads (a phrase over its words).
    """
    order = sorted(
        order,
        key=lambda i: (
            min(max(tests["p_enrich"][i], tests["p_tie"][i]), max(tests["p_tie"][i], tests["p_batch"][i])),
            -len(patterns.names[tests["pattern"][i]]),
        ),
    )
    groups: list[list[int]] = []
    group_rows: list[set[int]] = []
    for i in order:
        rows = set(carriers[i].tolist())
        for g, g_rows in zip(groups, group_rows, strict=True):
            same_label = tests["label"][g[0]] == tests["label"][i]
            if same_label and len(rows & g_rows) >= overlap * len(rows | g_rows):
                g.append(i)
                break
        else:
            groups.append([i])
            group_rows.append(rows)
    return groups


def _record_p_values(
    xc: PatternMatrix | sp.spmatrix,
    labels: np.ndarray,
    n_classes: int,
    tests: dict[str, np.ndarray],
    keep: np.ndarray,
) -> np.ndarray:
    """Per record: ``min(1, c * min p)`` over the ``c`` tested patterns it carries with its own label."""
    xc = PatternMatrix.of(xc)
    n = xc.shape[0]
    index = np.flatnonzero(keep)
    if index.size == 0:
        return np.ones(n)
    # Records are ranked on the tie at the baseline's own shares: the batch's shares include every
    # relabelled record that does not carry the pattern, so reading the tie at them would let targeted
    # flips into a class lift their own patterns' ties (a ranking only: no record is flagged on it).
    raw = np.maximum(tests["p_enrich"][index], tests.get("p_tie_own", tests["p_tie"])[index])
    # Walk the carrier entries themselves, a block of records at a time: a dense "records x tests" label
    # mask would need one entry per record and test (billions for thousands of images with many pixel
    # patterns), and the pixel pairs alone hold thousands of entries per photo.
    keys = tests["pattern"][index].astype(np.int64) * n_classes + tests["label"][index]
    order = np.argsort(keys, kind="stable")
    keys, score = keys[order], -np.log(np.maximum(raw[order], 1e-300))
    lookup = SortedKeys(keys, int(xc.shape[1]) * n_classes if labels.min(initial=0) >= 0 else 0)
    counts = np.zeros(n, np.int64)
    best = np.zeros(n)
    for rows, cols in xc.entries():
        at = lookup.find(cols * n_classes + labels[rows])
        own = at >= 0
        counts += np.bincount(rows[own], minlength=n)
        _max_by_row(best, rows[own], score[at[own]])
    return np.where(counts > 0, np.minimum(1.0, counts * np.exp(-best)), 1.0)


def _lead_first(group: list[int], tests: dict[str, np.ndarray], patterns: Patterns) -> list[int]:
    """The group with its most specific pattern first: the largest share of its contribution carriers
    labelled with the trigger's label, then the fewest baseline carriers, then the longest description
    (a phrase rather than one of its words, a patch rather than one of its pixels)."""

    def key(i: int) -> tuple[float, float, int]:
        share = float(tests["m"][i]) / max(float(tests["k_c"][i]), 1.0)
        return (-share, float(tests["k_b"][i]), -len(patterns.names[int(tests["pattern"][i])]))

    return sorted(group, key=key)


def _repeated_reason(ev: dict[str, Any]) -> str:
    """A trigger only the repetition of near-copies makes: for review, not a block."""
    return (
        f"{ev['trigger']!r} in column {ev['column']!r} is tied to {ev['label']!r} in {ev['label_count']} records "
        f"(p={ev['p_value']:.2g} counted record by record), but they are near-copies of only {ev['groups']} "
        f"distinct record{'s' if ev['groups'] != 1 else ''} (the same text but for a few rare words), which count "
        "once each: not enough to block; review them"
    )


def _reason(ev: dict[str, Any]) -> str:
    what = {
        "ngram": "token",
        "style": "formatting",
        "pixels": "pixel pattern",
        "value": "value",
        "combination": "value combination",
    }
    noun = "phrase" if ev["kind"] == "ngram" and " " in ev["trigger"] else what.get(ev["kind"], "pattern")
    share = ev.get("batch_label_share")
    batch = "" if share is None else f"batch records like them without it are labelled {ev['label']!r} {share:.0%}; "
    return (
        f"{noun} {ev['trigger']!r} in column{'s' if ', ' in ev['column'] else ''} "
        f"{ev['column']!r} appears in "
        f"{ev['contribution_count']} contribution records, {ev['label_count']} labelled {ev['label']!r} "
        f"(z={ev['z']:.1f}), vs {ev['baseline_count']} baseline records "
        f"({ev['baseline_label_count']} labelled {ev['label']!r}); {batch}their content reads as "
        f"{ev['label']!r} only {ev['content_label_share']:.0%} of the time; p={ev['p_value']:.2g}"
    )


# --- pattern extraction ------------------------------------------------------------------------


def _numeric_patterns(
    name: str, c_values: list[Any] | np.ndarray, b_values: list[Any] | np.ndarray, *, bins: bool
) -> tuple[list[str], sp.spmatrix, sp.spmatrix]:
    c, b = (
        v if isinstance(v, np.ndarray) else np.array([np.nan if x is None else x for x in v], dtype=np.float64)
        for v in (c_values, b_values)
    )
    ref = b[~np.isnan(b)] if np.any(~np.isnan(b)) else c[~np.isnan(c)]
    if ref.size == 0:
        return [], sp.csc_matrix((c.size, 0)), sp.csc_matrix((b.size, 0))
    lo, hi = np.quantile(ref, [TAIL_QUANTILE, 1 - TAIL_QUANTILE])
    columns: list[tuple[str, Any]] = [
        (f"{name} < {lo:.4g}", lambda v: v < lo),
        (f"{name} > {hi:.4g}", lambda v: v > hi),
        (f"{name} missing", np.isnan),
    ]
    if bins:
        edges = np.unique(np.quantile(ref, BIN_QUANTILES))
        bounds = [lo, *edges.tolist(), hi]
        for a, z in itertools.pairwise(bounds):
            if z > a:
                columns.append((f"{a:.4g} <= {name} < {z:.4g}", lambda v, a=a, z=z: (v >= a) & (v < z)))
    names = [n for n, _ in columns]
    with np.errstate(invalid="ignore"):
        xc = np.column_stack([f(c) for _, f in columns])
        xb = np.column_stack([f(b) for _, f in columns]) if b.size else np.zeros((0, len(columns)), bool)
    return names, sp.csc_matrix(xc, dtype=np.float64), sp.csc_matrix(xb, dtype=np.float64)


def _categorical_patterns(
    name: str, c_values: list[Any], b_values: list[Any], min_support: int
) -> tuple[list[str], sp.spmatrix, sp.spmatrix]:
    keys = np.array(["\x00missing" if v is None else str(v) for v in c_values])
    values, counts = np.unique(keys, return_counts=True)
    keep = values[counts >= min_support].tolist()
    names = [f"{name} missing" if v == "\x00missing" else f"{name} = {v}" for v in keep]
    index = {v: i for i, v in enumerate(keep)}

    def matrix(vals: list[Any]) -> sp.csc_matrix:
        rows, cols = [], []
        for r, v in enumerate(vals):
            j = index.get("\x00missing" if v is None else str(v))
            if j is not None:
                rows.append(r)
                cols.append(j)
        return sp.csc_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(vals), len(keep)))

    return names, matrix(c_values), matrix(b_values)


def _pair_patterns(
    xc: sp.csc_matrix, xb: sp.csc_matrix, names: list[str], owner: np.ndarray, min_support: int
) -> tuple[list[str], PairColumns, list[tuple[int, int]]]:
    """Co-occurrences of two patterns of different owners (columns, pixels) with enough support.

    The pairs are kept implicit, as two columns of ``xc`` / ``xb`` (``PatternMatrix``)."""

    def base(x: sp.spmatrix) -> sp.csc_matrix:
        x = sp.csc_matrix(x, dtype=np.float64)
        if not x.has_sorted_indices or np.any(x.data == 0):
            x = x.copy()
            x.eliminate_zeros()
            x.sort_indices()
        return x

    xc, xb = base(xc), base(xb)
    co = (xc.T @ xc).tocoo()
    keep = (co.row < co.col) & (co.data >= min_support) & (owner[co.row] != owner[co.col])
    i_idx, j_idx = co.row[keep].astype(np.int64), co.col[keep].astype(np.int64)
    pairs = list(zip(i_idx.tolist(), j_idx.tolist(), strict=True))
    return [f"{names[i]} and {names[j]}" for i, j in pairs], PairColumns(xc, xb, i_idx, j_idx), pairs


def _pairs_in(patterns: np.ndarray, labels: np.ndarray, pairs: AbstractSet[tuple[int, int]]) -> np.ndarray:
    """Whether each (pattern, label) is one of ``pairs``, for a few million tests at once."""
    if not pairs:
        return np.zeros(len(patterns), dtype=bool)
    given = np.array(sorted(pairs), dtype=np.int64)
    width = int(max(given[:, 1].max(), labels.max(initial=0))) + 1
    return np.isin(patterns.astype(np.int64) * width + labels, given[:, 0] * width + given[:, 1])


OUTER_TAIL = ", past every trusted value"
"""The name's end for a chroma pixel beyond the whole range of the trusted images' values at that pixel:
a colour's extremes are often one class's own (the dark teal of foliage is the bluest and least red of
photo crops), so a patch in that class's direction relabelled to it passes the 1% tails with the class's
own extremes; beyond every trusted value it does not."""

CHROMA_WORDS = (("blue-leaning", "yellow-leaning"), ("red-leaning", "green-leaning"))
"""What a pixel beyond the baseline's upper / lower tail of each chroma plane is called: Cb (blue against
the pixel's luma) and Cr (red against it); a pixel whose red falls short of its luma is green to cyan."""

HUES = {
    frozenset({"blue-leaning", "red-leaning"}): "magenta-leaning",
    frozenset({"blue-leaning", "green-leaning"}): "cyan-leaning",
    frozenset({"yellow-leaning", "red-leaning"}): "orange-leaning",
    frozenset({"yellow-leaning", "green-leaning"}): "green-leaning",
}
"""A merged patch whose pixels lean both ways at once (magenta: more blue and more red than its luma)."""
CHROMA = frozenset(w for pair in CHROMA_WORDS for w in pair)


def _image_patterns(
    c_values: list[Any], b_values: list[Any]
) -> list[tuple[list[str], sp.spmatrix, sp.spmatrix, list[list[tuple[int, int, int, int]]]]]:
    """Pixels beyond the baseline's per-pixel tails, at one common small size: bright and dark in
    grayscale (luma), then, when the baseline (or, without one, the contribution) holds colour images, each
    chroma plane's two ways (``CHROMA_WORDS``). One block of patterns per plane, the luma block first; every
    image decoded once."""
    w, h = image_size(c_values[0])  # from the header: a full-size decode could be gigabytes of floats
    if max(h, w) > MAX_IMAGE_SIDE:
        h, w = MAX_IMAGE_SIDE, MAX_IMAGE_SIDE
    c, c_chroma = _image_planes(c_values, (w, h))
    b, b_chroma = _image_planes(b_values, (w, h)) if b_values else (c, c_chroma)
    blocks = [_tail_patterns(("bright", "dark"), c, b if b_values else None, h, w)]
    if b_chroma is None:
        # Grayscale images carry no chroma. Nor can a grayscale baseline say which colour is rare: against
        # its grey every pixel of a colour batch would lie beyond both tails (a sensor that became colour
        # is drift's to name, not a pattern of any label).
        return blocks
    c_chroma = np.full((len(c_values), 2, h * w), 128, dtype=np.uint8) if c_chroma is None else c_chroma
    for plane, words in enumerate(CHROMA_WORDS):
        b_plane = b_chroma[:, plane] if b_values else None
        blocks.append(_tail_patterns(words, c_chroma[:, plane], b_plane, h, w, outer=True))
    return blocks


def _image_planes(values: list[Any], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The images' luma (n x H*W, uint8: the values ``gray_pixels`` reads, 0..255, which are whole) and
    chroma (n x 2 x H*W, uint8; a grayscale image among colour ones is neutral, 128), or None when no
    image is in colour."""
    w, h = size
    luma = np.empty((len(values), h * w), dtype=np.uint8)
    chroma: np.ndarray | None = None
    # RGB images already at the size (a batch of photo crops) are converted together, stacked into one tall
    # image: Pillow converts to L and to YCbCr pixel by pixel, so each image's pixels are what
    # ``luma_chroma_pixels`` reads from it alone, for one conversion's fixed cost instead of one per image.
    stacked: list[int] = []
    raw: list[bytes] = []
    for i, v in enumerate(values):
        decoded = decoded_for_pixels(v, size)
        if decoded.mode == "RGB" and decoded.size == size:
            stacked.append(i)
            raw.append(decoded.tobytes())
            continue
        gray, colour = luma_chroma_of(decoded, size)
        luma[i] = gray.ravel()
        if colour is not None:
            if chroma is None:
                chroma = np.full((len(values), 2, h * w), 128, dtype=np.uint8)
            chroma[i] = colour.reshape(2, h * w)
    if stacked:
        tall = Image.frombytes("RGB", (w, h * len(stacked)), b"".join(raw))
        luma[stacked] = np.asarray(tall.convert("L"), dtype=np.uint8).reshape(len(stacked), h * w)
        if chroma is None:
            chroma = np.full((len(values), 2, h * w), 128, dtype=np.uint8)
        ycbcr = np.asarray(tall.convert("YCbCr"), dtype=np.uint8).reshape(len(stacked), h * w, 3)
        chroma[stacked] = np.moveaxis(ycbcr[..., 1:], -1, 1)
    return luma, chroma


def _tail_patterns(
    words: tuple[str, str], c: np.ndarray, b: np.ndarray | None, h: int, w: int, *, outer: bool = False
) -> tuple[list[str], sp.spmatrix, sp.spmatrix, list[list[tuple[int, int, int, int]]]]:
    """Each pixel above the baseline's (else the contribution's) per-pixel upper tail (``words[0]``) and
    below its lower tail (``words[1]``); with ``outer``, then also above every trusted value of the pixel
    and below every one (``OUTER_TAIL``)."""
    ref = c if b is None else b
    # Both tails in one pass: each is the same interpolation between the same two order statistics.
    lo, hi = _pixel_quantiles(ref, np.asarray([TAIL_QUANTILE, 1 - TAIL_QUANTILE]))
    b_side = b if b is not None else np.zeros((0, h * w))
    tails = [(lo, hi, "")]
    if outer:
        tails.append((ref.min(axis=0), ref.max(axis=0), OUTER_TAIL))
    names: list[str] = []
    cells: list[list[tuple[int, int, int, int]]] = []
    xc: list[np.ndarray] = []
    xb: list[np.ndarray] = []
    for low, high, beyond in tails:
        for kind in words:
            for p in range(h * w):
                r, col = divmod(p, w)
                names.append(f"{kind} pixel ({r}, {col}){beyond}")
                cells.append([(r, col, h, w)])
        xc += [c > high, c < low]
        xb += [b_side > high, b_side < low]
    return names, sp.csc_matrix(np.hstack(xc), dtype=np.float64), sp.csc_matrix(np.hstack(xb), dtype=np.float64), cells


def _pixel_quantiles(pixels: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(pixels, q, axis=0)``, the same floats bit for bit. For 8-bit pixels the two order
    statistics numpy's (linear) interpolation reads are found from each pixel's counts of the 256 values
    instead of by partitioning every pixel's column, then interpolated with numpy's own arithmetic
    (``numpy.lib._function_base_impl._lerp``, the same dtypes); other pixels go to ``np.quantile``."""
    n, width = pixels.shape
    if pixels.dtype != np.uint8 or n == 0:
        return np.quantile(pixels, q, axis=0)
    # numpy's indices: previous and next order statistic, the last one (numpy's -1) at or beyond the end.
    virtual = (n - 1) * q
    previous = np.floor(virtual)
    following = previous + 1
    beyond = virtual >= n - 1
    previous[beyond], following[beyond] = -1, -1
    gamma = (virtual - previous).reshape(-1, 1)
    # How many of each pixel's values are at most v, for every v: the k-th smallest (from 0) is the count of
    # values v at which fewer than k + 1 lie.
    codes = pixels.astype(np.intp)
    codes += np.arange(width, dtype=np.intp) * 256
    at_most = np.bincount(codes.ravel(), minlength=256 * width).reshape(width, 256).cumsum(axis=1)

    def order_statistic(k: np.ndarray) -> np.ndarray:
        return np.count_nonzero(at_most <= (k.astype(np.intp) % n)[:, None, None], axis=2).astype(np.uint8)

    below, above = order_statistic(previous), order_statistic(following)
    diff = above - below
    out = np.add(below, diff * gamma)
    np.subtract(above, diff * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe", dtype=type(out.dtype))
    return out


def _hue(
    lead: str, patterns: Patterns, column: str, members: np.ndarray, cells: list[tuple[int, int, int, int]]
) -> str:
    """The colour a chroma patch leans to: the lead's way, with the other plane's way that most of its
    carriers also take at its pixels (magenta: more blue and more red than its luma), when one does."""
    plane = next(pair for pair in CHROMA_WORDS if lead in pair)
    pixels = sorted({r * w + col for r, col, _, w in cells})
    for (name, pair), xc in patterns.planes.items():
        if name != column or pair == plane or not pixels or not len(members):
            continue
        width = cells[0][2] * cells[0][3]  # the plane's 1% tails come first: upper, then lower
        rows = xc[members]
        for k, word in enumerate(pair):
            if rows[:, [k * width + p for p in pixels]].mean() >= 0.5:
                return HUES[frozenset({lead, word})]
    return lead


def _patch_name(kind: str, cells: list[tuple[int, int, int, int]]) -> str:
    """'9 bright pixels in rows 5-7, columns 5-7 of 8x8' for a set of merged pixel patterns."""
    cells = sorted(set(cells))
    rows = [c[0] for c in cells]
    cols = [c[1] for c in cells]
    h, w = cells[0][2], cells[0][3]
    return (
        f"{len(cells)} {kind} pixel{'s' if len(cells) > 1 else ''} in rows {min(rows)}-{max(rows)}, "
        f"columns {min(cols)}-{max(cols)} of {h}x{w}"
    )
