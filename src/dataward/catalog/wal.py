"""SQLite's write-ahead log copied into the database file on a thread of its own, not inside commits.

With SQLite's automatic checkpoint, the commit that takes the log past a thousand pages also copies
the whole log into the database file and syncs it before it returns: a million-record import waited
about 0.35 s for that copy, a third of its time, after its own data was already durable in the synced
log. The ward turns the automatic checkpoint off on its connections (``AUTOCHECKPOINT_OFF``) and runs
the same PASSIVE checkpoint on a thread of its own, woken after a write transaction leaves the log past
the same thousand pages. Durability is unchanged: a commit returns once the log is synced (``FULL``),
and a crash during a checkpoint leaves the log to be copied again at the next open, as SQLite does for
its own checkpoints. PASSIVE never waits for readers or writers: what a long read still needs is copied
at a later wake-up. SQLite also checkpoints when the process's last connection closes.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

AUTOCHECKPOINT_OFF = "PRAGMA wal_autocheckpoint=0"
"""Set on every catalog connection: checkpoints are ``WalCheckpointer``'s."""
LOG_TRUNCATED = "PRAGMA journal_size_limit=0"
"""Also set on every catalog connection: when the log starts over after a complete checkpoint, its file
is cut to nothing, so that its size is what was written since (``after_write`` goes by the size;
without it the file keeps its largest size, and every later write would wake the thread)."""
CHECKPOINT_PAGES = 1000
"""Log pages past which a checkpoint is started (SQLite's own automatic threshold)."""


class WalCheckpointer:
    """Checkpoints the SQLite database at ``path`` on a daemon thread when its log grows past
    ``CHECKPOINT_PAGES`` pages of ``page_size`` bytes. ``after_write`` is cheap (one ``stat``)."""

    def __init__(self, path: Path, page_size: int, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.log = path.with_name(path.name + "-wal")
        self.threshold = CHECKPOINT_PAGES * page_size
        self.busy_timeout_s = busy_timeout_s
        self.checkpoints = 0
        """Checkpoints run so far (for tests and benchmarks)."""
        self._wanted = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def after_write(self) -> None:
        """Called after a write transaction commits: wake the thread when the log is past the threshold."""
        try:
            size = self.log.stat().st_size
        except OSError:
            return  # no log (yet, or any more): nothing to copy
        if size < self.threshold:
            return
        with self._lock:
            if self._stopping:
                return
            self._idle.clear()
            self._wanted.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dataward-wal-checkpoint", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no checkpoint is asked for or running; False on timeout."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Finish the checkpoint under way (if any) and stop the thread; a later ``after_write``
        starts a new one (an engine disposed of may be used again)."""
        with self._lock:
            self._stopping = True
            thread, self._thread = self._thread, None
            self._wanted.set()
        if thread is not None:
            thread.join()
        with self._lock:
            self._stopping = False
            self._wanted.clear()
            self._idle.set()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wanted.wait()
                with self._lock:
                    if self._stopping:
                        return
                    self._wanted.clear()
                if conn is None:
                    conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, check_same_thread=False)
                    conn.execute(AUTOCHECKPOINT_OFF)
                    conn.execute(LOG_TRUNCATED)
                self._checkpoint(conn)
                with self._lock:
                    if not self._wanted.is_set():
                        self._idle.set()
        finally:
            if conn is not None:
                conn.close()
            self._idle.set()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            # Busy (another process's checkpoint) or a vanished file: the next wake-up, or SQLite at
            # the last close, copies what is left. A checkpoint never loses committed data.
            return
        self.checkpoints += 1
