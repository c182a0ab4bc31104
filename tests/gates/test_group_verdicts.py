"""A group's verdict (per contribution, source or principal) never says more than the batch's.

A first import with 30% of its labels flipped was reviewed while its one contribution, source and
principal each read ``block`` from their flags alone: the report said two things at once.
"""

from __future__ import annotations

import numpy as np
import pytest

from dataward.gates.gate import group_summaries
from dataward.gates.policy import GatePolicy


@pytest.mark.parametrize(("ceiling", "expected"), [("block", "block"), ("review", "review"), ("pass", "pass")])
def test_a_group_is_never_more_severe_than_the_batch(ceiling: str, expected: str) -> None:
    flagged = np.r_[np.ones(20, bool), np.zeros(48, bool)]  # 20 of 68 flagged at alpha: block on its own
    groups = {"source": np.array(["vendor"] * 68)}
    (row,) = group_summaries(groups, flagged, GatePolicy(), ceiling=ceiling)["source"]
    assert row["flagged"] == 20 and row["p_value"] < GatePolicy().block_p
    assert row["verdict"] == expected


def test_a_clean_group_stays_pass_in_a_blocked_batch() -> None:
    flagged = np.r_[np.ones(20, bool), np.zeros(80, bool)]
    groups = {"source": np.array(["vendor"] * 20 + ["curated"] * 80)}
    rows = {r["key"]: r["verdict"] for r in group_summaries(groups, flagged, GatePolicy(), ceiling="block")["source"]}
    assert rows == {"vendor": "block", "curated": "pass"}
