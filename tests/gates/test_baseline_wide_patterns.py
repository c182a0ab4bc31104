"""A pattern most *trusted* records of every class carry is no trigger either (triggers version 15).

A new user's clean source that sends only one class (54 genuine '7's from scikit-learn's digits, against
1,000 trusted digits) was blocked: the blank top-right corner ('0 <= px15 < 4.01 and 0 <= px7 < 3.02') that
990 of the 1,000 trusted digits hold sat in 50 of the 54 sevens, all labelled '7', against the baseline's
9% of '7' among its carriers. The batch's 4 other records were too few to read the batch's class shares
from, and with nearly every trusted record a carrier, content had no record without the pattern to read
the carriers by. Every trusted class carries the corner, so a model sees it with every label: no batch's
carriers can teach it one. The source now goes to review (drift names the class shares), nothing queued.

The attacker's side: records relabelled in a batch, whatever common pattern they share with the trusted
records, are still blocked and queued (``label_consistency`` reads their content), and a rare pattern
added to them is still a trigger.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from dataward.gates import scan
from dataward.gates.report import GateReport

COLUMNS = [f"px{i}" for i in range(64)]
SCHEMA = {"label": "label", "inputs": {c: "numeric" for c in COLUMNS}}


@cache
def parts(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Trusted baseline (1,000), clean validation (300) and a pool (the rest), shuffled at ``seed``."""
    digits = load_digits()
    frame = pd.DataFrame(digits.data.astype(int), columns=COLUMNS)
    frame["label"] = digits.target.astype(str)
    frame = frame.iloc[np.random.default_rng(seed).permutation(len(frame))].reset_index(drop=True)
    return frame.iloc[300:1300], frame.iloc[:300], frame.iloc[1300:].reset_index(drop=True)


@cache
def sevens(seed: int) -> GateReport:
    base, validation, pool = parts(seed)
    return scan(base, pool[pool["label"] == "7"], SCHEMA, validation, {"seed": seed})


@pytest.mark.parametrize("seed", [7, 0, 1])
def test_a_clean_source_of_one_digit_is_not_blocked(seed: int) -> None:
    report = sevens(seed)
    triggers = report.results["triggers"]
    assert not triggers.block, triggers.block_reason
    assert report.verdict == "review", report.reasons
    assert not np.asarray(report.records.flagged).any()


def _blocked_and_queued(batch: pd.DataFrame, poisoned: int, at_least: int) -> GateReport:
    """``batch`` (its last ``poisoned`` records poisoned) scanned against digits: blocked, at least
    ``at_least`` of the poisoned records queued, and clean records no more than the queue's promised
    share (``flag_fdr``, 0.2)."""
    base, validation, _ = parts(7)
    report = scan(base, batch, SCHEMA, validation, {"seed": 7})
    assert report.verdict == "block", report.reasons
    queued = np.flatnonzero(np.asarray(report.records.flagged))
    assert int((queued >= len(batch) - poisoned).sum()) >= at_least
    assert int((queued < len(batch) - poisoned).sum()) <= 0.2 * len(queued)
    return report


def test_relabelled_records_sharing_a_common_pattern_are_still_blocked() -> None:
    _, _, pool = parts(7)
    ones = pool[pool["label"] == "1"].head(30).assign(label="7")
    _blocked_and_queued(pd.concat([pool[pool["label"] == "7"], ones], ignore_index=True), 30, 27)


def test_a_patch_on_relabelled_records_of_a_one_class_source_is_still_blocked() -> None:
    """Two corner pixels no trusted digit lights, on 0s and 3s sent as '7' among genuine sevens."""
    _, _, pool = parts(7)
    poisoned = pool[pool["label"].isin(["0", "3"])].head(24).assign(label="7", px0=16, px56=16)
    _blocked_and_queued(pd.concat([pool[pool["label"] == "7"], poisoned], ignore_index=True), 24, 22)
