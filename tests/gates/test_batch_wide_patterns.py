"""A pattern most records of every class carry is the batch's, not a trigger (triggers version 9).

A hospital whose image-analysis software does not compute one measurement exports it as 0 for every
case: every record of the batch falls in a value bin that only three (malignant) trusted records reach.
Read against the baseline, that bin looked tied to 'benign' (107 of 171 carriers), and ``triggers``
blocked the batch and queued all of it. Each class's own records carry the bin, so no model learns
from it to give one label: it is drift, which ``drift`` reports, and the batch goes to review.

The attacker's side: a sender who leaves the other class out of the batch leaves the pattern tested as
before, and relabelled records hidden among the zero-filled ones are still blocked.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from dataward.gates import scan
from dataward.gates.report import GateReport

SCHEMA_LABEL = "label"
DEAD = "mean_fractal_dimension"


@cache
def cancer() -> pd.DataFrame:
    raw = load_breast_cancer(as_frame=True)
    frame = raw.frame.rename(columns={"target": SCHEMA_LABEL})
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame[SCHEMA_LABEL] = frame[SCHEMA_LABEL].map({0: "malignant", 1: "benign"})
    return frame


def schema() -> dict:
    columns = [c for c in cancer().columns if c != SCHEMA_LABEL]
    return {"label": SCHEMA_LABEL, "inputs": {c: "numeric" for c in columns}}


def parts(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Baseline (40%), clean validation (10%) and a pool (the rest), shuffled at ``seed``."""
    frame = cancer().sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n = len(frame)
    return frame[: int(0.4 * n)], frame[int(0.4 * n) : int(0.5 * n)], frame[int(0.5 * n) :].reset_index(drop=True)


@cache
def zero_filled(seed: int) -> GateReport:
    base, validation, pool = parts(seed)
    batch = pool.copy()
    batch[DEAD] = 0.0
    return scan(base, batch, schema(), validation, {"seed": seed})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_column_exported_as_zero_by_every_record_is_no_trigger(seed: int) -> None:
    report = zero_filled(seed)
    triggers = report.results["triggers"]
    assert not triggers.block, triggers.block_reason
    assert any(DEAD in name for name in triggers.summary["batch_wide"])
    assert report.verdict == "review"
    assert DEAD in " ".join(report.reasons)  # drift names the column that moved
    assert int(np.asarray(report.records.flagged).sum()) <= 3


def test_poison_among_the_zero_filled_records_is_still_blocked() -> None:
    """The same export, plus 20 malignant records relabelled benign with a smoothness error no trusted
    record reaches: the batch is still blocked, on the relabelled records, and the zero bin is named
    nowhere as a reason."""
    seed = 0
    base, validation, pool = parts(seed)
    batch = pool.copy()
    batch[DEAD] = 0.0
    rng = np.random.default_rng(seed)
    poison_rows = rng.choice(np.flatnonzero(batch[SCHEMA_LABEL] == "malignant"), 20, replace=False)
    batch.loc[poison_rows, ["smoothness_error", SCHEMA_LABEL]] = [1.5 * base["smoothness_error"].max(), "benign"]
    report = scan(base, batch, schema(), validation, {"seed": seed})
    assert report.verdict == "block"
    assert not report.results["triggers"].block
    truth = np.zeros(len(batch), dtype=bool)
    truth[poison_rows] = True
    score = np.asarray(report.records.score)
    # The poisoned records lead the combined ranking: most of them above every clean record but a few.
    assert int((score[truth] > np.quantile(score[~truth], 0.97)).sum()) >= 15


def test_a_sender_who_leaves_the_other_class_out_gets_the_pattern_tested() -> None:
    """A batch of benign records only, the column zeroed, with malignant records relabelled benign: no
    other class of the batch carries the bin, so it is tested as before, and the batch is blocked."""
    seed = 1
    base, validation, pool = parts(seed)
    benign = pool[pool[SCHEMA_LABEL] == "benign"]
    flipped = pool[pool[SCHEMA_LABEL] == "malignant"].head(20).assign(**{SCHEMA_LABEL: "benign"})
    batch = pd.concat([benign, flipped], ignore_index=True)
    batch[DEAD] = 0.0
    report = scan(base, batch, schema(), validation, {"seed": seed})
    assert not report.results["triggers"].summary["batch_wide"]
    assert report.verdict == "block"
