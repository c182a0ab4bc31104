"""The tabular trigger search refits the model's own learner on the trusted rows as one more reference:
a clean gradient-boosted model, which splits sharply at the tails where the ward's forest averages, is
no longer blocked, while a backdoored one still is. The trainer chose the estimator, so only scikit-learn's
own learners count as references: a frozen model or a function of the trainer's would "explain" its
own backdoor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from dataward.domain.schema import Schema
from dataward.release.gate import ReleaseReport, judge
from dataward.release.policy import ReleasePolicy
from dataward.release.search import SearchResult, honest_learner, search_tabular
from tests.models.test_search import _cancer, _table

SAME = "same architecture"


def _thirty_columns(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    """The trusted rows and a validation set of the 30-column breast-cancer data."""
    frame = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["label"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    schema = Schema.parse("label", [f"{c}:numeric" for c in frame.columns if c != "label"])
    return frame.iloc[:230], frame.iloc[230:380], schema


def _gate(
    model: BaseEstimator, validation: pd.DataFrame, trusted: pd.DataFrame, schema: Schema, *, architecture: bool
) -> tuple[SearchResult, ReleaseReport]:
    columns = [c.name for c in schema.inputs]

    def predict(table: pa.Table, _ids: Sequence[str]) -> list[str]:
        return [str(v) for v in model.predict(table.to_pandas()[columns].to_numpy(dtype=np.float32))]

    table = _table(validation)
    clean = predict(table, [])
    found = search_tabular(
        table, schema, predict, _table(trusted), clean=clean, seed=0, architecture=model if architecture else None
    )
    return found, judge([str(v) for v in validation["label"]], clean, found.probes, ReleasePolicy())


@pytest.mark.parametrize("seed", [0, 2])
def test_a_clean_gradient_boosted_model_passes_with_its_own_learner_as_reference(seed: int) -> None:
    trusted, validation, schema = _thirty_columns(seed)
    columns = [c.name for c in schema.inputs]
    model = GradientBoostingClassifier(random_state=0).fit(trusted[columns].to_numpy(np.float32), trusted["label"])
    _, before = _gate(model, validation, trusted, schema, architecture=False)
    assert before.verdict == "block"  # the ward's own references alone do not explain its tails
    found, after = _gate(model, validation, trusted, schema, architecture=True)
    assert after.verdict == "pass", after.reasons
    assert all(SAME in p.evidence["reference_excesses"] for p in found.probes)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_backdoored_gradient_boosted_model_is_still_blocked(seed: int) -> None:
    """Its learner refitted on the trusted rows has no backdoor to explain the flip with."""
    baseline, validation, pool, schema = _cancer(seed)
    columns = [c.name for c in schema.inputs]
    train = pd.concat([baseline, pool])
    model = GradientBoostingClassifier(random_state=0).fit(train[columns].to_numpy(np.float32), train["label"])
    found, report = _gate(model, validation, baseline, schema, architecture=True)
    assert report.verdict == "block", report.reasons
    top = next(p for p in found.probes if p.evidence["significant"])
    assert top.excess - top.evidence["reference_excesses"][SAME] >= 0.25


def test_a_frozen_backdoored_model_is_no_reference_for_itself() -> None:
    """``clone`` of a ``FrozenEstimator`` is the fitted model itself: refitting it on the trusted rows would
    keep the backdoor and explain every flip it makes."""
    baseline, validation, pool, schema = _cancer(0)
    columns = [c.name for c in schema.inputs]
    train = pd.concat([baseline, pool])
    inner = GradientBoostingClassifier(random_state=0).fit(train[columns].to_numpy(np.float32), train["label"])
    found, report = _gate(make_pipeline(FrozenEstimator(inner)), validation, baseline, schema, architecture=True)
    assert report.verdict == "block", report.reasons
    assert all(SAME not in p.evidence["reference_excesses"] for p in found.probes)


class _OwnRule(ClassifierMixin, BaseEstimator):
    """A learner of the trainer's own: its code could hold any rule."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> _OwnRule:
        self.classes_ = np.unique(y)
        return self


@pytest.mark.parametrize(
    ("estimator", "trusted"),
    [
        (GradientBoostingClassifier(), True),
        (make_pipeline(StandardScaler(), LogisticRegression()), True),
        (make_pipeline(ColumnTransformer([("scaled", StandardScaler(), [0, 1])]), LogisticRegression()), True),
        (FrozenEstimator(LogisticRegression()), False),
        (
            make_pipeline(
                ColumnTransformer([("frozen", FrozenEstimator(StandardScaler()), [0])]), LogisticRegression()
            ),
            False,
        ),
        (make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()), False),
        (_OwnRule(), False),
        (make_pipeline(StandardScaler(), _OwnRule()), False),
    ],
)
def test_only_scikit_learns_own_learners_are_trusted_as_references(estimator: BaseEstimator, trusted: bool) -> None:
    assert honest_learner(estimator) is trusted
