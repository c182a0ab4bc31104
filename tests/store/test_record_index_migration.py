"""Wards made before the record index was kept in blocks: their per-record rows are converted on
open, nothing is lost or moved, and verify still holds (and the step converts back on downgrade)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from dataward.catalog.database import MIGRATIONS
from dataward.domain.schema import Schema
from dataward.service.recordstore import locate_records
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, merge_reviewed, wine_rows, wine_schema_specs, write_csv


def _revision_before_blocks() -> str:
    (step,) = (MIGRATIONS / "versions").glob("*_record_blocks.py")
    for line in step.read_text().splitlines():
        if line.startswith("down_revision"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("the record-blocks migration names no previous revision")


def _alembic(ward: Ward, action: str, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with ward.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, target)


def test_a_per_record_index_is_converted_to_blocks_and_back(tmp_path: Path, catalog_url: str | None) -> None:
    ward, _ = Ward.init(tmp_path / "ward", catalog_url=catalog_url)
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 50)), source="a")["id"])
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(30, 90)), source="b")["id"])
    ids = ward.dataset("wine").version("v2").to_arrow().column("record_id").to_pylist()
    with ward.db.reading() as conn:
        where = locate_records(conn, ids)
    assert len(where) == 90

    # The layout of an older ward: one `records` row per record, written by the downgrade.
    _alembic(ward, "downgrade", _revision_before_blocks())
    with ward.db.reading() as conn:
        assert "record_blocks" not in inspect(conn).get_table_names()
        old = conn.execute(text("SELECT r.id, c.digest, r.row FROM records r JOIN chunks c ON c.id = r.chunk")).all()
    assert {rid: (digest, row) for rid, digest, row in old} == where

    # Opening it converts the rows into blocks; every record is where it was, and verify holds.
    reopened = Ward.open(ward.folder)
    with reopened.db.reading() as conn:
        assert "records" not in inspect(conn).get_table_names()
        assert locate_records(conn, ids) == where
    assert reopened.dataset("wine").version("v2").to_arrow().column("record_id").to_pylist() == ids
    assert reopened.verify().ok
