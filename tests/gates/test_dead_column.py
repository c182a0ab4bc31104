"""A column that holds one value for every record of the batch (a measurement a lab does not take,
exported as 0) is undone to one value by ``backdoor``'s sensor change, and explains a class it moved.

Wine from a lab that did not run the magnesium assay: every record's magnesium is 0, where the trusted
records of each class spread around 87 to 106. The column moved each class by its own amount, and
'class_0' read wholesale as 'class_1'; as no gain can undo a column that lost its information, the
class was unexplained and the batch blocked (an outside trial: 8 of 10 seeds). Undone, the column
holds one value for every record, which favours no class: records then read as their label on the
other columns, and the batch goes to review. Relabelled records sent through the same export still
read as the class they came from, and are still blocked.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from benchmarks.outside_trial import CASES, split, tabular
from dataward.gates import scan
from dataward.gates.report import GateReport

LABEL = "label"
DEAD = "magnesium"


@cache
def wine() -> pd.DataFrame:
    raw = load_wine(as_frame=True)
    frame = raw.frame.rename(columns={"target": LABEL})
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    frame[LABEL] = frame[LABEL].map(lambda t: f"class_{t}")
    return frame


def schema() -> dict:
    return {"label": LABEL, "inputs": {c: "numeric" for c in wine().columns if c != LABEL}}


def parts(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Baseline (40%), clean validation (10%) and a pool (the rest), stratified, at ``seed``."""
    rng = np.random.default_rng(seed)
    picks: list[list[int]] = [[], [], []]
    for _, rows in wine().groupby(LABEL).groups.items():
        order = rng.permutation(np.asarray(rows))
        cut = [int(0.4 * order.size), int(0.5 * order.size)]
        for part, chunk in zip(picks, np.split(order, cut), strict=True):
            part.extend(chunk.tolist())
    return tuple(wine().loc[sorted(p)].reset_index(drop=True) for p in picks)  # type: ignore[return-value]


@cache
def exported(seed: int) -> GateReport:
    base, validation, pool = parts(seed)
    batch = pool.assign(**{DEAD: 0.0})
    return scan(base, batch, schema(), validation, {"seed": seed})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_column_exported_as_zero_is_undone_to_one_value_and_the_batch_is_reviewed(seed: int) -> None:
    report = exported(seed)
    backdoor = report.results["backdoor"]
    assert not backdoor.block, backdoor.block_reason
    change = backdoor.summary["sensor_change"]
    assert change is not None and f"one value for every record in {DEAD}" in change["description"]
    assert report.verdict == "review"


def test_records_relabelled_through_the_same_export_are_still_blocked() -> None:
    """Every 'class_2' record of the batch sent as 'class_0', magnesium exported as 0 for all: undone, the
    column favours no class, and the relabelled records still read as 'class_2' on the others."""
    seed = 0
    base, validation, pool = parts(seed)
    batch = pool.assign(**{DEAD: 0.0})
    moved = batch[LABEL] == "class_2"
    batch.loc[moved, LABEL] = "class_0"
    report = scan(base, batch, schema(), validation, {"seed": seed})
    assert report.verdict == "block"
    assert report.results["backdoor"].block or report.results["label_consistency"].block


# Breast cancer has two classes, too few for a majority's gain and offset; a column that holds one value
# for every batch record needs no vote, and is undone alone. The cases are the outside trial's own.


@pytest.mark.parametrize(("case", "seed"), [("bc_other_column_zero", 7), ("wine_magnesium_zero", 7)])
def test_a_lab_that_exports_unmeasured_columns_as_zero_is_reviewed(case: str, seed: int) -> None:
    """Three symmetry measures exported as 0 by a breast-cancer lab (two classes); wine's magnesium at a
    seed where 18 'class_0' records spread nearly three times their 23 trusted ones in malic acid, a column
    the change never touched. Both were blocked by ``backdoor``."""
    base, validation, batch, case_schema = CASES[case](seed)
    report = scan(base, batch, case_schema, validation, {"seed": seed})
    backdoor = report.results["backdoor"]
    assert not backdoor.block, backdoor.block_reason
    assert "one value for every record in" in backdoor.summary["sensor_change"]["description"]
    assert report.verdict == "review"


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(
            0,
            marks=pytest.mark.xfail(
                strict=True,
                reason="a known gap, before the columns were undone too: neither backdoor's count in 'benign' "
                "nor label_consistency's (12 of the 20 flagged, queued) is beyond what blocks; the batch is "
                "reviewed, not blocked",
            ),
        ),
        1,
        7,
    ],
)
def test_two_classes_relabelled_through_the_same_export_are_still_blocked(seed: int) -> None:
    """The same lab's batch with 20 malignant records sent as 'benign': undone, the three columns favour
    neither class, and the relabelled tumours still read as malignant on the other 27."""
    base, validation, batch, case_schema = CASES["bc_other_column_zero"](seed)
    malignant = np.flatnonzero((batch["label"] == "malignant").to_numpy())[:20]
    batch.loc[malignant, "label"] = "benign"
    report = scan(base, batch, case_schema, validation, {"seed": seed})
    assert report.verdict == "block"
    assert report.results["backdoor"].block or report.results["label_consistency"].block


@pytest.mark.parametrize("seed", [1, 2])
def test_zeroing_the_columns_that_separate_the_classes_does_not_carry_relabelled_records(seed: int) -> None:
    """An attacker who exports the three columns that tell malignant from benign best as 0 for the whole
    batch, and sends 20 malignant records as 'benign': undone, those columns say nothing, the rest still
    reads as malignant, and no relabelled record is excused. (At seed 0 the same batch is reviewed with or
    without the undoing: the split's first 20 malignant batch records sit near the boundary.)"""
    frame, case_schema = tabular(load_breast_cancer)
    base, validation, batch, _ = split(frame, seed)
    batch = batch.copy()
    for column in ("worst_concave_points", "worst_perimeter", "worst_radius"):
        batch[column] = 0.0
    malignant = np.flatnonzero((batch["label"] == "malignant").to_numpy())[:20]
    batch.loc[malignant, "label"] = "benign"
    report = scan(base, batch, case_schema, validation, {"seed": seed})
    assert report.verdict == "block"
    change = report.results["backdoor"].summary["sensor_change"]
    assert change is not None and change["excused"] == 0


def test_label_consistency_reads_the_columns_the_batch_carries() -> None:
    """The same 20 relabelled tumours at seed 0: with the three unmeasured columns left in, every record
    sat seven standard deviations from the trusted ones, the batch read as new content, and
    ``label_consistency`` held its evidence (p = 1, nothing queued). Fitted again without them, it flags
    the relabelled records, and they go to the review queue."""
    seed = 0
    base, validation, batch, case_schema = CASES["bc_other_column_zero"](seed)
    malignant = np.flatnonzero((batch["label"] == "malignant").to_numpy())[:20]
    batch.loc[malignant, "label"] = "benign"
    report = scan(base, batch, case_schema, validation, {"seed": seed})
    consistency = report.results["label_consistency"]
    assert consistency.summary["columns_left_out"] == ["mean_symmetry", "symmetry_error", "worst_symmetry"]
    assert consistency.p_value < 1e-3
    assert consistency.flagged[malignant].sum() >= 10
    assert consistency.flagged.sum() - consistency.flagged[malignant].sum() <= 2
