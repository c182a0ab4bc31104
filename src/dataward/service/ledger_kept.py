"""What a hot path derives from a ward's signed ledger (and the objects it names), kept per ward while
the ledger's head is the same event.

Some reads run on every request of a kind and derive the same thing each time from the signed ledger's
state and from content-addressed objects it names: the steps a guarded read follows from rejected records
(``rejected_copies``), the id lists of the quarantined contributions a gate recording or ``review list``
looks records up in (``quarantine_holds``). As long as the head is the same event (its number and hash),
the signed state is the same, and so are those objects, so a later read would derive the same. Every
event, by any process, moves the head (a catalog restored from a backup or a cut ledger does too: the
newest event is another), so the next read derives afresh.

What is kept is per ward: its public key and id, its catalog and its store (a copy of the ward with the
same ledger is read for itself). One value per ward, the latest head's: a reader that kept something
for an older head has nothing to gain from it.

What the catalog alone says (a row edited behind the ward's back, which ``verify`` reports) is not what
is kept: a kept value is made from the signed state, from catalog rows checked against it and from
objects read (and re-hashed) from the store; what a caller takes from the catalog unchecked, it reads
on each call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Connection

if TYPE_CHECKING:
    from dataward.service.guard import _Signed

T = TypeVar("T")


@dataclass(frozen=True)
class _AtHead(Generic[T]):
    head: tuple[int, str]
    value: T


class LedgerKept(Generic[T]):
    """Values kept per ward, each for the ledger head it was made at (see the module's docstring)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, ...], _AtHead[T]] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection, store: Any, ledger: tuple[str, str], make: Callable[[_Signed], T]) -> T:
        """The value kept for the ward of ``ledger`` (its public key and id), the catalog of ``conn`` and
        ``store`` at the signed ledger's head as ``conn`` sees it; ``make(state)`` when none is kept for
        that head, ``state`` being the signed ledger's (checked, ``guard._signed``). ``make`` must derive
        from ``state``, catalog rows checked against it and store objects only: what it returns is
        shared by every later call at that head."""
        from dataward.service.guard import _signed

        state = _signed(conn, *ledger)
        ward = (*ledger, str(conn.engine.url), str(getattr(store, "url", id(store))))
        head = (state.seq, state.hash)
        with self._lock:
            kept = self._kept.get(ward)
        if kept is None or kept.head != head:
            kept = _AtHead(head, make(state))
            with self._lock:
                self._kept[ward] = kept
        return kept.value

    def forget(self) -> None:
        """Drop what every ward kept (a benchmark's cold read, a test's)."""
        with self._lock:
            self._kept.clear()


__all__ = ["LedgerKept"]
