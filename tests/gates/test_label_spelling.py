"""A trusted label written differently ('1.0' for '1', 'BENIGN' for 'benign') is read as that label by
every detector and named in the verdict's reasons; a label no trusted record has is a new class, not a
contradiction (issue: a CSV written from floats was blocked, every record flagged)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from benchmarks.attacks import build
from dataward.gates import scan
from dataward.gates.label_spelling import respelled, spelling

SCHEMA = {"label": "label", "inputs": {"a": "numeric", "b": "numeric", "c": "numeric", "e": "numeric"}}


@cache
def _cancer() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 30]]
    frame.columns = ["a", "b", "c", "e", "label"]
    frame = frame.sample(frac=1, random_state=0).reset_index(drop=True)
    frame["label"] = frame["label"].astype(str)
    return frame


def _sides() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    data = _cancer()
    return data.iloc[:350].copy(), data.iloc[350:390].copy(), data.iloc[400:].copy()


def test_spellings_of_one_label() -> None:
    assert {spelling(v) for v in ("1", "1.0", "+1", "1e0", " 1 ", "１")} == {"1"}
    assert spelling("BENIGN") == spelling("benign ") != spelling("malignant")
    assert spelling("0.5") == spelling(".50") != spelling("0.05")
    assert spelling("nan") == "nan" and spelling("inf") == "inf"
    assert respelled({"0", "1"}, {"0", "1.0", "2.0", "cat"}) == {"1.0": "1"}
    # A spelling two trusted labels share names neither: '1.0' could be either.
    assert respelled({"1", "01"}, {"1.0"}) == {}


def test_a_batch_of_labels_written_as_decimals_is_judged_as_the_trusted_classes() -> None:
    baseline, batch, validation = _sides()
    batch["label"] = batch["label"].map(lambda v: f"{float(v):.1f}")
    report = scan(baseline, batch, SCHEMA, validation, {"seed": 0})
    assert report.verdict == "review", report.reasons
    assert not np.asarray(report.records.flagged).any()
    reason = next(r for r in report.reasons if "write trusted labels differently" in r)
    assert "'1.0'" in reason and "read as '1'" in reason and "'0.0'" in reason
    # The same batch as the baseline writes it: nothing to say.
    plain = scan(baseline, _sides()[1], SCHEMA, validation, {"seed": 0})
    assert not any("differently" in r for r in plain.reasons)


def test_a_label_no_trusted_record_has_is_a_new_class_not_a_contradiction() -> None:
    baseline, batch, validation = _sides()
    batch.loc[batch.index[:12], "label"] = "2"  # a class the trusted data never had
    report = scan(baseline, batch, SCHEMA, validation, {"seed": 0})
    assert report.verdict != "block", report.reasons
    new = np.asarray(batch["label"] == "2")
    assert not np.asarray(report.results["label_consistency"].flagged)[new].any()
    assert any("labels no trusted record has" in r and "'2' (12)" in r for r in report.reasons)


@pytest.mark.parametrize("name", ["tabular_trigger", "targeted_flips"])
def test_respelling_the_poisoned_records_labels_changes_nothing(name: str) -> None:
    """The attacker's side: a backdoor or a flip whose target is written 'BENIGN' or '1.0' would be a
    class of its own to every detector, while a pipeline that lower-cases labels or reads them as
    numbers trains on the target."""
    case = build(name, 0)
    poison = np.asarray(case.poison, dtype=bool)
    label = case.schema.label
    verdicts, queues = [], []
    for respell in (False, True):
        batch = case.contribution.copy()
        batch[label] = batch[label].astype(str)
        if respell:
            written = batch.loc[poison, label]
            batch.loc[poison, label] = written.map(lambda v: f"{float(v):.1f}" if v.isdigit() else v.upper())
            assert (batch.loc[poison, label] != written).all()
        report = scan(case.baseline, batch, case.schema, case.validation, {"seed": 0})
        verdicts.append(report.verdict)
        queues.append(np.asarray(report.records.flagged, dtype=bool))
    assert verdicts[0] == verdicts[1] == "block"
    assert (queues[0] == queues[1]).all() and queues[1][poison].sum() >= 0.4 * poison.sum()


def test_records_without_labels_have_no_spelling() -> None:
    """Language-model data has no label column: its labels are None, and nothing is aliased."""
    assert respelled({None, "1"}, {None, "1.0"}) == {"1.0": "1"}  # type: ignore[arg-type]
    assert respelled({None}, {None}) == {}  # type: ignore[arg-type]
