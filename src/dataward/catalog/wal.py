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


IDLE_EXIT_S = 30.0
"""A thread with nothing to do for this long ends (a later large write starts another): a ward opened
and dropped without ``dispose`` leaves no thread behind for long, and no connection at all."""


class WalCheckpointer:
    """Checkpoints the SQLite database at ``path`` on a daemon thread when its log grows past
    ``CHECKPOINT_PAGES`` pages of ``page_size`` bytes. ``after_write`` is cheap (one ``stat``).

    Each checkpoint opens a connection of its own and closes it (a checkpoint is rare: one per 32 MB
    written), and an error in one (no file descriptor left, a vanished file) is retried at the next
    wake-up rather than ending the thread. Each thread has its own stop event, so any number of
    ``close`` calls, at once or in turn, all return once it has ended.
    """

    def __init__(self, path: Path, page_size: int, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.log = path.with_name(path.name + "-wal")
        self.threshold = CHECKPOINT_PAGES * page_size
        self.busy_timeout_s = busy_timeout_s
        self.checkpoints = 0
        """Checkpoints run so far (for tests and benchmarks)."""
        self.failures = 0
        """Checkpoints that raised (retried at the next wake-up)."""
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def after_write(self) -> None:
        """Called after a write transaction commits: wake the thread when the log is past the threshold."""
        try:
            size = self.log.stat().st_size
        except OSError:
            return  # no log (yet, or any more): nothing to copy
        if size < self.threshold:
            return
        with self._lock:
            self._idle.clear()
            self._wake.set()
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="dataward-wal-checkpoint", daemon=True
                )
                self._thread.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no checkpoint is asked for or running; False on timeout."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Finish the checkpoint under way (if any) and end the thread; a later ``after_write``
        starts a new one (an engine disposed of may be used again)."""
        with self._lock:
            thread, stop = self._thread, self._stop
            stop.set()
            self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self, stop: threading.Event) -> None:
        try:
            while True:
                woken = self._wake.wait(IDLE_EXIT_S)
                with self._lock:
                    if stop.is_set() or (not woken and not self._wake.is_set()):
                        return  # stopped, or idle for long enough (``finally`` clears the slot)
                    self._wake.clear()
                self._checkpoint()
                with self._lock:
                    if not self._wake.is_set():
                        self._idle.set()
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None
                if not self._wake.is_set() or stop.is_set():
                    self._idle.set()

    def _checkpoint(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
            try:
                conn.execute(AUTOCHECKPOINT_OFF)
                conn.execute(LOG_TRUNCATED)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                conn.close()
        except (sqlite3.Error, OSError):
            # Busy (another process's checkpoint), no file descriptor left, a vanished file: the next
            # wake-up, or SQLite at the last close, copies what is left. A checkpoint never loses data.
            self.failures += 1
            return
        self.checkpoints += 1
