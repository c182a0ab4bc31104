"""Reading a record against the batch's own records: did it move with its batch, or contradict its label?

A record that reads as another class against the *trusted* records may only have moved with its batch
(a darker camera brings a bright class closer to a dark one), or its content may truly be another
class's. Among the batch's own records that are not suspects, the first reads as its own label and the
second still as the class its content came from. ``backdoor`` (misread records) and ``duplicates``
(near conflicts) both ask this one question; it lives here so that both ask it the same way.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest, mannwhitneyu, norm

from dataward.gates.base import GateData
from dataward.gates.neighbours import class_distances, knn

MIN_BATCH_CLASS = 10
"""Records of a class the batch itself needs (not misread) before a record is read against them."""

SHIFT_P = 1e-3
"""A class (or, in ``backdoor``, the rest of the batch) counts as moved when its test against the
baseline's own records has a p-value below this."""


def reads_further_than_trusted(
    batch: np.ndarray, trusted: np.ndarray, *, bulk_quantile: float | None = None, beyond_share: float = 0.0
) -> bool:
    """Whether a class's batch records, as a whole, read as another class more than its trusted records do.

    ``batch`` and ``trusted`` are the two sides' scores (larger: closer to another label); one-sided
    Mann-Whitney at ``SHIFT_P``. Each side needs ``MIN_BATCH_CLASS`` records, else the class is not
    called moved. ``bulk_quantile``: compare against the trusted records at or below that quantile only
    (their misread tail left out), after the size check.

    ``beyond_share``: the class must read further than a share this large of its batch records could
    make it read on their own, whatever they are (relabelled records the label check did not catch,
    say). Such records raise the probability that a batch record reads further than a trusted one,
    ``P(batch > trusted)``, from 1/2 by at most half their share; the test is then one-sided against
    ``1/2 + beyond_share / 2`` (normal approximation, Hanley and McNeil's variance at that value).
    """
    if batch.size < MIN_BATCH_CLASS or trusted.size < MIN_BATCH_CLASS:
        return False
    if bulk_quantile is not None:
        trusted = trusted[trusted <= np.quantile(trusted, bulk_quantile)]
    test = mannwhitneyu(batch, trusted, alternative="greater")
    if not beyond_share:
        return bool(test.pvalue < SHIFT_P)
    return bool(_auc_beyond_p(float(test.statistic), batch.size, trusted.size, 0.5 + beyond_share / 2.0) < SHIFT_P)


def _auc_beyond_p(u_statistic: float, n_batch: int, n_trusted: int, null_auc: float) -> float:
    """One-sided p-value of ``P(batch > trusted) > null_auc`` from the Mann-Whitney ``U`` of the two
    sides: normal approximation with Hanley and McNeil's (1982) variance of the AUC at ``null_auc``."""
    a = null_auc
    q1, q2 = a / (2.0 - a), 2.0 * a * a / (1.0 + a)
    variance = (a * (1 - a) + (n_batch - 1) * (q1 - a * a) + (n_trusted - 1) * (q2 - a * a)) / (n_batch * n_trusted)
    auc = u_statistic / (n_batch * n_trusted)
    return float(norm.sf((auc - a) / math.sqrt(variance)))


MOVED_CANDIDATE_P = 0.1
"""p-value at or below which a record is checked for having moved with its batch (``duplicates``'
near conflicts, ``label_consistency``'s records); the records at or below it (in ``label_consistency``,
by their rank, atypical ones included) are also left out of the class-move test and of the batch's own
reference."""

WITHIN_BATCH_NEIGHBOURS = 5
"""Batch records of each class a candidate's mean distance is taken over (``backdoor``'s default)."""


def classes_moved_apart_from(
    score: np.ndarray,
    labels: np.ndarray,
    suspects: np.ndarray,
    calibration: np.ndarray,
    calibration_labels: np.ndarray,
    *,
    bulk_quantile: float | None,
    beyond_share: float = 0.0,
) -> np.ndarray:
    """Records of classes whose records that are *not* ``suspects`` still read as another class more than
    the trusted records of that class do (``reads_further_than_trusted`` against the trusted records at
    or below ``bulk_quantile``, or all given ones for None). Only such classes are searched for suspects
    that moved with their batch.

    The suspects are left out so that relabelled records cannot make their class look moved; elsewhere
    a suspect is left a suspect, however the batch's own records read it (on short texts that reading
    is noisy, and a relabelled record in an unmoved class must not be excused by noise). Only classes
    holding a suspect are tested.
    """
    out = np.zeros(labels.shape[0], bool)
    for code in np.unique(labels[suspects]):
        rest = np.flatnonzero((labels == code) & ~suspects & np.isfinite(score))
        trusted = calibration[calibration_labels == code]
        if reads_further_than_trusted(score[rest], trusted, bulk_quantile=bulk_quantile, beyond_share=beyond_share):
            out[labels == code] = True
    return out


MAX_WITHIN_BATCH_REFERENCE = 60_000
"""The batch's own records a candidate is read against, at most: beyond it, a seeded uniform sample.

Every class is thinned by the same fraction, so a candidate's distances to its label's records and to
the class it reads as keep their comparison, and the check grows with the batch, not with its square
(19.7 CPU s at 400,000 records in full). No case of the attack and benign suites reaches it: their
largest contribution holds 50,000 records."""

WITHIN_BATCH_BLOCK = 65_536
"""Candidates read at a time (their features are copied out of the contribution's)."""


def reads_as_own_within_batch(
    contribution: GateData,
    candidates: np.ndarray,
    misread: np.ndarray,
    read_as: np.ndarray,
    neighbours: int,
    seed: int = 0,
    *,
    trusted: GateData | None = None,
) -> np.ndarray:
    """Candidates closer to the batch's own records of their label than to its records of the class
    the trusted records read them as.

    The reference is the batch's records that are not ``misread``, so a group of relabelled records
    cannot vouch for itself; and both classes need ``MIN_BATCH_CLASS`` such records, else the
    candidate keeps its trusted reading (a one-class batch, or a class relabelled wholesale, cannot be
    excused this way). A dirty-label record (another class's content under this label) stays closer to
    the batch's records of that other class, so it stays misread; a record that only moved with the
    whole batch (a new sensor) reads as its own label among records that moved with it. Past
    ``MAX_WITHIN_BATCH_REFERENCE`` reference records, a seeded uniform sample of them is the reference.

    ``trusted`` (the baseline) opens one more way, for a class of the batch too few of whose records
    are left to read against (``wholesale_new_classes``): a sensor that takes away what told the class
    apart (a monochrome camera and pink petals) moves every record of it at once. When that class's
    records sit further from every trusted record than the class's trusted records sit from one another
    (new content, which relabelled trusted-like content is not), and another class of the batch moved too,
    its candidates are read against the class's own records instead (``_reads_as_own_class``).
    """
    n = len(contribution)
    moved = np.zeros(n, bool)
    cand = np.flatnonzero(candidates)
    if cand.size == 0:
        return moved
    labels = contribution.labels
    # Only the classes the candidates are labelled or read as are searched (each class's search is over
    # its own records alone, so leaving the others out changes no distance).
    ref = np.flatnonzero(~misread & np.isin(labels, np.union1d(labels[cand], read_as[cand])))
    if ref.size > MAX_WITHIN_BATCH_REFERENCE:
        ref = np.sort(np.random.default_rng([seed, 7]).choice(ref, MAX_WITHIN_BATCH_REFERENCE, replace=False))
    # Reference records per class, looked up for every candidate at once (a moved class may hold millions).
    size = int(max(labels.max(initial=0), read_as.max(initial=0))) + 1
    counts = np.bincount(labels[ref], minlength=size)
    as_read = read_as[cand]
    readable = (as_read >= 0) & (counts[np.maximum(as_read, 0)] >= MIN_BATCH_CLASS)
    if trusted is not None:
        wholesale = wholesale_new_classes(contribution, trusted, candidates, misread)
        if wholesale:
            whole = readable & np.isin(labels[cand], list(wholesale))
            moved[cand[whole]] = _reads_as_own_class(contribution, cand[whole], ref, read_as, neighbours, seed)
    eligible = readable & (counts[labels[cand]] >= MIN_BATCH_CLASS)
    cand = cand[eligible]
    if cand.size == 0:
        return moved
    ref = ref[np.isin(labels[ref], np.union1d(labels[cand], read_as[cand]))]
    feats = contribution.features
    reference, ref_labels = feats[ref], labels[ref]
    k = min(neighbours, MIN_BATCH_CLASS)
    for start in range(0, cand.size, WITHIN_BATCH_BLOCK):
        block = cand[start : start + WITHIN_BATCH_BLOCK]
        per_class = class_distances(reference, ref_labels, feats[block], k)
        own = np.empty(block.size)
        other = np.empty(block.size)
        for code, distance in per_class.items():
            own[labels[block] == code] = distance[labels[block] == code]
            other[read_as[block] == code] = distance[read_as[block] == code]
        moved[block[own < other]] = True
    return moved


def mostly_misread(labels: np.ndarray, misread: np.ndarray) -> np.ndarray:
    """Records of classes with at least ``MIN_BATCH_CLASS`` records in the batch of which most are
    ``misread``, or so many that fewer than ``MIN_BATCH_CLASS`` are left: the records left are too few, or
    too unlike the rest (the class's edge that a sensor did not tip over), to read the class against."""
    size = int(labels.max(initial=-1)) + 1
    total = np.bincount(labels, minlength=size)
    left = np.bincount(labels[~misread], minlength=size)
    return ((total >= MIN_BATCH_CLASS) & ((left < MIN_BATCH_CLASS) | (2 * left < total)))[labels]


def wholesale_new_classes(
    contribution: GateData,
    trusted: GateData,
    candidates: np.ndarray,
    misread: np.ndarray,
) -> set[int]:
    """Classes of the batch that moved as a whole, with the rest of the batch, into content no trusted record
    holds: a class ``mostly_misread`` whose records sit further from their nearest trusted records (mean
    distance to ``WITHIN_BATCH_NEIGHBOURS`` of them) than the class's trusted records sit from the other
    trusted records (``reads_further_than_trusted``), in a batch where another class moved away from its
    trusted records too (read on its records that are not misread, when it keeps ``MIN_BATCH_CLASS`` of
    them).

    A sensor moves every class (a monochrome camera greys all of them); relabelling moves none but the
    relabelled one. Another class's content under this label, sent with the rest of the batch as the
    trusted data are, is not excused however far it sits from this label's trusted records; only a
    relabelling sent through a sensor change of the whole batch is, and the batch is reviewed for the move."""
    labels = contribution.labels
    whole = {int(c) for c in np.unique(labels[candidates & mostly_misread(labels, misread)])}
    if not whole or len(trusted) <= WITHIN_BATCH_NEIGHBOURS:
        return set()
    own_distance = _trusted_leave_one_out_distance(trusted)
    batch_distance = _trusted_distance(trusted, contribution.features)

    def moved(code: int) -> bool:
        rows = np.flatnonzero((labels == code) & ~misread)
        if code in whole or rows.size < MIN_BATCH_CLASS:
            rows = np.flatnonzero(labels == code)
        return reads_further_than_trusted(batch_distance[rows], own_distance[trusted.labels == code])

    moved_classes = {int(c) for c in np.unique(labels) if moved(int(c))}
    return {code for code in whole if code in moved_classes and moved_classes - {code}}


def _trusted_distance(trusted: GateData, features: np.ndarray) -> np.ndarray:
    """Each row's mean distance to its ``WITHIN_BATCH_NEIGHBOURS`` nearest trusted records."""
    distance, _ = knn(trusted.features, features, WITHIN_BATCH_NEIGHBOURS)
    return distance.mean(axis=1)


def _trusted_leave_one_out_distance(trusted: GateData) -> np.ndarray:
    """Each trusted record's mean distance to its ``WITHIN_BATCH_NEIGHBOURS`` nearest other trusted records."""
    distance, _ = knn(trusted.features, trusted.features, WITHIN_BATCH_NEIGHBOURS, exclude_self=True)
    return distance.mean(axis=1)


BULK_SAMPLE = 2000
"""Records of each class a wholesale-moved class's candidates are read against, at most (a seeded sample)."""


def _reads_as_own_class(
    contribution: GateData, rows: np.ndarray, ref: np.ndarray, read_as: np.ndarray, neighbours: int, seed: int
) -> np.ndarray:
    """For candidates of wholesale-moved classes: closer, on average, to their own label's records in the
    batch (misread or not: few or none are left otherwise) than to as many of the batch's unmisread records
    of the class they read as (``ref``; its nearest ones, or all of them when it has fewer, so never
    farther than the own side). Read against the whole class, a group planted in it cannot vouch for
    itself: its mean distance is mostly to the class's bulk, which its content is not; a class a sensor
    moved sits, on average, nearer its own records than another class's. Each class is a seeded sample of
    at most ``BULK_SAMPLE`` records.

    Both classes are read about their own centres in the batch, and the candidates of a class that read
    as one class are excused only together, when more of them read as their own label than chance makes
    (one-sided binomial test against 1/2 at ``SHIFT_P``). Where a class sits is what a relabelling sets
    freely: another class's content shifted off it (a tint on the relabelled records, and on a decoy class
    so that another class moved too) is new content nearer its own records than the untouched source
    class's; about its centre it is the source class's content, and about half of it reading as its own
    label is chance. A sensor's class keeps content of its own about its centre (greyed petals are no
    garden)."""
    labels, feats = contribution.labels, contribution.features
    rng = np.random.default_rng([seed, 11])

    def sample(members: np.ndarray) -> np.ndarray:
        return members if members.size <= BULK_SAMPLE else np.sort(rng.choice(members, BULK_SAMPLE, replace=False))

    out = np.zeros(rows.size, bool)
    for code in np.unique(labels[rows]):
        peers = sample(np.flatnonzero(labels == code))
        for target in np.unique(read_as[rows[labels[rows] == code]]):
            at = np.flatnonzero((labels[rows] == code) & (read_as[rows] == target))
            others = sample(ref[labels[ref] == target])
            k = peers.size - 1
            k_other = min(k, others.size)
            if k_other < neighbours or k < neighbours:
                continue
            own_centre, other_centre = _centre(feats[peers]), _centre(feats[others])
            own_side, other_side = feats[peers] - own_centre, feats[others] - other_centre
            reads_own = np.zeros(at.size, bool)
            for start in range(0, at.size, WITHIN_BATCH_BLOCK // 64):
                block = rows[at[start : start + WITHIN_BATCH_BLOCK // 64]]
                query = feats[block].astype(np.float64) - own_centre
                own = _distances(query, own_side)
                own[block[:, None] == peers[None, :]] = np.inf  # leave the record itself out
                other = _distances(query, other_side)
                own_mean = np.sort(own, axis=1)[:, :k].mean(axis=1)  # every other record of the class
                other_mean = np.sort(other, axis=1)[:, :k_other].mean(axis=1)
                reads_own[start : start + block.size] = own_mean < other_mean
            if binomtest(int(reads_own.sum()), at.size, 0.5, alternative="greater").pvalue < SHIFT_P:
                out[at] = reads_own
    return out


def _centre(features: np.ndarray) -> np.ndarray:
    """The mean of a class's records in the batch (float64)."""
    return features.astype(np.float64).mean(axis=0)


def _distances(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distances of every ``query`` row to every ``reference`` row."""
    reference = reference.astype(np.float64)
    squared = (query**2).sum(axis=1)[:, None] - 2.0 * query @ reference.T + (reference**2).sum(axis=1)[None, :]
    return np.sqrt(np.maximum(squared, 0.0))
