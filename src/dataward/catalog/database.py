"""The catalog database: engine set-up (SQLite or PostgreSQL), migrations, transactions.

SQLite runs in WAL mode with foreign keys on, and every write transaction starts with
``BEGIN IMMEDIATE`` so that concurrent writers queue on the lock instead of failing half-way;
PostgreSQL serializes ledger appends with a transaction-level advisory lock.

Reads run in read transactions that take no write lock: a plain ``BEGIN`` on SQLite (WAL readers
never block the writer nor wait for it; ``query_only`` makes an accidental write fail loudly), and
``REPEATABLE READ READ ONLY`` on PostgreSQL, so a read sees one consistent snapshot.

Waiting for the write lock is bounded by the lock timeout (``DATAWARD_LOCK_TIMEOUT`` seconds, 60 by
default): short contention just waits its turn, and contention that outlasts the timeout is raised
as ``Busy``, a domain error with its own exit code, never as the driver's ``OperationalError``.

SQLite runs with ``synchronous=FULL``: the WAL is synced to disk at every commit, so an event the
ward reported as recorded survives a power loss. (With ``NORMAL`` a committed tail can vanish on
power loss, which is indistinguishable from a deliberate truncation of the ledger.) The WAL is copied
into the database file by ``dataward.catalog.wal`` on a thread of its own after large writes, not by
the commit that happens to cross SQLite's threshold.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Executable, Row, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.pool import QueuePool

from dataward.catalog.wal import AUTOCHECKPOINT_OFF, LOG_TRUNCATED, WalCheckpointer
from dataward.domain.errors import Busy, IntegrityViolation

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
"""The newest migration's revision id (revisions are four digits, in order)."""
SQLITE_BUSY_TIMEOUT_S = 60
"""The default lock timeout in seconds (``DATAWARD_LOCK_TIMEOUT`` overrides it)."""
LOCK_TIMEOUT_ENV = "DATAWARD_LOCK_TIMEOUT"
SQLITE_PAGE_SIZE = 32768
"""Bytes per page of a new SQLite catalog (SQLite's default is 4096)."""
POOL_SIZE = 10
"""SQLite connections a process keeps open between transactions. A server worker runs up to 40
requests at once on its thread pool; with fewer kept, a connection returned under load is closed and
another opened (its pragmas set again) at the next request."""

PG_POOL_SIZE = 30
"""PostgreSQL connections a process opens at most, all of them kept open between transactions (it
opened at most 30 before too, but closed all but 10 of them as they came back: under load one read
in twenty then started a new server process, which cost PostgreSQL more CPU than the reads did)."""

PING_AFTER_IDLE_S = 10.0
"""A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out (a
server restart or an idle timeout may have closed it). One used moments ago is not: under load a ping
on every checkout was one round trip in six of a read."""

_PG_LOCK_STATES = {"55P03", "40001", "40P01", "57014"}
"""PostgreSQL SQLSTATEs of lock contention: lock_not_available (lock_timeout), serialization_failure,
deadlock_detected, query_canceled (a statement timeout while waiting)."""


def lock_timeout_s() -> float:
    """How long a transaction waits for the write lock before ``Busy`` (seconds)."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else float(SQLITE_BUSY_TIMEOUT_S)
    except ValueError:
        value = float(SQLITE_BUSY_TIMEOUT_S)
    return value if value > 0 else float(SQLITE_BUSY_TIMEOUT_S)


def is_lock_error(exc: BaseException) -> bool:
    """True when ``exc`` is the database saying it is locked or busy (not a bug, not tampering)."""
    if not isinstance(exc, DBAPIError):
        return False
    state = getattr(exc.orig, "sqlstate", None)
    if state in _PG_LOCK_STATES:
        return True
    text_ = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and ("database is locked" in text_ or "database is busy" in text_)


_DAMAGE = ("database disk image is malformed", "file is not a database", "database corrupt")
"""SQLite's words for a catalog file whose bytes are not a sound database (cut short, overwritten)."""


def is_damage_error(exc: BaseException) -> bool:
    """True when ``exc`` is SQLite finding the catalog file itself damaged: not a bug, not contention."""
    return isinstance(exc, DBAPIError) and any(words in str(exc.orig).lower() for words in _DAMAGE)


def _damaged(exc: DBAPIError) -> IntegrityViolation:
    return IntegrityViolation(
        f"the catalog file is damaged ({exc.orig}): its records cannot be read or verified",
        hint="restore the catalog from a backup, then run `dataward verify --checkpoint FILE` with a checkpoint "
        "kept outside the ward: it shows whether the restored copy lost any signed event",
    )


def _translated(exc: DBAPIError, timeout: float) -> Exception | None:
    """The ward's error for a database error it can name (contention, a damaged file), else None."""
    if is_lock_error(exc):
        return _busy(timeout)
    if is_damage_error(exc):
        return _damaged(exc)
    return None


def _busy(timeout: float) -> Busy:
    return Busy(
        f"the catalog stayed locked by other writers for more than {timeout:g} s; nothing was changed",
        hint=f"run the command again; if a long job holds the lock, raise {LOCK_TIMEOUT_ENV} (seconds)",
    )


def _sqlite_engine(url: str, timeout: float, *, own_checkpoints: bool) -> Engine:
    # Connections are pooled: opening one (and setting its pragmas, WAL mode among them) cost more than
    # the two or three queries of a read. A pooled connection keeps no state between transactions that
    # matters: ``query_only`` and the busy timeout are set again at every BEGIN (below), and with WAL an
    # idle connection holds no lock. Threads share the pool, one connection at a time each.
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=POOL_SIZE,
        max_overflow=40,
        connect_args={"timeout": timeout, "check_same_thread": False},
    )
    default_busy_ms = int(timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control away from the driver so that BEGIN IMMEDIATE is ours to issue.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # Only a new, empty catalog takes this (an existing one keeps the page size it was made with).
        # Record and holder index blocks are blobs of about 9 KB: on 4 KiB pages each spills into
        # overflow pages, and the WAL frames, checksums and cache work of a million-record import
        # (about 70 MB of blocks) cost a fifth of its time. See docs/benchmarks.md, "Import throughput".
        cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=FULL")
        if own_checkpoints:
            # Checkpoints run on a thread of their own (``dataward.catalog.wal``), not inside a commit.
            cur.execute(AUTOCHECKPOINT_OFF)
            cur.execute(LOG_TRUNCATED)
        # The driver's busy handler retries a locked database until the timeout: short contention waits.
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cur.close()
        # What this connection is set to now: (query_only, busy_timeout in ms).
        _record.info["dataward_pragmas"] = (0, int(timeout * 1000))

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        # Readers take no lock up front; writers take the write lock at BEGIN, never mid-transaction.
        options = conn.get_execution_options()
        readonly = int(bool(options.get("dataward_readonly", False)))
        busy_ms = int(options.get("dataward_busy_ms", default_busy_ms))
        # Set at every BEGIN whenever they differ from what this connection holds: a pooled connection
        # must not keep a previous transaction's settings (a shorter wait, or query_only). The values
        # the connection holds are tracked in its pool record, so that the common case (a read after a
        # read) costs no statement at all.
        info = conn.connection.info
        if info.get("dataward_pragmas") != (readonly, busy_ms):
            info.pop("dataward_pragmas", None)
            # query_only makes a write slipped into a read transaction fail at once instead of silently
            # upgrading it to a write lock (which WAL refuses without waiting when the snapshot is stale).
            conn.exec_driver_sql(f"PRAGMA query_only={readonly}")
            conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
            info["dataward_pragmas"] = (readonly, busy_ms)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _postgresql_engine(url: str) -> Engine:
    # Every connection opened is kept (no overflow connections closed on return): a connection closed
    # costs a new server process at a later request once a worker serves more than a few at a time.
    engine = create_engine(url, pool_size=PG_POOL_SIZE, max_overflow=0)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
        record.info["dataward_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        # SQLAlchemy's pool_pre_ping, for connections that have been idle a while only. Raising
        # DisconnectionError makes the pool drop this connection and hand out a new one.
        since = record.info.get("dataward_idle_since")
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection no longer answers: {type(exc).__name__}") from exc

    return engine


class CatalogDatabase:
    """Owns the engine; hands out transactions; applies Alembic migrations."""

    def __init__(self, url: str, *, lock_timeout: float | None = None) -> None:
        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        self.lock_timeout = lock_timeout if lock_timeout is not None else lock_timeout_s()
        self.settled: dict[tuple[str, str], Any] = {}
        """Facts that never change once committed (a dataset's role), remembered by this process so
        that a request does not read them again: keyed by (kind, name). Only facts found are kept."""
        self.checkpointer: WalCheckpointer | None = None
        """Copies SQLite's log into the database file after large writes (None on PostgreSQL)."""
        if self.dialect == "sqlite":
            # A catalog in a plain file gets the ward's own checkpoints; any other SQLite URL (in memory,
            # a ``file:`` URI) keeps SQLite's automatic ones.
            database = make_url(url).database or ""
            plain_file = database not in ("", ":memory:") and not database.startswith("file:")
            self.engine = _sqlite_engine(url, self.lock_timeout, own_checkpoints=plain_file)
            if plain_file:
                self.checkpointer = WalCheckpointer(Path(database), SQLITE_PAGE_SIZE, busy_timeout_s=self.lock_timeout)
        else:
            self.engine = _postgresql_engine(url)

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
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except DBAPIError as exc:
            if (named := _translated(exc, self.lock_timeout)) is not None:
                raise named from exc
            raise

    def create_newest_schema(self) -> None:
        """Give a new, empty catalog the newest schema (what ``migrate`` would give it).

        On SQLite the tables are made from ``dataward.catalog.tables`` in one transaction and stamped with
        the newest revision, as Alembic stamps it: the same schema as running every migration in turn
        (tests/store/test_fresh_schema.py compares the two), in a quarter of the time and without
        importing Alembic, which every new ward, and every test that makes one, used to pay. A catalog
        that has tables already, and PostgreSQL, go through the migrations.
        """
        if self.dialect != "sqlite":
            self.migrate()
            return
        from dataward.catalog.tables import metadata

        try:
            with self.engine.begin() as conn:
                if conn.execute(text("SELECT count(*) FROM sqlite_master")).scalar():
                    made = False
                else:
                    metadata.create_all(conn, checkfirst=False)
                    # The table and constraint Alembic makes to keep its revision.
                    conn.execute(
                        text(
                            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
                        )
                    )
                    conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD_REVISION})
                    made = True
        except DBAPIError as exc:
            if (named := _translated(exc, self.lock_timeout)) is not None:
                raise named from exc
            raise
        if not made:
            self.migrate()

    def schema_revision(self) -> str | None:
        """The catalog's Alembic revision (None for an empty database)."""
        try:
            with self.reading() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:
            return None  # no such table yet: an empty database

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
    def transaction(self, *, timeout: float | None = None) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any exception.

        Keep it short: it holds the ward's one write lock. Waiting longer than the lock timeout (or
        ``timeout`` seconds) for it raises ``Busy``.
        """
        wait = self.lock_timeout if timeout is None else timeout
        try:
            with self.engine.connect() as plain:
                conn = plain.execution_options(dataward_busy_ms=int(wait * 1000))
                with conn.begin():
                    if self.dialect == "postgresql":
                        # Bounded like SQLite's busy timeout, instead of waiting for ever.
                        conn.execute(text(f"SET LOCAL lock_timeout = {int(wait * 1000)}"))
                        # One writer at a time appends to the ledger: a gap-free, fork-free chain.
                        conn.execute(text("SELECT pg_advisory_xact_lock(7310512)"))
                    yield conn
        except DBAPIError as exc:
            if (named := _translated(exc, wait)) is not None:
                raise named from exc
            raise
        if self.checkpointer is not None:
            self.checkpointer.after_write()

    def _read_only(self, conn: Connection) -> Connection:
        """``conn`` set up for a read transaction (before it begins)."""
        if self.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        return conn.execution_options(dataward_readonly=True)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot, no write lock taken, never written through."""
        try:
            with self.engine.connect() as conn:
                conn = self._read_only(conn)
                try:
                    yield conn
                finally:
                    conn.rollback()
        except DBAPIError as exc:
            if (named := _translated(exc, self.lock_timeout)) is not None:
                raise named from exc
            raise

    @contextmanager
    def reading_lazily(self) -> Iterator[LazyRead]:
        """A read that may need no transaction: one statement on its own first (``LazyRead.first``),
        and the read transaction of ``reading`` only if ``LazyRead.conn`` is asked for."""
        try:
            with self.engine.connect() as raw:
                lazy = LazyRead(self, raw)
                try:
                    yield lazy
                finally:
                    if lazy.opened:
                        raw.rollback()
        except DBAPIError as exc:
            if (named := _translated(exc, self.lock_timeout)) is not None:
                raise named from exc
            raise

    def dispose(self) -> None:
        """Finish any checkpoint under way and close the pooled connections."""
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.engine.dispose()


class LazyRead:
    """A pooled connection for a read whose transaction is opened only when it is used.

    ``first(statement)`` runs one statement: on PostgreSQL on its own, in autocommit mode (one
    statement always sees one snapshot, and no ``BEGIN`` and ``ROLLBACK`` round trips go with it),
    so a request that needs nothing else from the catalog costs one round trip. ``conn`` opens the
    read transaction of ``CatalogDatabase.reading`` (a later snapshot than any ``first`` before it)
    on first use. On SQLite, where a statement costs no round trip, ``first`` runs in that transaction.
    """

    def __init__(self, db: CatalogDatabase, raw: Connection) -> None:
        self._db = db
        self._raw = raw
        self._conn: Connection | None = None

    @property
    def opened(self) -> bool:
        """Whether the read transaction has been opened."""
        return self._conn is not None

    @property
    def separate(self) -> bool:
        """Whether ``first`` runs outside the read transaction (then the transaction sees a later
        snapshot than it did)."""
        return self._db.dialect == "postgresql"

    @property
    def conn(self) -> Connection:
        """The read transaction (opened at the first use)."""
        if self._conn is None:
            self._conn = self._db._read_only(self._raw)
        return self._conn

    def first(self, statement: Executable, params: dict[str, Any] | None = None) -> Row[Any]:
        """The one row of ``statement`` (see the class docstring)."""
        if self._conn is not None or not self.separate:
            return self.conn.execute(statement, params or {}).one()
        raw = self._raw.execution_options(isolation_level="AUTOCOMMIT")
        try:
            return raw.execute(statement, params or {}).one()
        finally:
            raw.rollback()  # ends SQLAlchemy's own transaction marker; nothing is sent in autocommit
