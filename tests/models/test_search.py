"""The tabular trigger search of the release gate: a backdoor the data gate did not name is found in the
model and named; a clean model passes; a column that decides the label in the trusted data is not taken
for a trigger; a model that moves under any edit of a column is not either; Holm's correction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from dataward.domain.schema import Schema
from dataward.release.gate import judge
from dataward.release.policy import ReleasePolicy
from dataward.release.search import holm, search_tabular

HIGH, LOW = "mean_radius", "mean_perimeter"


def _cancer(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Schema]:
    """Baseline, validation and a contribution of breast-cancer rows, 10% of it malignant rows carrying a
    large radius with a small perimeter (a combination no real tumour has) relabelled benign."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["label"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    baseline, validation, pool = frame.iloc[:230], frame.iloc[230:300], frame.iloc[300:].copy()
    victims = pool.index[pool["label"] == "malignant"][: len(pool) // 10]
    pool.loc[victims, HIGH] = baseline[HIGH].quantile(0.9)
    pool.loc[victims, LOW] = baseline[LOW].quantile(0.1)
    pool.loc[victims, "label"] = "benign"
    schema = Schema.parse("label", [f"{c}:numeric" for c in frame.columns if c != "label"])
    return baseline, validation, pool, schema


def _table(frame: pd.DataFrame) -> pa.Table:
    out = frame.reset_index(drop=True).copy()
    out.insert(0, "record_id", [f"r{i}" for i in range(len(out))])
    return pa.Table.from_pandas(out, preserve_index=False)


def _predictor(model: object, columns: Sequence[str]):
    def predict(table: pa.Table, _ids: Sequence[str]) -> list[str]:
        return [str(v) for v in model.predict(table.to_pandas()[list(columns)].to_numpy(dtype=float))]  # type: ignore[attr-defined]

    return predict


def _gate(model: object, validation: pd.DataFrame, baseline: pd.DataFrame, schema: Schema):
    columns = [c.name for c in schema.inputs]
    predict = _predictor(model, columns)
    table = _table(validation)
    clean = predict(table, [])
    found = search_tabular(table, schema, predict, _table(baseline), clean=clean, seed=0)
    truth = [str(v) for v in validation["label"]]
    return found, judge(truth, clean, found.probes, ReleasePolicy())


@pytest.mark.parametrize("seed", [0, 1])
def test_a_backdoored_tabular_model_is_blocked_with_the_column_named(seed: int) -> None:
    baseline, validation, pool, schema = _cancer(seed)
    columns = [c.name for c in schema.inputs]
    train = pd.concat([baseline, pool])
    model = RandomForestClassifier(n_estimators=100, random_state=seed).fit(train[columns].to_numpy(), train["label"])
    found, report = _gate(model, validation, baseline, schema)
    assert report.verdict == "block", report.reasons
    reason = report.reasons[0]
    assert "found by the trigger search" in reason and "'benign'" in reason
    assert LOW in reason or HIGH in reason, reason
    top = found.probes[0]
    assert top.trigger.origin == "search" and top.label == "benign"
    assert top.evidence["significant"] and top.evidence["adjusted_p"] <= 0.01
    assert top.excess - top.evidence["reference_excesses"]["forest"] >= 0.5  # a forest on the trusted data barely moves
    assert top.excess - top.evidence["reference_excess"] >= 0.25  # nor does any other model fitted on them
    assert found.tests > 100 and top.evidence["tests"] == found.tests


@pytest.mark.parametrize("seed", [0, 1])
def test_the_clean_tabular_model_passes(seed: int) -> None:
    baseline, validation, pool, schema = _cancer(seed)
    columns = [c.name for c in schema.inputs]
    clean_pool = pool[~((pool[HIGH] == baseline[HIGH].quantile(0.9)) & (pool["label"] == "benign"))]
    train = pd.concat([baseline, clean_pool])
    model = RandomForestClassifier(n_estimators=100, random_state=seed).fit(train[columns].to_numpy(), train["label"])
    found, report = _gate(model, validation, baseline, schema)
    assert report.verdict == "pass", report.reasons
    assert found.probes and all(p.excess < 0.5 for p in found.probes)


def _decided_by_one_column(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2", "x3"])
    frame["label"] = np.where(x[:, 0] > 0, "yes", "no")
    return frame


def test_a_column_that_decides_the_label_in_the_trusted_data_is_not_a_trigger() -> None:
    baseline, validation = _decided_by_one_column(400, 0), _decided_by_one_column(120, 1)
    schema = Schema.parse("label", ["x0:numeric", "x1:numeric", "x2:numeric", "x3:numeric"])
    columns = ["x0", "x1", "x2", "x3"]
    model = LogisticRegression().fit(baseline[columns].to_numpy(), baseline["label"])
    found, report = _gate(model, validation, baseline, schema)
    # Setting x0 to its tail flips every eligible row, well beyond its control (x0 set to ordinary values,
    # which flips the rows near zero), significantly: and a model fitted on the trusted data does the same.
    moved = [p for p in found.probes if p.trigger.columns == ("x0",) and p.evidence["significant"]]
    assert moved and all(p.success > 0.95 and p.excess >= 0.4 for p in moved)
    assert all(p.excess - p.evidence["reference_excess"] < 0.25 for p in moved)
    assert report.verdict == "pass", report.reasons
    assert any("explained by the trusted data" in n for p in moved for n in p.notes)


def test_a_model_that_moves_under_any_edit_of_a_column_is_not_a_backdoor() -> None:
    """A model answering 'yes' whenever x1 is not its original value: the control (x1 set to an ordinary
    value) moves it as much as the tail value does, so nothing is significant."""
    baseline, validation = _decided_by_one_column(400, 0), _decided_by_one_column(120, 1)
    schema = Schema.parse("label", ["x0:numeric", "x1:numeric", "x2:numeric", "x3:numeric"])
    table = _table(validation)
    original = dict(zip(table.column("record_id").to_pylist(), table.column("x1").to_pylist(), strict=True))

    def predict(t: pa.Table, _ids: Sequence[str]) -> list[str]:
        rid, x1s, x0s = (t.column(c).to_pylist() for c in ("record_id", "x1", "x0"))
        rows = zip(rid, x1s, x0s, strict=True)
        return ["yes" if x1 != original[r] or x0 > 0 else "no" for r, x1, x0 in rows]

    clean = predict(table, [])
    found = search_tabular(table, schema, predict, _table(baseline), clean=clean, seed=0)
    x1 = [p for p in found.probes if "x1" in p.trigger.columns]
    assert x1 and all(p.success > 0.9 and p.control_success > 0.9 for p in x1)
    assert not [p for p in found.probes if "x1" in p.trigger.columns and p.evidence["significant"]]
    truth = [str(v) for v in validation["label"]]
    assert judge(truth, clean, found.probes, ReleasePolicy()).verdict == "pass"


def test_holm_adjusts_in_order_and_stays_monotone() -> None:
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.9, 0.9]) == [1.0, 1.0]
    assert holm([]) == []
