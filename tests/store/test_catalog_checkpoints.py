"""SQLite's log is copied into the catalog file on the ward's own thread, never inside a commit, and a
commit is durable whether or not that copy has run (or was cut short by the process dying)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from dataward.catalog import database, wal
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_ward, write_csv

REPO = Path(__file__).resolve().parents[2]


def _contributions_in_the_file(catalog: Path, tmp_path: Path) -> int:
    """Contributions in the database file alone, without its log: what checkpoints copied there."""
    copy = tmp_path / "file-only.sqlite"
    shutil.copyfile(catalog, copy)
    conn = sqlite3.connect(copy)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'contributions'").fetchone():
            return 0  # not even the catalog's tables are in the file yet
        return int(conn.execute("SELECT count(*) FROM contributions").fetchone()[0])
    finally:
        conn.close()


def test_catalog_connections_never_checkpoint_inside_a_commit(tmp_path: Path) -> None:
    ward = wine_ward(tmp_path / "ward")
    with ward.db.reading() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0
    with ward.db.transaction() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0


def test_a_write_past_the_threshold_is_checkpointed_on_the_wards_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1)
    ward = wine_ward(tmp_path / "ward")
    checkpointer = ward.db.checkpointer
    assert checkpointer is not None
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a", gate=False)
    assert checkpointer.wait_idle(30)
    assert checkpointer.checkpoints >= 1
    assert _contributions_in_the_file(checkpointer.path, tmp_path) == 1  # copied out of the log
    ward.db.dispose()
    assert Ward.open(tmp_path / "ward").verify().ok


def test_once_checkpointed_small_writes_do_not_wake_the_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log's file starts over empty after a complete checkpoint: its size is what was written since,
    so a small write after a large one is not taken for a large one."""
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 8)  # 256 KiB: the 178 wine records' blocks cross it
    ward = wine_ward(tmp_path / "ward")
    checkpointer = ward.db.checkpointer
    assert checkpointer is not None
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 178)), source="a", gate=False)
    assert checkpointer.wait_idle(30) and checkpointer.checkpoints >= 1
    before = checkpointer.checkpoints
    ward.set_policy("wine", NO_APPROVALS_POLICY)  # a few pages (without the truncation: the log's whole size)
    assert checkpointer.wait_idle(30)
    assert checkpointer.checkpoints == before
    assert 0 < checkpointer.log.stat().st_size < checkpointer.threshold


def test_small_writes_leave_the_log_alone(tmp_path: Path) -> None:
    ward = wine_ward(tmp_path / "ward")
    checkpointer = ward.db.checkpointer
    assert checkpointer is not None
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a", gate=False)
    assert checkpointer.wait_idle(30)
    assert checkpointer.checkpoints == 0
    assert _contributions_in_the_file(checkpointer.path, tmp_path) == 0  # still in the log only
    assert ward.contributions("wine")  # where every connection reads it


def test_dispose_finishes_the_checkpoint_under_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1)
    ward = wine_ward(tmp_path / "ward")
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a", gate=False)
    checkpointer = ward.db.checkpointer
    assert checkpointer is not None
    ward.db.dispose()
    assert checkpointer.wait_idle(0)  # nothing asked for or running once dispose returned
    # Used again after dispose: a new thread takes over.
    before = checkpointer.checkpoints
    ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(60, 120)), source="b", gate=False)
    assert checkpointer.wait_idle(30) and checkpointer.checkpoints > before


@pytest.mark.parametrize("ending", ["os._exit(0)", "raise SystemExit(0)"])
@pytest.mark.parametrize("pages", [1, wal.CHECKPOINT_PAGES])
def test_a_process_that_ends_after_a_commit_loses_nothing(tmp_path: Path, pages: int, ending: str) -> None:
    """The process ends at once after the import returns, without closing anything, abruptly or as a
    CLI command does (the interpreter's own exit, the checkpoint thread a daemon): with the threshold
    at one page its checkpoint is then under way (or not yet started), with the default one it never
    ran. Either way the process exits cleanly, the next one finds the contribution, and the ward
    verifies."""
    folder = tmp_path / "ward"
    wine_ward(folder).db.dispose()
    csv = write_csv(tmp_path / "a.csv", wine_rows(0, 120))
    script = textwrap.dedent(
        f"""
        import os
        from dataward.catalog import wal
        wal.CHECKPOINT_PAGES = {pages}
        from dataward.service.ward import Ward
        ward = Ward.open({str(folder)!r})
        ward.contribute("wine", {str(csv)!r}, source="a", gate=False)
        {ending}
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and "terminate" not in done.stderr, done.stderr
    ward = Ward.open(folder)
    [contribution] = ward.contributions("wine")
    assert contribution["added"] == 120
    assert ward.verify().ok


def test_two_closers_at_once_both_return(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads disposing of one catalog at once (a server's shutdown and an exit hook) while a
    checkpoint runs: both return once the thread has ended; neither hangs."""
    db = tmp_path / "x.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(wal.AUTOCHECKPOINT_OFF)
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    conn.commit()
    checkpointer = wal.WalCheckpointer(db, 4096, busy_timeout_s=1)
    checkpointer.threshold = 1
    real = checkpointer._checkpoint
    running = threading.Event()

    def slow() -> None:
        running.set()
        time.sleep(0.5)
        real()

    monkeypatch.setattr(checkpointer, "_checkpoint", slow)
    checkpointer.after_write()
    assert running.wait(5)
    closers = [threading.Thread(target=checkpointer.close, daemon=True) for _ in range(2)]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(10)
    assert not any(closer.is_alive() for closer in closers), "a close() hangs"
    assert checkpointer.checkpoints == 1 and checkpointer.wait_idle(0)
    conn.close()


def test_a_failed_checkpoint_is_retried_at_the_next_large_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error on the thread (no file descriptor left, say) fails that checkpoint only: the next
    large write's checkpoint runs, so the log cannot grow without end."""
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1)
    ward = wine_ward(tmp_path / "ward")
    checkpointer = ward.db.checkpointer
    assert checkpointer is not None and checkpointer.wait_idle(30)
    real = wal.sqlite3.connect
    calls = {"n": 0}

    def flaky(*args: object, **kwargs: object) -> sqlite3.Connection:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("unable to open database file")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(wal.sqlite3, "connect", flaky)
    failures, done = checkpointer.failures, checkpointer.checkpoints
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a", gate=False)
    assert checkpointer.wait_idle(30) and checkpointer.failures == failures + 1
    ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(60, 120)), source="b", gate=False)
    assert checkpointer.wait_idle(30) and checkpointer.checkpoints > done
    assert _contributions_in_the_file(checkpointer.path, tmp_path) == 2


def test_wards_dropped_without_dispose_leave_no_thread_nor_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library user opening a ward per job and never disposing of it: a checkpoint holds no
    connection once done, and an idle thread ends (here after 0.2 s), so none piles up."""
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1)
    monkeypatch.setattr(wal, "IDLE_EXIT_S", 0.2)
    folder = tmp_path / "ward"
    wine_ward(folder).db.dispose()

    earlier = set(threading.enumerate())  # other tests' wards may still have theirs

    def threads() -> int:
        return sum(t.name == "dataward-wal-checkpoint" and t not in earlier for t in threading.enumerate())

    def open_logs() -> int:
        fds = Path(f"/proc/{os.getpid()}/fd")
        return sum(1 for fd in fds.iterdir() if str(folder) in os.path.realpath(fd)) if fds.exists() else 0

    for i in range(5):
        ward = Ward.open(folder)
        ward.contribute(
            "wine", write_csv(tmp_path / f"{i}.csv", wine_rows(20 * i, 20 * i + 20)), source=str(i), gate=False
        )
        checkpointer = ward.db.checkpointer
        assert checkpointer is not None and checkpointer.wait_idle(30) and checkpointer.checkpoints >= 1
        ward.db.engine.dispose()  # the pool's connections closed, the checkpointer left to itself
        del ward, checkpointer
    deadline = time.monotonic() + 10
    while threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threads() == 0
    assert open_logs() == 0


def test_a_catalog_in_memory_keeps_sqlites_own_checkpoints() -> None:
    """Only a catalog in a plain file gets the ward's checkpoint thread; any other SQLite URL keeps
    SQLite's automatic checkpoints rather than none at all."""
    db = database.CatalogDatabase("sqlite://")
    try:
        assert db.checkpointer is None
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 1000
    finally:
        db.dispose()


def _checkpoint_threads(besides: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dataward-wal-checkpoint" and t not in besides]


def test_a_closed_ward_leaves_its_log_copied_and_no_thread_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1)
    wine_ward(tmp_path / "ward").close()
    earlier = set(threading.enumerate())  # other tests' wards may still have theirs
    with Ward.open(tmp_path / "ward") as ward:
        ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a", gate=False)
        catalog = ward.db.checkpointer.path if ward.db.checkpointer else None
    # Closing waited for the checkpoint it had started (an idle thread would have lived another 30 s)
    # and closed the connections, the last of which copies whatever was left into the file.
    assert not _checkpoint_threads(earlier)
    assert catalog is not None and _contributions_in_the_file(catalog, tmp_path) == 1
    # A closed ward is still usable: its connections and checkpoints start again on demand.
    ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(60, 120)), source="b", gate=False)
    ward.close()
    assert not _checkpoint_threads(earlier) and _contributions_in_the_file(catalog, tmp_path) == 2


def test_a_cli_command_closes_the_ward_it_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dataward contribute` returns with its catalog checkpointed, not leaving the copy of a large
    import's log to the next command (or to a thread killed at exit)."""
    from typer.testing import CliRunner

    from dataward.cli.app import app

    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1)
    wine_ward(tmp_path / "ward").close()
    earlier = set(threading.enumerate())
    data = write_csv(tmp_path / "a.csv", wine_rows(0, 60))
    result = CliRunner().invoke(
        app,
        ["contribute", "wine", str(data), "--source", "a", "--no-gate", "--json"],
        env={"DATAWARD_WARD": str(tmp_path / "ward"), "DATAWARD_URL": "", "DATAWARD_KEY": ""},
    )
    assert result.exit_code == 0, result.output
    assert not _checkpoint_threads(earlier)
    assert _contributions_in_the_file(tmp_path / "ward" / "catalog.sqlite", tmp_path) == 1
