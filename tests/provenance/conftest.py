"""A small ward shared by the provenance tests: one dataset with two merged versions by a bot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


def _build_wine_ward(tmp_path: Path) -> Ward:
    """``wine@v1`` (60 records from a scraper bot's key) and ``wine@v2`` (+ 20 from a vendor file), in
    training, at ``tmp_path / "ward"``."""
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


@pytest.fixture(scope="module")
def wine_ward_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of ``_build_wine_ward``'s ward (two gated merges and a promotion, most of a provenance
    test's setup), built once per module: each test gets a copy of its own (``wine_ward``). Per module,
    not per session, so that no two modules share a ward, as they share no stored fits."""
    folder = tmp_path_factory.mktemp("provenance-wine")
    _build_wine_ward(folder).close()
    return folder / "ward"


@pytest.fixture
def wine_ward(wine_ward_template: Path, tmp_path: Path) -> Ward:
    """``wine@v1`` (60 records from a scraper bot's key) and ``wine@v2`` (+ 20 from a vendor file), in
    training: a copy of the module's ``wine_ward_template`` at ``tmp_path / "ward"``, opened as its admin."""
    folder = shutil.copytree(wine_ward_template, tmp_path / "ward")
    ward = Ward.open(folder, key=(folder / "credentials").read_text("utf-8").strip())
    # The copy's signed ledger folded in this process, as the build's promotion left it folded: a test of
    # what a process read before another one wrote starts from the same state.
    ward.contribution("wine#1")
    return ward


def augment_scraped(ward: Ward, records: int = 20) -> str:
    """``wine_aug@v1``: ``records`` of the scraper's records (``wine#1``) read from ``wine@v2``, each
    changed a little by an ``augment`` step with its parent linked, merged. Returns the step's output ref."""
    from dataward.domain.schema import RECORD_ID

    label, specs = wine_schema_specs()
    ward.create_dataset("wine_aug", Schema.parse(label, specs))
    ward.set_policy("wine_aug", NO_APPROVALS_POLICY)
    scraped = set(ward.read_version("wine", "v1")[1].column(RECORD_ID).to_pylist())
    with ward.transform("augment", inputs="wine@v2", output="wine_aug") as t:
        rows = [r for r in t.read().to_pylist() if r[RECORD_ID] in scraped][:records]
        t.write([{**r, "alcohol": r["alcohol"] + 0.01} for r in rows], parents=[r[RECORD_ID] for r in rows])
    assert t.result is not None
    merge_reviewed(ward, t.result["ref"])
    return str(t.result["ref"])
