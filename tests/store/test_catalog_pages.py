"""The SQLite catalog's page size: new catalogs take large pages, existing ones keep theirs and still work."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from dataward.catalog import database
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, wine_ward, write_csv


def _page_size(ward: Ward) -> int:
    with ward.db.reading() as conn:
        return int(conn.execute(text("PRAGMA page_size")).scalar_one())


def test_a_new_catalog_is_made_with_large_pages_in_wal_mode(tmp_path: Path) -> None:
    ward = wine_ward(tmp_path / "ward")
    assert _page_size(ward) == database.SQLITE_PAGE_SIZE == 32768
    with ward.db.reading() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 2  # FULL: a commit survives power loss


def test_a_catalog_made_with_small_pages_keeps_them_and_takes_new_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ward made before catalogs took large pages: SQLite cannot change the page size of a WAL
    # database in place, and the ward must not try to (nor fail) when it opens one.
    with monkeypatch.context() as patched:
        patched.setattr(database, "SQLITE_PAGE_SIZE", 4096)
        old = wine_ward(tmp_path / "ward")
        merge_reviewed(old, old.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a")["id"])
        assert _page_size(old) == 4096
        old.db.dispose()

    ward = Ward.open(tmp_path / "ward")
    assert _page_size(ward) == 4096
    merge_reviewed(ward, ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(60, 120)), source="b")["id"])
    assert ward.verify().ok
    assert ward.read_version("wine")[1].num_rows == 120
