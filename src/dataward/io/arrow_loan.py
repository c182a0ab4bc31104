"""Python objects lent to pyarrow's threads, and waiting until they are all given back.

pyarrow's streaming CSV reader reads a Python stream on a thread of Arrow's I/O pool, and keeps the
stream and each block it read (as Python objects) in native objects that its pool threads may be
the last to release. Releasing one takes the GIL. A pool thread that asks for the GIL while the
interpreter is exiting is ended with ``pthread_exit``, which aborts the whole process ("terminate
called without an active exception", exit 134) after the command has printed its answer: a refused
CSV did so in about one CLI run in twenty, when the error left the reader before Arrow's threads had
let go of the file. A reader therefore reads through an :class:`ArrowLoan`, which stops the stream
and waits, with the GIL released, until Arrow has given back every object lent to it, before the
reader's result or error is passed on.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

IDLE_WAIT = 0.5
"""Seconds a stopped read-ahead is given to see the end of the stream (it sees it at once when it is
running; a read-ahead paused on a full queue never reads again, and is not waited for longer)."""

RETURN_WAIT = 10.0
"""Seconds Arrow's threads are given to release what they hold (in practice a few milliseconds)."""


class _Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class _Feed:
    """What the Arrow reader reads: the stream's bytes, each block a tracked ``memoryview``."""

    def __init__(self, loan: ArrowLoan) -> None:
        self._loan = loan
        self.closed = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> memoryview:
        return self._loan.read(size)


class ArrowLoan:
    """Lends ``stream`` to an Arrow reader (:meth:`feed`) and gets it back (:meth:`settle`).

    Every object Arrow can hold (the feed and every block read through it) is tracked by a weak
    reference, so that "Arrow has released it" is seen rather than guessed.
    """

    def __init__(self, stream: _Readable) -> None:
        self._stream = stream
        self._lent: set[weakref.ref[Any]] = set()
        self._stopped = False
        self._end: weakref.ref[memoryview] | None = None

    def feed(self) -> _Feed:
        """The object to give the reader; keep no reference to it, or :meth:`settle` waits for it."""
        feed = _Feed(self)
        self._track(feed)
        return feed

    def read(self, size: int = -1) -> memoryview:
        data = b"" if self._stopped else self._stream.read(size)
        view = memoryview(data)
        ref = self._track(view)
        if not data:
            self._end = ref
        return view

    def _track(self, item: Any) -> weakref.ref[Any]:
        # The callback runs on whichever thread drops the last reference, with the GIL held.
        ref = weakref.ref(item, self._lent.discard)
        self._lent.add(ref)
        return ref

    @property
    def returned(self) -> bool:
        """True when Arrow holds nothing lent to it any more."""
        return not self._lent

    def _read_ahead_ended(self) -> bool:
        return self._end is not None and self._end() is None

    def stop(self) -> None:
        """Make every later read see the end of the stream, so that the read-ahead ends."""
        self._stopped = True

    def settle(self, drop_reader: Callable[[], None] | None = None) -> bool:
        """Stop the stream and wait until Arrow has released everything lent to it; True if it has.

        ``drop_reader`` drops the caller's last reference to the reader. It is called only once the
        read-ahead has seen the end of the stream: dropping the reader waits (holding the GIL) for a
        running read-ahead, which would wait for the GIL to read.
        """
        self.stop()
        if drop_reader is not None:
            _wait_until(self._read_ahead_ended, IDLE_WAIT)
            drop_reader()
        return _wait_until(lambda: self.returned, RETURN_WAIT)


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition``, sleeping (the GIL released, so Arrow's threads can take it) in between."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    return True
