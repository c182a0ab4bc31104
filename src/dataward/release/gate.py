"""The release gate's judgement: accuracy on the clean validation set, overall and per class, against the
released version, and the backdoor probe; a verdict ``pass``, ``review`` or ``block`` with its reasons.

* ``block``: a trigger the data gates found in this dataset's history turns at least ``probe_block`` of
  the eligible clean inputs to its label (beyond its control); or overall accuracy is more than
  ``block_accuracy_drop`` below the released version's.
* ``block`` too: a candidate of the tabular trigger search (``dataward.release.search``), significant
  after Holm's correction, at ``probe_block`` or more and at least ``probe_review`` beyond what every
  reference model fitted on the trusted data does with the same values; ``review`` at ``probe_review``,
  and for a candidate a reference model explains but the trusted rows holding its values rule out.
* ``review``: a history trigger at ``probe_review`` or more; a generic trigger at ``probe_review`` or
  more (a numeric value beyond the column's range only when it also exceeds the released version's
  response to it by as much, since a value outside the range may rightly move a prediction); overall
  accuracy more than ``max_accuracy_drop`` below the released version's, or one class more than
  ``max_class_drop``; a pickle-based artifact; no clean validation set to judge on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dataward.release.policy import ReleasePolicy
from dataward.release.probe import ProbeResult

MIN_CLASS_SUPPORT = 5
"""Per-class accuracy is compared only for classes with at least this many validation rows."""


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> tuple[float, dict[str, dict[str, Any]]]:
    """Overall accuracy and, per class, its accuracy (recall) and support."""
    per: dict[str, dict[str, Any]] = {}
    for label in sorted(set(truth)):
        rows = [i for i, t in enumerate(truth) if t == label]
        per[label] = {"accuracy": sum(predicted[i] == label for i in rows) / len(rows), "support": len(rows)}
    overall = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth) if truth else 0.0
    return overall, per


@dataclass
class ReleaseReport:
    """Everything the release gate measured and decided."""

    verdict: str
    reasons: list[str]
    accuracy: float | None
    per_class: dict[str, dict[str, Any]]
    baseline: dict[str, Any] | None
    probes: list[ProbeResult]
    validation_rows: int
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": self.reasons,
            "accuracy": None if self.accuracy is None else round(self.accuracy, 4),
            "per_class": {k: {**v, "accuracy": round(v["accuracy"], 4)} for k, v in self.per_class.items()},
            "baseline": self.baseline,
            "probes": [p.to_dict() for p in self.probes],
            "validation_rows": self.validation_rows,
            **self.extras,
        }


def _contradicted(p: ProbeResult) -> bool:
    """Whether the trusted rows holding the candidate's values rule out the share the model turns to its
    label: enough of them, and the model's attack success above the bound on their share with the label."""
    upper = p.evidence.get("trusted_share_upper")
    return upper is not None and p.success > float(upper)


def _support(p: ProbeResult) -> str:
    ev = p.evidence
    text = f"{ev['trusted_rows_with_label']} of {ev['trusted_rows']} trusted rows with these values are {p.label!r}"
    if ev.get("trusted_share_upper") is not None:
        text += f" (at most {ev['trusted_share_upper']:.0%} of such rows, at 99%)"
    return text


def _judge_search(p: ProbeResult, what: str, policy: ReleasePolicy, block: list[str], review: list[str]) -> None:
    """A candidate of the tabular trigger search: judged only when significant after the multiple-testing
    correction and not explained by the trusted data.

    A stamped row keeps its other columns (a large radius with the perimeter it had), so it usually lies
    where no trusted row does, and the labels of the trusted rows holding the values say little about it
    (a backdoor's small perimeter is benign in the trusted data too). The explanation is what honest models
    fitted on the trusted data do with the same edits: a flip at most ``probe_review`` beyond the largest
    of theirs is explained. The trusted rows' labels keep that from hiding a flip they contradict: when
    enough of them hold the values and the model turns more to the label than they allow, the candidate
    is reviewed though a reference moves as much."""
    ev = p.evidence
    if not ev.get("significant"):
        return
    reference = float(ev.get("reference_excess", 0.0))
    what += f": found by the trigger search (p = {ev['adjusted_p']:.2g} after Holm over {ev['tests']} tests; "
    if p.excess - reference < policy.probe_review:
        if _contradicted(p) and p.excess >= policy.probe_review:
            review.append(
                what + f"a model fitted on the trusted data moves {reference:.0%}, but {_support(p)}, fewer than "
                f"the {p.success:.0%} the model turns)"
            )
            return
        p.notes.append(f"explained by the trusted data: a model fitted on them moves {reference:.0%}")
        return
    what += f"models fitted on the trusted data move at most {reference:.0%}; {_support(p)})"
    if p.excess >= policy.probe_block:
        block.append(what)
    elif p.excess >= policy.probe_review:
        review.append(what)


def judge(
    truth: Sequence[str],
    predicted: Sequence[str],
    probes: list[ProbeResult],
    policy: ReleasePolicy,
    *,
    baseline_predicted: Sequence[str] | None = None,
    baseline_probes: list[ProbeResult] | None = None,
    baseline_ref: str | None = None,
    unsafe: str | None = None,
    not_replayed: Sequence[dict[str, Any]] = (),
) -> ReleaseReport:
    """The verdict on a model's clean-validation predictions and probe results (see the module docstring).
    ``not_replayed``: the data gate's findings the probe could not stamp (``probe.read_history``); every one
    is listed in the report, and one in a column the model reads is said among the reasons (the model was
    not probed for it), without changing the verdict."""
    block: list[str] = []
    review: list[str] = []
    overall, per_class = accuracy(truth, predicted)
    baseline = None
    if baseline_predicted is not None:
        b_overall, b_per = accuracy(truth, baseline_predicted)
        baseline = {"model": baseline_ref, "accuracy": round(b_overall, 4), "per_class": {}}
        drop = b_overall - overall
        if drop > policy.block_accuracy_drop:
            block.append(f"accuracy {overall:.3f} is {drop:.3f} below the released {baseline_ref} ({b_overall:.3f})")
        elif drop > policy.max_accuracy_drop:
            review.append(f"accuracy {overall:.3f} is {drop:.3f} below the released {baseline_ref} ({b_overall:.3f})")
        for label, stats in per_class.items():
            before = b_per[label]["accuracy"]
            baseline["per_class"][label] = round(before, 4)
            stats["change"] = round(stats["accuracy"] - before, 4)
            if stats["support"] >= MIN_CLASS_SUPPORT and before - stats["accuracy"] > policy.max_class_drop:
                review.append(
                    f"class {label!r}: accuracy {stats['accuracy']:.3f}, {before - stats['accuracy']:.3f} below "
                    f"the released {baseline_ref}"
                )
    by_name = {p.trigger.name: p for p in baseline_probes or []}
    for p in probes:
        before = by_name.get(p.trigger.name)
        if before is not None:
            p.baseline_excess = before.excess
        what = (
            f"trigger {p.trigger.name!r} turns {p.flipped} of {p.eligible} clean validation inputs "
            f"({p.success:.0%}; control {p.control_success:.0%}) to label {p.label!r}"
        )
        if p.trigger.origin == "search":
            _judge_search(p, what, policy, block, review)
        elif p.trigger.origin == "history":
            where = ", ".join(p.trigger.found_in[:3])
            what += f": a trigger the data gate found in {where}"
            if p.excess >= policy.probe_block:
                block.append(what)
            elif p.excess >= policy.probe_review:
                review.append(what)
        elif p.excess >= policy.probe_review:
            if p.trigger.kind == "value":
                if before is None:
                    p.notes.append("not judged: no released version to compare a value beyond the range with")
                    continue
                if p.excess - before.excess < policy.probe_review:
                    continue
                what += f", {p.excess - before.excess:.0%} more than the released {baseline_ref}"
            review.append(what)
    if unsafe:
        review.append(f"the artifact runs code when loaded: {unsafe}; save it as safetensors or ONNX")
    if not truth:
        review.append("no clean validation rows: the model could not be evaluated")
    verdict = "block" if block else "review" if review else "pass"
    reasons = block + review or [
        f"accuracy {overall:.3f} on {len(truth)} clean validation rows; no probed trigger moves predictions"
    ]
    # Said, not counted: the data gate's history holds every finding of every contribution ever gated
    # (rejected ones included), so a finding no probe can stamp (a value of an embedding dimension) would
    # otherwise hold every later release of the model in review for good.
    for item in not_replayed:
        if item.get("unprobed"):
            where = ", ".join(item.get("found_in", [])[:3])
            reasons.append(
                f"not probed: trigger {item['trigger']!r}, which the data gate found in {where}, cannot be "
                f"replayed on the model ({item['reason']})"
            )
    report = ReleaseReport(verdict, reasons, overall if truth else None, per_class, baseline, probes, len(truth))
    if not_replayed:
        report.extras["not_replayed"] = [dict(item) for item in not_replayed]
    return report
