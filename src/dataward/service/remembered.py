"""Catalog reads remembered between requests, under the ledger head they were read at.

Every change to the catalog's projected tables (datasets, versions, contributions, grants ...) is
applied in the same transaction as the ledger event that carries it (``ledger_store.append``), so
the hash of the ledger's newest event names the state of everything projected: as long as the head
is the same, a read of those tables returns the same rows. A served ward reads the head on every
request, in the one statement that also reads the auth epoch (see ``WardContext.use_case``), and
takes a remembered result only when it was read under that same head. Any write, by any process,
moves the head, so the next request in every worker reads the catalog again.

Only results that depend on nothing but the catalog are remembered (never who asked: the caller is
authenticated and authorized on every request before a remembered result is used). A hash, not a
count, so that a catalog restored from a backup and written again never matches a head remembered
from before. Entries also lapse after ``ttl_s`` seconds, so that a table edited behind the ledger's
back (which ``verify`` reports) is read again soon; at most ``max_entries`` are kept.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

MISSING: Any = object()
"""What ``ReadCache.get`` returns when nothing usable is remembered."""


@dataclass(frozen=True)
class _Entry:
    head: str
    stored_at: float
    value: Any


class ReadCache:
    """Results of catalog reads of this process, each usable only under the ledger head it was read at."""

    def __init__(self, *, ttl_s: float = 30.0, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, head: str) -> Any:
        """The value read for ``key`` under ``head`` and not older than the TTL, or ``MISSING``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return MISSING
            if entry.head != head or self.clock() - entry.stored_at > self.ttl_s:
                del self._entries[key]
                return MISSING
            return entry.value

    def put(self, key: Hashable, head: str, value: Any) -> None:
        """Remember ``value`` (immutable: it is shared by every later request) as read under ``head``."""
        with self._lock:
            self._entries[key] = _Entry(head, self.clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
