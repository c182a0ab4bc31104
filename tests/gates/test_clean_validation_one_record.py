"""Clean-validation harm must exceed tolerance by more than one validation record to block.

A new-user trial scanned a screening programme's batch (breast cancer, only small tumours, every
diagnosis the true one) against a 57-record clean validation set: one benign record of 36 turned wrong
(1.000 -> 0.972, right/wrong McNemar p=0.5) while the probe grew a little less sure of many (log-loss
Wilcoxon p=4.5e-09), and the batch was blocked as harm beyond tolerance. It is now a review finding that
names the class; a relabelling that costs several records of a class still blocks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.model_selection import train_test_split

from dataward.gates import scan
from dataward.gates.detectors.clean_validation import REVIEW_FLOOR, beyond_one_record, records_to_block


def _table(loader) -> tuple[pd.DataFrame, dict]:
    raw = loader()
    columns = [c.replace(" ", "_").replace("/", "_").replace("(", "").replace(")", "") for c in raw.feature_names]
    frame = pd.DataFrame(np.asarray(raw.data, float), columns=columns)
    frame["label"] = [str(raw.target_names[t]) for t in raw.target]
    return frame, {"label": "label", "inputs": [{"name": c, "kind": "numeric"} for c in columns]}


def _split(frame: pd.DataFrame, seed: int, fractions: tuple[float, float, float, float]) -> list[pd.DataFrame]:
    """Disjoint stratified baseline / clean validation / pool / rest, as the trial drew them."""
    base_f, val_f, pool_f, rest_f = fractions
    rest, test = train_test_split(frame, test_size=rest_f, random_state=1000 + seed, stratify=frame["label"])
    rest, pool = train_test_split(
        rest, test_size=pool_f / (1 - rest_f), random_state=2000 + seed, stratify=rest["label"]
    )
    base, val = train_test_split(
        rest, test_size=val_f / (base_f + val_f), random_state=3000 + seed, stratify=rest["label"]
    )
    return [part.reset_index(drop=True) for part in (base, val, pool, test)]


@pytest.mark.parametrize("seed", [2, 4])
def test_a_screening_batch_of_small_tumours_is_reviewed_not_blocked_on_one_record(seed: int) -> None:
    frame, schema = _table(datasets.load_breast_cancer)
    base, validation, pool, rest = _split(frame, seed, (0.4, 0.1, 0.3, 0.2))
    candidates = pd.concat([pool, rest])
    screened = candidates[candidates["mean_radius"] < base["mean_radius"].quantile(0.4)].reset_index(drop=True)
    report = scan(base, screened, schema, validation=validation, policy={"seed": seed})
    result = report.results["clean_validation"]
    benign = result.summary["per_class"]["benign"]
    # What the trial saw: a drop beyond tolerance resting on one record, with a significant log-loss test.
    assert benign["drop"] > 0.02 and benign["worse"] - benign["better"] == 1 and benign["records"] == 36
    assert benign["p_value"] * 2 <= 0.01 and benign["p_accuracy"] == pytest.approx(0.5)
    assert result.block is False and result.block_reason is None
    assert result.p_value >= REVIEW_FLOOR  # it cannot block through block_p either
    assert report.verdict == "review"
    said = [r for r in report.reasons if r.startswith("clean_validation:") and "'benign'" in r]
    assert said and "no more than one validation record" in said[0] and "review" in said[0], report.reasons


def test_a_relabelling_that_costs_several_records_of_a_class_still_blocks() -> None:
    """30% of a wine batch's class_0 relabelled class_1, judged on 53 clean validation records: the probe
    loses 3 of class_0's 18 (and 4 of 53 overall), beyond tolerance by more than one record, with the
    log-loss test significant. clean_validation is the only detector that blocks it."""
    frame, schema = _table(datasets.load_wine)
    seed = 1
    base, validation, pool, _ = _split(frame, seed, (0.3, 0.3, 0.3, 0.1))
    batch = pool.reset_index(drop=True).copy()
    rng = np.random.default_rng(seed)
    zeros = np.flatnonzero(batch["label"] == "class_0")
    batch.loc[rng.choice(zeros, round(0.3 * zeros.size), replace=False), "label"] = "class_1"
    report = scan(base, batch, schema, validation=validation, policy={"seed": seed})
    result = report.results["clean_validation"]
    assert result.block is True, report.reasons
    assert "'class_0'" in result.block_reason
    assert report.verdict == "block"


def test_one_record_never_decides_a_block() -> None:
    one = {"records": 36, "worse": 1, "better": 0}
    assert not beyond_one_record(one, 0.02)
    assert beyond_one_record({"records": 36, "worse": 2, "better": 0}, 0.02)
    assert not beyond_one_record({"records": 36, "worse": 3, "better": 2}, 0.02)  # net one record
    assert [records_to_block(n) for n in (18, 36, 57, 107, 500)] == [2, 2, 3, 4, 12]
    assert all(
        beyond_one_record({"records": n, "worse": records_to_block(n), "better": 0}, 0.02) for n in (18, 107, 500)
    )
    assert not any(
        beyond_one_record({"records": n, "worse": records_to_block(n) - 1, "better": 0}, 0.02) for n in (18, 107, 500)
    )
