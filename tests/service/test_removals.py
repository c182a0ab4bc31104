"""Removals are gated in the ward: removing most of a class is a review, not a silent pass; measured
harm on the clean validation set blocks; a mixed contribution takes the worse of both verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import wine_rows, wine_schema_specs, write_csv

POLICY = "approvals:\n  required: 0\ngate:\n  detectors: [duplicates]\n"


def _ward(tmp_path: Path, *, validation: bool) -> tuple[Ward, list[dict]]:
    """wine with v1 (120 records, shuffled classes) in training; with or without a validation set."""
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    rows = wine_rows(shuffled=True)
    if validation:
        ward.create_dataset("wine-val", Schema.parse(label, specs), validation_for="wine")
        ward.merge(ward.contribute("wine-val", write_csv(tmp_path / "v.csv", rows[120:]), source="c")["ref"])
        ward.set_policy("wine", POLICY)
    else:
        ward.set_policy("wine", POLICY + "first_import: self-reference\n")
    first = ward.contribute("wine", write_csv(tmp_path / "a.csv", rows[:120]), source="https://archive.example/a")
    ward.merge(first["ref"])
    ward.promote("wine@v1")
    return ward, rows


def _ids_of_class(ward: Ward, label: str) -> list[str]:
    df = ward.dataset("wine").version("v1").to_pandas()
    return df.loc[df["cultivar"] == label, "record_id"].tolist()


def test_removing_most_of_one_class_is_review_not_pass(tmp_path: Path) -> None:
    ward, _ = _ward(tmp_path, validation=False)
    twos = _ids_of_class(ward, "2")
    c = ward.contribute("wine", removes=twos[: int(len(twos) * 0.8)], source="cleanup")
    gate = c["gate"]
    assert gate["verdict"] == "review" and gate["mode"] == "removal"
    assert any("class '2'" in r for r in gate["reasons"]), gate["reasons"]
    assert gate["removals"]["removed"] == int(len(twos) * 0.8) and gate["trusted"]["kind"] == "removal"
    assert c["gate_verdict"] == "review"
    event = ward.ledger(types=["gate.completed"])[0]["payload"]
    assert event["verdict"] == "review" and event["removals"]["removed"] == gate["removals"]["removed"]
    assert ward.gate_report(c["ref"])["removals"]["verdict"] == "review"
    assert ward.verify().ok


def test_a_few_scattered_removals_pass_and_merge(tmp_path: Path) -> None:
    ward, _ = _ward(tmp_path, validation=False)
    ids = ward.dataset("wine").version("v1").to_arrow().column("record_id").to_pylist()
    c = ward.contribute("wine", removes=ids[::30], source="cleanup")
    assert c["gate"]["verdict"] == "pass" and c["gate"]["reasons"] == []
    assert ward.merge(c["ref"])["records"] == 120 - len(ids[::30])


def test_an_ungated_removal_cannot_merge(tmp_path: Path) -> None:
    ward, _ = _ward(tmp_path, validation=False)
    ids = ward.dataset("wine").version("v1").to_arrow().column("record_id").to_pylist()
    c = ward.contribute("wine", removes=ids[:3], source="cleanup", gate=False)
    with pytest.raises(PolicyViolation, match="no gate has run"):
        ward.merge(c["ref"])
    assert ward.run_gate(c["ref"])["verdict"] == "pass"
    assert ward.merge(c["ref"])["records"] == 117


def test_harm_on_the_clean_validation_set_blocks_and_mixed_takes_the_worse(tmp_path: Path) -> None:
    ward, rows = _ward(tmp_path, validation=True)
    # Every record of class 2 removed, plus a clean addition: the probe can no longer recognise class 2.
    added = write_csv(tmp_path / "more.csv", [r for r in rows[120:150] if str(r["cultivar"]) != "2"][:10])
    c = ward.contribute("wine", added, removes=_ids_of_class(ward, "2"), source="cleanup")
    gate = c["gate"]
    assert gate["verdict"] == "block" and gate["mode"] == "baseline"
    assert gate["detectors"] and len(gate["records"]) == gate["counts"]["records"] > 0
    assert any(r.startswith("removal: clean-validation accuracy") for r in gate["reasons"])
    by_class = {v["class"]: v for v in gate["removals"]["validation"]}
    assert by_class["2"]["accuracy_without"] == 0.0
    with pytest.raises(PolicyViolation, match="block"):
        ward.merge(c["ref"])


def test_a_contribution_that_rewrites_every_record_is_judged_as_a_replacement(tmp_path: Path) -> None:
    """Rewriting every record (a transformation rounding a measurement) removes them all and adds their
    rewrites. The removal was judged as if nothing came back: 'accuracy 0.950 with the removed records,
    0.000 without', a block, and the legitimate rewrite was lost for good."""
    ward, _ = _ward(tmp_path, validation=True)
    v1 = ward.dataset("wine").version("v1").to_pandas()
    rewritten = v1.drop(columns=["record_id"]).assign(proline=lambda d: d["proline"].round(-1))
    data = write_csv(tmp_path / "rounded.csv", rewritten.to_dict("records"))
    c = ward.contribute("wine", data, removes=v1["record_id"].tolist(), source="rounding-step")
    gate = c["gate"]
    assert gate["removals"]["removed"] == 120
    assert gate["removals"]["verdict"] != "block" and gate["verdict"] != "block", gate["reasons"]
    assert not any("clean-validation accuracy" in r for r in gate["reasons"]), gate["reasons"]
    # The dataset and its classes keep their size; that every record of the first source was replaced
    # stays a reason to look.
    assert not any("of the dataset" in r or "of class" in r for r in gate["reasons"]), gate["reasons"]
    assert any("of source 'https://archive.example/a'" in r for r in gate["reasons"]), gate["reasons"]
