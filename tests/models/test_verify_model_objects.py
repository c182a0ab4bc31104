"""`verify` checks the objects that models and transformations keep, not only the data's.

A model's weights, its manifest, signature, release gate report and a transformation's record lineage
are stored content-addressed like records. Deleted from the store (or swapped), reads refuse them, and
their hint says to run `dataward verify` "to list every missing" object; verify said the ward was fine
when a model's weights were gone, and called a swapped weight file an "unreferenced object".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

import dataward
from dataward.catalog.tables import model_gates, model_versions, transformations
from dataward.domain.errors import IntegrityViolation
from dataward.domain.schema import Schema
from tests.helpers import wine_rows, wine_schema_specs, wine_ward, write_csv


def test_verify_reports_a_model_or_lineage_object_deleted_or_swapped(tmp_path: Path) -> None:
    ward = wine_ward(tmp_path / "ward")
    ward.merge(
        ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 100, shuffled=True)), source="s")["ref"]
    )
    ward.promote("wine@v1")
    kept = ward.read_version("wine", "v1")[1].to_pylist()[:3]
    changed = [{**{k: v for k, v in r.items() if k != "record_id"}, "alcohol": r["alcohol"] + 1} for r in kept]
    ward.record_transformation(
        "shift", inputs="wine@v1", data=changed, parents=[[r["record_id"]] for r in kept], replace=False
    )
    (tmp_path / "m.bin").write_bytes(b"weights" * 16)
    with dataward.training_run("wine@training", model="wine-clf", ward=ward) as run:
        run.load()
        run.log_artifact(tmp_path / "m.bin")
    ward.create_principal("rita")
    ward.grant("rita", "reviewer", "model:wine-clf")
    rita = ward.as_key(ward.issue_key("rita")["key"])
    rita.model_gate("wine-clf@v1", predict=lambda t: t.column("cultivar").to_pylist())
    assert ward.verify().ok
    with ward.db.reading() as conn:
        mv = conn.execute(select(model_versions)).one()
        lineage = conn.execute(select(transformations.c.lineage_object)).scalar_one()
        report = conn.execute(select(model_gates.c.report_object)).scalar_one()
    weights = json.loads(ward.store.get(mv.files_object))["m.bin"]
    objects = {
        "model file m.bin": weights,
        "model_versions.manifest_object": mv.manifest_object,
        "model_versions.signature_object": mv.signature_object,
        "model_gates.report_object": report,
        "transformations.lineage_object": lineage,
    }
    for named, digest in objects.items():
        path = ward.store.path_of(digest)
        data = path.read_bytes()
        path.chmod(0o644)
        path.unlink()
        found = [p for p in ward.verify().problems if p.area == "objects" and digest in p.where]
        assert [p.kind for p in found] == ["missing"], named
        assert named in found[0].where
        path.write_bytes(data)
    # A swapped weight file is named as the model's, not as an object nobody refers to.
    path = ward.store.path_of(weights)
    path.chmod(0o644)
    path.write_bytes(b"other weights")
    (found,) = [p for p in ward.verify().problems if p.area == "objects"]
    assert "model file m.bin of" in found.where and "unreferenced" not in found.where
    with pytest.raises(IntegrityViolation):
        ward.model_files("wine-clf@v1", tmp_path / "out")


def test_weights_swapped_after_the_gate_are_not_released(tmp_path: Path) -> None:
    """The release re-reads the files it signs for: weights swapped in the store after the gate passed
    are refused (the gate judged other bytes), and the model stays a candidate."""
    ward = wine_ward(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine-val", Schema.parse(label, specs), validation_for="wine")
    validation = write_csv(tmp_path / "v.csv", wine_rows(130, 178, shuffled=True))
    ward.merge(ward.contribute("wine-val", validation, source="curated")["ref"])
    ward.merge(
        ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 100, shuffled=True)), source="s")["ref"]
    )
    ward.promote("wine@v1")
    (tmp_path / "m.bin").write_bytes(b"weights" * 16)
    with dataward.training_run("wine@training", model="wine-clf", ward=ward) as run:
        run.load()
        run.log_artifact(tmp_path / "m.bin")
    for name, role in (("rita", "reviewer"), ("ann", "approver"), ("pat", "promoter")):
        ward.create_principal(name)
        ward.grant(name, role, "model:wine-clf")
    rita, ann, pat = (ward.as_key(ward.issue_key(n)["key"]) for n in ("rita", "ann", "pat"))
    rita.model_gate("wine-clf@v1", predict=lambda t: t.column("cultivar").to_pylist())
    ann.approve_model("wine-clf@v1", reason="checked")
    with ward.db.reading() as conn:
        files_object = conn.execute(select(model_versions.c.files_object)).scalar_one()
    path = ward.store.path_of(json.loads(ward.store.get(files_object))["m.bin"])
    path.chmod(0o644)
    path.write_bytes(b"backdoored weights")
    with pytest.raises(IntegrityViolation):
        pat.release_model("wine-clf@v1", reason="ship")
    assert ward.model("wine-clf@v1")["stage"] == "candidate"
