"""The figures are right on cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import attacks
from benchmarks.metrics import (
    attack_success_rate,
    auroc,
    downstream,
    measured,
    recall_at_fpr,
    record_metrics,
)
from benchmarks.peers import peer_verdict


def test_perfect_and_inverted_rankings():
    poison = np.array([True, True, False, False, False, False])
    assert auroc(np.array([9, 8, 1, 2, 3, 4]), poison) == 1.0
    assert auroc(np.array([0, 0, 1, 2, 3, 4]), poison) == 0.0
    assert recall_at_fpr(np.array([9, 8, 1, 2, 3, 4]), poison, 0.01) == 1.0
    assert recall_at_fpr(np.array([0, 0, 1, 2, 3, 4]), poison, 0.05) == 0.0


def test_recall_at_fpr_on_a_worked_example():
    # 100 clean records scored 0..99 and 10 poisoned ones. At 1% FPR one clean record (99) may be
    # flagged: the best threshold flags 99.5, 99 and 98.5, i.e. 2 of 10 poisoned. At 5% FPR the clean
    # records 95..99 may be flagged: the threshold drops to 94.5 and catches 94.5 .. 99.5, 5 of 10.
    clean = np.arange(100, dtype=float)
    poisoned = np.array([50.5, 90.5, 91.5, 92.5, 93.5, 94.5, 95.5, 97.5, 98.5, 99.5])
    scores = np.concatenate([clean, poisoned])
    poison = np.r_[np.zeros(100, bool), np.ones(10, bool)]
    assert recall_at_fpr(scores, poison, 0.01) == pytest.approx(0.2)
    assert recall_at_fpr(scores, poison, 0.05) == pytest.approx(0.5)


def test_ties_are_not_split_to_flatter_a_method():
    poison = np.array([True, False, False, False] * 25)
    scores = np.ones(100)  # every record tied: any threshold flags all clean records or none
    assert recall_at_fpr(scores, poison, 0.05) == 0.0
    assert auroc(scores, poison) == 0.5


def test_precision_recall_and_fpr_at_the_methods_threshold():
    poison = np.array([True, True, False, False, False])
    flags = np.array([True, False, True, False, False])
    m = record_metrics(np.array([0.9, 0.1, 0.8, 0.2, 0.3]), flags, poison)
    assert m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["fpr"] == pytest.approx(1 / 3)
    assert m["flagged"] == 2
    none = record_metrics(np.zeros(5), np.zeros(5, bool), poison)
    assert math.isnan(none["precision"]) and none["recall"] == 0.0


def test_metrics_without_poison_are_nan_not_a_false_figure():
    m = record_metrics(np.arange(4.0), np.array([True, False, False, False]), np.zeros(4, bool))
    assert math.isnan(m["auroc"]) and math.isnan(m["recall_at_1pct_fpr"])
    assert m["fpr"] == 0.25


def test_attack_success_rate():
    assert attack_success_rate(np.array(["0", "0", "3", "0"]), "0") == 0.75
    assert math.isnan(attack_success_rate(np.array(["1"]), None))
    assert math.isnan(attack_success_rate(None, "0"))


def test_peer_contribution_rule_compares_with_the_baseline_rate():
    baseline = np.r_[np.ones(10, bool), np.zeros(90, bool)]  # peer flags 10% of the baseline
    same = np.r_[np.ones(5, bool), np.zeros(45, bool)]
    more = np.r_[np.ones(20, bool), np.zeros(30, bool)]
    assert peer_verdict(same, baseline)[0] == "pass"
    verdict, reasons = peer_verdict(more, baseline)
    assert verdict == "review" and "20/50" in reasons[0]


def test_downstream_removing_the_poison_removes_the_backdoor():
    case = attacks.build("tabular_trigger", seed=0)
    dirty = downstream(case, np.ones(len(case.poison), bool))
    clean = downstream(case, ~case.poison)
    assert dirty["kept_poison"] == case.poison.sum() and clean["kept_poison"] == 0
    assert dirty["attack_success"] > 0.5 > clean["attack_success"]
    assert clean["clean_accuracy"] > 0.85


def test_measured_reports_time_and_memory():
    result, cost = measured(lambda: np.ones(2_000_000).sum())
    assert result == 2_000_000
    assert cost.seconds >= 0 and cost.peak_mb >= 15  # a 16 MB array was allocated
