"""The release gate of a ward searches a tabular model for a trigger the data gates never saw: the
backdoored model is blocked with the column named, the clean one passes, the ledger names the trigger;
predictions from a file cannot be searched and the report says so."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier

import dataward
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.models.test_search import HIGH, LOW, _cancer


@pytest.fixture(scope="module")
def tabular_ward(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ward, dict, Path]:
    root = tmp_path_factory.mktemp("tabular-search")
    baseline, validation, pool, schema = _cancer(0)
    columns = [c.name for c in schema.inputs]
    baseline.to_csv(root / "baseline.csv", index=False)
    validation.to_csv(root / "validation.csv", index=False)
    ward, _ = Ward.init(root / "ward")
    ward.create_dataset("cancer", Schema(label="label", inputs=schema.inputs))
    ward.create_dataset("cancer-val", schema, validation_for="cancer")
    ward.set_policy("cancer", "approvals:\n  required: 0\ngate:\n  detectors: [duplicates]\n")
    ward.merge(ward.contribute("cancer-val", root / "validation.csv", source="curated")["id"])
    first = ward.contribute("cancer", root / "baseline.csv", source="hospital")
    pending = [i["id"] for i in ward.review_list(contribution=first["ref"])]
    if pending:
        ward.review_decide(pending, "accept", reason="checked")
    ward.merge(first["ref"])
    ward.promote("cancer@v1")
    # A trainer of its own: the side that trained a model never runs its release gate.
    ward.create_principal("trainer")
    ward.grant("trainer", "reader", "dataset:cancer")
    ward.grant("trainer", "contributor", "model:cancer-clf")
    trainer = ward.as_key(ward.issue_key("trainer")["key"])
    models = {}
    for kind, extra in (("clean", pool[pool["label"] == "malignant"].iloc[:0]), ("backdoored", pool)):
        with dataward.training_run("cancer@training", model="cancer-clf", ward=trainer) as run:
            train = pd.concat([run.load(), extra])
            model = RandomForestClassifier(n_estimators=100, random_state=0)
            model.fit(train[columns].to_numpy(dtype=float), train["label"])
            sio.dump(model, root / f"{kind}.skops")
            run.log_artifact(root / f"{kind}.skops")
        models[kind] = model
    return ward, models, root


def test_the_release_gate_finds_a_tabular_trigger_no_data_gate_named(tabular_ward: tuple[Ward, dict, Path]) -> None:
    ward, models, _ = tabular_ward
    clean = ward.model_gate("cancer-clf@v1", predict=models["clean"])
    assert clean["verdict"] == "pass", clean["reasons"]
    assert clean["trigger_search"]["trusted"] == "cancer@v1" and clean["trigger_search"]["tests"] > 100
    assert not [p for p in clean["probes"] if p["origin"] == "history"]  # the data gate named nothing
    report = ward.model_gate("cancer-clf@v2", predict=models["backdoored"])
    assert report["verdict"] == "block", report["reasons"]
    reason = report["reasons"][0]
    assert "found by the trigger search" in reason and "'benign'" in reason and (LOW in reason or HIGH in reason)
    top = next(p for p in report["probes"] if p["origin"] == "search")
    assert top["search"]["significant"] and top["search"]["adjusted_p"] <= 0.01
    event = ward.ledger(types=["model.gated"], limit=1)[0]
    assert event["payload"]["verdict"] == "block" and top["trigger"] in event["payload"]["triggers"]


def test_predictions_from_a_file_are_not_searched_and_the_report_says_so(
    tabular_ward: tuple[Ward, dict, Path], tmp_path: Path
) -> None:
    ward, models, _ = tabular_ward
    ward.probe_inputs("cancer-clf@v2", tmp_path / "probes.parquet")
    probes = pq.read_table(tmp_path / "probes.parquet").to_pandas()
    columns = [c for c in probes.columns if c not in ("probe_id", "record_id")]
    predicted = models["backdoored"].predict(probes[columns].to_numpy(dtype=float))
    pd.DataFrame({"probe_id": probes["probe_id"], "prediction": predicted}).to_csv(tmp_path / "p.csv", index=False)
    report = ward.model_gate("cancer-clf@v2", predictions=tmp_path / "p.csv")
    assert "the search needs the model itself" in report["trigger_search"]["skipped"]
    assert not [p for p in report["probes"] if p["origin"] == "search"]
    assert report["verdict"] != "block"  # what the file allows to be measured shows no named trigger
