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
from sklearn.datasets import load_wine

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
