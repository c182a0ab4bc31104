"""SQLite's log is copied into the catalog file on the ward's own thread, never inside a commit, and a
commit is durable whether or not that copy has run (or was cut short by the process dying)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from dataward.catalog import wal
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, write_csv
from tests.store.test_catalog_pages import _wine_ward

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
    ward = _wine_ward(tmp_path / "ward")
    with ward.db.reading() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0
    with ward.db.transaction() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0


def test_a_write_past_the_threshold_is_checkpointed_on_the_wards_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1)
    ward = _wine_ward(tmp_path / "ward")
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
    ward = _wine_ward(tmp_path / "ward")
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
    ward = _wine_ward(tmp_path / "ward")
    checkpointer = ward.db.checkpointer
    assert checkpointer is not None
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a", gate=False)
    assert checkpointer.wait_idle(30)
    assert checkpointer.checkpoints == 0
    assert _contributions_in_the_file(checkpointer.path, tmp_path) == 0  # still in the log only
    assert ward.contributions("wine")  # where every connection reads it


def test_dispose_finishes_the_checkpoint_under_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1)
    ward = _wine_ward(tmp_path / "ward")
    ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 60)), source="a", gate=False)
    checkpointer = ward.db.checkpointer
    assert checkpointer is not None
    ward.db.dispose()
    assert checkpointer.wait_idle(0)  # nothing asked for or running once dispose returned
    # Used again after dispose: a new thread takes over.
    before = checkpointer.checkpoints
    ward.contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(60, 120)), source="b", gate=False)
    assert checkpointer.wait_idle(30) and checkpointer.checkpoints > before


@pytest.mark.parametrize("pages", [1, wal.CHECKPOINT_PAGES])
def test_a_process_that_dies_after_a_commit_loses_nothing(tmp_path: Path, pages: int) -> None:
    """The process exits at once after the import returns, without closing anything: with the
    threshold at one page its checkpoint is then under way (or not yet started), with the default
    one it never ran. Either way the next process finds the contribution, and the ward verifies."""
    folder = tmp_path / "ward"
    _wine_ward(folder).db.dispose()
    csv = write_csv(tmp_path / "a.csv", wine_rows(0, 120))
    script = textwrap.dedent(
        f"""
        import os
        from dataward.catalog import wal
        wal.CHECKPOINT_PAGES = {pages}
        from dataward.service.ward import Ward
        ward = Ward.open({str(folder)!r})
        ward.contribute("wine", {str(csv)!r}, source="a", gate=False)
        os._exit(0)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    ward = Ward.open(folder)
    [contribution] = ward.contributions("wine")
    assert contribution["added"] == 120
    assert ward.verify().ok
