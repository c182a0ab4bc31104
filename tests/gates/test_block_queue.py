"""A block's records wait in the review queue, flags or not.

``backdoor`` flags a member of a blocking group only when the record's own p-value reaches alpha at its
class's calibration resolution. Against about a hundred trusted digits a class, no p-value can reach the
gate's alpha share (0.01 / 3), so a BadNets batch was blocked with every poisoned record named in the
block's finding and none in the review queue: a reviewer had nothing to look at, and two owners
overriding the block would have merged the poison unseen. The members of a blocking group now wait in
the queue with the block (``DetectorResult.queued``, ``flagged_by`` ``backdoor:block``), and they are
still not flags: the verdict and the per-record false-positive rate count flags only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from dataward.cli.gate_commands import show_report
from dataward.domain.schema import Column, ColumnKind, Schema
from dataward.gates import scan
from dataward.gates.base import DetectorResult
from tests.gates import test_backdoor as backdoor_tests

SCHEMA = Schema("label", tuple(Column(f"p{i}", ColumnKind.NUMERIC) for i in range(64)))
BLOCK_RULE = "backdoor:block"


def _frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({f"p{i}": x[:, i] for i in range(64)})
    frame["label"] = [str(v) for v in y]
    return frame


@pytest.fixture(scope="module")
def digits() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """1,000 trusted digits (about 100 a class) and 500 others to send."""
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    x = data.data.astype(np.float32)
    base, batch = order[:1000], order[1000:1500]
    return _frame(x[base], data.target[base]), x[batch], data.target[batch]


def badnets(x: np.ndarray, y: np.ndarray, count: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``count`` digits other than 0 with a white 3x3 patch in the bottom-right corner, relabelled 0."""
    x, y, truth = backdoor_tests.badnets(x, y, count / len(y))
    return _frame(x, y), truth


@pytest.mark.parametrize("count", [10, 25])
def test_a_block_no_flag_can_name_queues_the_records_it_rests_on(digits, count, capsys) -> None:
    baseline, x, y = digits
    batch, truth = badnets(x, y, count)
    report = scan(baseline, batch, SCHEMA, None, {"seed": 0})
    backdoor = report.results["backdoor"]
    assert report.verdict == "block" and backdoor.block
    # The class's calibration cannot resolve the alpha share: not one record is a backdoor flag...
    assert not backdoor.flagged.any()
    # ... yet the block's finding names the records, and they are the ones in the queue.
    finding = next(f for f in report.findings if f["detector"] == "backdoor" and f["row"] is None)
    named = set(finding["evidence"]["rows"])
    queued = np.asarray(report.records.flagged, dtype=bool)
    by_block = report.records.queued_by[BLOCK_RULE]
    assert set(np.asarray(report.records.rows)[by_block].tolist()) == named
    assert (queued & truth).sum() == count, "every poisoned digit waits for a reviewer"
    assert (queued & ~truth).sum() <= 1
    listed = {r["row"]: r for r in report.records.to_list()}
    for row in named:
        assert listed[row]["flagged"] and BLOCK_RULE in listed[row]["flagged_by"]
    # Each queued record carries the reason a reviewer reads: it is a member of the blocking group.
    reasons = {f["row"]: f["reason"] for f in report.findings if f["detector"] == "backdoor" and f["row"] is not None}
    assert named <= set(reasons) and all("label-inconsistent cluster" in reasons[r] for r in named)
    # Queued, not flagged: the verdict's count of flags at alpha is what it was.
    assert not (report.records.detector_flags["backdoor"]).any()
    as_json = report.to_dict()
    assert as_json["counts"]["flagged"] == int(queued.sum())
    assert as_json["detectors"]["backdoor"]["flagged"] == 0
    assert as_json["detectors"]["backdoor"]["queued"] == len(named)
    # The printed report says so too: "flagged 0" beside a block read as a block that named nothing.
    show_report({**as_json, "contribution": "digits#2"})
    assert f"backdoor v13: flagged 0, {len(named)} more queued with its block" in capsys.readouterr().out
    assert f"0 (+{len(named)} queued with its block)" in report.to_html()


def test_a_clean_batch_queues_nothing_with_a_block_rule(digits) -> None:
    baseline, x, y = digits
    report = scan(baseline, _frame(x, y), SCHEMA, None, {"seed": 0})
    assert report.verdict != "block"
    assert report.results["backdoor"].queued is None
    assert BLOCK_RULE not in report.records.queued_by


def test_only_a_block_may_queue_records_beside_the_flags() -> None:
    n = 4
    queued = np.array([True, False, False, False])
    with pytest.raises(ValueError, match="only a block queues records"):
        DetectorResult("backdoor", "13", np.ones(n), np.zeros(n, bool), queued=queued)
    with pytest.raises(ValueError, match="differ in shape"):
        DetectorResult("backdoor", "13", np.ones(n), np.zeros(n, bool), queued=np.ones(3, bool))
    blocked = DetectorResult(
        "backdoor", "13", np.ones(n), np.zeros(n, bool), block=True, block_reason="a group", queued=queued
    )
    assert blocked.queued.tolist() == queued.tolist()


def test_every_queued_member_has_its_finding_however_many_records_rank_before_it() -> None:
    """A queued member's p-value cannot reach alpha, so records of larger classes rank before it; its
    finding (the reason its review item shows) must not be crowded out by records that are not named."""
    from dataward.gates.base import GateContext, GateData
    from dataward.gates.detectors.backdoor import BackdoorDetector, BackdoorOptions

    detector = BackdoorDetector()
    detector.context_ = GateContext(SCHEMA, ("0", "1"), alpha=0.01)
    detector.opts_ = BackdoorOptions(max_findings=2)
    p_values = np.array([0.001, 0.002, 0.003, 0.009, 0.02])  # the first three are named by nothing
    named = np.array([False, False, False, True, True])
    labels = np.zeros(5, dtype=np.int64)
    x = np.zeros((5, 64), np.float32)
    findings = detector._record_findings(named, p_values, GateData(x, labels, None), 1.0 - p_values)
    assert [f.row for f in findings] == [3, 4]
