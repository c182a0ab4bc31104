"""The duplicates detector on a self-referenced first import whose folds hold labels of one record each.

In self-reference mode each fold is judged against the others; with a batch of three records labelled
a, b, b (or a, b, c) some training fold holds one record per label. The leave-one-out neighbour search
keeps neighbours label by label, so no record of such a fold has one: the detector calibrated its near
conflicts on a neighbour column that was not there and the scan failed with an IndexError."""

from __future__ import annotations

import pandas as pd
import pytest

from dataward.domain.schema import Schema
from dataward.gates import scan

SCHEMA = Schema.parse("label", ["x:numeric", "y:numeric"])


def _batch(labels: str) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame(
        {"x": [float(i) for i in range(n)], "y": [float(i * i) for i in range(n)], "label": list(labels)}
    )


@pytest.mark.parametrize("labels", ["ab", "aaa", "abb", "abc", "abcd", "aabc"])
def test_a_tiny_first_import_with_one_record_labels_gets_a_verdict(labels: str) -> None:
    report = scan(None, _batch(labels), SCHEMA, policy={"detectors": ["duplicates"]})
    assert report.mode == "self-reference" and report.verdict in ("pass", "review", "block")
    assert "duplicates" in report.results and "duplicates" not in report.skipped
    assert len(report.results["duplicates"].p_values) == len(labels)


def test_an_exact_conflict_still_counts_where_no_near_conflict_can_be_calibrated() -> None:
    """The near view needs a neighbour to calibrate with; the exact one does not: the same inputs under
    two labels are found in a fold of one record per label all the same."""
    batch = pd.DataFrame({"x": [0.0, 0.0, 5.0], "y": [1.0, 1.0, 7.0], "label": ["a", "b", "c"]})
    report = scan(None, batch, SCHEMA, policy={"detectors": ["duplicates"]})
    p = report.results["duplicates"].p_values
    assert p[0] < 1.0 and p[1] < 1.0 and p[2] == 1.0


def test_a_trusted_baseline_of_one_record_per_label_gets_a_verdict() -> None:
    """The same fold outside self-reference mode: a trusted baseline holding one record of each label."""
    report = scan(_batch("abc"), _batch("abcabc"), SCHEMA, policy={"detectors": ["duplicates"]})
    assert report.mode != "self-reference" and report.verdict in ("pass", "review", "block")
    assert report.to_dict()["detectors"]["duplicates"]["summary"]["exact_copies_of_baseline"] == 3
