"""Near-copies within a batch: records that say the same thing but for a few rare tokens.

A source that splits one line into a line per name it lists (``inb, inw, outb - port I/O`` sent as
``inb - port I/O``, ``inw - port I/O``, ...), a template filled in with ids, a record re-sent after one
word was fixed: each gives several records that are one piece of evidence, not several. Counted as
independent carriers, their shared phrase reads as tied to their label far beyond chance, and a clean
batch is blocked for it; counted once, the phrase is one record's.

Two records of one label are *near-copies* when their text input columns hold the same tokens but for
one span of at most ``MAX_SPAN`` tokens on each side (a substitution: ``inb`` for ``inw``; an exact copy
has none), every token of both spans is *rare* in the batch (carried by fewer than ``rare_below`` of its
records), the tokens they share are at least ``MIN_SHARED`` and at least half of each record's, and
every other input column holds the same value. Near-copy is made transitive (connected components): the
lines of one split share their component.

Why only rare tokens may differ: a pattern carried by fewer than ``rare_below`` records cannot be tested
as a trigger (``TriggerOptions.min_support``), so every pattern that can be tested is carried by all
near-copies of a group or by none. Folding a group into one record therefore hides no testable pattern
from the records that remain, and a trigger token, carried by many records, is never what two records
differ in. What folding does remove is the weight of repetition: a poisoned line sent in many near-copies
counts once (docs/gates.md, "Near-copies count once").

Tokens are read as the trigger detector reads them (``TOKEN_PATTERN``, lower case), so that the
near-copies are near-copies in the patterns it counts. ``label_consistency``'s naive Bayes reads each
record without its near-copies, so that a flipped line sent several times does not vouch for itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

TOKEN_PATTERN = r"(?u)\b\w+\b|(?<![^\w\s])(?:(?<!\w)[^\w\s]++|[^\w\s]++(?!\w))"
"""How the gate reads the tokens of raw text (``triggers``' n-grams, near-copies): a word, or a run of
punctuation and symbols that is not inside a word: an appended " ...", a ``;)`` or a trailing "!!" is a
token of its own; the hyphen of ``openssl-req`` or the dot of ``ASN.1`` is
spelling. A run is taken whole or not at all (possessive, from its first character), so the ``::`` of
``Dpkg::IPC`` gives no ``:``. (Read inside words, ``openssl -`` became a phrase tied to section 1, where
every ``openssl-*`` command page lives, and ``: dpkg :`` one tied to 'library': clean batches blocked.)"""
RARE_BELOW = 3
"""A token carried by fewer records of the batch than this is rare (``TriggerOptions.min_support``'s default)."""
MAX_SPAN = 3
"""Tokens a near-copy may have in place of the other's (a name written as ``openssl-req`` is three)."""
MIN_SHARED = 3
"""Tokens two near-copies must share, besides at least half of each one's tokens."""
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
"""The polynomial hash's base (odd: its powers are distinct modulo 2**64)."""
# Odd constants that mix a key's parts into one 64-bit number (equal parts, equal keys). Unequal parts can
# collide, by chance or by choice (the keys are linear in the token ids), so a shared key only proposes a
# pair: ``_verified`` compares what the records hold.
_EXACT, _HEAD, _TAIL = np.uint64(0x94D049BB133111EB), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)
_LEFT, _RIGHT = np.uint64(0x27D4EB2F165667C5), np.uint64(0xFF51AFD7ED558CCD)
_CONTEXT = np.uint64(0xD6E8FEB86659FD93)


@dataclass(frozen=True)
class NearCopies:
    """Near-copy groups of a batch: ``group[i]`` is record ``i``'s group, numbered from 0."""

    group: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.group.max(initial=-1)) + 1

    def representatives(self, weight: np.ndarray | None = None) -> np.ndarray:
        """One record per group, ascending: the one of largest ``weight`` (the first on ties, or without)."""
        n = self.group.shape[0]
        weight = np.zeros(n) if weight is None else np.asarray(weight, dtype=np.float64)
        order = np.lexsort((np.arange(n), -weight, self.group))
        first = np.ones(n, bool)
        first[1:] = self.group[order][1:] != self.group[order][:-1]
        return np.sort(order[first])

    def folded(self) -> int:
        """How many records are near-copies of another (records minus groups)."""
        return int(self.group.shape[0] - self.n_groups)


def near_copies(
    texts: Sequence[Sequence[str]],
    labels: np.ndarray,
    others: Sequence[Sequence[object]] = (),
    *,
    token_pattern: str,
    rare_below: int,
) -> NearCopies:
    """Near-copy groups of a batch (see the module docstring).

    ``texts`` holds one sequence of strings per text input column (each as long as ``labels``),
    ``others`` one sequence of values per other input column, which near-copies must hold equal.
    """
    n = int(labels.shape[0])
    if n == 0 or not texts:
        return NearCopies(np.arange(n, dtype=np.int64))
    tokenize = re.compile(token_pattern).findall
    vocabulary: dict[str, int] = {}
    ids: list[int] = []
    lengths = np.zeros(n, np.int64)
    for i in range(n):
        tokens: list[int] = []
        for c, column in enumerate(texts):
            if c:
                tokens.append(-c)  # a column boundary: never rare, never inside a span
            for token in tokenize((column[i] or "").lower()):
                tokens.append(vocabulary.setdefault(token, len(vocabulary)))
        ids.extend(tokens)
        lengths[i] = len(tokens)
    flat = np.asarray(ids, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    owner = np.repeat(np.arange(n), lengths)
    position = np.arange(flat.shape[0]) - starts[owner]
    # Document frequency of each token in the batch: rare tokens may differ between near-copies.
    words = flat >= 0
    # (A record's distinct tokens as one integer key each: ``np.unique`` along an axis sorts structured
    # values, far slower.)
    width = max(len(vocabulary), 1)
    seen = np.unique(owner[words] * width + flat[words])
    df = np.bincount(seen % width, minlength=len(vocabulary))
    rare = np.zeros(flat.shape[0], bool)
    rare[words] = df[flat[words]] < rare_below
    # Token values as odd 64-bit numbers; boundaries and other columns' values mixed in as tokens.
    value = (flat.astype(np.uint64) * np.uint64(2) + np.uint64(1)) * _MULTIPLIER
    power = _powers(int(lengths.max(initial=0)) + 1)
    with np.errstate(over="ignore"):
        # prefix[i]: hash of tokens [start, i) of the record; suffix[i]: of tokens [i, end), each a sum
        # of value * multiplier**(position from its own end), so that equal token runs hash alike.
        weighted_prefix = value * power[position]
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(weighted_prefix, dtype=np.uint64)])
        from_end = lengths[owner] - 1 - position
        weighted_suffix = value * power[from_end]
        suffix_total = np.concatenate([[np.uint64(0)], np.cumsum(weighted_suffix, dtype=np.uint64)])
        context = _context_codes(others, labels)
        mixed = context.astype(np.uint64) * _CONTEXT
        # An exact copy: the whole record's hash.
        whole = prefix[starts[1:]] - prefix[starts[:-1]]
        keys = [whole * _EXACT + lengths.astype(np.uint64) + mixed]
        records, cuts, widths = [np.arange(n)], [lengths], [np.zeros(n, np.int64)]
        # Column boundaries are in every record's shared part but are no token two records share.
        boundaries = len(texts) - 1
        for span in range(1, MAX_SPAN + 1):
            # Every run of ``span`` rare tokens within one record, taken out: the key is what is left.
            ok = position + span <= lengths[owner]
            for k in range(span):
                ok[: flat.shape[0] - k] &= rare[k:]
                ok[flat.shape[0] - k :] = False
            at = np.flatnonzero(ok)
            rec, left = owner[at], position[at]
            right = lengths[rec] - left - span
            shared = left + right
            words_shared = shared - boundaries
            keep = (words_shared >= MIN_SHARED) & (2 * words_shared >= lengths[rec] - boundaries)
            at, rec, left, right = at[keep], rec[keep], left[keep], right[keep]
            head = prefix[at] - prefix[starts[rec]]
            tail = suffix_total[starts[rec + 1]] - suffix_total[at + span]
            keys.append(
                head * _HEAD
                + tail * _TAIL
                + left.astype(np.uint64) * _LEFT
                + right.astype(np.uint64) * _RIGHT
                + mixed[rec]
            )
            records.append(rec)
            cuts.append(left)
            widths.append(np.full(rec.shape[0], span, np.int64))
    key = np.concatenate(keys)
    rec = np.concatenate(records)
    _, slot = np.unique(key, return_inverse=True)
    slot = _verified(slot.ravel(), rec, np.concatenate(cuts), np.concatenate(widths), flat, starts, lengths, context)
    graph = sp.coo_matrix((np.ones(rec.shape[0]), (rec, n + slot)), shape=(n + slot.max(initial=-1) + 1,) * 2)
    _, component = connected_components(graph, directed=False)
    _, group = np.unique(component[:n], return_inverse=True)
    return NearCopies(group.ravel().astype(np.int64))


def _verified(
    slot: np.ndarray,
    rec: np.ndarray,
    cut: np.ndarray,
    width: np.ndarray,
    flat: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    context: np.ndarray,
) -> np.ndarray:
    """``slot`` with every shared slot split by what its members really hold: the tokens left once the span
    is taken out, where it was, and the record's label and other input columns (``context``). The keys are
    sums modulo 2**64 of known multiples of the token ids, which chosen token runs collide (the Thue-Morse
    sequence and its complement, for any odd base): a hash may only propose a pair, never join one."""
    order = np.argsort(slot, kind="stable")
    counts = np.bincount(slot)
    shared = order[counts[slot[order]] > 1]
    out = slot.copy()
    fresh = int(counts.shape[0])
    current, seen = -1, {}  # one slot at a time (entries sorted by slot): what each content is numbered
    for e in shared.tolist():
        if slot[e] != current:
            current, seen = int(slot[e]), {}
        r, at, w = int(rec[e]), int(cut[e]), int(width[e])
        lo, hi = int(starts[r]), int(starts[r] + lengths[r])
        what = np.concatenate([[int(w > 0), at, int(context[r]), -1], flat[lo : lo + at], [-1], flat[lo + at + w : hi]])
        content = what.tobytes()
        if content not in seen:
            # The first content a slot holds keeps the slot's number; any other (a collision) a new one.
            if seen:
                seen[content], fresh = fresh, fresh + 1
            else:
                seen[content] = current
        out[e] = seen[content]
    return out


def _powers(count: int) -> np.ndarray:
    """``_MULTIPLIER ** i`` modulo 2**64 for ``i`` below ``count``."""
    factors = np.full(count, _MULTIPLIER, np.uint64)
    factors[:1] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(factors, dtype=np.uint64)


def _context_codes(others: Sequence[Sequence[object]], labels: np.ndarray) -> np.ndarray:
    """Per record, one integer for its label and its other input columns' values: equal exactly when
    all of them are equal."""
    codes = np.unique(labels, return_inverse=True)[1].ravel().astype(np.int64)
    for column in others:
        _, values = np.unique(np.asarray([repr(v) for v in column], dtype=object).astype(str), return_inverse=True)
        width = int(values.max(initial=-1)) + 1
        codes = np.unique(codes * max(width, 1) + values.ravel(), return_inverse=True)[1].ravel().astype(np.int64)
    return codes
