"""The release gate against the released version: overall and per-class accuracy are compared on the clean
validation set, and a model that lost one class is not passed; the thresholds of the judgement."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import skops.io as sio

import dataward
from dataward.release.gate import judge
from dataward.release.policy import ReleasePolicy
from tests.models.conftest import Models, text_model


def test_a_model_that_lost_a_class_is_not_passed_against_the_released_one(models: Models, tmp_path: Path) -> None:
    models.as_("rita").model_gate("man-clf@v1")
    models.as_("ann").approve_model("man-clf@v1", reason="checked")
    models.as_("pat").release_model("man-clf@v1", reason="first release")
    tom = models.as_("tom")
    with dataward.training_run("man@training", model="man-clf", ward=tom) as run:
        frame = run.load()
        # Trained with every 'commands' example relabelled: it never predicts that class.
        frame = frame.assign(label=frame["label"].where(frame["label"] != "commands", "files"))
        sio.dump(text_model(pd.DataFrame(frame)), tmp_path / "worse.skops")
        run.log_artifact(tmp_path / "worse.skops")
    report = models.as_("rita").model_gate("man-clf@v3")
    assert report["baseline"]["model"] == "man-clf@v1"
    commands = report["per_class"]["commands"]
    assert commands["accuracy"] == 0.0 and commands["change"] < -0.5
    assert report["verdict"] in ("review", "block"), report["reasons"]
    assert any("class 'commands'" in r and "below the released man-clf@v1" in r for r in report["reasons"])
    # The released version gated again has no other released version to be compared with, and passes.
    again = models.as_("rita").model_gate("man-clf@v1")
    assert again["baseline"] is None and again["verdict"] == "pass", again["reasons"]


def test_accuracy_thresholds_of_the_judgement() -> None:
    truth = ["a"] * 50 + ["b"] * 50
    released = list(truth)
    policy = ReleasePolicy()  # review beyond 0.02 below, block beyond 0.10, one class beyond 0.10: review

    def verdict(wrong_a: int, wrong_b: int) -> str:
        predicted = ["b"] * wrong_a + ["a"] * (50 - wrong_a) + ["a"] * wrong_b + ["b"] * (50 - wrong_b)
        return judge(truth, predicted, [], policy, baseline_predicted=released, baseline_ref="m@v1").verdict

    assert verdict(0, 0) == "pass"
    assert verdict(1, 0) == "pass"  # 1 point below: within max_accuracy_drop
    assert verdict(3, 0) == "review"  # 3 points overall, 6 in class a
    assert verdict(6, 0) == "review"  # 6 points overall; class a 12 points below: still review
    assert verdict(12, 0) == "block"  # 12 points overall
    report = judge(truth, ["a"] * 100, [], policy, baseline_predicted=released, baseline_ref="m@v1")
    assert report.verdict == "block" and report.per_class["b"]["change"] == -1.0
