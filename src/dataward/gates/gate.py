"""Running detectors and turning their results into per-record scores and one verdict.

Verdict semantics (docs/gates.md, "What a verdict means"):

* ``block`` needs evidence of *poisoning*: a detector whose ``evidence`` is ``POISONING`` (label
  consistency, conflicting duplicates, triggers, backdoor clusters, clean-validation harm) either asks
  for a block (``result.block``: a trigger the content does not explain, a label-inconsistent cluster,
  harm beyond tolerance) or has a contribution-level p-value below ``policy.block_p``.
* ``review`` for *difference*: a ``DIFFERENCE`` detector (drift, outliers) below ``review_p`` however
  small its p-value, any population-level finding (``result.contribution_findings``: a class moved, a
  feature drifted, a new group of records), a ``POISONING`` detector between ``block_p`` and
  ``review_p``, or more flagged records than ``alpha`` explains (beta-binomial test of the union).
* ``pass`` otherwise.

Flags: each of the ``m`` detectors that flag records by p-value (``flags_records``) flags at
``alpha / m``, so the union of flags keeps the policy's per-record false-positive rate ``alpha``; the
verdict counts those. The review queue holds the flags that also pass a false-discovery-rate check
(``queued_flags``, policy ``flag_fdr``), so that a reviewer meets mostly poisoned records. A
record's combined score is Fisher's combination of its p-values (``combine_records``): unlike the
Bonferroni minimum, it does not let the smallest of ``m`` uniform p-values of a clean record outrank a
flip that one detector sees clearly and others see a little; the detectors whose contribution-level
test found something in the batch weigh twice the others. The detectors share features, so the score
ranks records and is not itself a calibrated p-value (the flags are).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special, stats

from dataward.domain.schema import Schema
from dataward.gates.base import Detector, DetectorResult, Evidence, Requirement, registered
from dataward.gates.calibration import betabinom_tail, binomial_p_value, fdr_confirmed, lowest_level, p_text
from dataward.gates.policy import GatePolicy
from dataward.gates.report import NOT_FOR_KIND

_MISSING = {
    Requirement.BASELINE: "needs a trusted baseline distinct from the batch (self-reference mode has none: the "
    "other folds of a poisoned batch carry the same poison)",
    Requirement.VALIDATION: "needs a clean validation set, and none was given",
}


def applies_to_schema(detector: type[Detector], schema: Schema) -> bool:
    """Whether ``detector`` can run on ``schema``'s data at all. A language-model dataset has no class label:
    the label-centric column detectors do not apply, only those made for its kind (their ``applies_to``
    names it); a labelled one, those made for one of its column kinds."""
    kinds = {schema.kind.value} if schema.is_llm else {c.kind.value for c in schema.inputs}
    return bool(set(detector.applies_to) & kinds)


def select_detectors(
    policy: GatePolicy, schema: Schema, *, has_baseline: bool, has_validation: bool, no_validation: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """Detectors to run and the ones skipped with the reason (a column kind or a declared requirement missing;
    ``no_validation`` says why there is no validation set when one was given but none of it is left)."""
    available = registered()
    names = list(policy.detectors) or sorted(available)
    present = {Requirement.BASELINE: has_baseline, Requirement.VALIDATION: has_validation}
    run, skipped = [], {}
    for name in names:
        cls = available[name]
        missing = [r for r in sorted(cls.requires) if not present.get(r, True)]
        if not applies_to_schema(cls, schema):
            what = f"{schema.kind.value} datasets" if schema.is_llm else "the schema's columns"
            skipped[name] = f"{NOT_FOR_KIND}{', '.join(sorted(cls.applies_to))}; not to {what}"
        elif missing == [Requirement.VALIDATION] and no_validation is not None:
            skipped[name] = no_validation
        elif missing:
            skipped[name] = _MISSING[missing[0]]
        else:
            run.append(name)
    return run, skipped


def flagging_detectors(names: list[str]) -> int:
    """How many of ``names`` flag records by p-value: they share the policy's alpha."""
    available = registered()
    return sum(1 for n in names if available[n].flags_records)


OTHER_WEIGHT = 0.5
"""Weight of a detector's per-record evidence in the combined score when the batch gave it no evidence of
its own while another detector's contribution-level test did (``leading_detectors``). Chosen on the tuning
attacks at seeds 0 to 2 among 0.4, 0.5, 0.6 and 0.75 (docs/benchmarks.md, "Label flips at five seeds; the
combined score led by the batch's evidence")."""


def asks_for_review(block: bool, p_value: float, m: int, policy: GatePolicy) -> bool:
    """Whether a detector's contribution-level result (``block``, ``p_value``) is itself a reason of the
    verdict: it asks for a block, or its p-value is below ``review_p`` after the ``m``-detector correction."""
    return bool(block) or p_value * m < policy.review_p


def leading_detectors(results: dict[str, DetectorResult], policy: GatePolicy) -> set[str]:
    """The detectors whose contribution-level test found something in this batch (``asks_for_review``):
    they lead the records' combined score."""
    m = max(len(results), 1)
    return {name for name, r in results.items() if asks_for_review(r.block, r.p_value, m, policy)}


def combine_records(
    results: dict[str, DetectorResult], n: int, leading: set[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Combined suspicion score and flag of every record.

    The score is Fisher's combination ``T = -2 sum_d w_d log p_d`` over the ``m`` detectors that ran,
    read against its law under independent null p-values: ``1 - F(T)``. With every weight 1 (no detector
    leads, or all do), ``F`` is the chi-square law with ``2m`` degrees of freedom, exactly. When some
    detectors' contribution-level tests found something in this batch (``leading``), the others weigh
    ``OTHER_WEIGHT``: a screen, then the records, as in hierarchical testing. A batch whose label flips
    ``label_consistency`` counted is ranked by that evidence before the mild oddities ``backdoor`` or
    ``outliers`` find in clean records; a batch with no finding is ranked by plain Fisher. ``F`` is then
    the exact law of the weighted sum (``weighted_fisher_sf``). Measured against Zaykin's truncated
    product, rank-truncated products, the Cauchy combination, weights or Lancaster degrees of freedom by
    declared evidence, and batch-estimated likelihood ratios (beta-uniform mixture, Grenander density),
    none ranked as well on every tuning attack (docs/benchmarks.md, "Combining the detectors' per-record
    p-values"). The flag is the union of the detectors' own flags at their share of alpha: the weights
    move no flag and no verdict.
    """
    if not results:
        return np.zeros(n), np.zeros(n, dtype=bool)
    names = list(results)
    stacked = np.vstack([results[name].p_values for name in names])
    lead = set(leading or ()) & set(names)
    weights = np.array([1.0 if not lead or name in lead else OTHER_WEIGHT for name in names])
    statistic = -2.0 * (weights[:, None] * np.log(np.clip(stacked, 1e-300, 1.0))).sum(axis=0)
    full = int((weights == 1.0).sum())
    combined = weighted_fisher_sf(statistic, full, len(names) - full, OTHER_WEIGHT)
    flagged = np.vstack([r.flagged for r in results.values()]).any(axis=0)
    return np.clip(1.0 - combined, 0.0, 1.0), flagged


def weighted_fisher_sf(statistic: np.ndarray, full: int, weighted: int, weight: float) -> np.ndarray:
    """``P(T > statistic)`` for ``T = X_1 + ... + X_full + weight (Y_1 + ... + Y_weighted)``, every ``X`` and
    ``Y`` chi-square with 2 degrees of freedom (``-2 log p`` of an independent uniform p-value), exactly.

    ``T`` is a sum of two gamma variables of rates ``1/2`` and ``1/(2 weight)``; its survival function is
    the partial-fraction expansion of their product's Laplace transform, term by term a regularized upper
    incomplete gamma function (a hypoexponential law). With one of the counts 0 it is the chi-square law.
    """
    statistic = np.asarray(statistic, dtype=np.float64)
    if weighted == 0 or weight == 1.0:
        return stats.chi2.sf(statistic, 2 * (full + weighted))
    if full == 0:
        return stats.chi2.sf(statistic / weight, 2 * weighted)
    total = np.zeros_like(statistic)
    rates = ((full, 0.5), (weighted, 0.5 / weight))
    for (own, rate), (other, other_rate) in (rates, rates[::-1]):
        scale = rate**own * other_rate**other
        for k in range(1, own + 1):
            j = own - k
            # Coefficient of (s + rate)^-k in the expansion; its term's survival is Q(k, rate t) / rate^k.
            rising = math.prod(range(other, other + j))
            coefficient = scale * (-1) ** j * rising / math.factorial(j) * (other_rate - rate) ** (-other - j)
            total += coefficient * rate**-k * special.gammaincc(k, rate * statistic)
    return np.clip(total, 0.0, 1.0)


def queued_flags(results: dict[str, DetectorResult], n: int, flag_fdr: float | None) -> np.ndarray:
    """The flagged records that go to the review queue: each record-flagging detector's flags that
    survive ``calibration.fdr_confirmed`` at ``flag_fdr``, and every flag of the detectors that flag
    only on evidence (a trigger's carriers, a blocked cluster's members). ``None``: every flag."""
    if not results:
        return np.zeros(n, dtype=bool)
    if flag_fdr is None:
        return np.vstack([r.flagged for r in results.values()]).any(axis=0)
    available = registered()
    by_p_value = [name for name, r in results.items() if available[name].flags_records and r.alpha is not None]
    # Each of the m detectors checks at flag_fdr / m: the queue's clean records are at most the sum of
    # theirs and it holds at least each detector's share, so its false discovery rate stays below
    # flag_fdr (the same split as alpha's).
    share = flag_fdr / max(len(by_p_value), 1)
    queued = np.zeros(n, dtype=bool)
    for name, r in results.items():
        if name in by_p_value:
            queued |= fdr_confirmed(
                r.p_values, r.flagged, float(r.alpha or 0.0), r.n_calibration, share, r.flagged_by_rule
            )
        else:
            queued |= r.flagged
    return queued


BLOCK_RULE = "{detector}:block"
"""How ``flagged_by`` names a record queued because a detector's block rests on it (``queued_with_blocks``)."""


def queued_with_blocks(results: dict[str, DetectorResult]) -> dict[str, np.ndarray]:
    """The records each blocking detector queues beside its flags (``DetectorResult.queued``), by the rule
    name ``flagged_by`` gives them: the members of a blocking group that detector did not flag. A block whose
    records are not in the queue leaves the reviewer nothing to look at, and an override of it would
    merge them unseen."""
    return {
        BLOCK_RULE.format(detector=name): r.queued
        for name, r in results.items()
        if r.block and r.queued is not None and r.queued.any()
    }


FLAGGED_RECORDS = "flagged records"
"""What :func:`verdict_sources` names when the union of the detectors' flags is itself a reason of the verdict."""


def verdict_sources(results: dict[str, DetectorResult], flagged: np.ndarray, policy: GatePolicy) -> set[str]:
    """What gave :func:`verdict` a reason on this batch: the detectors that block, ask for review or report
    a contribution-level finding, and ``FLAGGED_RECORDS`` when more records are flagged than alpha explains.

    Two reports of the same batch can share a verdict for different reasons (a clean copy reviewed for a
    cluster, a copy with flipped labels reviewed for label consistency); comparing their sources tells
    them apart where comparing verdicts cannot."""
    m = max(len(results), 1)
    available = registered()
    sources = {
        name
        for name, r in results.items()
        if _asks(r, available[name].evidence is Evidence.POISONING, m, policy) or r.contribution_findings
    }
    if _union_p(results, flagged, policy) < policy.review_p:
        sources.add(FLAGGED_RECORDS)
    return sources


def _asks(r: DetectorResult, poisoning: bool, m: int, policy: GatePolicy) -> str | None:
    """What a detector's contribution-level result asks of :func:`verdict`: ``"block"`` (its own typed block),
    ``"block_p"`` (evidence of poisoning below ``block_p``), ``"review"`` (``asks_for_review``), or None."""
    if r.block:
        return "block"
    if poisoning and r.p_value < policy.block_p:
        return "block_p"
    return "review" if asks_for_review(r.block, r.p_value, m, policy) else None


def _union_p(results: dict[str, DetectorResult], flagged: np.ndarray, policy: GatePolicy) -> float:
    calibration_sizes = [r.n_calibration for r in results.values() if r.n_calibration > 0]
    return union_flags_p_value(
        int(flagged.sum()), int(flagged.shape[0]), policy.alpha, min(calibration_sizes, default=0)
    )


def verdict(
    results: dict[str, DetectorResult], flagged: np.ndarray, policy: GatePolicy
) -> tuple[str, list[str], float]:
    """The verdict, its reasons and the union-of-flags p-value."""
    n = int(flagged.shape[0])
    m = max(len(results), 1)
    available = registered()
    reasons_block: list[str] = []
    reasons_review: list[str] = []
    blocked = False
    for name, r in results.items():
        poisoning = available[name].evidence is Evidence.POISONING
        said = _describe(name, r, n)
        asks = _asks(r, poisoning, m, policy)
        if asks == "block":
            if not poisoning:
                raise ValueError(f"detector {name!r} reports difference, not poisoning, and may not block")
            blocked = True
            reasons_block.append(f"{name}: {r.block_reason}")
        elif asks == "block_p":
            blocked = True
            # A bare statistic says nothing its worded contribution-level findings below do not.
            reasons_block.extend([said] if said is not None else [])
        elif asks == "review":
            reasons_review.extend([said] if said is not None else [])
        reasons_review.extend(f"{name}: {f.reason}" for f in r.contribution_findings)
    union_p = _union_p(results, flagged, policy)
    if union_p < policy.review_p:
        reasons_review.append(
            f"{int(flagged.sum())} of {n} records flagged where {policy.alpha * n:.1f} are expected at "
            f"alpha={policy.alpha:g} ({p_text(union_p)})"
        )
    reasons_review = list(dict.fromkeys(reasons_review))
    if blocked:
        return "block", reasons_block + reasons_review, union_p
    if reasons_review:
        return "review", reasons_review, union_p
    return "pass", [], union_p


MIN_TRUSTED_RECORDS = 20
"""The fewest trusted records a contribution is judged against. Below, ``backdoor`` and ``drift`` do not run
(20 is their own floor), ``label_consistency`` and ``outliers`` do not run on a single record and calibrate
on a handful above it, and no detector tells poison from chance: a ``pass`` would vouch for a batch
nothing judged (a one-record baseline passed 30% flipped labels with no reason given)."""


def too_few_trusted(n_trusted: int, results: dict[str, DetectorResult]) -> str | None:
    """The verdict's reason when the baseline holds fewer than ``MIN_TRUSTED_RECORDS`` records (None
    otherwise), naming the detectors that could not run on it (each says why in its summary)."""
    if n_trusted >= MIN_TRUSTED_RECORDS:
        return None
    idle = [name for name, r in results.items() if r.summary.get("skipped")]
    records = "1 record" if n_trusted == 1 else f"{n_trusted} records"
    chance = "calibrate on too few records to tell poison from chance"
    if not idle:
        what = f"the detectors {chance}"
    elif len(idle) == len(results):
        what = "no detector could run on it"
    else:
        names = idle[0] if len(idle) == 1 else f"{', '.join(idle[:-1])} and {idle[-1]}"
        what = f"{names} could not run on it, and the others {chance}"
    return (
        f"the trusted baseline holds only {records}, too few to judge the contribution against (at least "
        f"{MIN_TRUSTED_RECORDS} are needed): {what}. Nothing here shows the batch clean; judge it against more "
        "trusted records (a larger training version or clean validation set)"
    )


def unresolved_alpha(results: dict[str, DetectorResult], rows: Sequence[int] | np.ndarray) -> list[str]:
    """What the record-flagging detectors could not check: a detector calibrated on too few trusted
    records for any single record to reach its alpha (a conformal p-value is at least ``1 / (n + 1)``),
    and, for a detector of poisoning evidence, where more records sit at the lowest p-value any record
    reached than chance puts there, their rows (at most ``MAX_NAMED_ROWS``), for the reviewer to look at.

    A ``pass`` then vouches for the batch as a whole only: against 250 trusted records, five flipped labels
    among a hundred records ranked first and nothing could flag them."""
    available = registered()
    limits = []
    for name, r in results.items():
        n_cal = int(r.n_calibration)
        if not available[name].flags_records or not r.alpha or n_cal <= 0 or r.summary.get("skipped"):
            continue
        if 1.0 / (n_cal + 1.0) <= r.alpha:
            continue
        text = (
            f"{name} cannot flag a single record at alpha={r.alpha:.3g}: it is calibrated on {n_cal} trusted "
            f"records, and one record reaches that alpha only against {math.ceil(1.0 / r.alpha) - 1} or more"
        )
        p = np.asarray(r.p_values, dtype=np.float64)
        # Rows are named for poisoning evidence only: a difference detector's p-values (a minimum over
        # views, per-class calibrations) reach their floor more often than chance on clean new data, and
        # records unlike the baseline are a new source's, not suspects.
        if p.size and available[name].evidence is Evidence.POISONING:
            _, level = lowest_level(p, n_cal)
            lowest = np.flatnonzero(p <= level + 1e-12)
            expected = p.size * level
            if lowest.size > max(expected, 1.0):
                listed = ", ".join(str(int(rows[i])) for i in lowest[:MAX_NAMED_ROWS])
                extra = f" and {lowest.size - MAX_NAMED_ROWS} more" if lowest.size > MAX_NAMED_ROWS else ""
                text += (
                    f"; {lowest.size} records are at its lowest p-value ({level:.2g}), where {expected:.1f} are "
                    f"expected: rows {listed}{extra}"
                )
                # Where that pile is larger than clean records make, the detector flags it together
                # (``calibration.resolution_flags``): said here, so that this line and the reason beside
                # it ("N records flagged") do not read as a contradiction.
                together = int(np.asarray(r.flagged, dtype=bool)[lowest].sum())
                if together:
                    text += f"; {together} of them were flagged together, as more than clean records pile there"
        limits.append(text)
    return limits


def blocking_detectors(results: dict[str, DetectorResult], block_p: float) -> list[str]:
    """The detectors that ask for a block, as the verdict reads them: a ``POISONING`` detector that found
    evidence strong enough to block (``block``), or whose contribution-level p-value is below ``block_p``."""
    available = registered()
    return sorted(
        name
        for name, r in results.items()
        if r.block or (available[name].evidence is Evidence.POISONING and r.p_value < block_p)
    )


MAX_NAMED_ROWS = 20
"""Rows a limit names before "and N more"."""


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
    return betabinom_tail(flagged, n, a, n_calibration + 1 - a)


def _describe(name: str, r: DetectorResult, n: int) -> str | None:
    """The verdict's sentence for a detector's contribution-level test: its worded ``reason``, its top
    finding, or the generic count; None for a bare statistic when worded contribution-level findings of the
    same detector follow (``drift: statistic 0.671`` above the drift it explains said nothing more)."""
    if r.alpha is None:
        if r.reason:
            return f"{name}: {r.reason} ({p_text(r.p_value)})"
        if not r.findings and r.contribution_findings:
            return None
        top = r.findings[0].reason if r.findings else f"statistic {r.statistic:.3g}"
        # A finding's reason usually states its own p-value already; it is not repeated.
        return f"{name}: {top}" if "p=" in top or "p<" in top else f"{name}: {top} ({p_text(r.p_value)})"
    if r.reason and r.summary.get("reason_complete"):
        # The detector's reason names each count with the p-value of its own test (``label_consistency``'s
        # mild evidence): a generic count beside the contribution-level p-value would pair numbers of two tests.
        return f"{name}: {r.reason}"
    counted = r.summary.get("count_test") or {}
    wider = ""
    if counted and not math.isclose(counted["threshold"], r.alpha, rel_tol=0.05):
        wider = (
            f"; {int(counted['count'])} at p<={counted['threshold']:.2g} where {counted['expected']:.1f} are expected"
        )
    said = f"{r.reason}; " if r.reason else ""
    return (
        f"{name}: {said}{int(r.flagged.sum())} of {n} records flagged where {r.expected_flagged:.1f} are expected "
        f"at alpha={r.alpha:.3g}{wider} ({p_text(r.p_value)})"
    )


SEVERITY = {"pass": 0, "review": 1, "block": 2}


def group_summaries(
    groups: dict[str, np.ndarray], flagged: np.ndarray, policy: GatePolicy, ceiling: str = "block"
) -> dict[str, list[dict[str, Any]]]:
    """Per group key and value: records, flagged, binomial p-value against alpha, and a verdict.

    A group's verdict reads its flags alone and is never more severe than ``ceiling``, the batch's own
    verdict: the gate decides about the batch, and a group whose flags alone would say ``block`` in a batch
    the gate reviews (its flags not evidence of poisoning by every detector's rules) is reviewed with it."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key, values in groups.items():
        rows = []
        for value in sorted(set(values.tolist())):
            members = values == value
            count, hits = int(members.sum()), int(flagged[members].sum())
            p = binomial_p_value(hits, count, policy.alpha)
            verdict_ = "block" if p < policy.block_p else "review" if p < policy.review_p else "pass"
            verdict_ = min(verdict_, ceiling, key=SEVERITY.__getitem__)
            rows.append({"key": value, "records": count, "flagged": hits, "p_value": p, "verdict": verdict_})
        out[key] = rows
    return out
