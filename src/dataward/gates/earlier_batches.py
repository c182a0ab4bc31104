"""A sender's recent batches judged as one.

A poisoner who knows that a pattern needs a few carriers before any test can tie it to a label (or to an
answer) splits the poison: six records a batch, each batch too small to block, every batch admitted. The
gate judges each batch against the trusted baseline, and once the first batch has been merged and
promoted, its carriers are *in* that baseline and vouch for the next batch's.

A ward therefore judges a batch a second time together with the same sender's earlier batches of the
last ``GatePolicy.earlier_batches_days`` days (the same principal, or the same accountable owner of a
service principal), with those earlier records taken out of the baseline: a sender's own records are
never the trusted witnesses of his next batch. The second scan is the *joint* one; this module folds its
report into the batch's own (``joined``), with these rules:

- the joint scan blocks, and records of *this* batch are among those the blocking detectors flag: the
  batch is blocked, and those records are queued, each naming the earlier batches it was judged with;
- the joint scan blocks on earlier records alone: this batch is not the evidence, so it is not blocked
  (its records are what any other batch of the sender would be judged by); it goes to ``review``, and the
  reason names the earlier batches whose records read as blocked now, unless every one of them has been
  rejected or quarantined already (``settled``): a person decided about them, there is nothing to ask;
- anything short of a joint block changes nothing: a larger batch of one sender drifts or reads as new
  more easily than a small one, and that is not evidence of poisoning (docs/gates.md, "Verdicts").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from dataward.gates.gate import BLOCK_RULE, SEVERITY

RULE = "earlier_batches"
"""The name in a queued record's ``flagged_by`` (and of the findings) when it was queued by the joint scan."""


def _blamed_by(record: Mapping[str, Any], blockers: Collection[str]) -> bool:
    """Whether a record of the joint scan is one a blocking detector flagged (or queued on its block)."""
    names = set(record.get("flagged_by") or ())
    return any(name in names or BLOCK_RULE.format(detector=name) in names for name in blockers)


def summary(joint: Mapping[str, Any] | None, earlier: Mapping[str, str], *, skipped: str | None = None) -> dict:
    """The report's ``earlier_batches`` section: which earlier batches were judged with this one, how many
    of their records, the joint scan's verdict and blocking detectors, and how many records of each earlier
    batch those detectors flagged. ``earlier`` maps an earlier record's id to its contribution."""
    batches = Counter(earlier.values())
    out: dict[str, Any] = {
        "contributions": sorted(batches),
        "records": sum(batches.values()),
    }
    if skipped is not None:
        out["skipped"] = skipped
    if joint is None:
        return out
    blockers = sorted(n for n, d in joint["detectors"].items() if d.get("block"))
    flagged = Counter(
        earlier[r["record_id"]] for r in joint["records"] if r["record_id"] in earlier and _blamed_by(r, blockers)
    )
    out.update({"verdict": joint["verdict"], "blocked_by": blockers, "flagged": dict(sorted(flagged.items()))})
    return out


def joined(
    report: dict[str, Any],
    joint: Mapping[str, Any],
    batch_ids: Collection[str],
    earlier: Mapping[str, str],
    *,
    settled: Collection[str] = (),
) -> dict[str, Any]:
    """``report`` (this batch's own gate report, as ``GateReport.to_dict`` gives it) with the joint scan's
    verdict folded in by the module's rules; ``joint`` is the report of this batch scanned together with
    the earlier records ``earlier`` (record id -> the contribution that sent it), against the baseline
    without them; ``settled`` names the earlier contributions already rejected or quarantined. ``report``
    is changed in place and returned."""
    section = summary(joint, earlier)
    report["earlier_batches"] = section
    blockers = section["blocked_by"]
    if not blockers:
        return report
    batch = set(batch_ids)
    names = ", ".join(section["contributions"])
    blamed = {r["record_id"]: r for r in joint["records"] if r["record_id"] in batch and _blamed_by(r, blockers)}
    why = _reasons_by_row(joint, blockers)
    if not blamed:
        if section["flagged"] and set(section["flagged"]) <= set(settled):
            return report
        report["verdict"] = max(report["verdict"], "review", key=SEVERITY.__getitem__)
        report["reasons"].append(
            f"judged together with the sender's earlier batches ({names}), their records read as poisoned "
            f"({_counted(section['flagged'])} flagged by {', '.join(blockers)}); none of this batch's: review them"
        )
        return report
    report["verdict"] = "block"
    report["reasons"].append(
        f"{len(blamed)} record(s) of this batch, judged together with the sender's earlier batches ({names}, "
        f"{section['records']} records), are blocked by {', '.join(blockers)}: a pattern split across batches"
    )
    for record in report["records"]:
        found = blamed.get(record["record_id"])
        if found is None:
            continue
        if RULE not in record["flagged_by"]:
            record["flagged_by"] = [*record["flagged_by"], RULE]
        record["flagged"] = True
        reason = why.get(int(found["row"])) or "flagged by " + ", ".join(
            b for b in blockers if b in found["flagged_by"]
        )
        report["findings"].append(
            {
                "detector": RULE,
                "row": int(record["row"]),
                "score": float(found["score"]),
                "reason": f"with the sender's earlier batches ({names}): {reason}",
            }
        )
    report["counts"]["flagged"] = sum(1 for r in report["records"] if r["flagged"])
    return report


def _reasons_by_row(joint: Mapping[str, Any], blockers: Collection[str]) -> dict[int, str]:
    """The first reason a blocking detector wrote for each row of the joint scan."""
    out: dict[int, str] = {}
    for f in joint.get("findings") or ():
        if f.get("row") is not None and f.get("detector") in blockers:
            out.setdefault(int(f["row"]), str(f.get("reason", "")))
    return out


def _counted(flagged: Mapping[str, int]) -> str:
    return ", ".join(f"{n} of {ref}" for ref, n in flagged.items()) or "none"


__all__ = ["RULE", "joined", "summary"]
