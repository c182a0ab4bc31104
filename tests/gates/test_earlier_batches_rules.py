"""How a joint scan's report moves a batch's verdict (``dataward.gates.earlier_batches.joined``), on
reports written out by hand: the rules, each branch, without a scan."""

from __future__ import annotations

import copy
from typing import Any

from dataward.gates.earlier_batches import RULE, joined


def _record(row: int, rid: str, flagged_by: list[str]) -> dict[str, Any]:
    return {"row": row, "record_id": rid, "score": 0.5, "flagged": bool(flagged_by), "flagged_by": flagged_by}


def _report(verdict: str, records: list[dict[str, Any]], blocking: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "verdict": verdict,
        "reasons": [],
        "records": records,
        "findings": [{"detector": "triggers", "row": 3, "reason": "carries 'qx9z' tied to 'commands'"}],
        "counts": {"flagged": sum(r["flagged"] for r in records)},
        "detectors": {"triggers": {"block": "triggers" in blocking}, "drift": {"block": "drift" in blocking}},
    }


BATCH = [_record(2, "b1", []), _record(3, "b2", [])]
EARLIER = {"e1": "man#2", "e2": "man#2"}


def test_a_joint_block_on_this_batchs_records_blocks_it_and_queues_them() -> None:
    joint = _report(
        "block",
        [_record(2, "b1", []), _record(3, "b2", ["triggers"]), _record(4, "e1", ["triggers"]), _record(5, "e2", [])],
        ("triggers",),
    )
    out = joined(_report("pass", copy.deepcopy(BATCH)), joint, ["b1", "b2"], EARLIER)
    assert out["verdict"] == "block"
    assert [r["record_id"] for r in out["records"] if r["flagged"]] == ["b2"]
    assert out["records"][1]["flagged_by"] == [RULE] and out["counts"]["flagged"] == 1
    [finding] = [f for f in out["findings"] if f["detector"] == RULE]
    assert finding["row"] == 3 and "man#2" in finding["reason"] and "qx9z" in finding["reason"]
    assert out["earlier_batches"] == {
        "contributions": ["man#2"],
        "records": 2,
        "verdict": "block",
        "blocked_by": ["triggers"],
        "flagged": {"man#2": 1},
    }


def test_a_record_a_block_rests_on_counts_as_flagged_by_the_blocking_detector() -> None:
    joint = _report("block", [_record(2, "b1", ["backdoor:block"]), _record(4, "e1", ["backdoor"])])
    joint["detectors"]["backdoor"] = {"block": True}
    out = joined(_report("review", copy.deepcopy(BATCH)), joint, ["b1", "b2"], EARLIER)
    assert out["verdict"] == "block" and out["records"][0]["flagged"]


def test_a_joint_block_on_earlier_records_alone_reviews_this_batch() -> None:
    joint = _report("block", [_record(2, "b1", ["drift"]), _record(4, "e1", ["triggers"])], ("triggers",))
    out = joined(_report("pass", copy.deepcopy(BATCH)), joint, ["b1", "b2"], EARLIER)
    assert out["verdict"] == "review"
    assert not any(r["flagged"] for r in out["records"])
    assert "none of this batch's" in out["reasons"][-1] and "1 of man#2" in out["reasons"][-1]


def test_a_batch_blocked_alone_stays_blocked() -> None:
    joint = _report("block", [_record(4, "e1", ["triggers"])], ("triggers",))
    out = joined(_report("block", copy.deepcopy(BATCH)), joint, ["b1", "b2"], EARLIER)
    assert out["verdict"] == "block"


def test_anything_short_of_a_joint_block_changes_nothing() -> None:
    joint = _report("review", [_record(2, "b1", ["drift"]), _record(4, "e1", ["drift"])])
    before = _report("pass", copy.deepcopy(BATCH))
    out = joined(copy.deepcopy(before), joint, ["b1", "b2"], EARLIER)
    assert {k: v for k, v in out.items() if k != "earlier_batches"} == before
    assert out["earlier_batches"]["blocked_by"] == [] and out["earlier_batches"]["verdict"] == "review"


def test_poison_in_earlier_batches_already_rejected_or_quarantined_asks_for_nothing_more() -> None:
    joint = _report("block", [_record(2, "b1", []), _record(4, "e1", ["triggers"])], ("triggers",))
    out = joined(_report("pass", copy.deepcopy(BATCH)), joint, ["b1", "b2"], EARLIER, settled=["man#2"])
    assert out["verdict"] == "pass" and out["reasons"] == []
    assert out["earlier_batches"]["flagged"] == {"man#2": 1}
    # One earlier batch still pending among those the joint scan blames: review.
    mixed = {**EARLIER, "e3": "man#3"}
    joint["records"].append(_record(5, "e3", ["triggers"]))
    out = joined(_report("pass", copy.deepcopy(BATCH)), joint, ["b1", "b2"], mixed, settled=["man#2"])
    assert out["verdict"] == "review"


def test_a_joint_block_that_flags_no_record_reviews_the_batch() -> None:
    """A block no record carries (the clean validation set harmed by the batches together) blames no batch
    in particular: this one is reviewed, even when every earlier one was settled."""
    joint = _report("block", [_record(2, "b1", []), _record(4, "e1", [])])
    joint["detectors"]["clean_validation"] = {"block": True}
    out = joined(_report("pass", copy.deepcopy(BATCH)), joint, ["b1", "b2"], EARLIER, settled=["man#2"])
    assert out["verdict"] == "review"
