"""A label no trusted record carries ('benigm' for 'benign', or a new class) is named by file row and
waits in the review queue for a reviewer's decision; no detector's flags or p-values change (issue: a
typo'd label went to review with an empty queue, and one approval merged it into training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataward.domain.errors import Conflict
from dataward.gates import scan
from dataward.gates.new_labels import QUEUED_BY, rows_text, unknown_label_mask
from tests.gates.conftest import FOUR_COLUMN_SCHEMA, four_column_cancer
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_training_ward, write_csv

SCHEMA = FOUR_COLUMN_SCHEMA


_cancer = four_column_cancer


def test_the_mask_marks_labels_no_trusted_record_has() -> None:
    assert unknown_label_mask(np.array([0, 1, 1]), np.array([1, 2, 0, 2]), 3).tolist() == [False, True, False, True]
    assert rows_text([3, 9]) == "3, 9"
    assert rows_text(list(range(25))).endswith("... (5 more)")


def test_a_mistyped_label_is_named_by_row_and_queued_without_changing_any_detector() -> None:
    data = _cancer()
    baseline, batch, validation = data.iloc[:300], data.iloc[300:330].copy(), data.iloc[400:]
    clean = scan(baseline, batch, SCHEMA, validation, {"seed": 0})
    typo = batch.index[6]
    batch.loc[typo, "label"] = "benigm"
    report = scan(baseline, batch, SCHEMA, validation, {"seed": 0})

    assert report.verdict == "review", report.reasons
    row = int(report.records.rows[6])
    reason = next(r for r in report.reasons if "wait" in r and "benigm" in r)
    assert f"'benigm' (file row {row})" in reason and "review accept --contribution" in reason
    assert any(f"'benigm' (1) at file row {row}" in r for r in report.reasons)
    queued = np.asarray(report.records.flagged, dtype=bool)
    assert queued[6] and queued.sum() == 1 + np.asarray(clean.records.flagged).sum()
    record = report.to_dict()["records"][6]
    assert record["flagged"] and QUEUED_BY in record["flagged_by"]
    finding = next(f for f in report.findings if f["detector"] == QUEUED_BY)
    assert finding["row"] == row and "benigm" in finding["reason"]
    # The detectors themselves judge the other records as before: no flag, no p-value moved there.
    for name, result in report.results.items():
        before = clean.results[name]
        keep = np.arange(len(batch)) != 6
        assert (np.asarray(result.flagged)[keep] == np.asarray(before.flagged)[keep]).all(), name
        assert not np.asarray(result.flagged)[6] or name != "label_consistency"


def test_in_a_ward_the_record_waits_for_a_decision_and_a_new_class_is_accepted_as_a_group(tmp_path: Path) -> None:
    ward = wine_training_ward(tmp_path, NO_APPROVALS_POLICY, 120)
    rows = wine_rows(120, 150, shuffled=True)
    for row in rows[:4]:
        row["cultivar"] = 7  # a class no trusted record has
    out = ward.contribute("wine", write_csv(tmp_path / "b.csv", rows), source="b", gate=True)
    items = ward.review_list(contribution=out["ref"])
    assert len(items) == 4 and all("label '7'" in i["reason"] for i in items), items
    assert all(QUEUED_BY in i["detectors"] for i in items)
    assert out["gate"]["queued_for_review"] == 4
    with pytest.raises(Conflict, match="await review"):
        ward.merge(out["ref"])
    ward.create_principal("rev")
    ward.grant("rev", "reviewer", "dataset:wine")
    reviewer = ward.as_key(ward.issue_key("rev")["key"])
    decided = reviewer.review_decide([], "accept", reason="a new cultivar", contribution=out["ref"])
    assert len(decided) == 4
    assert ward.review_list(contribution=out["ref"]) == []
    assert ward.merge(out["ref"])["records"] == 150
