"""The gate report: verdict, reasons, per-record scores, groups and findings, in one JSON-ready shape."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dataward.domain.report_entries import NOT_FOR_KIND as NOT_FOR_KIND
from dataward.domain.report_entries import for_another_kind as for_another_kind
from dataward.gates.base import DetectorResult


@dataclass
class RecordScores:
    """Per-record outcome, in contribution order."""

    rows: np.ndarray
    record_ids: list[str]
    score: np.ndarray
    flagged: np.ndarray
    detector_scores: dict[str, np.ndarray]
    detector_flags: dict[str, np.ndarray]
    queued_by: dict[str, np.ndarray] = field(default_factory=dict)
    """Records queued for review on a rule beside the detectors' flags, by the rule's name (``new_labels.
    QUEUED_BY``: a label no trusted record carries; ``gate.BLOCK_RULE``, ``backdoor:block``: a record a
    block rests on that the blocking detector did not flag); ``flagged_by`` names the rule too."""

    @property
    def flagged_at_alpha(self) -> np.ndarray:
        """Records any detector flagged at its share of alpha (what the verdict counts); ``flagged`` is
        the review queue: those of these that pass its false-discovery check, and the records queued on
        a rule (``queued_by``) beside them (docs/gates.md, "The review queue")."""
        if not self.detector_flags:
            return np.zeros(len(self.record_ids), dtype=bool)
        return np.vstack([np.asarray(f, dtype=bool) for f in self.detector_flags.values()]).any(axis=0)

    def to_list(self) -> list[dict[str, Any]]:
        names = list(self.detector_scores)
        out = []
        for i in range(len(self.record_ids)):
            out.append(
                {
                    "row": int(self.rows[i]),
                    "record_id": self.record_ids[i],
                    "score": float(self.score[i]),
                    "flagged": bool(self.flagged[i]),
                    "flagged_by": [n for n in names if self.detector_flags[n][i]]
                    + [rule for rule, mask in self.queued_by.items() if mask[i]],
                    "detectors": {n: float(self.detector_scores[n][i]) for n in names},
                }
            )
        return out


@dataclass
class GateReport:
    """What a gate run concluded; ``to_dict()`` is the documented JSON (docs/gates.md).

    ``extras`` (projection, baseline score samples, validation impact, evidence) feeds the HTML report
    (``to_html()``) and is not part of ``to_dict()``; ``extras_dict()`` gives it JSON-ready.
    """

    verdict: str
    reasons: list[str]
    mode: str
    config_hash: str
    policy: dict[str, Any]
    results: dict[str, DetectorResult]
    records: RecordScores
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    limits: list[str] = field(default_factory=list)
    """What the gate could not check (``gate.unresolved_alpha``): classes too small for a single record to be
    flagged at alpha, with the rows at that floor when more sit there than chance puts there."""

    @property
    def flagged_rows(self) -> list[int]:
        """Row numbers (in the submitted file) of every flagged record."""
        return [int(r) for r, f in zip(self.records.rows, self.records.flagged, strict=True) if f]

    def to_dict(self) -> dict[str, Any]:
        detectors: dict[str, Any] = {
            name: {
                "version": r.version,
                "statistic": float(r.statistic),
                "p_value": float(r.p_value),
                "flagged": int(r.flagged.sum()),
                "queued": int(r.queued.sum()) if r.queued is not None else 0,
                "block": bool(r.block),
                "block_reason": r.block_reason,
                "reason": r.reason,
                "alpha": r.alpha,
                "n_calibration": int(r.n_calibration),
                "expected_flagged": r.expected_flagged,
                "contribution_findings": [_json_ready(f.to_dict()) for f in r.contribution_findings],
                "summary": _json_ready(r.summary),
            }
            for name, r in self.results.items()
        }
        for name, why in self.skipped.items():
            detectors[name] = {
                "version": None,
                "statistic": None,
                "p_value": None,
                "flagged": 0,
                "queued": 0,
                "block": False,
                "block_reason": None,
                "reason": None,
                "alpha": None,
                "n_calibration": 0,
                "expected_flagged": 0.0,
                "contribution_findings": [],
                "summary": {"skipped": why},
            }
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "limits": list(self.limits),
            "mode": self.mode,
            "config_hash": self.config_hash,
            "policy": self.policy,
            "counts": {
                "records": len(self.records.record_ids),
                "flagged": int(self.records.flagged.sum()),
                "flagged_at_alpha": int(self.records.flagged_at_alpha.sum()),
            },
            "detectors": detectors,
            "records": self.records.to_list(),
            "groups": _json_ready(self.groups),
            "findings": _json_ready(self.findings),
        }

    def extras_dict(self) -> dict[str, Any]:
        """``extras`` JSON-ready: numpy arrays and scalars as plain Python, non-finite floats as None."""
        return _json_ready(self.extras)

    def to_html(self, path: str | os.PathLike[str] | None = None, *, title: str = "Gate report") -> str:
        """The report as one self-contained HTML page (the one ``dataward contribute --html`` writes:
        verdict, reasons, detectors, plots, evidence); also written to ``path`` (UTF-8) when given."""
        from dataward.gates.html import render_html

        page = render_html(self, title=title)
        if path is not None:
            Path(path).write_text(page, "utf-8")
        return page


def extras_json(report: GateReport) -> dict[str, Any]:
    """The report's extras, JSON-ready (``report.extras_dict()``)."""
    return report.extras_dict()


def _json_ready(value: Any) -> Any:
    """Numpy scalars and arrays to plain Python; non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if np.isfinite(f) else None
    return value
