"""A new SQLite catalog gets the newest schema straight from ``tables.metadata``, stamped with the newest
revision, instead of running every migration: it must be the very schema the migrations make (same
tables, columns in the same order with the same types, nullability and defaults, keys, foreign keys and
indexes), and later migrations must take it for what it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dataward.catalog.database import HEAD_REVISION, CatalogDatabase
from dataward.service.ward import Ward


def described(path: Path) -> dict[str, object]:
    """Everything SQLite says about a catalog's schema, in a form two files can be compared by."""
    conn = sqlite3.connect(path)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        described: dict[str, object] = {"tables": tables}
        for table in tables:
            described[f"{table} columns"] = conn.execute(f"PRAGMA table_xinfo('{table}')").fetchall()
            # The constraint's own id and position among the table's are not part of what it says.
            described[f"{table} foreign keys"] = sorted(
                row[2:] for row in conn.execute(f"PRAGMA foreign_key_list('{table}')").fetchall()
            )
            indexes = []
            for _seq, name, unique, origin, partial in conn.execute(f"PRAGMA index_list('{table}')").fetchall():
                columns = tuple(row[2] for row in conn.execute(f"PRAGMA index_info('{name}')").fetchall())
                # SQLite names the indexes behind UNIQUE and PRIMARY KEY constraints by position.
                shown = "(automatic)" if name.startswith("sqlite_autoindex_") else name
                indexes.append((shown, unique, origin, partial, columns))
            described[f"{table} indexes"] = sorted(indexes)
        described["page size"] = conn.execute("PRAGMA page_size").fetchone()
        described["revision"] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        return described
    finally:
        conn.close()


def test_a_new_catalog_has_the_schema_every_migration_makes(tmp_path: Path) -> None:
    migrated = CatalogDatabase(f"sqlite:///{tmp_path / 'migrated.sqlite'}")
    migrated.migrate()
    migrated.dispose()
    fresh = CatalogDatabase(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    fresh.create_newest_schema()
    fresh.dispose()

    expected = described(tmp_path / "migrated.sqlite")
    assert expected["revision"] == [(HEAD_REVISION,)]
    assert described(tmp_path / "fresh.sqlite") == expected


def test_a_new_wards_catalog_is_current_and_opens_as_one(tmp_path: Path) -> None:
    ward, _key = Ward.init(tmp_path / "ward")
    try:
        assert ward.db.schema_revision() == HEAD_REVISION
        assert ward.db.migrate_if_behind() is False
        ward.db.migrate()  # the migrations find nothing left to do on it
        assert ward.db.schema_revision() == HEAD_REVISION
        assert ward.verify().ok
    finally:
        ward.db.dispose()
    migrated = CatalogDatabase(f"sqlite:///{tmp_path / 'migrated.sqlite'}")
    migrated.migrate()
    migrated.dispose()
    made = described(tmp_path / "ward" / "catalog.sqlite")
    assert made == described(tmp_path / "migrated.sqlite")


def test_a_catalog_that_has_tables_already_is_migrated_not_made_again(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    db = CatalogDatabase(f"sqlite:///{path}")
    db.create_newest_schema()
    db.create_newest_schema()  # a second call finds the tables and leaves them
    db.dispose()
    migrated = CatalogDatabase(f"sqlite:///{tmp_path / 'migrated.sqlite'}")
    migrated.migrate()
    migrated.dispose()
    assert described(path) == described(tmp_path / "migrated.sqlite")
