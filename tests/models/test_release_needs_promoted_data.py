"""A model is released only when the data it was trained on reached ``training``.

The attack: dan's approver key leaks and approves carol's contribution; it is merged into wine@v2.
The leak is found and the key revoked: the approval no longer counts, so wine@v2 cannot be promoted.
A trainer loads the candidate (``stage=None``) anyway and trains on it; a reviewer, an approver and a
promoter, none of the trainer's side, gate, approve and release the model. The release must be refused:
the promotion policy is what says a version may be trained on, and a model trained on a version that
never met it must not be signed as releasable. Once wine@v2 is approved again and promoted, the same
model is released.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dataward
from dataward.domain.errors import PolicyViolation
from dataward.domain.schema import Schema
from tests.helpers import LIGHT_GATE_POLICY, wine_rows, wine_schema_specs, wine_ward, write_csv

ROLES = {
    "carol": [("contributor", "dataset:wine")],
    "dan": [("approver", "dataset:wine")],
    "eve": [("approver", "dataset:wine")],
    "tom": [("reader", "dataset:wine"), ("contributor", "model:wine-clf")],
    "rita": [("reviewer", "model:wine-clf")],
    "ann": [("approver", "model:wine-clf")],
    "pat": [("promoter", "model:wine-clf"), ("promoter", "dataset:wine")],
}


def test_a_model_trained_on_a_version_never_promoted_is_not_released(tmp_path: Path) -> None:
    ward = wine_ward(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine-val", Schema.parse(label, specs), validation_for="wine")
    ward.merge(
        ward.contribute(
            "wine-val", write_csv(tmp_path / "v.csv", wine_rows(130, 178, shuffled=True)), source="curated"
        )["ref"]
    )
    keys = {}
    for name, grants in ROLES.items():
        ward.create_principal(name)
        for role, scope in grants:
            ward.grant(name, role, scope)
        keys[name] = ward.issue_key(name)["key"]
    people = {name: ward.as_key(key) for name, key in keys.items()}
    first = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 100, shuffled=True)), source="s")
    ward.merge(first["ref"])
    ward.promote("wine@v1")
    ward.set_policy("wine", LIGHT_GATE_POLICY)
    people["eve"].approve(first["ref"], reason="checked")

    second = people["carol"].contribute(
        "wine", write_csv(tmp_path / "b.csv", wine_rows(100, 130, shuffled=True)), source="vendor"
    )
    people["dan"].approve(second["ref"], reason="ok")
    ward.merge(second["ref"])
    ward.revoke_key(keys["dan"], reason="leaked")
    with pytest.raises(PolicyViolation, match="voided"):
        people["pat"].promote("wine@v2")  # the control: the policy refuses wine@v2 for training

    (tmp_path / "m.bin").write_bytes(b"weights" * 16)
    with dataward.training_run("wine@v2", model="wine-clf", ward=people["tom"]) as run:
        run.load("wine@v2", stage=None)
        run.log_artifact(tmp_path / "m.bin")
    assert (
        people["rita"].model_gate("wine-clf@v1", predict=lambda t: t.column("cultivar").to_pylist())["verdict"]
        == "pass"
    )
    people["ann"].approve_model("wine-clf@v1", reason="metrics fine")
    with pytest.raises(PolicyViolation, match=r"wine@v2 never reached training"):
        people["pat"].release_model("wine-clf@v1", reason="ship")
    assert ward.model("wine-clf@v1")["stage"] == "candidate"

    # Approved again by someone whose key stands, and promoted: now the model may be released.
    people["eve"].approve(second["ref"], reason="checked again")
    people["pat"].promote("wine@v2")
    assert people["pat"].release_model("wine-clf@v1", reason="ship")["stage"] == "released"


def test_a_model_trained_on_its_clean_validation_set_is_not_released(tmp_path: Path) -> None:
    """The release gate judges a model on the clean validation set of the data it was trained on: a
    trainer allowed to read that set who trains on it too earns an accuracy it learnt by heart."""
    ward = wine_ward(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine-val", Schema.parse(label, specs), validation_for="wine")
    ward.merge(
        ward.contribute(
            "wine-val", write_csv(tmp_path / "v.csv", wine_rows(130, 178, shuffled=True)), source="curated"
        )["ref"]
    )
    ward.merge(
        ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 100, shuffled=True)), source="s")["ref"]
    )
    ward.promote("wine@v1")
    people = {}
    for name, grants in {
        "tom": [("reader", "dataset:wine"), ("reader", "dataset:wine-val"), ("contributor", "model:wine-clf")],
        "rita": [("reviewer", "model:wine-clf")],
        "ann": [("approver", "model:wine-clf")],
        "pat": [("promoter", "model:wine-clf")],
    }.items():
        ward.create_principal(name)
        for role, scope in grants:
            ward.grant(name, role, scope)
        people[name] = ward.as_key(ward.issue_key(name)["key"])
    (tmp_path / "m.bin").write_bytes(b"weights" * 16)
    with dataward.training_run("wine@training", model="wine-clf", ward=people["tom"]) as run:
        run.load()
        run.load("wine-val@v1", stage=None)
        run.log_artifact(tmp_path / "m.bin")
    people["rita"].model_gate("wine-clf@v1", predict=lambda t: t.column("cultivar").to_pylist())
    people["ann"].approve_model("wine-clf@v1", reason="metrics fine")
    with pytest.raises(PolicyViolation, match=r"wine-val@v1 is a clean validation set"):
        people["pat"].release_model("wine-clf@v1", reason="ship")
