"""The attacker's side of backdoor's rule that only a class's finest count may block (docs/gates.md).

Version 7 let only records misread beyond the class's finest threshold block in a class that moved as a
whole (its records that are not misread at 10% read as another class beyond what a fifth of them could
make them, ``MOVED_CLASS_SHARE``); version 8 does so in every class, because a record at the edge of its
class is the first that any change of lens, sensor or pipeline tips over. Here the attacker sends
'temple_garden' crops relabelled 'temple_sky', chosen with the trusted baseline's own scores (white-box)
to be misread at 2% but not at the finest threshold (1/241), so the finest count never sees them.

Measured (seed 0, 20 relabelled crops, no patch): beside the pool's own sky crops the 2% count is strong
(20 misread, 2.8 expected, p=5.3e-5): versions 6 and 7 blocked it, version 8 reviews it with every
relabelled crop named. Beside chosen clean sky crops (p-values in (0.1, 0.6], which make the class "move"
with no sensor at all) the first cut of version 7 *passed* it; it is reviewed with the crops named. The
same with a benign-looking change: every crop through the tuning set's warmer white balance and 15
borderline garden crops relabelled sky (blocked by version 6; reviewed now, the crops named). What the
rule must never give away is a silent pass, and the crops must all be named for the reviewer.
"""

from __future__ import annotations

from functools import cache
from unittest import mock

import numpy as np
import pandas as pd

from benchmarks import data
from benchmarks.data import LABEL
from benchmarks.shifts.base import map_images
from benchmarks.shifts.tuning import WHITE_BALANCE
from dataward.gates import scan
from dataward.gates.detectors import backdoor as bd
from dataward.gates.report import GateReport

SEED = 0
TARGET = "temple_sky"
SOURCE = "temple_garden"
POISON = 20


def _label_p_values(baseline: pd.DataFrame, frame: pd.DataFrame, schema, validation) -> tuple[np.ndarray, np.ndarray]:
    """backdoor's own label-check p-values and scores of ``frame``'s records under their given labels
    (what an attacker with a good surrogate of the trusted set can estimate)."""
    seen: dict[str, np.ndarray] = {}
    original = bd.BackdoorDetector._score

    def spy(self, contribution, records):
        seen["p"], _ = self._label_p_values(records["label_score"], contribution.labels)
        seen["score"] = records["label_score"]
        return original(self, contribution, records)

    with mock.patch.object(bd.BackdoorDetector, "_score", spy):
        scan(baseline, frame, schema, validation, {"seed": SEED, "detectors": ["backdoor"]}, workers=1)
    return seen["p"], seen["score"]


def _borderline_gardens(
    baseline: pd.DataFrame, src: np.ndarray, p: np.ndarray, score: np.ndarray, count: int
) -> np.ndarray:
    """The poison: ``count`` garden crops (``src`` their true classes) misread as skies at 2% but not at
    the finest threshold (``p``, ``score``: backdoor's reading of them labelled sky), most sky-like first."""
    finest = 1.0 / (int((baseline[LABEL] == TARGET).sum()) + 1)
    border = np.flatnonzero((src == SOURCE) & (p > finest + 1e-9) & (p <= 0.02) & (score > 0))
    return border[np.argsort(-p[border])][:count]


@cache
def _case() -> dict:
    ds = data.load_photos()
    split = data.split(ds, SEED)
    cands = pd.concat([split.pool, split.test], ignore_index=True)
    src = cands[LABEL].to_numpy()
    in_pool = np.arange(len(cands)) < len(split.pool)
    as_target = cands.copy()
    as_target[LABEL] = TARGET
    p, score = _label_p_values(split.baseline, as_target, ds.schema, split.validation)
    poison_rows = _borderline_gardens(split.baseline, src, p, score, POISON)
    assert poison_rows.size == POISON
    sky = np.flatnonzero(src == TARGET)
    return {
        "split": split,
        "schema": ds.schema,
        "cands": cands,
        "others": np.setdiff1d(np.flatnonzero((src != TARGET) & in_pool), poison_rows),
        "poison_rows": poison_rows,
        "natural_sky": np.flatnonzero((src == TARGET) & in_pool),
        "chosen_sky": sky[(p[sky] > 0.1) & (p[sky] <= 0.6)],
    }


@cache
def _judged(sky_kind: str) -> tuple[GateReport, np.ndarray]:
    c = _case()
    poisoned = c["cands"].iloc[c["poison_rows"]].copy()
    poisoned[LABEL] = TARGET
    contribution = pd.concat([c["cands"].iloc[c["others"]], c["cands"].iloc[c[sky_kind]], poisoned], ignore_index=True)
    poison = np.r_[np.zeros(len(contribution) - len(poisoned), bool), np.ones(len(poisoned), bool)]
    order = np.random.default_rng(0).permutation(len(contribution))
    contribution = contribution.iloc[order].reset_index(drop=True)
    split = c["split"]
    report = scan(split.baseline, contribution, c["schema"], split.validation, {"seed": SEED}, workers=1)
    return report, poison[order]


def test_borderline_relabelled_crops_beside_the_natural_sky_crops_are_reviewed_with_every_crop_named() -> None:
    """The control: the class did not move; the 2% count is significant (the finest is not), so the batch
    is reviewed, never passed, and every relabelled crop is named."""
    report, poison = _judged("natural_sky")
    assert report.verdict == "review", report.reasons
    result = report.results["backdoor"]
    assert not result.block
    assert not result.summary["classes"][TARGET].get("class_moved", False)
    group = next(g for g in result.summary["groups"] if g["label"] == TARGET)
    assert group["coarse_only"] and group["count_p"] < 1e-3, group
    assert set(np.flatnonzero(poison).tolist()) <= _named_rows(report)
    assert any("finest threshold" in reason for reason in report.reasons)


def _named_rows(report: GateReport) -> set[int]:
    """0-based positions of the records ``backdoor``'s findings name (their evidence gives 1-based rows)."""
    result = report.results["backdoor"]
    return {
        row - 1
        for finding in [*result.findings, *result.contribution_findings]
        for row in (finding.evidence or {}).get("rows", [])
    }


def test_choosing_which_clean_sky_crops_to_send_cannot_pass_the_same_poison() -> None:
    """The attack: only clean, unmodified sky crops with p in (0.1, 0.6] beside the same poison. The class
    counts as moved, so the 2% count cannot block; it must still send the batch to review with every
    relabelled crop named (the first cut of version 7 passed it)."""
    report, poison = _judged("chosen_sky")
    group = next(g for g in report.results["backdoor"].summary["groups"] if g["label"] == TARGET)
    assert group["class_moved"] and group["coarse_only"], group
    assert report.verdict == "review", report.reasons
    assert set(np.flatnonzero(poison).tolist()) <= _named_rows(report)
    assert any("moved as a whole" in reason for reason in report.reasons)


def _white_balance(pixels: np.ndarray) -> np.ndarray:
    return pixels * np.asarray(WHITE_BALANCE)


@cache
def _judged_white_balance(count: int) -> GateReport:
    """The pool through the white balance, ``count`` garden crops (of the pool and test parts) misread as
    skies through it at 2% but not at the finest threshold relabelled 'temple_sky'."""
    c = _case()
    split = c["split"]
    cands = map_images(c["cands"], _white_balance)
    src = c["cands"][LABEL].to_numpy()
    as_target = cands.copy()
    as_target[LABEL] = TARGET
    p, score = _label_p_values(split.baseline, as_target, c["schema"], split.validation)
    rows = _borderline_gardens(split.baseline, src, p, score, count)
    in_pool = np.arange(len(cands)) < len(split.pool)
    others = np.setdiff1d(np.flatnonzero((src != TARGET) & in_pool), rows)
    poisoned = cands.iloc[rows].copy()
    poisoned[LABEL] = TARGET
    contribution = pd.concat([cands.iloc[others], cands.iloc[c["natural_sky"]], poisoned], ignore_index=True)
    contribution = contribution.iloc[np.random.default_rng(0).permutation(len(contribution))].reset_index(drop=True)
    return scan(split.baseline, contribution, c["schema"], split.validation, {"seed": SEED}, workers=1)


def test_a_white_balance_with_borderline_relabelled_crops_is_reviewed_with_the_crops_named() -> None:
    """Reviewed (version 6 blocked it), with backdoor naming the 'temple_sky' records the 2% count found."""
    report = _judged_white_balance(15)
    assert report.verdict == "review", report.reasons
    group = next(g for g in report.results["backdoor"].summary["groups"] if g["label"] == TARGET)
    assert group["coarse_only"] and group["contribution_count"] >= 15, group
