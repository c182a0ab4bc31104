"""A small ward shared by the provenance tests: one dataset with two merged versions by a bot."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


@pytest.fixture
def wine_ward(tmp_path: Path) -> Ward:
    """``wine@v1`` (60 records from a scraper bot's key) and ``wine@v2`` (+ 20 from a vendor file), in
    training."""
    ward, _ = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs), description="UCI wine")
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    ward.create_principal("alice")
    ward.create_principal("scraper", kind="service", owner="alice")
    ward.grant("scraper", "contributor", "dataset:wine")
    bot = ward.as_key(ward.issue_key("scraper")["key"])
    bot.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="https://scrape.example/wine-a")
    merge_reviewed(ward, "wine#1")
    ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(60, 80)), source="s3://vendor/wine-b.csv")
    merge_reviewed(ward, "wine#2")
    ward.promote("wine@v2", reason="trusted baseline for the gates")
    return ward
