"""Backdoor clusters: a second population inside a class, and whether its content agrees with its label.

A backdoor teaches a model a shortcut (a patch, a token, a feature combination) through records that
carry it. In a dirty-label backdoor those records are of other classes, relabelled to the target: a
second population inside the target class whose content says another class. *Being* a second
population is not evidence of poisoning: a new sub-population, a new scanner or a vendor that covers
one class are second populations too. The detector therefore asks two questions.

1. **Does a record's content say another class?** Every record gets a trusted-neighbour label check:
   ``s = log(d_own / d_other)``, the mean distance to its ``neighbours`` nearest *baseline* records of
   its own label over the same for the closest other label (no model sees the contribution, so a
   trigger cannot help). ``s`` is calibrated per class (Mondrian) on the baseline's own leave-one-out
   scores of that class alone, however few: classes differ in how well their content reads (on
   man-page lines a third of the trusted 'admin' records read as 'commands'), so only a class's own
   trusted records are exchangeable with its new ones. A record is *misread* at threshold ``t`` (0.1,
   0.02 and, below them, the class's own calibration resolution) when ``s > 0`` (another label's
   trusted records are closer) and its p-value, floored at its class's calibration resolution
   ``1/(n + 1)``, is at most ``t``: at most a share ``t`` of a class's clean records are. A class of
   ``n`` trusted records counts misread records only at thresholds of at least ``1/(n + 1)``, and
   its finest threshold is its own whichever classes the batch holds (version 9; before, it was the
   finest of the batch's classes, which a sender set by leaving a small class out).
   A record misread against the trusted records that reads as its *own* label among the batch's own
   records that are not misread (both classes with at least ``MIN_BATCH_CLASS`` of them) moved with its
   batch: a darker camera brings a bright class closer to a dark one in the trusted records' space,
   while inside the batch the dark class moved too. It is not counted as misread (drift reports the
   move, for review). Relabelled content stays misread: it is closer to the batch's own records of
   the class it came from, and a class relabelled wholesale leaves none to excuse it. The same
   records are read once more with the batch's sensor change undone (one gain for every feature, or
   for a table a gain per column where every class agrees that column was scaled, and one offset per
   feature, estimated over the classes' majority: ``_sensor``); one that then reads as its own label
   moved only with its sensor and is not counted either. So are the records of a class misread
   wholesale (a column in millimetres carries every 'setosa' onto trusted 'virginica'), explained only
   by all of its records and only by the columns the change scales (a table's; an offset alone is what
   a sender sets who moves every other class by ``b - a``). In a batch of images, records the change
   leaves misread are read once more with a lens's gain field undone on their pixels (``_lens``: a
   quadratic in the pixel's position per channel, from the classes' mean images; version 10), then with
   the frame's move undone (``_frame``: the whole-pixel shift most classes' mean images share; version
   11), excused only when they then read as their label outright. A move is rigid, so it may vouch for
   a class misread wholesale. A capture at a lower resolution (an old scanner's 4x4 digits stored at
   8x8) cannot be undone: the records still misread are read against the trusted images taken through
   the same capture (``_resolution``: the share of the side whose bilinear round trip matches the
   classes' sharpness; version 12), under the same rule, and only those that could have gone through it
   (a sharp record among blurred ones reads as any label; it counts as misread even where it reads as
   its label among the batch's own records). Another class's content stays another class's under any
   sensor, move or capture.
2. **Is there a cluster?** Per class, the records' representations (the gate features, or with
   ``probe="mlp"`` the hidden layer of an MLP trained on reference + contribution) are centred,
   reduced to their top principal components and split with k-means (k = 2..5; activation
   clustering, Chen et al., 2018). Each cluster is tested for holding more contribution records than
   the class's contribution share explains (hypergeometric; the clustering never sees which records
   are new, so the test is exact when the batch is drawn like the baseline), Bonferroni over clusters
   and classes. The misread records of a class are also tested for holding together: among each one's
   nearest records of the class, how many are misread too, against a random subset of the same size.

**Block** (``result.block``) needs a *label-inconsistent cluster*: in one class, either the misread
records, or the members of a significant cluster of which at least ``min_inconsistent_share`` are
misread, counted beyond what calibration explains (beta-binomial on the class's own ``n`` trusted
records: the calibration set is random and shared) and beyond the rest of the batch's own misread rate
(binomial), and holding together (the neighbour test, or the cluster test), each at the detector's
``alpha`` after Bonferroni over the (class, threshold) tests the classes resolve; and the rest
of the batch must read like the baseline. Of a class's misread records only the group counted at the
finest threshold the class resolves may block (version 8; version 7 did so in a class that moved as a
whole): records at the edge of their class, misread beyond all but 2% or 10% of its trusted records,
are the first that a change of lens, sensor, source or pipeline tips over. A count significant at a
coarser threshold whose records hold together is a review finding that names them (``coarse_only``):
all of them when the finest group does not block, else those beyond it; the finding says when the class
moved as a whole (its records that are not misread read as another class more than any fifth of them
could make them on their own: ``MOVED_CLASS_SHARE``; a vignetting lens, a warmer white balance). The
cluster test (2., below) still counts at every threshold. When
the other classes are misread well beyond calibration too, the batch moved as a whole (a new
scanner, a recalibrated instrument) or carries label errors throughout, and a group cannot be
singled out: that is a contribution-level finding for review.
A significant cluster whose content agrees with its label (a new sub-population, a one-class source,
a shifted sensor) is a contribution-level finding (``contribution_findings``) naming the class, the
count and what distinguishes the records from the class's trusted ones (words, columns, image
regions); it never blocks and flags no record.

**Clean-label backdoors** (records of the target class carrying a patch, labels correct) land there
too, on purpose: their content agrees with their label, and a group inside one class that shares
something the baseline lacks is also exactly what a new sub-population looks like. They go to review
with the pattern named (for example "brighter in the bottom-right corner"); blocking them would block
every new sub-population.

Per-record p-values: the label check's Mondrian p-value (an exponential tail beyond the calibration
set ranks the most extreme records); for members of a significant cluster or group, the smaller of
that and their representation p-value (spectral signature and distance to the class's trusted records,
Tran et al., 2018). Flags (``flagged``) are only members of a *blocking* group whose own p-value is at
most ``alpha`` at the calibration set's resolution: a record is flagged because it looks poisoned
itself, never because its class or batch moved, and never on an extrapolated tail (with fewer than
``1/alpha`` trusted records in a class nothing of that class can be flagged). The detector therefore
does not take a share of the policy's alpha (``flags_records = False``): on clean data it flags nothing
unless it blocks, which happens at most at its ``alpha``. The members of a blocking group that are not
flagged still go to the review queue with the block (``queued``, named ``backdoor:block``): they are
what the block rests on, and without them a block in a class of a small baseline (about a hundred
trusted digits a class against an alpha share of 0.0033) queued nothing at all.

Limits. The neighbour check reads a record's class only as well as the gate features do: on short
texts (man-page NAME lines) a third of the trusted records are closer to another class, so a rare-token
backdoor scattered over many source classes is left to ``triggers``, which sees the token itself; a
natural phrase that k-means isolates is blocked here. A class with ``n`` trusted records resolves a
misread rate no finer than ``1/(n + 1)``, so a handful of poisoned records in a class of a small
baseline (5 patched digits against 72 trusted ones per class) is ranked first but not blocked here;
and its count's null, ``Beta(a, n + 1 - a)``, is wide: against 11 to 18 trusted digits a class,
every '0' of a batch relabelled '6' (about half of its '6's) is blocked, 30 '7's relabelled '1' (a
quarter of its '1's) are not, and a class with fewer than 9 trusted records is never counted. That is
the price of a count that holds for every class: pooled over classes (as it was for classes under 50
trusted records), the null was narrow but wrong for any class that reads worse than the average, and
6 of 40 clean first imports of man-page lines judged against 125 trusted records were blocked
(10 of 40 against 500, on the 45 trusted 'formats' records).
The MLP probe (``probe="mlp"``) costs seconds per gate and found nothing on the benchmark that the
features' own clusters did not, so by default no model is fitted at all.

Contribution level: ``p_value`` is the blocking group's when there is one, else the smallest cluster
p-value floored at ``REVIEW_FLOOR`` (review-level evidence: it cannot block on its own); ``statistic``
= records in blocking groups. Summary keys: ``classes`` (per label: ``records``, ``contribution``, the
misread count test and ``cluster_p``/``group_p``), ``groups`` (per class with misread records: the
tests, ``class_moved``, ``coarse_only`` and ``block``), ``clusters`` (review-level clusters),
``thresholds``, ``sensor_change`` (None, or
the change undone for the moved classes' misread records: ``gain``, ``offset_norm``, ``classes``,
``explained_classes``, ``candidates``, ``excused``, ``description``), ``lens`` (None, or the lens's gain
field undone for the image records the sensor change left misread: ``classes``, ``explained_classes``,
``candidates``, ``excused``, ``description``), ``frame_shift`` (the same for the frame's move), ``resolution``
(None, or the lower-resolution capture the image records still misread were read against: ``scale``,
``classes``, ``explained_classes``, ``candidates``, ``excused``, ``not_through``, ``description``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pyarrow as pa
from scipy.stats import betabinom, binom, hypergeom
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from dataward.domain.errors import InputError
from dataward.domain.schema import ColumnKind, Schema
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
from dataward.gates.calibration import mondrian_p_values, tail_p_values
from dataward.gates.detectors._batch_images import PixelChange
from dataward.gates.detectors._batch_images import featurize_undone as _featurize_undone
from dataward.gates.detectors._batch_images import grid_images as _grid_images
from dataward.gates.detectors._batch_images import image_input as _image_input
from dataward.gates.detectors._batch_images import image_mode as _image_mode
from dataward.gates.detectors._batch_images import native_images as _native_images
from dataward.gates.detectors._capture import featurize_captured as _featurize_degraded
from dataward.gates.detectors._capture import went_through as _went_through
from dataward.gates.detectors._frame import estimate_frame_shift
from dataward.gates.detectors._lens import estimate_gain_field
from dataward.gates.detectors._probe import (
    fit_probe,
    hidden_activations,
    row_numbers,
    sample_positions,
    single_threaded,
)
from dataward.gates.detectors._resolution import Resolution, estimate_resolution
from dataward.gates.detectors._sensor import (
    SensorChange,
    estimate_sensor_change,
    rows_by_class,
    sample_per_class,
    spreads_like,
)
from dataward.gates.detectors._within_batch import (
    MIN_BATCH_CLASS,
    SHIFT_P,
    classes_moved_apart_from,
    reads_as_own_within_batch,
    reads_further_than_trusted,
)
from dataward.gates.features.image import gray_pixels
from dataward.gates.neighbours import K_MAX, class_distances

MIN_REFERENCE = 20
"""Fewer baseline records than this: nothing to compare with (the detector returns p = 1)."""
MIN_CLASS_REFERENCE = 5
"""Trusted records a class needs before its records are clustered."""
CLUSTER_COUNTS = (2, 3, 4, 5)
"""k-means splits tried per class: a poisoned cluster may hide inside a class that has sub-modes."""

REVIEW_FLOOR = 1e-4
"""Without a blocking cluster the contribution-level p-value is never below this: a cluster whose
content agrees with its label is a reason to review, not evidence of poisoning."""
MOVED_CLASS_SHARE = 0.2
"""A class moved as a whole when its records that are not misread read as another class more than any
share this large of relabelled records among them could make them (``reads_further_than_trusted``'s
``beyond_share``); the review finding then says so (``class_moved``)."""

THRESHOLDS = (0.1, 0.02)
"""Label-check p-value thresholds at which records count as misread (plus the calibration's resolution)."""
EPS = 1e-9
MIN_GROUP = 3
"""Fewest records a cluster or a group of misread records must hold."""
MAX_CLUSTER_FINDINGS = 3
"""Classes with a cluster of their own beyond which the batch is described as a whole."""


PROBES = ("features", "mlp")


@dataclass(frozen=True)
class BackdoorOptions:
    """Options of the ``backdoor`` detector (policy ``options.backdoor``).

    ``probe``: the representation clustered per class: ``features`` (the gate features) or ``mlp`` (the
    hidden layer of an MLP of ``hidden`` units trained for ``max_iter`` epochs on at most ``max_train``
    records: the whole contribution up to half of them, the rest from the reference);
    ``n_components``: principal components of a class's representations that are clustered;
    ``neighbours``: trusted neighbours of the label check and of the representation distance;
    ``max_reference_per_class``: reference records per class in the clustering;
    ``max_cluster_fraction``: larger clusters are a class's main mode, not a second population;
    ``min_inconsistent_share``: share of a cluster's contribution records that must be misread for the
    cluster to count as label-inconsistent; ``max_findings``: per-record findings kept.
    """

    probe: str = "features"
    hidden: int = 32
    max_iter: int = 60
    max_train: int = 6000
    n_components: int = 10
    neighbours: int = 5
    max_reference_per_class: int = 1000
    max_cluster_fraction: float = 0.35
    min_inconsistent_share: float = 0.25
    max_findings: int = 200

    def __post_init__(self) -> None:
        if self.probe not in PROBES:
            raise ValueError(f"probe must be one of {', '.join(PROBES)}, not {self.probe!r}")
        if self.hidden < 2 or self.max_iter < 1 or self.max_train < 20 or self.n_components < 1:
            raise ValueError("hidden must be at least 2, max_iter and n_components at least 1, max_train at least 20")
        if not 1 <= self.neighbours <= K_MAX:
            raise ValueError(f"neighbours must be between 1 and {K_MAX}")
        if self.max_reference_per_class < MIN_CLASS_REFERENCE:
            raise ValueError(f"max_reference_per_class must be at least {MIN_CLASS_REFERENCE}")
        if not 0.0 < self.max_cluster_fraction <= 1.0 or not 0.0 < self.min_inconsistent_share <= 1.0:
            raise ValueError("max_cluster_fraction and min_inconsistent_share must be in (0, 1]")
        if self.max_findings < 0:
            raise ValueError("max_findings must be zero or more")


@register
class BackdoorDetector(Detector):
    """Activation clusters inside a class, blocked only when their content says another class."""

    name = "backdoor"
    version = "13"
    evidence = Evidence.POISONING
    requires = frozenset({Requirement.BASELINE})
    flags_records = False  # only members of a cluster it blocks, each at alpha on its own p-value
    Options = BackdoorOptions

    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Validate the options and calibrate the trusted-neighbour label check on the baseline."""
        self.opts_: BackdoorOptions = self.resolve_options(context)
        self.baseline_ = baseline
        self.context_ = context
        self.label_cal_ = np.zeros(0)
        if len(baseline) >= MIN_REFERENCE and np.unique(baseline.labels).size >= 2:
            with single_threaded():
                self.label_cal_, _ = self._label_check(baseline, exclude_self=True)
        return self

    def baseline_scores(self) -> np.ndarray:
        """1 - leave-one-out p-value of the baseline's own label-check scores (for plots)."""
        cal = self.label_cal_
        return 1.0 - tail_p_values(cal, cal, leave_one_out=True) if cal.shape[0] else np.zeros(0)

    def _label_check(
        self, data: GateData, *, exclude_self: bool = False, reference: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Neighbour label-check score of ``data``'s records and the closest other label.

        The score is log(mean distance to the ``neighbours`` nearest trusted records of the record's own
        label / the same for the closest other label): above 0, the record's content is closer to
        trusted records of another label than to those of its own. ``reference``: the trusted records'
        features to read against instead of the baseline's own (the trusted images captured as the
        batch's were, ``_resolution``).
        """
        base = self.baseline_
        per_class = class_distances(
            base.features if reference is None else reference,
            base.labels,
            data.features,
            self.opts_.neighbours,
            exclude_self=exclude_self,
        )
        classes = sorted(per_class)
        n = len(data)
        score = np.full(n, -np.inf)
        read = np.full(n, -1, np.int64)
        if len(classes) < 2:
            return score, read
        dists = np.vstack([per_class[c] for c in classes]).T  # (n, classes)
        # Each record's own label's column (-1: a label with no trusted records), without a loop per record.
        known = np.asarray(classes, dtype=np.int64)
        own_col = np.searchsorted(known, data.labels)
        own_col[(own_col >= known.size) | (known[np.minimum(own_col, known.size - 1)] != data.labels)] = -1
        rows = np.flatnonzero(own_col >= 0)
        own = dists[rows, own_col[rows]]
        others = dists[rows].copy()
        others[np.arange(rows.size), own_col[rows]] = np.inf
        closest = others.argmin(axis=1)
        score[rows] = np.log(own + EPS) - np.log(others[np.arange(rows.size), closest] + EPS)
        read[rows] = np.asarray(classes)[closest]
        return score, read

    record_stage = True
    record_stage_skips = False  # score_records never raises InputError

    def score(self, contribution: GateData) -> DetectorResult:
        return self.finish(contribution, self.score_records(contribution))

    def score_records(self, chunk: GateData) -> dict[str, np.ndarray]:
        """The trusted-neighbour label-check score of each record and the label its content reads as."""
        if len(chunk) == 0 or self.label_cal_.shape[0] == 0:
            return {}
        with single_threaded():
            score, read = self._label_check(chunk)
        return {"label_score": score, "read_as": read}

    def finish(self, contribution: GateData, records: dict[str, np.ndarray]) -> DetectorResult:
        with single_threaded():
            return self._score(contribution, records)

    def _empty(self, n: int, reason: str) -> DetectorResult:
        return DetectorResult(self.name, self.version, np.ones(n), np.zeros(n, bool), summary={"skipped": reason})

    def _score(self, contribution: GateData, records: dict[str, np.ndarray]) -> DetectorResult:
        ctx, opts, base = self.context_, self.opts_, self.baseline_
        n_c = len(contribution)
        if n_c == 0:
            return self._empty(0, "empty contribution")
        if self.label_cal_.shape[0] == 0:
            return self._empty(n_c, f"the baseline needs at least {MIN_REFERENCE} records of 2 classes or more")
        rng = np.random.default_rng(ctx.seed)

        # 1. Trusted-neighbour label check of every contribution record, calibrated per class on the
        #    baseline's own leave-one-out scores (Mondrian). At a threshold t, at most a share t of
        #    clean records of a class falls at or below it, whatever the class. Every class is calibrated
        #    on its own trusted records, however few (``min_class=1``): only they are exchangeable with
        #    the class's new records. Pooled, a class that reads worse than the average (man-page
        #    'admin' lines read as 'commands') is misread far beyond the pooled rate, and the count
        #    test, trusting the pooled calibration's precision, blocked clean first imports.
        score_c, read_c = records["label_score"], records["read_as"]
        p_label, sizes = self._label_p_values(score_c, contribution.labels)
        resolution = 1.0 / (sizes + 1.0)
        codes = np.unique(contribution.labels)
        class_sizes = {int(code): int(np.median(sizes[contribution.labels == code])) for code in codes}
        thresholds = _thresholds(list(class_sizes.values()))
        misread = _misread(p_label, sizes, score_c, thresholds)
        resolves = resolution[None, :] <= np.array(thresholds)[:, None]
        # A record that reads as another class only against the *trusted* records, and as its own label
        # among the batch's own records, moved with its batch (a darker camera moves a bright class
        # towards a dark one); that is drift for review, not a label contradicting content.
        # Whether the *rest* of the batch moved is judged on the trusted reading (``as_trusted``), so
        # that excusing records never hides a batch that moved as a whole. Records a batch-wide change
        # explains stay in it: taking them out closed a sender's discount (a batch he moved himself) but
        # blocked clean moved and vignetted batches at 5 of 216 tuning scans (docs/gates.md, "The rest of
        # the batch"; tests/gates/test_frame_shift.py's strict xfails).
        as_trusted = misread.copy()
        candidates = misread[0] & classes_moved_apart_from(
            score_c, contribution.labels, misread[0], self.label_cal_, base.labels, bulk_quantile=1.0 - THRESHOLDS[0]
        )
        # A class whose records (its suspects left out) read as another class far more than its trusted
        # records do, by more than any share of relabelled records up to ``MOVED_CLASS_SHARE`` could make
        # them, moved as a class (a vignetting lens darkens bright skies towards dark gardens). That only
        # words the review finding now: no class's coarse count blocks (the class groups below), and
        # excusing the group outright would excuse a backdoor sent through the same lens
        # (tests/gates/test_backdoor_moved_class.py).
        class_moved = classes_moved_apart_from(
            score_c,
            contribution.labels,
            misread[0],
            self.label_cal_,
            base.labels,
            bulk_quantile=1.0 - THRESHOLDS[0],
            beyond_share=MOVED_CLASS_SHARE,
        )
        moved = reads_as_own_within_batch(contribution, candidates, misread[0], read_c, opts.neighbours, ctx.seed)
        after_moved = misread[0] & ~moved
        # The same candidates read once more with a batch-wide sensor change undone (a gain and an offset
        # per feature, shared by most classes): a record that moved only with its sensor reads as its own
        # label again; relabelled content still reads as the class it came from. A class misread
        # wholesale has no records left to show that it moved (a length written in millimetres moves
        # one class onto another's trusted records): its records are candidates here too, and the
        # change must then explain all of its records (``_explained_by``).
        sensor_candidates = candidates | (after_moved & _misread_wholesale(contribution.labels, after_moved))
        unmoved = np.zeros(n_c, bool)
        still, sensor_change, lens, frame, capture = self._misread_after_sensor_change(
            contribution, sensor_candidates, as_trusted[0], read_c, score_c, thresholds, moved, unmoved
        )
        # A record that never went through the batch's lower-resolution capture did not move with the
        # batch either (``_excused_by_capture``): a sharp record is far from every blurred batch record and
        # reads as any label among them.
        misread &= ~(moved & ~unmoved)[None, :]
        misread[:, sensor_candidates] &= still

        # 2. Per class, in the representation: clusters richer in contribution records than chance, and
        #    whether the misread records hold together.
        #    The representation of every contribution record is never held at once: the class's principal
        #    components come from a first pass over blocks of the contribution, its records' projections
        #    on them from a second (``_class_projections``).
        base_rows, reps_base, represent = self._representations(contribution, rng)
        ref_of = {int(code): base_rows[base.labels[base_rows] == code] for code in codes}
        clustered = [int(code) for code in codes if ref_of[int(code)].size >= MIN_CLASS_REFERENCE]
        projections = _class_projections(
            contribution.features,
            contribution.labels,
            {code: reps_base[np.searchsorted(base_rows, ref_of[code])] for code in clustered},
            represent,
            opts.n_components,
        )
        p_rep = np.ones(n_c)
        cluster_tests: list[dict[str, Any]] = []
        groups: list[dict[str, Any]] = []
        per_class: dict[str, dict[str, Any]] = {}
        # Bonferroni over the (class, threshold) tests that can reject: a class resolves no threshold
        # finer than 1 / (n + 1), n its trusted records (a count of zero has p = 1).
        n_tests = max(1, sum(len(_class_thresholds(thresholds, n)) for n in class_sizes.values()))
        for code in codes:
            new = np.flatnonzero(contribution.labels == code)
            ref = ref_of[int(code)]
            label = _label(ctx.classes, code)
            others = contribution.labels != code
            # Only the group counted beyond the class's finest resolved threshold may block; a count
            # significant at a coarser threshold names its records for review (the class groups below).
            # ``count``, the best at any threshold, is what the class's summary reports.
            n_cal = class_sizes[int(code)]
            own = _class_thresholds(thresholds, n_cal)
            count = _misread_test(
                misread, as_trusted, new, others, thresholds, n_tests, n_cal, indices=own, resolves=resolves
            )
            at_finest = _misread_test(
                misread, as_trusted, new, others, thresholds, n_tests, n_cal, indices=own[-1:], resolves=resolves
            )
            moved_class = bool(class_moved[new].any())
            per_class[label] = {
                "records": int(ref.size + new.size),
                "contribution": int(new.size),
                **_summary_count(count, at_finest, ctx.alpha),
                "class_moved": moved_class,
            }
            if ref.size < MIN_CLASS_REFERENCE:
                per_class[label]["skipped"] = True
                continue
            ref_reduced, new_reduced = projections.pop(int(code))
            reduced = np.vstack([ref_reduced, new_reduced])
            del ref_reduced, new_reduced
            cls = _score_class(reduced, ref.size, opts, rng)
            p_rep[new] = cls["p_new"]
            for test in cls["clusters"]:
                test.update(label=label, code=int(code), members=new[test.pop("local_new")])
                cluster_tests.append(test)

            about = {"class_moved": moved_class, "label": label, "code": int(code), "class_records": int(new.size)}
            view = _ClassView(new, reduced, int(ref.size), opts.neighbours, max(1, codes.size), about)
            fine = view.group(at_finest, misread, read_c, ctx.classes)
            class_groups = [fine] if fine is not None else []
            # A coarser count significant on its own names its records for review, whatever the finest
            # group did: all of them when the finest group does not block, else those beyond it. Whether
            # they hold together is also asked of the records beyond the finest group alone, so that deep
            # misreads scattered over other classes cannot dilute it (``_ClassView.group``'s ``also_without``).
            coarse_count = (
                _misread_test(
                    misread, as_trusted, new, others, thresholds, n_tests, n_cal, indices=own[:-1], resolves=resolves
                )
                if len(own) > 1
                else None
            )
            if coarse_count is not None and coarse_count["count_p"] <= ctx.alpha:
                blocks = fine is not None and fine["p_value"] <= ctx.alpha and not fine["shifted"]
                finest_members = fine["members"] if fine is not None else None
                coarse = view.group(
                    coarse_count,
                    misread,
                    read_c,
                    ctx.classes,
                    coarse_only=True,
                    leave_out=finest_members if blocks else None,
                    also_without=None if blocks else finest_members,
                )
                if coarse is not None:
                    coarse["beside_block"] = blocks
                    class_groups.append(coarse)
            if class_groups:
                per_class[label]["group_p"] = min(g["group_p"] for g in class_groups)
            groups += class_groups

        # 3. Label-inconsistent groups: more misread records than the calibration and the rest of the
        #    batch explain, holding together in the representation, in a batch whose other classes
        #    read like the baseline (else the whole batch moved and the group is not singled out).
        blocking, confounded = [], []
        for g in groups:
            if g["p_value"] <= ctx.alpha:
                (confounded if g["shifted"] or g["coarse_only"] else blocking).append(g)

        # 4. Significant clusters: label-inconsistent when their members are misread beyond calibration
        #    and the rest of the batch (in a batch whose other classes read like the baseline), else
        #    only new (review).
        n_cluster_tests = max(1, len(cluster_tests))
        significant = []
        for test in cluster_tests:
            test["p_value"] = min(1.0, test["p_value"] * n_cluster_tests)
            info = per_class[test["label"]]
            info["cluster_p"] = min(info.get("cluster_p", 1.0), test["p_value"])
            if test["p_value"] <= ctx.alpha:
                significant.append(test)
        significant = _distinct(significant)
        reviewing = []
        for test in significant:
            members = test["members"]
            if any(g["code"] == test["code"] and np.isin(members, g["members"]).mean() > 0.5 for g in blocking):
                continue
            others = contribution.labels != test["code"]
            n_cal = int(np.median(sizes[members]))
            count = _misread_test(
                misread,
                as_trusted,
                members,
                others,
                thresholds,
                len(significant),
                n_cal,
                indices=_class_thresholds(thresholds, n_cal),
                resolves=resolves,
            )
            wrong = misread[count["threshold_index"], members]
            test.update(
                count,
                misread_share=round(float(wrong.mean()), 4),
                contribution_count=int(wrong.sum()),
                class_records=int(np.sum(contribution.labels == test["code"])),
                group_p=test["p_value"],
                read_as=_votes(read_c[members[wrong]], ctx.classes),
            )
            test["p_value"] = (
                max(test["p_value"], count["count_p"])
                if wrong.mean() >= opts.min_inconsistent_share
                else test["p_value"]
            )
            inconsistent = wrong.mean() >= opts.min_inconsistent_share and count["count_p"] <= ctx.alpha
            if inconsistent and not count["shifted"]:
                test["members"] = members[wrong]
                blocking.append(test)
            elif inconsistent:
                confounded.append(test)
            else:
                reviewing.append(test)

        # 5. Per-record p-values and flags.
        p_values = p_label.copy()
        in_group = np.zeros(n_c, bool)
        for t in [*blocking, *confounded, *reviewing]:
            in_group[t["members"]] = True
        p_values[in_group] = np.minimum(p_label[in_group], p_rep[in_group])
        flagged = np.zeros(n_c, bool)
        named = np.zeros(n_c, bool)
        for g in blocking:
            members = g["members"]
            flagged[members] = np.maximum(p_values[members], resolution[members]) <= ctx.alpha
            named[members] = True
        # The block rests on its groups' members: those no flag names (their class resolves no p-value
        # as small as alpha, or the group counts at a coarser threshold) wait in the queue with it.
        queued = named & ~flagged

        rows = row_numbers(contribution)
        block_reason = None
        if blocking:
            p_value = min(g["p_value"] for g in blocking)
            block_reason = "; ".join(_block_sentence(g) for g in blocking[:3])
        else:
            p_value = max(REVIEW_FLOOR, min((t["p_value"] for t in [*confounded, *reviewing]), default=1.0))
        findings = [_group_finding(self.name, g, rows) for g in blocking]
        if not blocking and (confounded or reviewing):
            findings.append(_review_summary(self.name, confounded, reviewing, p_value))
        findings += self._record_findings(flagged | queued, p_values, contribution, score_c)
        contribution_findings = [_confounded_finding(self.name, confounded, rows)] if confounded else []
        contribution_findings += self._review_findings(reviewing, contribution, rows)
        return DetectorResult(
            detector=self.name,
            version=self.version,
            p_values=p_values,
            flagged=flagged,
            queued=queued if queued.any() else None,
            findings=findings,
            statistic=float(sum(g["members"].size for g in blocking)),
            p_value=float(p_value),
            summary={
                "classes": per_class,
                "groups": [_summary(g, GROUP_KEYS) | {"block": g in blocking} for g in groups],
                "clusters": [_summary(t, CLUSTER_KEYS) for t in reviewing],
                "thresholds": thresholds,
                "sensor_change": sensor_change,
                "lens": lens,
                "frame_shift": frame,
                "resolution": capture,
            },
            block=bool(blocking),
            block_reason=block_reason,
            contribution_findings=contribution_findings,
        )

    def _label_p_values(
        self, score: np.ndarray, labels: np.ndarray, calibration: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mondrian p-values of label-check scores against the class's own trusted scores (``calibration``,
        else the baseline's), and each record's calibration size (a label the baseline never saw cannot be
        checked: p = 1)."""
        cal = self.label_cal_ if calibration is None else calibration
        p_label, sizes = mondrian_p_values(cal, self.baseline_.labels, score, labels, min_class=1)
        p_label[~np.isfinite(score)] = 1.0
        return p_label, sizes

    def _misread_after_sensor_change(
        self,
        contribution: GateData,
        candidates: np.ndarray,
        suspects: np.ndarray,
        read_as: np.ndarray,
        scores: np.ndarray,
        thresholds: list[float],
        moved: np.ndarray,
        unmoved: np.ndarray,
    ) -> tuple[np.ndarray, dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
        """Per threshold (rows), whether each candidate is still misread once the batch's sensor change is
        undone (all True when no change can be estimated: fewer than three classes on both sides), the
        change with the number of candidates it excused, and the lens's gain field and the frame's move
        with the same (for the summary; None if not estimated).

        The change is a majority's claim (a median over classes, each class one vote however few its
        records), so it excuses a candidate only when it explains both classes the candidate is read
        between: its label's and the one its content reads as. A class is explained when its batch
        records that are not ``suspects``, undone, read no further from their label than its trusted
        records do (``reads_further_than_trusted``, as the class-move test). A class the sender left
        as it was, or moved its own way, while other classes set the change, is not explained, and
        relabelled content of that class is not carried to its new label by undoing a move it never
        made. Candidates the change leaves misread in a batch of images are read once more with a
        lens's gain field, then the frame's move, undone on their raw pixels (``_lens``, ``_frame``),
        under the same rule, then against the trusted images captured at the batch's lower resolution
        (``_resolution``); ``unmoved`` is set on the ``moved`` records (read as their label among the batch's
        own records) that never went through that capture."""
        rows = np.flatnonzero(candidates)
        still = np.ones((len(thresholds), rows.size), bool)
        if rows.size == 0:
            return still, None, None, None, None
        info = self._undo_feature_change(contribution, rows, still, suspects, read_as, thresholds)
        lens, frame, capture = self._undo_on_pixels(
            contribution, rows, still, suspects, read_as, scores, thresholds, moved, unmoved
        )
        return still, info, lens, frame, capture

    def _undo_feature_change(
        self,
        contribution: GateData,
        rows: np.ndarray,
        still: np.ndarray,
        suspects: np.ndarray,
        read_as: np.ndarray,
        thresholds: list[float],
    ) -> dict[str, Any] | None:
        """``_misread_after_sensor_change`` for a change shared by the gate's features: clears ``still``
        where undoing it excuses a candidate; the change for the summary (None if not estimated)."""
        base = self.baseline_
        labels = contribution.labels
        change = estimate_sensor_change(
            base.features,
            base.labels,
            contribution.features,
            labels,
            self.context_.seed,
            per_feature_gain=_columnar(self.context_.schema),
        )
        if change is None:
            return None
        involved = np.union1d(labels[rows], read_as[rows][read_as[rows] >= 0])
        scaled = change.scaled_only() if _columnar(self.context_.schema) else None
        explained, wholesale = self._explained_by(
            lambda own: change.undo(np.asarray(contribution.features[own])), scaled, contribution, involved, suspects
        )
        both = np.isin(labels[rows], explained) & np.isin(read_as[rows], explained)
        of_wholesale = np.isin(labels[rows], wholesale)
        # A record of a class explained wholesale is read again as its class was judged: through the
        # scaled columns only (``_explained_by``).
        for undo, part in ((change, both & ~of_wholesale), (scaled, both & of_wholesale)):
            if undo is None or not part.any():
                continue
            sub = rows[part]
            score, _ = self._label_check(GateData(undo.undo(np.asarray(contribution.features[sub])), labels[sub]))
            still[:, part] = _misread(*self._label_p_values(score, labels[sub]), score, thresholds)
        return {
            "gain": round(change.gain, 4),
            "feature_gains": None if change.feature_gain is None else np.round(change.feature_gain, 4).tolist(),
            "offset_norm": round(float(np.linalg.norm(change.offset)), 4),
            "classes": change.classes,
            "explained_classes": [_label(self.context_.classes, int(code)) for code in explained],
            "candidates": int(rows.size),
            "excused": int((~still[0]).sum()),
            "description": change.describe(_column_names(self.context_.schema)),
        }

    def _undo_on_pixels(
        self,
        contribution: GateData,
        rows: np.ndarray,
        still: np.ndarray,
        suspects: np.ndarray,
        read_as: np.ndarray,
        scores: np.ndarray,
        thresholds: list[float],
        moved: np.ndarray,
        unmoved: np.ndarray,
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
        """``_misread_after_sensor_change`` for changes of raw images: candidates still misread, in a batch
        whose one input is an image column, are read again with a lens's gain field undone on their pixels
        (``_lens``), then those still misread with the frame's move undone (``_frame``), featurized as the
        gate does, then against the trusted images captured at the batch's lower resolution
        (``_resolution``). Clears ``still`` where that excuses a candidate, sets ``unmoved`` (see
        ``_excused_by_capture``); the field, the move and the capture for the summary (each None if not
        estimated)."""
        ctx, base = self.context_, self.baseline_
        column = _image_input(ctx.schema)
        tables = contribution.table is not None and base.table is not None
        if column is None or ctx.featurize is None or not tables or not (still[0].any() or moved[rows].any()):
            return None, None, None
        rng = np.random.default_rng([ctx.seed, 17])
        mode = _image_mode(base.table.column(column))
        trusted = _grid_images(base.table.column(column), base.labels, mode, rng)
        batch = _grid_images(contribution.table.column(column), contribution.labels, mode, rng)
        field = estimate_gain_field(trusted, batch, seed=ctx.seed)
        lens = None
        if field is not None and still[0].any():
            lens = self._excused_on_pixels(
                field, column, mode, contribution, rows, still, suspects, read_as, scores, thresholds
            )
        move = estimate_frame_shift(trusted, batch, seed=ctx.seed) if still[0].any() else None
        frame = None
        if move is not None:
            # A move is rigid: relabelled content moved back still reads as the class it came from, so it
            # may vouch for a class misread wholesale (``_frame``), which a gain may not.
            frame = self._excused_on_pixels(
                move, column, mode, contribution, rows, still, suspects, read_as, scores, thresholds, rigid=True
            )
        resolution = None
        if still[0].any() or moved[rows].any():
            capture = estimate_resolution(
                _native_images(base.table.column(column), base.labels, mode, rng),
                _native_images(contribution.table.column(column), contribution.labels, mode, rng),
                seed=ctx.seed,
            )
            if capture is not None:
                resolution = self._excused_by_capture(
                    capture, column, mode, contribution, rows, still, suspects, read_as, thresholds, moved, unmoved
                )
        return lens, frame, resolution

    def _excused_by_capture(
        self,
        capture: Resolution,
        column: str,
        mode: str,
        contribution: GateData,
        rows: np.ndarray,
        still: np.ndarray,
        suspects: np.ndarray,
        read_as: np.ndarray,
        thresholds: list[float],
        moved: np.ndarray,
        unmoved: np.ndarray,
    ) -> dict[str, Any]:
        """``_undo_on_pixels`` for a capture of lower resolution, which cannot be undone: the candidates
        still misread are read against the trusted images captured the same way (calibrated on their own
        leave-one-out reading), under the rule of the other changes. Clears ``still`` where that excuses a
        candidate; the capture, the classes it explains and the candidates it excused.

        Only records that could have gone through the capture (``_went_through``) are read against it: a
        sharp record is far from every blurred trusted record, from its label's as from its content's,
        and would pass for any label. For the same reason a ``moved`` record (one that reads as its label
        among the batch's own, blurred, records) that never went through the capture did not move with
        the batch: ``unmoved`` is set on it, and ``_score`` counts it as misread again."""
        ctx, base = self.context_, self.baseline_
        labels = contribution.labels
        through = _went_through(capture, contribution.table, column, rows, mode)
        unmoved[rows[moved[rows] & ~through]] = True
        left = still[0].copy()
        reference = _featurize_degraded(ctx.featurize, base.table, column, capture, mode)
        calibration, _ = self._label_check(GateData(reference, base.labels), exclude_self=True, reference=reference)
        involved = np.union1d(labels[rows[left]], read_as[rows[left]][read_as[rows[left]] >= 0])
        explained, _ = self._explained_by(
            lambda own: np.asarray(contribution.features[own]),
            None,
            contribution,
            involved,
            suspects,
            reference=reference,
            calibration=calibration,
        )
        part = left & through & np.isin(labels[rows], explained) & np.isin(read_as[rows], explained)
        if part.any():
            sub = rows[part]
            score, _ = self._label_check(
                GateData(np.asarray(contribution.features[sub]), labels[sub]), reference=reference
            )
            # Excused only when it reads as its label outright against the captured trusted records, as
            # for the changes undone on the batch's pixels.
            again = _misread(*self._label_p_values(score, labels[sub], calibration), score, thresholds).any(axis=0)
            still[:, part] &= again[None, :]
        return {
            "scale": capture.scale,
            "classes": capture.classes,
            "explained_classes": [_label(ctx.classes, int(code)) for code in explained],
            "candidates": int(left.sum()),
            "excused": int((left & ~still[0]).sum()),
            "not_through": int((~through).sum()),
            "description": capture.describe(),
        }

    def _excused_on_pixels(
        self,
        change: PixelChange,
        column: str,
        mode: str,
        contribution: GateData,
        rows: np.ndarray,
        still: np.ndarray,
        suspects: np.ndarray,
        read_as: np.ndarray,
        scores: np.ndarray,
        thresholds: list[float],
        *,
        rigid: bool = False,
    ) -> dict[str, Any]:
        """``_undo_on_pixels`` for one change of the raw images: clears ``still`` where undoing ``change``
        excuses a candidate; the change, the classes it explains and the candidates it excused. ``scores``:
        every contribution record's label-check score as sent (the record stage's), which a ``rigid``
        change must beat."""
        ctx = self.context_
        labels = contribution.labels
        left = still[0].copy()

        def undone(positions: np.ndarray) -> np.ndarray:
            return _featurize_undone(ctx.featurize, contribution.table, column, positions, change, mode)

        involved = np.union1d(labels[rows[left]], read_as[rows[left]][read_as[rows[left]] >= 0])
        explained, _ = self._explained_by(undone, None, contribution, involved, suspects, rigid=rigid)
        part = left & np.isin(labels[rows], explained) & np.isin(read_as[rows], explained)
        if part.any():
            sub = rows[part]
            score, _ = self._label_check(GateData(undone(sub), labels[sub]))
            # Excused only when it then reads as its label outright (not misread even at the coarsest
            # threshold): undoing any change moves records at a threshold's edge back over it, and a
            # sender can choose relabelled records there (tests/gates/test_backdoor_moved_class_attacks.py).
            again = _misread(*self._label_p_values(score, labels[sub]), score, thresholds).any(axis=0)
            if rigid:
                # Undoing a move also moves records that never went through it: a trusted-looking '0'
                # sent unmoved as '6' in a batch moved two pixels left lands, moved back right, where '6's
                # have their ink. The move must be the better explanation: undone, the record reads as its
                # label by at least the margin by which, as sent, it reads as another class.
                again |= -score < scores[sub]
            still[:, part] &= again[None, :]
        return {
            "classes": change.classes,
            "explained_classes": [_label(ctx.classes, int(code)) for code in explained],
            "candidates": int(left.sum()),
            "excused": int((left & ~still[0]).sum()),
            "description": change.describe(),
        }

    def _explained_by(
        self,
        undo_rows: Callable[[np.ndarray], np.ndarray],
        scaled: SensorChange | None,
        contribution: GateData,
        codes: np.ndarray,
        suspects: np.ndarray,
        *,
        rigid: bool = False,
        reference: np.ndarray | None = None,
        calibration: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The classes among ``codes`` whose batch records that are not ``suspects`` (a seeded sample of
        at most ``SAMPLE_PER_CLASS``), with ``change`` undone, read no further from their label than the
        class's trusted records; a class with fewer than ``MIN_BATCH_CLASS`` records on either side is
        not explained. A class misread wholesale (fewer than ``MIN_BATCH_CLASS`` records that are not
        suspects) is judged on all of its records: relabelled content among them, undone, still reads
        as the class it came from, so the class is not explained. With nothing of the class left to
        vouch for the change, its undone records must also spread like its trusted records, feature by
        feature (``spreads_like``): relabelled content left out of a change that every other class went
        through lands on the class's centre when undone, but too tight or too wide. And only a table's
        columns in another unit may explain it (``scaled``: the change on its scaled columns only, None
        for image and text features or a change that scales no column): an offset shared by the other
        classes is what a sender sets by moving each of them by ``b - a`` while sending 'b' content as
        'a', and undone it would carry that content onto the trusted 'a's. A ``rigid`` change (the frame's
        move, ``_frame``) may explain it too, on all of its records undone: moving content cannot make
        one class's content another's. ``reference`` and ``calibration``: the trusted records' features
        and their own leave-one-out scores to read against instead of the baseline's (``_label_check``).

        Returns the classes explained, and those among them explained wholesale."""
        base = self.baseline_
        rng = np.random.default_rng([self.context_.seed, 13])
        in_codes = np.isin(contribution.labels, codes)
        pool = np.flatnonzero(in_codes & ~suspects)
        of_class = rows_by_class(contribution.labels[pool])
        every = np.flatnonzero(in_codes)
        every_of_class = rows_by_class(contribution.labels[every])
        explained, wholesale_explained = [], []
        for code in codes.tolist():
            own = pool[of_class.get(code, np.zeros(0, np.int64))]
            wholesale = own.size < MIN_BATCH_CLASS
            if wholesale and scaled is None and not rigid:
                continue  # a class misread wholesale, and no column in another unit or move to explain it
            if wholesale:
                own = every[every_of_class.get(code, np.zeros(0, np.int64))]
            own = sample_per_class(own, rng)
            in_class = base.labels == code
            trusted = (self.label_cal_ if calibration is None else calibration)[in_class]
            if own.size < MIN_BATCH_CLASS or trusted.size < MIN_BATCH_CLASS:
                continue  # nothing to check the change against: the class is not explained
            by_columns = scaled is not None and wholesale
            features = scaled.undo(np.asarray(contribution.features[own])) if by_columns else undo_rows(own)
            undone = GateData(features, contribution.labels[own])
            # Undoing a change of scale on records that never went through it shrinks or stretches them;
            # undoing a move only moves them (``rigid``), and what they then read as decides.
            if by_columns and not spreads_like(
                undone.features,
                base.features[sample_per_class(np.flatnonzero(in_class), rng)],
                judged=scaled.rescaled,
            ):
                continue
            score, _ = self._label_check(undone, reference=reference)
            if not reads_further_than_trusted(score[np.isfinite(score)], trusted, bulk_quantile=1.0 - THRESHOLDS[0]):
                explained.append(code)
                if wholesale:
                    wholesale_explained.append(code)
        return np.asarray(explained, dtype=np.int64), np.asarray(wholesale_explained, dtype=np.int64)

    def _representations(
        self, contribution: GateData, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Positions of a per-class sample of the reference, their representations, and the function
        that represents any block of contribution features (float64): the features themselves, or the
        hidden layer of the MLP probe, trained on a seeded sample of the contribution (read by position,
        so a memory-mapped contribution is not read whole)."""
        opts, base = self.opts_, self.baseline_
        base_rows = _stratified(base.labels, opts.max_reference_per_class, rng)
        if opts.probe == "features":
            return base_rows, base.features[base_rows].astype(np.float64), _as_float64
        n_c = len(contribution)
        new_train = sample_positions(n_c, max(opts.max_train // 2, opts.max_train - base_rows.size), rng)
        base_train = base_rows[sample_positions(base_rows.size, max(opts.max_train - new_train.size, 1), rng)]
        x = np.vstack([base.features[base_train], contribution.features[new_train]])
        y = np.concatenate([base.labels[base_train], contribution.labels[new_train]])
        probe = fit_probe(x, y, kind="mlp", seed=self.context_.seed, hidden=opts.hidden, max_iter=opts.max_iter)

        def represent(features: np.ndarray) -> np.ndarray:
            return hidden_activations(probe, features)

        return base_rows, represent(base.features[base_rows]), represent

    def _review_findings(
        self, reviewing: list[dict[str, Any]], contribution: GateData, rows: np.ndarray
    ) -> list[Finding]:
        """One finding per label-consistent cluster (what sets it apart), or one for the batch when
        clusters stand out in many classes (the batch as a whole differs)."""
        if not reviewing:
            return []
        base, schema = self.baseline_, self.context_.schema
        if len({t["code"] for t in reviewing}) <= MAX_CLUSTER_FINDINGS:
            out = []
            for t in reviewing:
                trusted = np.flatnonzero(base.labels == t["code"])[:500]
                what = describe(_take(contribution.table, t["members"]), _take(base.table, trusted), schema)
                out.append(_cluster_finding(self.name, t, rows, what))
            return out
        members = np.unique(np.concatenate([t["members"] for t in reviewing]))
        what = describe(_take(contribution.table, members), _take(base.table, np.arange(min(len(base), 1000))), schema)
        best = min(reviewing, key=lambda t: t["group_p"])
        per_class = _one_per_class(reviewing, "cluster_records")
        classes = ", ".join(f"{t['label']!r} ({t['cluster_records']})" for t in per_class[:10])
        return [
            Finding(
                detector=self.name,
                score=float(1.0 - best["group_p"]),
                row=None,
                reason=(
                    f"in {len(per_class)} classes the batch's records form clusters of their own ({classes}; "
                    f"smallest p={best['group_p']:.2g}), and their content agrees with their labels: the batch "
                    f"differs from the baseline as a whole (a new source, sensor or scanner); {what}"
                ),
                evidence={"clusters": [_summary(t, CLUSTER_KEYS) for t in reviewing], "rows": rows[members].tolist()},
            )
        ]

    def _record_findings(
        self, named: np.ndarray, p_values: np.ndarray, contribution: GateData, score: np.ndarray
    ) -> list[Finding]:
        """A finding for each record ``named`` (flagged or queued with a block), lowest p-value first.
        Ranked among the named records alone: a queued member's p-value cannot reach alpha, so ranked
        among the whole batch it came after the records of larger classes and lost its finding."""
        classes = self.context_.classes
        out = []
        marked = np.flatnonzero(named)
        for pos in marked[np.argsort(p_values[marked], kind="stable")][: self.opts_.max_findings]:
            label = _label(classes, int(contribution.labels[pos]))
            out.append(
                Finding(
                    detector=self.name,
                    score=float(1.0 - p_values[pos]),
                    row=int(pos),
                    reason=(
                        f"member of a label-inconsistent cluster in class {label!r}: its nearest trusted "
                        f"records are labelled otherwise and it is unlike the baseline records labelled "
                        f"{label!r} (p={p_values[pos]:.2g})"
                    ),
                    evidence={"label": label, "label_check": float(score[pos])},
                )
            )
        return out


def _misread_wholesale(labels: np.ndarray, misread: np.ndarray) -> np.ndarray:
    """Records of classes with misread records whose records that are not misread are too few
    (``MIN_BATCH_CLASS``) to show, among the batch's own records, whether the class moved."""
    codes = np.unique(labels[misread])
    if codes.size == 0:
        return np.zeros(labels.shape[0], bool)
    kept = np.bincount(labels[~misread], minlength=int(labels.max()) + 1)
    return np.isin(labels, codes[kept[codes] < MIN_BATCH_CLASS])


def _columnar(schema: Schema) -> bool:
    """Whether the gate's features are the table's own columns (numeric and categorical inputs only),
    each a quantity of its own whose sensor gain may differ from the others'."""
    return bool(schema.inputs) and all(c.kind in (ColumnKind.NUMERIC, ColumnKind.CATEGORICAL) for c in schema.inputs)


def _column_names(schema: Schema) -> list[str] | None:
    """One name per gate feature when every input is numeric (one feature per column), else None."""
    if schema.inputs and all(c.kind is ColumnKind.NUMERIC for c in schema.inputs):
        return [c.name for c in schema.inputs]
    return None


def _misread(p_label: np.ndarray, sizes: np.ndarray, score: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """Per threshold (rows), the records closer to trusted records of another class than to their own,
    and more so than all but a share t of their class's trusted records. The p-value is floored at the
    class's calibration resolution ``1 / (n + 1)``: no count rests on the extrapolated tail."""
    p_floor = np.maximum(p_label, 1.0 / (sizes + 1.0))
    return (p_floor[None, :] <= np.array(thresholds)[:, None]) & (score > 0.0)[None, :]


def _take(table: pa.Table | None, rows: np.ndarray) -> pa.Table | None:
    return table.take(pa.array(np.asarray(rows, dtype=np.int64))) if table is not None else None


def _label(classes: tuple[str, ...], code: int) -> str:
    return classes[int(code)] if 0 <= int(code) < len(classes) else str(code)


def _stratified(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of at most ``per_class`` records of every class."""
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if members.size > per_class:
            members = rng.choice(members, per_class, replace=False)
        chosen.append(members)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


BLOCK = 65_536
"""Contribution records represented at a time by ``_class_projections``."""
RANK_TOLERANCE = 1e-12
"""A principal component counts when its variance is above this share of the largest one's (singular
values above 1e-6 of the largest: the variances come from a Gram matrix, where the smaller
eigenvalues carry rounding errors of about 1e-16 of the largest)."""


def _as_float64(features: np.ndarray) -> np.ndarray:
    return np.asarray(features, dtype=np.float64)


def _blocks_by_class(
    features: np.ndarray, labels: np.ndarray, represent: Callable[[np.ndarray], np.ndarray], codes: set[int]
) -> Iterator[tuple[int, np.ndarray]]:
    """(class code, representations of that class's records in one block), block after block and in
    contribution order within each class: one pass over the contribution, ``BLOCK`` records at a time."""
    for start in range(0, features.shape[0], BLOCK):
        y = labels[start : start + BLOCK]
        order = np.argsort(y, kind="stable")
        present, first = np.unique(y[order], return_index=True)
        bounds = [*first.tolist(), y.shape[0]]
        wanted = [(int(c), order[bounds[i] : bounds[i + 1]]) for i, c in enumerate(present) if int(c) in codes]
        if not wanted:
            continue
        reps = represent(features[start : start + BLOCK])
        for code, rows in wanted:
            yield code, reps[rows]


def _class_projections(
    features: np.ndarray,
    labels: np.ndarray,
    reference: dict[int, np.ndarray],
    represent: Callable[[np.ndarray], np.ndarray],
    n_components: int,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per class code of ``reference`` (its reference records' representations): the reference's and the
    contribution records' representations centred on the class mean (both sides together) and projected
    on the class's top ``n_components`` principal components, as (reference, contribution, in order).

    Two passes over the contribution, ``BLOCK`` records at a time, so that only the projections
    (``n_components`` numbers a record), never every record's representation, are held: the first sums
    each class's records and their Gram matrix (shifted by the reference's mean, so that the covariance
    is not a difference of large numbers), the second projects them. The same blocks whether the
    contribution was scored whole or in partitions, so the result is the same to the last bit.
    """
    stats: dict[int, list[Any]] = {}
    for code, ref in reference.items():
        shift = ref.mean(axis=0)
        d = ref - shift
        stats[code] = [ref.shape[0], d.sum(axis=0), d.T @ d, shift, 0]
    wanted = set(stats)
    for code, reps in _blocks_by_class(features, labels, represent, wanted):
        d = reps - stats[code][3]
        stats[code][0] += reps.shape[0]
        stats[code][1] += d.sum(axis=0)
        stats[code][2] += d.T @ d
        stats[code][4] += reps.shape[0]
    axes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for code, (count, total, gram, shift, n_new) in stats.items():
        mean_shifted = total / count
        covariance = gram - count * np.outer(mean_shifted, mean_shifted)
        variance, vectors = np.linalg.eigh((covariance + covariance.T) / 2.0)
        variance, vectors = variance[::-1], vectors[:, ::-1]
        rank = int(np.sum(variance > RANK_TOLERANCE * max(float(variance[0]) if variance.size else 0.0, 1e-24)))
        vectors = vectors[:, : max(1, min(n_components, rank))]
        # A component's sign is arbitrary: fix it (largest entry positive) so that it is reproducible.
        vectors = vectors * np.where(vectors[np.abs(vectors).argmax(axis=0), np.arange(vectors.shape[1])] < 0, -1, 1)
        mean = shift + mean_shifted
        axes[code] = (mean, vectors)
        out[code] = ((reference[code] - mean) @ vectors, np.empty((n_new, vectors.shape[1])))
        stats[code][4] = 0
    for code, reps in _blocks_by_class(features, labels, represent, wanted):
        mean, vectors = axes[code]
        filled = stats[code][4]
        out[code][1][filled : filled + reps.shape[0]] = (reps - mean) @ vectors
        stats[code][4] = filled + reps.shape[0]
    return out


def _score_class(reduced: np.ndarray, n_ref: int, opts: BackdoorOptions, rng: np.random.Generator) -> dict[str, Any]:
    """Representation p-values of the new records of one class and its cluster tests.

    ``reduced`` holds the class's records centred and projected on its principal components
    (``_class_projections``): reference records first (``n_ref``), then contribution records.
    """
    n = reduced.shape[0]
    is_new = np.arange(n) >= n_ref

    # Spectral signature and distance to the k-th nearest reference record of the class, each on a
    # robust scale of the reference records; the larger is the record's nonconformity score.
    k = min(opts.neighbours, n_ref - 1)
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(reduced[:n_ref]).kneighbors(reduced)
    dist = np.where(idx == np.arange(n)[:, None], np.inf, dist)  # a reference record is not its own neighbour
    distance = np.sort(dist, axis=1)[:, k - 1]
    combined = np.maximum(_robust_z(np.abs(reduced[:, 0]), n_ref), _robust_z(distance, n_ref))
    p_new = tail_p_values(combined[:n_ref], combined[n_ref:])

    clusters: list[dict[str, Any]] = []
    n_new = int(is_new.sum())
    if n >= 10 and 0 < n_new < n:
        for n_clusters in CLUSTER_COUNTS:
            if n_clusters >= n:
                break
            assign = KMeans(n_clusters=n_clusters, n_init=2, random_state=int(rng.integers(1 << 31))).fit_predict(
                reduced
            )
            for c in range(n_clusters):
                in_cluster = assign == c
                size = int(in_cluster.sum())
                hits = int(np.sum(in_cluster & is_new))
                if size > opts.max_cluster_fraction * n or hits < MIN_GROUP:
                    continue
                clusters.append(
                    {
                        "k": n_clusters,
                        "size": size,
                        "cluster_records": hits,
                        "cluster_expected": round(size * n_new / n, 3),
                        "p_value": float(hypergeom.sf(hits - 1, n, n_new, size)),
                        "local_new": np.flatnonzero(in_cluster[n_ref:]),
                    }
                )
    return {"p_new": p_new, "clusters": clusters}


@dataclass(frozen=True)
class _ClassView:
    """One class of the contribution as the group test sees it: its records' positions (``new``), its
    representation (``reduced``: ``n_ref`` reference records first), and what every group of it carries
    (``about``: label, code, record count, whether the class moved)."""

    new: np.ndarray
    reduced: np.ndarray
    n_ref: int
    neighbours: int
    n_classes: int
    about: dict[str, Any]

    def group(
        self,
        counted: dict[str, Any],
        misread: np.ndarray,
        read_as: np.ndarray,
        classes: tuple[str, ...],
        *,
        coarse_only: bool = False,
        leave_out: np.ndarray | None = None,
        also_without: np.ndarray | None = None,
    ) -> dict[str, Any] | None:
        """The class's records misread at ``counted``'s threshold (``_misread_test``), but ``leave_out``, as
        a group whose ``p_value`` is the larger of the count's and of holding together (Bonferroni over
        the classes); None when they are fewer than ``MIN_GROUP``. With ``also_without``, holding together
        is also asked of the members without those records, and the smaller p-value counts, doubled."""
        members = self.new[misread[counted["threshold_index"], self.new]]
        if leave_out is not None:
            members = np.setdiff1d(members, leave_out)
        if members.size < MIN_GROUP:
            return None
        together = _holds_together(self.reduced, self.n_ref, np.isin(self.new, members), self.neighbours)
        if also_without is not None:
            rest = np.setdiff1d(members, also_without)
            if rest.size >= MIN_GROUP and rest.size < members.size:
                alone = _holds_together(self.reduced, self.n_ref, np.isin(self.new, rest), self.neighbours)
                together = 2.0 * min(together, alone)
        group_p = min(1.0, together * self.n_classes)
        return {
            **counted,
            **self.about,
            "coarse_only": coarse_only,
            "members": members,
            "contribution_count": int(members.size),
            "group_p": group_p,
            "p_value": max(counted["count_p"], group_p),
            "read_as": _votes(read_as[members], classes),
        }


def _holds_together(reduced: np.ndarray, n_ref: int, misread_new: np.ndarray, neighbours: int) -> float:
    """Whether the contribution records marked ``misread_new`` hold together in the class's representation
    (``reduced``: reference records first, ``n_ref``, then contribution records): among each one's nearest
    records of the class (reference and contribution), the other marked ones are counted, against a random
    subset of the same size (binomial p-value; 1 with fewer than ``MIN_GROUP`` of them)."""
    n = reduced.shape[0]
    group = np.flatnonzero(np.r_[np.zeros(n_ref, bool), misread_new])
    if group.size < MIN_GROUP or n <= group.size + 1:
        return 1.0
    kk = min(neighbours, n - 1)
    _, nn = NearestNeighbors(n_neighbors=kk + 1).fit(reduced).kneighbors(reduced[group])
    links = int(np.isin(nn[:, 1:], group).sum())
    q = (group.size - 1) / (n - 1)
    return float(binom.sf(links - 1, nn[:, 1:].size, q)) if links else 1.0


def _robust_z(score: np.ndarray, n_ref: int) -> np.ndarray:
    centre = float(np.median(score[:n_ref]))
    spread = 1.4826 * float(np.median(np.abs(score[:n_ref] - centre)))
    return (score - centre) / max(spread, 1e-9)


def _distinct(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most significant first; a cluster mostly covered by a kept one of the same class is dropped."""
    kept: list[dict[str, Any]] = []
    for test in sorted(tests, key=lambda t: t["p_value"]):
        if any(t["code"] == test["code"] and np.isin(test["members"], t["members"]).mean() > 0.5 for t in kept):
            continue
        kept.append(test)
    return kept


def _one_per_class(tests: list[dict[str, Any]], size: str) -> list[dict[str, Any]]:
    """The largest test of each class, largest first."""
    best: dict[int, dict[str, Any]] = {}
    for t in tests:
        if t["code"] not in best or t[size] > best[t["code"]][size]:
            best[t["code"]] = t
    return sorted(best.values(), key=lambda t: -t[size])


def _votes(codes: np.ndarray, classes: tuple[str, ...]) -> dict[str, int]:
    """Label -> how many of ``codes`` name it, most first."""
    values, counts = np.unique(codes[codes >= 0], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {_label(classes, int(values[i])): int(counts[i]) for i in order}


def _read(votes: dict[str, int]) -> str:
    return ", ".join(f"{v} as {k!r}" for k, v in list(votes.items())[:3]) or "none"


def _summary(t: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: t[key] for key in keys if key in t}


GROUP_KEYS = (
    "label",
    "contribution_count",
    "class_records",
    "threshold",
    "expected",
    "count_p",
    "group_p",
    "rest_rate",
    "shifted",
    "class_moved",
    "coarse_only",
    "beside_block",
    "read_as",
)
CLUSTER_KEYS = (
    "label",
    "k",
    "size",
    "contribution_count",
    "expected",
    "p_value",
    "misread",
    "misread_share",
    "read_as",
)


def _thresholds(class_sizes: list[int]) -> list[float]:
    """Label-check p-value thresholds, loosest first: the ``THRESHOLDS`` the largest class's calibration
    resolves, then the resolution ``1 / (n + 1)`` of every class that resolves finer than the last of them.
    Each class counts at its own thresholds (``_class_thresholds``): the ``THRESHOLDS`` it resolves and its
    own resolution, whichever other classes the batch holds."""
    largest = max(class_sizes)
    out = [t for t in THRESHOLDS if t >= 1.0 / (largest + 1.0)]
    out += sorted({1.0 / (n + 1.0) for n in class_sizes if 1.0 / (n + 1.0) < THRESHOLDS[-1]}, reverse=True)
    return out or [1.0 / (largest + 1.0)]


def _class_thresholds(thresholds: list[float], n_calibration: int) -> list[int]:
    """Indices in ``thresholds`` (loosest first) at which a class calibrated on ``n_calibration`` trusted
    records counts misread records: the ``THRESHOLDS`` of at least ``1 / (n + 1)``, then its own resolution
    when finer than them, the class's finest.

    A class's finest threshold is its own: were it the finest any class of the batch resolves, the sender
    would set it by which classes the batch holds (leaving a small class out makes every other class's
    finest threshold stricter, so that records at their edge are only reviewed)."""
    own = 1.0 / (n_calibration + 1.0)
    indices = [i for i, t in enumerate(thresholds) if t in THRESHOLDS and t >= own]
    if own < THRESHOLDS[-1] and own in thresholds:
        indices.append(thresholds.index(own))
    return indices or [0]


def _misread_test(
    misread: np.ndarray,
    rest_misread: np.ndarray,
    new: np.ndarray,
    others: np.ndarray,
    thresholds: list[float],
    n_tests: int,
    n_calibration: int,
    *,
    indices: Sequence[int] | None = None,
    resolves: np.ndarray | None = None,
) -> dict[str, Any]:
    """More misread records in a class than calibration and the rest of the batch explain?

    At threshold ``t`` a clean record of the class is misread with probability at most
    ``a / (n + 1)``, ``a = floor(t (n + 1))``, for ``n`` calibration records; the count over the class's
    records follows a beta-binomial law (the calibration set is itself random and shared by all of
    them). The count must also exceed what the rest of the batch's own rate explains (binomial): a
    batch that moved as a whole singles out no class. The larger of the two p-values is the test's;
    the best threshold is kept, Bonferroni over ``n_tests``. ``shifted``: the rest of the batch is
    itself misread well beyond ``t``. The class's records are counted in ``misread``; the rest of the
    batch in ``rest_misread`` (the trusted reading, before any record is excused), among
    the records whose class resolves ``t`` (``resolves``, thresholds by records; a record of a class
    that does not is never misread at ``t`` and says nothing of the batch's rate there).
    ``indices``: the thresholds to count at (the class's own, ``_class_thresholds``), else all of them.
    """
    best: dict[str, Any] = {}
    for i in range(len(thresholds)) if indices is None else indices:
        t = thresholds[i]
        k = int(misread[i, new].sum())
        rest = others if resolves is None else others & resolves[i]
        rest_n, rest_k = int(rest.sum()), int(rest_misread[i, rest].sum())
        rest_rate = rest_k / rest_n if rest_n else 0.0
        a = max(1, math.floor(t * (n_calibration + 1)))
        null = min(1.0, max(a / (n_calibration + 1), rest_rate))
        p_cal = float(betabinom.sf(k - 1, new.size, a, n_calibration + 1 - a)) if k else 1.0
        p_rest = float(binom.sf(k - 1, new.size, rest_rate)) if k and rest_n else (1.0 if not k else 0.0)
        p = max(p_cal, p_rest)
        if not best or p < best["_p"]:
            rest_p = float(binom.sf(rest_k - 1, rest_n, t)) if rest_k else 1.0
            best = {
                "_p": p,
                "threshold_index": i,
                "threshold": round(t, 6),
                "misread": k,
                "expected": round(null * new.size, 3),
                "rest_rate": round(rest_rate, 4),
                "shifted": bool(rest_p < SHIFT_P and rest_rate > 1.5 * t),
            }
    best["count_p"] = min(1.0, best.pop("_p") * n_tests)
    return best


def _summary_count(count: dict[str, Any], at_finest: dict[str, Any], alpha: float) -> dict[str, Any]:
    """A class's misread count as its summary reports it: ``at_finest`` (``_misread_test`` at the class's
    finest resolved threshold alone) when it is significant, else ``count`` (at every threshold), with
    ``coarse_only`` when only a coarser threshold's count is.

    Only the group counted at the finest threshold may block (``_score``'s class groups): a record at the
    edge of its class, misread beyond all but 2% or 10% of the class's trusted records, is the first that
    a change of sensor, source or pipeline tips over (19 of 180 crops misread at 2% where 3 are expected,
    p=2.5e-4, through a camera with 10% more contrast). In a class too small to resolve more than one
    threshold the two counts are the same.
    """
    if at_finest["count_p"] <= alpha:
        return at_finest | {"coarse_only": False}
    return count | {"coarse_only": count["count_p"] <= alpha}


def _block_sentence(g: dict[str, Any]) -> str:
    read = f"closer to trusted records of another class ({_read(g['read_as'])}) than all but {g['threshold']:.1%}"
    beyond = f"where calibration and the rest of the batch explain {g['expected']:.1f} (p={g['count_p']:.2g})"
    if "k" in g:  # a k-means cluster
        return (
            f"a cluster of {g['size']} records labelled {g['label']!r} holds {g['cluster_records']} contribution "
            f"records ({g['cluster_expected']:.1f} expected, p={g['group_p']:.2g}), and {g['contribution_count']} "
            f"of them are {read} of the baseline's own {g['label']!r} records, {beyond}"
        )
    return (
        f"{g['contribution_count']} of the {g['class_records']} contribution records labelled {g['label']!r} are "
        f"{read} of the baseline's own {g['label']!r} records, {beyond}, and they hold together in the "
        f"representation (p={g['group_p']:.2g})"
    )


def _evidence(t: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    return _summary(t, tuple(dict.fromkeys(GROUP_KEYS + CLUSTER_KEYS))) | {"rows": rows[t["members"]].tolist()}


def _group_finding(detector: str, g: dict[str, Any], rows: np.ndarray) -> Finding:
    return Finding(
        detector=detector,
        score=float(1.0 - g["p_value"]),
        row=None,
        reason="label-inconsistent cluster: " + _block_sentence(g),
        evidence=_evidence(g, rows),
    )


_EDGE_WHY = (
    "records at the edge of their class are the first that a lens, sensor, source or pipeline change tips "
    "over, and relabelled records sent at the edge look the same"
)


def _review_summary(
    detector: str, confounded: list[dict[str, Any]], reviewing: list[dict[str, Any]], p_value: float
) -> Finding:
    """One line for the verdict: what kind of groups and clusters were found, none of them enough to block."""
    classes = sorted({t["label"] for t in [*confounded, *reviewing]})
    edge = [t for t in confounded if t.get("coarse_only")]
    whole = [t for t in confounded if t.get("shifted")]
    kinds, endings = [], []
    if edge:
        moved = " in classes that moved as a whole" if all(t.get("class_moved") for t in edge) else ""
        kinds.append(
            f"records at the edge of their class read as other classes{moved}, not enough beyond its finest "
            "threshold to block"
        )
        endings.append("review them: relabelled records sent at a class's edge look the same")
    if whole:
        kinds.append("records read as other classes throughout the batch")
        endings.append("review the batch as a whole")
    if reviewing:
        kinds.append("records that form clusters of their own while their content agrees with their labels")
        endings.append("review, not a backdoor")
    return Finding(
        detector=detector,
        score=float(1.0 - p_value),
        reason=(
            f"{'; '.join(kinds)}, in {len(classes)} class(es) ({', '.join(map(repr, classes[:6]))}): "
            f"{'; '.join(endings)}"
        ),
        evidence={"classes": classes},
    )


def _confounded_finding(detector: str, tests: list[dict[str, Any]], rows: np.ndarray) -> Finding:
    """One finding, naming every record, for the groups that may not block: a count significant only at a
    coarser threshold than the class's finest (``coarse_only``; beside a blocking group of the same class,
    its records beyond that group), or a group that the rest of the batch's own misreading keeps from being
    singled out (``shifted``). Each kind is worded on its own; a group of both kinds gets both."""
    worst = min(tests, key=lambda t: t["p_value"])
    per_class = _one_per_class(tests, "contribution_count")
    parts = [
        f"{t['contribution_count']} of {t['class_records']} labelled {t['label']!r} ({_read(t['read_as'])})"
        for t in per_class[:5]
    ]
    members = np.unique(np.concatenate([t["members"] for t in tests]))
    edge = [t for t in tests if t.get("coarse_only")]
    beside = [t for t in edge if t.get("beside_block")]
    alone = [t for t in edge if not t.get("beside_block")]
    whole = [t for t in tests if t.get("shifted")]
    reasons = []
    if alone:
        moved = (
            " (and each of these classes moved as a whole: its other records read as another class more than "
            "a fifth of them could make them)"
            if all(t.get("class_moved") for t in alone)
            else ""
        )
        reasons.append(
            f"in {_labels(alone)}, they are counted at a coarser threshold than the class's finest, and the "
            f"class's count beyond its finest threshold does not block (too few, or scattered){moved}: "
            f"{_EDGE_WHY}. Review these records"
        )
    if beside:
        reasons.append(
            f"in {_labels(beside)}, they are misread at a coarser threshold only, beside the group that blocks: "
            f"{_EDGE_WHY}. Review them with it"
        )
    if whole:
        shifted = min(whole, key=lambda t: t["p_value"])
        reasons.append(
            f"in {_labels(whole)}, the rest of the batch reads as other classes too ({shifted['rest_rate']:.1%} "
            f"of it, against at most {shifted['threshold']:.1%} of trusted records): the batch moved as a whole "
            "(a new sensor, scanner or instrument) or carries label errors throughout, so no group is singled "
            "out as a backdoor. Review the batch as a whole"
        )
    return Finding(
        detector=detector,
        score=float(1.0 - worst["p_value"]),
        row=None,
        reason=(
            "records closer to trusted records of another class than to their own, in "
            f"{len(per_class)} class(es): {'; '.join(parts)}; but {'; and '.join(reasons)}"
        ),
        evidence={
            "classes": [_summary(t, GROUP_KEYS) for t in tests],
            "rows": rows[members].tolist(),
        },
    )


def _labels(tests: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({repr(t["label"]) for t in tests}))


def _cluster_finding(detector: str, t: dict[str, Any], rows: np.ndarray, what: str) -> Finding:
    return Finding(
        detector=detector,
        score=float(1.0 - t["group_p"]),
        row=None,
        reason=(
            f"{t['cluster_records']} contribution records labelled {t['label']!r} form a cluster of their own "
            f"({t['cluster_expected']:.1f} expected, p={t['group_p']:.2g}); {what}. "
            f"{t['misread_share']:.0%} of them are closer to trusted records of another class, so their content "
            "agrees with their label: a new sub-population, source or sensor, or a clean-label backdoor if what "
            "they share is an added pattern. Review what they share"
        ),
        evidence=_evidence(t, rows),
    )


def describe(members: pa.Table | None, trusted: pa.Table | None, schema: Schema) -> str:
    """What distinguishes ``members`` from ``trusted`` records, in words, from the raw columns."""
    if members is None or trusted is None or members.num_rows == 0 or trusted.num_rows == 0:
        return "what they share is not visible in the features alone"
    parts: list[str] = []
    for column in schema.inputs:
        if column.name not in members.column_names or column.name not in trusted.column_names:
            continue
        a, b = members.column(column.name).to_pylist(), trusted.column(column.name).to_pylist()
        try:
            if column.kind is ColumnKind.TEXT:
                parts.append(_word_difference(column.name, a, b))
            elif column.kind is ColumnKind.NUMERIC:
                parts.append(_numeric_difference(column.name, a, b))
            elif column.kind is ColumnKind.IMAGE:
                parts.append(_image_difference(column.name, a, b))
        except (InputError, ValueError, TypeError):
            continue
    parts = [p for p in parts if p]
    return "; ".join(parts[:3]) if parts else "no single word, column or image region sets them apart"


def _word_difference(name: str, members: list[Any], trusted: list[Any]) -> str:
    def share(texts: list[Any]) -> dict[str, float]:
        counts: dict[str, int] = {}
        for text in texts:
            for word in set(re.findall(r"\w+", str(text or "").lower())):
                counts[word] = counts.get(word, 0) + 1
        return {w: c / max(len(texts), 1) for w, c in counts.items()}

    a, b = share(members), share(trusted)
    lift = sorted(((a[w] - b.get(w, 0.0), w) for w in a), reverse=True)[:3]
    words = [
        f"{w!r} in {a[w]:.0%} of them against {b.get(w, 0.0):.0%} of the trusted ones" for d, w in lift if d >= 0.2
    ]
    return f"{name}: " + ", ".join(words) if words else ""


def _numeric_difference(name: str, members: list[Any], trusted: list[Any]) -> str:
    a = np.asarray([v for v in members if v is not None], dtype=np.float64)
    b = np.asarray([v for v in trusted if v is not None], dtype=np.float64)
    if a.size == 0 or b.size < 2:
        return ""
    spread = float(np.std(b)) or 1.0
    effect = (float(np.mean(a)) - float(np.mean(b))) / spread
    if abs(effect) < 0.5:
        return ""
    return f"{name} averages {np.mean(a):.4g} against {np.mean(b):.4g} ({effect:+.1f} standard deviations)"


REGIONS = (("top", "middle", "bottom"), ("left", "centre", "right"))


def _image_difference(name: str, members: list[Any], trusted: list[Any]) -> str:
    side = 12
    a = np.mean([gray_pixels(v, (side, side)) for v in members[:200]], axis=0) / 255.0
    b = np.mean([gray_pixels(v, (side, side)) for v in trusted[:500]], axis=0) / 255.0
    diff = (a - b).reshape(3, side // 3, 3, side // 3).mean(axis=(1, 3))
    i, j = np.unravel_index(np.argmax(np.abs(diff)), diff.shape)
    if abs(diff[i, j]) < 0.05:
        return ""
    where = "centre" if (i, j) == (1, 1) else f"{REGIONS[0][i]}-{REGIONS[1][j]}".replace("middle-", "")
    tone = "brighter" if diff[i, j] > 0 else "darker"
    return f"{name}: {tone} in the {where} region ({diff[i, j]:+.2f} on a 0-1 scale)"
