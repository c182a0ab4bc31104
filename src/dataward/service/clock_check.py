"""A clock set back is refused: the ward's time must not run behind its own ledger.

Every expiry the ward enforces (a key's, a rotation's overlap window, a grant's) compares the clock with
a stored time. Set the host's clock back a month and a key that expired a week ago works again, and the
events it signs are dated before the ones they follow. The ledger itself is the witness: every use case
already reads its head in its first statement (``ledger_mark.HEAD_PROBE``, ``refusals.REQUEST_PROBE``),
and with it the newest event's time. A clock more than ``CLOCK_SKEW`` behind that time is refused before
any key is judged (``ClockBehind``, exit 4); ``verify`` goes on and says so in a warning.

The tolerance covers clocks of several hosts serving one catalog, and a use case whose clock was read
before a concurrent one committed: both are seconds, not an hour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from dataward.domain.errors import ClockBehind, IntegrityViolation
from dataward.ledger.events import format_time, parse_time, stored_int

CLOCK_SKEW = timedelta(hours=1)
"""How far the clock may read behind the newest ledger event before a use case is refused."""


def stored_time(value: Any) -> datetime | None:
    """A stored event time as a moment; None for anything a catalog edit left instead of one."""
    try:
        return parse_time(value)
    except (ValueError, TypeError):
        return None


def clock_behind(head_time: str | None, now: datetime) -> str | None:
    """Why ``now`` cannot be trusted beside a ledger whose newest event is dated ``head_time`` (a stored
    time), or None (also when ``head_time`` is not a stored time: an edited row, which the chain check
    reports)."""
    newest = stored_time(head_time) if head_time else None
    if newest is None or newest - now <= CLOCK_SKEW:
        return None
    return (
        f"the clock reads {format_time(now)}, {_span(newest - now)} before the ledger's newest event "
        f"({head_time}): it was set back, or this host's clock is off"
    )


def refuse_clock_behind(head_seq: Any, head_time: Any, now: datetime, sealed: Callable[[], bool]) -> None:
    """Raise ``ClockBehind`` when ``clock_behind`` names a problem. The newest event's time decides, so
    before anyone is told to set a clock right, ``sealed()`` (is event ``head_seq`` as the ward signed
    it?) is asked: a time a catalog writer moved into the future, or left as no time at all, is refused
    as the edit it is (``IntegrityViolation``), not as a clock set back. Only a refusal pays for it."""
    if not head_time:
        return
    problem = clock_behind(head_time, now)
    if problem is None and stored_time(head_time) is not None:
        return
    if not sealed():
        raise IntegrityViolation(
            f"the ledger's newest event #{head_seq} is not as the ward signed it (its time reads "
            f"{head_time!r}): it was edited in the catalog, so the clock cannot be checked against it",
            hint="run `dataward verify` to see everything that was altered; restore the catalog from a backup",
            event=stored_int(head_seq),
        )
    if problem is not None:
        raise ClockBehind(
            problem,
            hint="set the host's clock right (NTP) and run the command again: a clock set back would let "
            "expired keys work again",
            head_time=head_time,
            now=format_time(now),
        )


def times_set_back(events: Iterable[tuple[int, str]]) -> list[str]:
    """Where the ledger's ``(seq, stored time)`` pairs, in sequence order, go back by more than
    ``CLOCK_SKEW`` from one event to the next: one line per jump, naming the event and how far back it
    went (the events after it follow the clock as it then was, and are not named again). Going back by
    less (a use case whose clock was read before another committed) is not named."""
    found = []
    previous: tuple[int, str] | None = None
    for seq, time in events:
        if not isinstance(time, str):
            previous = None  # an edited row: the chain check reports it
            continue
        # Stored times compare as text; only a time earlier than the one before is parsed.
        if previous is not None and time < previous[1]:
            try:
                back = parse_time(previous[1]) - parse_time(time)
            except ValueError:
                back = timedelta(0)  # not a stored time (an edited row, which the chain check reports)
            if back > CLOCK_SKEW:
                found.append(
                    f"event #{seq} is dated {time}, {_span(back)} before event #{previous[0]} ({previous[1]}): "
                    "the clock was set back when it was written"
                )
        previous = (seq, time)
    return found


def _span(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
