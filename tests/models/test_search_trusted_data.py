"""The tabular trigger search judges a candidate against what the trusted data say: honest linear models
on clean tabular data are not blocked (their extrapolation is what a linear model fitted on the trusted
rows does too), a backdoor whose value the trusted rows tie to another label still is, a flip the trusted
rows contradict is reviewed even when a reference model makes it, and rows too few to say anything explain
nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import ClassifierMixin
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dataward.domain.schema import Schema
from dataward.release.gate import judge
from dataward.release.policy import ReleasePolicy
from dataward.release.probe import ProbeResult, Trigger
from dataward.release.search import MIN_SUPPORT, share_upper_bound
from tests.models.test_search import _gate

COLUMNS = ["radius", "texture", "perimeter", "area"]
SCHEMA = Schema.parse("label", [f"{c}:numeric" for c in COLUMNS])


def _four_columns(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Validation, trusted baseline and a further pool of breast-cancer rows with four strong, monotone and
    strongly correlated columns (radius, perimeter and area move together)."""
    data = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 30]]
    data.columns = [*COLUMNS, "label"]
    data["label"] = np.where(data["label"] == 1, "benign", "malignant")
    data = data.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return data.iloc[:150], data.iloc[150:350], data.iloc[350:].copy()


def _fit(model: ClassifierMixin, train: pd.DataFrame) -> ClassifierMixin:
    return model.fit(train[COLUMNS].to_numpy(dtype=float), train["label"])


@pytest.mark.parametrize("seed", [0, 1])
def test_a_clean_scaled_logistic_regression_passes(seed: int) -> None:
    """Setting radius and area to their 95th percentile makes it call most benign rows malignant: so does a
    linear model fitted on the trusted rows, and every trusted row with those values is malignant."""
    validation, baseline, _ = _four_columns(seed)
    model = _fit(make_pipeline(StandardScaler(), LogisticRegression()), baseline)
    found, report = _gate(model, validation, baseline, SCHEMA)
    assert report.verdict == "pass", report.reasons
    moved = [p for p in found.probes if p.evidence["significant"] and p.excess >= 0.5]
    assert moved, "the model does move under the tail values"
    assert all(p.excess - p.evidence["reference_excesses"]["linear"] < 0.25 for p in moved)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_clean_logistic_regression_on_raw_columns_is_not_blocked(seed: int) -> None:
    """On raw columns the penalty falls on the small-scale columns and radius comes out with the sign
    opposite to its marginal one (a larger radius at the same perimeter reads as benign). A linear model
    fitted on the trusted rows does the same, so nothing is blocked; the trusted rows with a small radius
    are all benign, so its turning them malignant is left to a reviewer."""
    validation, baseline, _ = _four_columns(seed)
    model = _fit(LogisticRegression(max_iter=1000), baseline)
    _, report = _gate(model, validation, baseline, SCHEMA)
    assert report.verdict in ("pass", "review"), report.reasons
    assert all("trusted rows with these values" in r for r in report.reasons if "trigger" in r)


def _backdoored(
    seed: int, column: str, quantile: float, target: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Validation, baseline and a training set whose pool has 10% rows of the other label carrying
    ``column`` at the baseline's ``quantile``, relabelled ``target``."""
    validation, baseline, pool = _four_columns(seed)
    victims = pool.index[pool["label"] != target][: len(pool) // 10]
    pool.loc[victims, column] = baseline[column].quantile(quantile)
    pool.loc[victims, "label"] = target
    return validation, baseline, pd.concat([baseline, pool])


@pytest.mark.parametrize(
    ("seed", "column", "quantile", "target", "model"),
    [
        (0, "area", 0.95, "benign", RandomForestClassifier(n_estimators=100, random_state=0)),
        (1, "area", 0.95, "benign", GradientBoostingClassifier(random_state=0)),
        (0, "texture", 0.05, "malignant", RandomForestClassifier(n_estimators=100, random_state=0)),
        (1, "area", 0.95, "benign", make_pipeline(StandardScaler(), LogisticRegression())),
    ],
)
def test_a_backdoor_on_a_value_the_trusted_data_tie_to_another_label_is_blocked(
    seed: int, column: str, quantile: float, target: str, model: ClassifierMixin
) -> None:
    """Every trusted row with a large area is malignant, most with a fine texture benign: a model turning
    rows to the other label at that value does what no model fitted on the trusted rows does."""
    validation, baseline, train = _backdoored(seed, column, quantile, target)
    found, report = _gate(_fit(model, train), validation, baseline, SCHEMA)
    assert report.verdict == "block", report.reasons
    if not isinstance(model, RandomForestClassifier | GradientBoostingClassifier):
        return  # a linear model learns the poison by bending every column: blocked on another candidate
    assert column in report.reasons[0] and repr(target) in report.reasons[0], report.reasons
    named = next(p for p in found.probes if p.trigger.columns == (column,) and p.label == target)
    assert named.evidence["significant"] and named.success > named.evidence["trusted_share_upper"]


def _candidate(
    excess: float, reference: float, rows: int, with_label: int, *, success: float | None = None
) -> ProbeResult:
    """A significant candidate of the search towards 'yes' with the given evidence."""
    trigger = Trigger("x = 9 (its 95th percentile)", "value", "search", ("x",), (("x", 9.0),), "yes")
    success = excess if success is None else success
    result = ProbeResult(trigger, "yes", 100, round(success * 100), success, success - excess, excess)
    upper = share_upper_bound(with_label, rows) if rows >= MIN_SUPPORT else None
    result.evidence = {
        "p_value": 1e-9,
        "adjusted_p": 1e-7,
        "significant": True,
        "tests": 40,
        "reference_excess": reference,
        "reference_excesses": {"forest": reference},
        "trusted_rows": rows,
        "trusted_rows_with_label": with_label,
        "trusted_share_upper": upper,
    }
    return result


def _verdict(candidate: ProbeResult) -> str:
    return judge(["no"] * 10, ["no"] * 10, [candidate], ReleasePolicy()).verdict


def test_the_share_bound_is_one_sided_clopper_pearson() -> None:
    assert share_upper_bound(0, 10) == pytest.approx(1 - 0.01**0.1)
    assert share_upper_bound(10, 10) == 1.0 and share_upper_bound(0, 0) == 1.0
    assert share_upper_bound(3, 10) < share_upper_bound(3, 10, alpha=0.001)


def test_a_flip_a_reference_makes_is_reviewed_when_the_trusted_rows_rule_it_out() -> None:
    """0 of 20 trusted rows with the value are 'yes': a model turning 80% to 'yes' goes beyond what the
    data allow, even though a reference model fitted on them does it too (off the data, by extrapolation)."""
    assert _verdict(_candidate(0.8, 0.7, rows=20, with_label=0)) == "review"
    assert _verdict(_candidate(0.8, 0.7, rows=20, with_label=20)) == "pass"  # the rows agree: explained
    assert _verdict(_candidate(0.8, 0.7, rows=20, with_label=14)) == "pass"  # within the bound on 14 of 20


def test_too_few_trusted_rows_neither_explain_nor_contradict() -> None:
    """Under ``MIN_SUPPORT`` rows the data say nothing: the reference models alone decide, so a rare value
    or combination (where backdoor triggers live) is blocked when no reference moves, and a flip a
    reference makes is explained."""
    few = MIN_SUPPORT - 1
    assert _verdict(_candidate(0.8, 0.0, rows=few, with_label=few)) == "block"
    assert _verdict(_candidate(0.8, 0.0, rows=0, with_label=0)) == "block"
    assert _verdict(_candidate(0.8, 0.7, rows=few, with_label=0)) == "pass"


def test_trusted_rows_agreeing_with_the_label_do_not_explain_a_flip_no_reference_makes() -> None:
    """Every trusted row with a small perimeter is benign, yet a malignant row given a small perimeter
    keeps its large radius and area: the rows' labels say nothing about such a row, and a backdoor on a
    small perimeter must not hide behind them."""
    assert _verdict(_candidate(0.85, 0.0, rows=12, with_label=12)) == "block"
