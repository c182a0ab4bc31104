"""Running detectors and turning their results into per-record scores and one verdict.

Combination rule (docs/gates.md):

* Each of the ``m`` detectors that ran flags records at ``alpha / m``, so the union of flags keeps
  the policy's per-record false-positive rate ``alpha``. A record's combined score is
  ``1 - F(-2 sum_d log p_d)`` with ``F`` the chi-square law with ``2m`` degrees of freedom (Fisher's
  combination). Unlike the Bonferroni minimum, it does not let the smallest of ``m`` uniform
  p-values of a clean record outrank a flip that one detector sees clearly and others see a little;
  the detectors share features, so the score ranks records and is not itself a calibrated p-value
  (the flags are).
* ``block`` when any detector's contribution-level p-value is below ``block_p`` or a detector asks
  for a block (``summary["block"]``: a found trigger, a clean-validation drop beyond tolerance);
  ``review`` when the Bonferroni-corrected smallest detector p-value, or the binomial test of the
  union of flags against ``alpha * n``, is below ``review_p``; ``pass`` otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from dataward.domain.schema import Schema
from dataward.gates.base import DetectorResult, registered
from dataward.gates.calibration import binomial_p_value
from dataward.gates.policy import GatePolicy


def select_detectors(
    policy: GatePolicy, schema: Schema, *, has_baseline: bool, has_validation: bool
) -> tuple[list[str], dict[str, str]]:
    """Detectors to run and the ones skipped with the reason."""
    available = registered()
    names = list(policy.detectors) or sorted(available)
    kinds = {c.kind.value for c in schema.inputs}
    run, skipped = [], {}
    for name in names:
        cls = available[name]
        if not (set(cls.applies_to) & kinds):
            skipped[name] = f"applies to {', '.join(sorted(cls.applies_to))} columns; the schema has none"
        elif name == "drift" and not has_baseline:
            skipped[name] = "no trusted baseline to compare the batch with (self-reference mode)"
        elif name == "triggers" and not has_baseline:
            # A trigger is a pattern tied to one label far more than in trusted data; the other folds
            # of a poisoned batch carry the same trigger, so within the batch it looks like any
            # word that names its class.
            skipped[name] = (
                "no trusted baseline: a trigger is judged by its tie to a label against trusted data, "
                "and the other folds of the batch carry the same trigger (self-reference mode)"
            )
        elif name == "clean_validation" and not has_validation:
            skipped[name] = "no clean validation set was given"
        else:
            run.append(name)
    return run, skipped


def combine_records(results: dict[str, DetectorResult], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Combined suspicion score and flag of every record."""
    if not results:
        return np.zeros(n), np.zeros(n, dtype=bool)
    stacked = np.vstack([r.p_values for r in results.values()])
    statistic = -2.0 * np.log(np.clip(stacked, 1e-300, 1.0)).sum(axis=0)
    combined = stats.chi2.sf(statistic, 2 * stacked.shape[0])
    flagged = np.vstack([r.flagged for r in results.values()]).any(axis=0)
    return np.clip(1.0 - combined, 0.0, 1.0), flagged


def verdict(
    results: dict[str, DetectorResult], flagged: np.ndarray, policy: GatePolicy
) -> tuple[str, list[str], float]:
    """The verdict, its reasons and the union-of-flags binomial p-value."""
    n = int(flagged.shape[0])
    m = max(len(results), 1)
    reasons_block, reasons_review = [], []
    for name, r in results.items():
        if r.summary.get("block"):
            reasons_block.append(f"{name}: {r.summary.get('block_reason') or _describe(name, r, n, policy, m)}")
        elif r.p_value < policy.block_p:
            reasons_block.append(_describe(name, r, n, policy, m))
        elif r.p_value * m < policy.review_p:
            reasons_review.append(_describe(name, r, n, policy, m))
    calibration_sizes = [int(r.summary["n_calibration"]) for r in results.values() if "n_calibration" in r.summary]
    union_p = union_flags_p_value(int(flagged.sum()), n, policy.alpha, min(calibration_sizes, default=0))
    if union_p < policy.review_p and not reasons_block:
        reasons_review.append(
            f"{int(flagged.sum())} of {n} records flagged where {policy.alpha * n:.1f} are expected at "
            f"alpha={policy.alpha:g} (p={union_p:.2g})"
        )
    if reasons_block:
        return "block", reasons_block + reasons_review, union_p
    if reasons_review:
        return "review", reasons_review, union_p
    return "pass", [], union_p


def union_flags_p_value(flagged: int, n: int, alpha: float, n_calibration: int) -> float:
    """P(at least ``flagged`` of ``n`` clean records flagged) when flags run at ``alpha`` in total.

    With a calibration set of ``n_calibration`` records the true flag rate is itself uncertain
    (a beta law around ``alpha``), so the count follows a beta-binomial law; with no calibration size
    known it is binomial.
    """
    if flagged <= 0 or n <= 0:
        return 1.0
    if n_calibration <= 0:
        return binomial_p_value(flagged, n, alpha)
    a = max(alpha * (n_calibration + 1), 1.0)
    return float(stats.betabinom.sf(flagged - 1, n, a, n_calibration + 1 - a))


def _describe(name: str, r: DetectorResult, n: int, policy: GatePolicy, m: int) -> str:
    if name == "drift" or "expected_flagged" not in r.summary:
        top = r.findings[0].reason if r.findings else f"statistic {r.statistic:.3g}"
        return f"{name}: {top} (p={r.p_value:.2g})"
    alpha = float(r.summary.get("alpha", policy.alpha / m))
    return (
        f"{name}: {int(r.flagged.sum())} of {n} records flagged where {alpha * n:.1f} are expected at "
        f"alpha={alpha:.3g} (p={r.p_value:.2g})"
    )


def group_summaries(
    groups: dict[str, np.ndarray], flagged: np.ndarray, policy: GatePolicy
) -> dict[str, list[dict[str, Any]]]:
    """Per group key and value: records, flagged, binomial p-value against alpha, and a verdict."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key, values in groups.items():
        rows = []
        for value in sorted(set(values.tolist())):
            members = values == value
            count, hits = int(members.sum()), int(flagged[members].sum())
            p = binomial_p_value(hits, count, policy.alpha)
            verdict_ = "block" if p < policy.block_p else "review" if p < policy.review_p else "pass"
            rows.append({"key": value, "records": count, "flagged": hits, "p_value": p, "verdict": verdict_})
        out[key] = rows
    return out
