"""The detector contract: fit on a trusted baseline, score a contribution, return one result shape.

Detectors follow scikit-learn's estimator shape and cleanlab Datalab's issue managers: one detector
per module, registered by name with ``@register``, knowing nothing of wards, databases or HTTP.
The gate (``dataward.gates.gate``) featurizes both sides, runs the detectors the policy names and
combines their results into a verdict.

Scores are calibrated: ``p_values[i]`` is a conformal p-value of record ``i`` against the baseline
(small means suspicious: under "this record is like the trusted data", ``P(p <= a) <= a``), and
``scores = 1 - p_values``. A policy threshold ``alpha`` on p-values is therefore a false-positive
rate, the same for every detector.
"""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import import_module
from typing import Any, ClassVar, Self

import numpy as np
import pyarrow as pa

from dataward.domain.errors import InputError
from dataward.domain.schema import Schema


class Evidence(StrEnum):
    """What a detector's significant contribution-level result is evidence of.

    ``POISONING``: content that contradicts its label, a trigger whose label tie the content does not
    explain, a label-inconsistent cluster, measured harm on the clean validation set. Such a detector
    may block. ``DIFFERENCE``: the batch is unlike the baseline (drift, novelty, outliers, duplicates of
    trusted records); that is a reason to review and to explain what moved, never to block on its own.
    """

    POISONING = "poisoning"
    DIFFERENCE = "difference"


class Requirement(StrEnum):
    """Inputs a detector needs beyond the contribution's features and labels; the gate skips it
    (with the reason) when one is missing."""

    BASELINE = "baseline"
    """A trusted baseline distinct from the contribution (not the self-reference folds)."""
    VALIDATION = "validation"
    """The clean validation set."""
    RAW_TABLE = "raw_table"
    """The canonical Arrow tables (raw text, image bytes), not only features."""
    GROUPS = "groups"
    """Per-record contribution / source / principal names."""


@dataclass(frozen=True)
class GateData:
    """One side of a comparison (baseline, contribution or validation set), ready for detectors.

    ``features`` are dense float32 vectors from the featurizers; ``labels`` are int64 codes into
    ``GateContext.classes``; ``table`` is the canonical Arrow table the features came from (text,
    image bytes, numbers), for detectors that look at raw content such as trigger tokens or patches;
    ``groups`` names, per record, the contribution/source/principal it came from, where known.
    """

    features: np.ndarray
    labels: np.ndarray
    table: pa.Table | None = None
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.features.ndim != 2:
            raise ValueError(f"features must be 2-D, got shape {self.features.shape}")
        if self.labels.shape != (self.features.shape[0],):
            raise ValueError("labels must have one entry per feature row")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def subset(self, index: np.ndarray) -> GateData:
        """The rows at ``index`` (integer positions or a boolean mask)."""
        idx = np.flatnonzero(index) if index.dtype == bool else index
        table = self.table.take(pa.array(idx)) if self.table is not None else None
        return GateData(self.features[idx], self.labels[idx], table, {k: v[idx] for k, v in self.groups.items()})


@dataclass(frozen=True)
class GateContext:
    """What every detector may know besides the baseline itself."""

    schema: Schema
    classes: tuple[str, ...]
    alpha: float = 0.01
    """Per-record false-positive rate the policy accepts for a flag."""
    validation: GateData | None = None
    """The clean validation set, if the dataset has one."""
    first_baseline: GateData | None = None
    """The first trusted baseline, to catch slow drift across many contributions."""
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    """Per-detector options from the policy, keyed by detector name."""
    baseline_hashes: tuple[np.ndarray, np.ndarray] | None = None
    """(input content hashes, label codes) of the *whole* baseline, when detectors fit on a sample of it."""
    max_validation_drop: float = 0.02
    """The policy's tolerated accuracy drop on the clean validation set, for detectors that judge harm."""
    featurize: Callable[[pa.Table], np.ndarray] | None = None
    """The gate's fitted featurization (a table of inputs to gate features), for detectors that read an
    edited record again (``backdoor`` undoes a lens's gain field on the raw images); None: not offered."""

    def options_for(self, detector: str) -> dict[str, Any]:
        return dict(self.options.get(detector, {}))


@dataclass
class Finding:
    """One suspicious record (``row`` is its position in the contribution) or pattern (``row`` None)."""

    detector: str
    score: float
    reason: str
    row: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "row": self.row,
            "score": float(self.score),
            "reason": self.reason,
            "evidence": self.evidence,
        }


@dataclass
class DetectorResult:
    """The single result shape of every detector.

    ``p_values`` (and ``scores = 1 - p_values``) are per record; ``flagged`` marks records whose
    p-value is below the context's alpha (or that the detector otherwise singles out, e.g. a
    trigger carrier). ``statistic`` and ``p_value`` judge the contribution as a whole: the p-value of
    the hypothesis "this contribution is drawn like the baseline" (1.0 when the detector has no
    contribution-level test). ``summary`` holds small JSON-ready extras.
    """

    detector: str
    version: str
    p_values: np.ndarray
    flagged: np.ndarray
    findings: list[Finding] = field(default_factory=list)
    statistic: float = 0.0
    p_value: float = 1.0
    summary: dict[str, Any] = field(default_factory=dict)
    block: bool = False
    """The detector found evidence of poisoning strong enough to block (only ``POISONING`` detectors)."""
    block_reason: str | None = None
    """One plain sentence saying what was found, when ``block``."""
    n_calibration: int = 0
    """Trusted records the per-record p-values were calibrated on (0: no per-record calibration)."""
    alpha: float | None = None
    """The per-record flag threshold this detector used (None: it flags no records by p-value)."""
    contribution_findings: list[Finding] = field(default_factory=list)
    """Population-level findings (a class moved, a feature drifted): in the report, never flags."""
    reason: str | None = None
    """One plain sentence saying in words what the contribution-level test found, for the verdict's reason
    in place of the generic "k of n records flagged" or "statistic x" (None: the generic one)."""
    flagged_by_rule: np.ndarray | None = None
    """Flags made by a rule of their own rather than the p-value threshold (an exact conflict with a
    trusted record, a resolution flag): the review queue keeps them whatever its false-discovery
    check says (``calibration.fdr_confirmed``). None: none."""
    queued: np.ndarray | None = None
    """Records a block rests on that are not flags: the members of a blocking group whose own p-values
    cannot reach ``alpha`` (their class has too few trusted records to resolve it, or the group counts at
    a coarser threshold). They go to the review queue with the block (``flagged_by`` names
    ``DETECTOR:block``), so that a reviewer, or an override, meets the records the block names; the verdict
    and the per-record false-positive rate count flags only. Only with ``block``. None: none."""

    @property
    def expected_flagged(self) -> float:
        """Clean records expected to be flagged at ``alpha`` (0 when the detector does not flag by p-value)."""
        return float(self.alpha or 0.0) * int(self.p_values.shape[0])

    @property
    def scores(self) -> np.ndarray:
        return 1.0 - self.p_values

    def __post_init__(self) -> None:
        self.p_values = np.clip(np.asarray(self.p_values, dtype=np.float64), 0.0, 1.0)
        self.flagged = np.asarray(self.flagged, dtype=bool)
        if self.p_values.shape != self.flagged.shape:
            raise ValueError(f"{self.detector}: p_values and flagged differ in shape")
        if self.flagged_by_rule is not None:
            self.flagged_by_rule = np.asarray(self.flagged_by_rule, dtype=bool) & self.flagged
        if self.block and not self.block_reason:
            raise ValueError(f"{self.detector}: a block needs a block_reason")
        if self.queued is not None:
            self.queued = np.asarray(self.queued, dtype=bool)
            if self.queued.shape != self.flagged.shape:
                raise ValueError(f"{self.detector}: queued and flagged differ in shape")
            if self.queued.any() and not self.block:
                # Records queued without a block would be class- or batch-level findings in the queue.
                raise ValueError(f"{self.detector}: only a block queues records beside the flags")


@dataclass(frozen=True)
class NoOptions:
    """The options of a detector that takes none."""


def build_options(detector: str, options_type: type, values: dict[str, Any]) -> Any:
    """``options_type(**values)``, refusing unknown names and wrongly typed values with an ``InputError``.

    ``options_type`` is a dataclass; each field's default gives its type, and a dataclass may check
    ranges in ``__post_init__`` by raising ``ValueError``.
    """
    known = {f.name: f for f in dataclasses.fields(options_type)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(
            f"unknown option(s) for detector {detector!r}: {', '.join(unknown)}",
            hint=f"known options: {', '.join(sorted(known)) or 'none'}",
        )
    coerced: dict[str, Any] = {}
    for key, value in values.items():
        default = known[key].default
        kind = type(default) if default is not dataclasses.MISSING and default is not None else None
        try:
            if kind is bool and not isinstance(value, bool):
                raise TypeError
            coerced[key] = kind(value) if kind in (int, float, str) and not isinstance(value, bool) else value
            if kind is int and float(value) != int(float(value)):
                raise TypeError
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"option {key!r} of detector {detector!r} must be {kind.__name__ if kind else 'valid'}, got {value!r}"
            ) from exc
    try:
        return options_type(**coerced)
    except (TypeError, ValueError) as exc:
        raise InputError(f"invalid options for detector {detector!r}: {exc}") from exc


class Detector(ABC):
    """Base class of every detector.

    Subclasses set ``name``, ``version``, ``evidence`` (what a significant result means, see
    ``Evidence``), ``requires`` and, when they take options, ``Options`` (a frozen dataclass whose
    defaults are the documented defaults); then implement ``fit`` and ``score``. Options come from the
    constructor, merged over the policy's ``options[name]`` in ``fit`` via ``resolve_options``.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    evidence: ClassVar[Evidence] = Evidence.DIFFERENCE
    requires: ClassVar[frozenset[Requirement]] = frozenset()
    Options: ClassVar[type] = NoOptions
    flags_records: ClassVar[bool] = True
    """Flags records by p-value at its share of alpha (False: it flags nothing, or only the carriers of a
    pattern it reports, and does not take a share of alpha)."""
    applies_to: ClassVar[frozenset[str]] = frozenset({"text", "image", "numeric", "categorical", "embedding"})
    """Column kinds the detector can work with; the gate skips it when the schema has none of them."""
    fits_whole_baseline: ClassVar[bool] = False
    """True: the detector reads only the raw table (no features) and is cheap per record, so the gate fits
    it on the whole trusted baseline instead of the policy's ``reference_size`` sample (a calibration set
    as large as the baseline resolves smaller p-values); its ``GateData`` then has zero-width features."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        build_options(self.name, self.Options, options)  # refuse bad options at construction

    def resolve_options(self, context: GateContext) -> Any:
        """The validated ``Options``: the policy's options for this detector, overridden by the constructor's."""
        return build_options(self.name, self.Options, {**context.options_for(self.name), **self.options})

    @abstractmethod
    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Learn and calibrate on trusted data. Must not look at any contribution."""

    @abstractmethod
    def score(self, contribution: GateData) -> DetectorResult:
        """Score every record of ``contribution`` and judge it as a whole."""

    # --- partitioned scoring -------------------------------------------------------------------
    # ``score(c)`` is ``finish(c, score_records(c))``. ``score_records`` is the record stage: each
    # record's outputs depend only on the fitted state and on that record, so it runs on partitions of
    # the contribution, on any worker, and the partitions' outputs concatenated equal the whole's.
    # ``finish`` is the contribution stage: it sees the whole contribution (features, labels, table)
    # and the concatenated record outputs, and does what genuinely needs every record at once (count
    # tests, batch-internal neighbours, clustering, trigger counts), once.

    record_stage: ClassVar[bool] = False
    """True when ``score_records`` does the detector's per-record work (the heavy neighbour search);
    False: every record-level computation happens in ``finish`` on the whole contribution."""

    record_stage_skips: ClassVar[bool] = True
    """Whether ``score_records`` may find the detector not applicable to a chunk (raise ``InputError``).
    False for a record stage that never does: a partitioned scan then refuses a worker's result that
    says it did (``partitioned.check_scored``), as the scanning process itself would never skip it."""

    def score_records(self, chunk: GateData) -> dict[str, np.ndarray]:
        """Per-record outputs of ``chunk`` (arrays with one row per record), from the fitted state only."""
        return {}

    def finish(self, contribution: GateData, records: dict[str, np.ndarray]) -> DetectorResult:
        """The result for the whole ``contribution`` from its concatenated ``score_records`` outputs."""
        return self.score(contribution)

    def contribution_sample(self, n: int) -> np.ndarray | None:
        """Sorted positions of the records of an ``n``-record contribution that the record stage must
        compare every record with (a seeded sample, gathered in a first pass over the partitions and
        handed to ``see_sample``), or None when it needs none. Called once per contribution, before
        any ``score_records``."""
        return None

    def see_sample(self, sample: GateData, positions: np.ndarray, n: int) -> None:
        """Receive the records at ``positions`` (featurized like the partitions) of the ``n``-record
        contribution; what is kept of them becomes part of the fitted state the workers are sent."""
        return None


POSITION = "position"
"""The ``groups`` key under which a record-stage chunk carries each record's position in the whole
contribution (absent: the chunk is the whole contribution, in order)."""


_REGISTRY: dict[str, type[Detector]] = {}
ENTRY_POINT_GROUP = "dataward.detectors"
"""Third-party packages add detectors by naming their ``Detector`` subclass in this entry-point group."""


DETECTOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
"""A detector's name: a policy key, a reason's prefix and a JSON key, so one word (no spaces: the gate's own
non-detector sources, such as the count of flagged records, are worded with spaces and cannot clash)."""


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make a detector available to policies under ``cls.name``."""
    if not isinstance(cls.name, str) or not DETECTOR_NAME.fullmatch(cls.name):
        raise ValueError(f"detector name {cls.name!r} must be one word of letters, digits, '_', '.' or '-'")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"detector name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Detector]]:
    """Every registered detector by name: the built-ins and those of the ``dataward.detectors`` entry points."""
    # The built-ins register when their package is imported; the gates package no longer imports it
    # on its own (it loads lazily), so whoever asks what is registered loads them first.
    import_module("dataward.gates.detectors")
    _load_entry_points()
    return dict(_REGISTRY)


_ENTRY_POINTS_LOADED = False


def _load_entry_points() -> None:
    """Import every detector named in the entry-point group once; a broken one is an error, not a skip."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise TypeError(f"entry point {ep.name!r} of {ENTRY_POINT_GROUP} is not a Detector subclass")
        if cls.name not in _REGISTRY:
            register(cls)
