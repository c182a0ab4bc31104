"""Bounded recording of authentication refusals, so that garbage requests cannot flood the ledger.

Every refused request is still an ``access.denied`` event, up to a limit: per claimed key id and
minute the first :data:`PER_KEY_PER_MINUTE` refusals are recorded in full, and at most
:data:`PER_MINUTE` in all. Beyond that a refusal is only counted (in the operational
``auth_refusal_counts`` table, outside the ledger); once its minute is over, one signed
``access.denied.summary`` event records how many refusals of each claimed key id were counted but
not recorded. Refusals of an authenticated principal (a missing role, a policy) are always recorded:
they are attributable, and the principal can be stopped.
"""

from __future__ import annotations

from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, func, insert, select, update

from dataward.catalog import ledger_store
from dataward.catalog.projection import AUTH_EPOCH_QUERY
from dataward.catalog.tables import auth_refusal_counts
from dataward.ledger.events import Actor, Event, format_time
from dataward.ledger.signing import WardSigner

PER_KEY_PER_MINUTE = 5
"""Authentication refusals recorded in full per claimed key id (or per missing/malformed key) and minute."""
PER_MINUTE = 50
"""Authentication refusals recorded in full per minute, whatever the key id claimed."""
SUMMARY_EVENT = "access.denied.summary"
ANONYMOUS = Actor("anonymous", None)


def minute_of(now: datetime) -> str:
    """The minute ``now`` falls in, as a sortable time string."""
    return format_time(now.replace(second=0, microsecond=0))


def admit(conn: Connection, claimed_key: str | None, now: datetime) -> bool:
    """Count one authentication refusal; True when the ledger should record it in full."""
    minute, claim = minute_of(now), claimed_key or ""
    table = auth_refusal_counts
    row = conn.execute(select(table).where(table.c.minute == minute, table.c.claimed_key == claim)).first()
    in_minute = conn.execute(select(func.sum(table.c.recorded)).where(table.c.minute == minute)).scalar() or 0
    full = (0 if row is None else int(row.recorded)) < PER_KEY_PER_MINUTE and int(in_minute) < PER_MINUTE
    if row is None:
        conn.execute(
            insert(table).values(minute=minute, claimed_key=claim, recorded=int(full), suppressed=int(not full))
        )
    else:
        conn.execute(
            update(table)
            .where(table.c.minute == minute, table.c.claimed_key == claim)
            .values(recorded=table.c.recorded + int(full), suppressed=table.c.suppressed + int(not full))
        )
    return full


def pending(conn: Connection, now: datetime) -> bool:
    """True when counts of a minute already over are waiting to be summarized (one cheap query)."""
    table = auth_refusal_counts
    return conn.execute(select(table.c.minute).where(table.c.minute < minute_of(now)).limit(1)).first() is not None


_EPOCH_AND_PENDING = select(
    AUTH_EPOCH_QUERY.scalar_subquery().label("epoch"),
    exists().where(auth_refusal_counts.c.minute < bindparam("minute")).label("pending"),
)


def epoch_and_pending(conn: Connection, now: datetime) -> tuple[str | None, bool]:
    """The auth epoch and ``pending(conn, now)`` in one statement (one round trip): what a request
    that may authenticate from remembered keys reads first."""
    row = conn.execute(_EPOCH_AND_PENDING, {"minute": minute_of(now)}).one()
    return row.epoch, bool(row.pending)


REQUEST_PROBE = select(
    AUTH_EPOCH_QUERY.scalar_subquery().label("epoch"),
    exists().where(auth_refusal_counts.c.minute < bindparam("minute")).label("pending"),
    ledger_store.HEAD_HASH_QUERY.scalar_subquery().label("head"),
    ledger_store.HEAD_SEQ_QUERY.scalar_subquery().label("head_seq"),
    ledger_store.HASH_AT_QUERY.scalar_subquery().label("at_mark"),
    ledger_store.HEAD_TIME_QUERY.scalar_subquery().label("head_time"),
)
"""What a served read asks first, in one statement: the auth epoch, whether refusal summaries are
pending (``pending``), the ledger head (``head``, ``head_seq``: ``dataward.service.remembered``) and
the hash of the event the process's ledger mark names (``at_mark``: ``dataward.service.ledger_mark``),
and the newest event's time (``head_time``: ``dataward.service.clock_check``).
Run with ``{"minute": minute_of(now), "mark_seq": ...}``."""


def flush(conn: Connection, signer: WardSigner, now: datetime) -> list[Event]:
    """Append one ``access.denied.summary`` per finished minute in which refusals were only counted,
    then forget the counts of finished minutes. Runs in the caller's write transaction."""
    table = auth_refusal_counts
    current = minute_of(now)
    done = conn.execute(
        select(table).where(table.c.minute < current).order_by(table.c.minute, table.c.claimed_key)
    ).all()
    events = []
    for minute, group in groupby(done, key=lambda r: r.minute):
        rows = list(group)
        suppressed = sum(int(r.suppressed) for r in rows)
        if not suppressed:
            continue
        claims: list[dict[str, Any]] = [
            {"claimed_key": r.claimed_key or None, "recorded": int(r.recorded), "suppressed": int(r.suppressed)}
            for r in rows
            if r.suppressed
        ]
        events.append(
            ledger_store.append(
                conn,
                signer,
                actor=ANONYMOUS,
                type=SUMMARY_EVENT,
                subject={"minute": minute},
                payload={
                    "minute": minute,
                    "recorded": sum(int(r.recorded) for r in rows),
                    "suppressed": suppressed,
                    "claims": claims,
                    "limits": {"per_key_per_minute": PER_KEY_PER_MINUTE, "per_minute": PER_MINUTE},
                },
                now=now,
            )
        )
    if done:
        conn.execute(delete(table).where(table.c.minute < current))
    return events
