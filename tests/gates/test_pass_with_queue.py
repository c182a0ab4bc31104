"""A ``pass`` verdict can leave records in the review queue (an exact conflict inside the batch is
flagged on its own): the answer of contribute and gate run says so, the verdict stays ``pass``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.domain.schema import Schema
from dataward.service.ward import Ward


def test_a_pass_that_leaves_records_queued_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(490, 3)), columns=["a", "b", "c"])
    frame["label"] = rng.integers(0, 2, 490).astype(str)
    baseline, batch = frame.iloc[:450], frame.iloc[450:].reset_index(drop=True)
    twin = batch.iloc[[0]].assign(label="1" if batch.iloc[0]["label"] == "0" else "0")  # same inputs, other label
    pd.concat([batch, twin], ignore_index=True).to_csv(tmp_path / "batch.csv", index=False)
    baseline.to_csv(tmp_path / "base.csv", index=False)
    ward, _ = Ward.init(tmp_path / "ward")
    ward.create_dataset("d", Schema.parse("label", ["a:numeric", "b:numeric", "c:numeric"]))
    ward.set_policy("d", "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  seed: 0\n")
    first = ward.contribute("d", tmp_path / "base.csv", source="s1")
    assert first["gate"]["queued_for_review"] == 0 and "verdict_note" not in first["gate"]
    ward.merge(first["ref"])
    ward.promote("d@v1")

    monkeypatch.setenv("DATAWARD_WARD", str(ward.folder))
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    runner = CliRunner()
    submitted = runner.invoke(app, ["contribute", "d", str(tmp_path / "batch.csv"), "--source", "s2", "--json"])
    assert submitted.exit_code == 0, submitted.stdout  # the verdict is still pass
    gate = json.loads(submitted.stdout)["gate"]
    assert gate["verdict"] == "pass" and gate["queued_for_review"] == 2
    assert gate["verdict_note"] == "pass, 2 records queued for review"
    shown = runner.invoke(app, ["gate", "run", "d#2"])
    assert shown.exit_code == 0 and "pass, 2 records queued for review" in shown.stdout
