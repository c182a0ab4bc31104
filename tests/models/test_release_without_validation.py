"""A model whose datasets have no clean validation set is reviewed, whatever its files: the gate has
nothing to ask it, so it neither needs to run the files nor may it pass the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dataward
from dataward.cli.app import app
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import EMPTY_SAFETENSORS


@pytest.mark.parametrize("kind", ["labelled", "instruction"])
def test_a_model_without_a_validation_set_is_reviewed_from_the_cli(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ward, _ = Ward.init(tmp_path / "ward")
    if kind == "labelled":
        schema = Schema.parse("label", ["text:text"])
        (tmp_path / "data.csv").write_text("text,label\n" + "".join(f"line {i},{'ab'[i % 2]}\n" for i in range(40)))
        data = tmp_path / "data.csv"
    else:
        schema = Schema.for_kind("instruction")
        rows = [{"prompt": f"What is tool {i}?", "response": f"Tool {i} does thing {i}."} for i in range(40)]
        data = tmp_path / "data.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ward.create_dataset("d", schema)
    ward.set_policy("d", "approvals:\n  required: 0\nfirst_import: self-reference\ngate:\n  detectors: [duplicates]\n")
    ward.merge(ward.contribute("d", data, source="curated")["ref"])
    ward.promote("d@v1")
    ward.create_principal("tom")
    ward.grant("tom", "reader", "dataset:d")
    ward.grant("tom", "contributor", "model:m")
    (tmp_path / "weights.safetensors").write_bytes(EMPTY_SAFETENSORS)  # nothing the gate could run
    with dataward.training_run("d@training", model="m", ward=ward.as_key(ward.issue_key("tom")["key"])) as run:
        run.load()
        run.log_artifact(tmp_path / "weights.safetensors")
    ward.db.dispose()
    monkeypatch.setenv("DATAWARD_WARD", str(tmp_path / "ward"))
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    result = CliRunner().invoke(app, ["model", "gate", "m@v1", "--json"])
    assert result.exit_code == 8, result.output  # review
    report = json.loads(result.stdout)
    assert report["verdict"] == "review" and "no clean validation set" in report["reasons"][0]
