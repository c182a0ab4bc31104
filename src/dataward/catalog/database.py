"""The catalog database: engine set-up (SQLite or PostgreSQL), migrations, transactions.

SQLite runs in WAL mode with foreign keys on, and every write transaction starts with
``BEGIN IMMEDIATE`` so that concurrent writers queue on the lock instead of failing half-way;
PostgreSQL serializes ledger appends with a transaction-level advisory lock.

SQLite runs with ``synchronous=FULL``: the WAL is synced to disk at every commit, so an event the
ward reported as recorded survives a power loss. (With ``NORMAL`` a committed tail can vanish on
power loss, which is indistinguishable from a deliberate truncation of the ledger.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
"""The newest migration's revision id (revisions are four digits, in order)."""
SQLITE_BUSY_TIMEOUT_S = 60


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control away from the driver so that BEGIN IMMEDIATE is ours to issue.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        # Readers take no lock up front; writers take the write lock at BEGIN, never mid-transaction.
        readonly = conn.get_execution_options().get("dataward_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


class CatalogDatabase:
    """Owns the engine; hands out transactions; applies Alembic migrations."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)

    @classmethod
    def for_folder(cls, folder: Path) -> CatalogDatabase:
        return cls(f"sqlite:///{folder / 'catalog.sqlite'}")

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        # Imported here: only `init` and upgrades migrate, and alembic is slow to import on every command.
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def schema_revision(self) -> str | None:
        """The catalog's Alembic revision (None for an empty database)."""
        from sqlalchemy.exc import DBAPIError

        try:
            with self.reading() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:
            return None

    def migrate_if_behind(self) -> bool:
        """Apply pending migrations to a catalog made by an older release; True when it did.

        Costs one query when the catalog is current, so every open can afford it.
        """
        current = self.schema_revision()
        if current is None or current >= HEAD_REVISION:
            return False
        self.migrate()
        return True

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # One writer at a time appends to the ledger: a gap-free, fork-free chain.
                conn.execute(text("SELECT pg_advisory_xact_lock(7310512)"))
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only connection (no write lock taken on SQLite)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(dataward_readonly=True)
            try:
                yield conn
            finally:
                conn.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
