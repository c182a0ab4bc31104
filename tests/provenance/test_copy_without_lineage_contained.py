"""A step recorded without record lineage that copied a contribution's records into another dataset
carries them as a step with lineage does: the quarantine rolls that dataset back and the trace shows it.

Before, the reads of the other dataset already refused the copies ("made by a transformation from a
quarantined contribution's records"), but the quarantine's answer listed no derived dataset, made it no
rollback version, and ``trace`` of the contribution showed no derived version: the blast radius an incident
responder reads left out a dataset whose training version had just become unreadable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dataward
from dataward.domain.errors import PolicyViolation
from dataward.domain.schema import Schema
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_schema_specs, wine_ward, write_csv


def test_a_copy_recorded_without_lineage_is_contained_and_traced(tmp_path: Path) -> None:
    ward = wine_ward(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine2", Schema.parse(label, specs))
    ward.set_policy("wine2", NO_APPROVALS_POLICY)
    ward.merge(
        ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 100, shuffled=True)), source="s")["ref"]
    )
    ward.promote("wine@v1")
    ward.create_principal("carol")
    ward.create_principal("scraper", kind="service", owner="carol")
    ward.grant("scraper", "contributor", "dataset:wine")
    scraper = ward.as_key(ward.issue_key("scraper")["key"])
    bad = scraper.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(100, 130, shuffled=True)), source="vendor")
    ward.merge(bad["ref"])
    # A split into another dataset, recorded without lineage: the output is the input's records as they were.
    _, v2 = ward.read_version("wine", "v2")
    copy = [{k: v for k, v in r.items() if k != "record_id"} for r in v2.to_pylist()]
    step = ward.record_transformation("split", inputs="wine@v2", data=copy, output="wine2")
    ward.merge(step["ref"])
    ward.promote("wine2@v1")

    quarantined = ward.quarantine_contribution(bad["ref"], reason="poison found after the split")
    with pytest.raises(PolicyViolation, match="quarantined contribution"):
        dataward.load("wine2@training", ward=ward)  # the reads already refused the copies
    (derived,) = quarantined["derived_datasets"]
    assert derived["dataset"] == "wine2"
    rollback = derived["rollback_version"]
    assert (rollback["ref"], rollback["records"], rollback["records_removed"]) == ("wine2@v2", 100, 30)
    assert ward.read_version("wine2", "v2")[1].num_rows == 100
    traced = ward.trace(bad["ref"])
    assert "wine2@v1" in {v["ref"] for v in traced["derived_versions"]}
    assert all(v["via"][0]["name"] == "split" for v in traced["derived_versions"])
