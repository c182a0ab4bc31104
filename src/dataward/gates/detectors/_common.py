"""Small helpers the built-in detectors share: label names, neighbour evidence, result assembly."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from dataward.gates.base import DetectorResult, Finding
from dataward.gates.calibration import excess_flags_p_value, flag_mask, tail_p_values

MAX_FINDINGS = 200
"""Per-record findings kept per detector (the most suspicious first); every record keeps its score."""


def reference_scores(calibration: np.ndarray, limit: int = 2000) -> np.ndarray:
    """1 - conformal p-value of each calibration score among all of them (at most ``limit``, evenly spaced)."""
    cal = np.asarray(calibration, dtype=np.float64)
    if cal.shape[0] == 0:
        return cal
    step = max(1, cal.shape[0] // limit)
    return 1.0 - tail_p_values(cal, cal[::step][:limit])


def label_name(classes: tuple[str, ...], code: int) -> str:
    return classes[int(code)] if 0 <= int(code) < len(classes) else str(code)


def neighbour_evidence(
    classes: tuple[str, ...], labels: np.ndarray, dist: np.ndarray, idx: np.ndarray, limit: int = 5
) -> dict[str, Any]:
    """Label counts of the neighbours and the nearest few (positions into the reference sample)."""
    counts = Counter(label_name(classes, labels[j]) for j in idx)
    return {
        "neighbour_labels": dict(counts.most_common()),
        "reference_neighbours": [
            {"reference_index": int(j), "label": label_name(classes, labels[j]), "distance": float(d)}
            for d, j in zip(dist[:limit], idx[:limit], strict=True)
        ],
    }


def count_result(
    name: str,
    version: str,
    p_values: np.ndarray,
    alpha: float,
    n_calibration: int,
    findings: list[Finding],
    summary: dict[str, Any],
    *,
    flagged: np.ndarray | None = None,
    extra_p: float | None = None,
    contribution_findings: list[Finding] | None = None,
    flagged_by_rule: np.ndarray | None = None,
    beyond_calibration: bool = False,
) -> DetectorResult:
    """Assemble a result whose contribution-level test is "more flags than calibration explains".

    ``flagged`` defaults to ``flag_mask(p_values, alpha, n_calibration)``: no flag rests on the
    extrapolated tail alone. ``beyond_calibration``: see ``excess_flags_p_value`` (only for p-values
    all conformal against the same ``n_calibration`` scores).
    """
    flags = flag_mask(p_values, alpha, n_calibration) if flagged is None else flagged
    excess, p_count = excess_flags_p_value(p_values, alpha, n_calibration, beyond_calibration=beyond_calibration)
    p_value = p_count if extra_p is None else min(1.0, 2.0 * min(p_count, extra_p))
    findings.sort(key=lambda f: -f.score)
    return DetectorResult(
        name,
        version,
        p_values,
        flags,
        findings[:MAX_FINDINGS],
        float(flags.sum()),
        float(p_value),
        {"excess_flagged": excess, **summary},
        n_calibration=int(n_calibration),
        alpha=alpha,
        contribution_findings=list(contribution_findings or []),
        flagged_by_rule=flagged_by_rule,
    )
