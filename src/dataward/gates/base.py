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

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import pyarrow as pa

from dataward.domain.schema import Schema


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

    @property
    def scores(self) -> np.ndarray:
        return 1.0 - self.p_values

    def __post_init__(self) -> None:
        self.p_values = np.clip(np.asarray(self.p_values, dtype=np.float64), 0.0, 1.0)
        self.flagged = np.asarray(self.flagged, dtype=bool)
        if self.p_values.shape != self.flagged.shape:
            raise ValueError(f"{self.detector}: p_values and flagged differ in shape")


class Detector(ABC):
    """Base class of every detector. Subclasses set ``name`` and ``version`` and implement both methods."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    applies_to: ClassVar[frozenset[str]] = frozenset({"text", "image", "numeric", "categorical", "embedding"})
    """Column kinds the detector can work with; the gate skips it when the schema has none of them."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def fit(self, baseline: GateData, context: GateContext) -> Self:
        """Learn and calibrate on trusted data. Must not look at any contribution."""

    @abstractmethod
    def score(self, contribution: GateData) -> DetectorResult:
        """Score every record of ``contribution`` and judge it as a whole."""


_REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make a detector available to policies under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"detector name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Detector]]:
    """Every registered detector by name (importing ``dataward.gates.detectors`` registers the built-ins)."""
    return dict(_REGISTRY)


def conformal_p_values(calibration_scores: np.ndarray, test_scores: np.ndarray) -> np.ndarray:
    """Conformal p-values: larger nonconformity score = more suspicious.

    ``p = (1 + #{calibration >= test}) / (n + 1)``; valid when the test record is exchangeable with
    the calibration records, so thresholding at ``alpha`` flags at most a fraction ``alpha`` of clean
    records in expectation.
    """
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64))
    test = np.asarray(test_scores, dtype=np.float64)
    n = cal.shape[0]
    if n == 0:
        return np.ones_like(test)
    greater_equal = n - np.searchsorted(cal, test, side="left")
    return (1.0 + greater_equal) / (n + 1.0)
