"""The ledger as stored in the catalog: append (chained, signed) and read back."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select

from dataward.catalog.projection import RowChange, apply_changes
from dataward.catalog.tables import ledger_events, ward_meta
from dataward.domain.hashing import canonical_json
from dataward.ledger.events import (
    CURRENT_FORMAT,
    GENESIS,
    LEGACY_FORMAT,
    STORED_COLUMNS,
    Actor,
    Event,
    StoredEvent,
    seal,
)
from dataward.ledger.signing import WardSigner

HEAD_HASH_QUERY = select(ledger_events.c.hash).order_by(ledger_events.c.seq.desc()).limit(1)
"""The hash of the newest event (no row for an empty ledger): it changes with every append, and so
with every change to a projected table (see ``dataward.service.remembered``)."""

HEAD_SEQ_QUERY = select(ledger_events.c.seq).order_by(ledger_events.c.seq.desc()).limit(1)
"""The sequence number of the newest event (no row for an empty ledger)."""

HEAD_TIME_QUERY = select(ledger_events.c.time).order_by(ledger_events.c.seq.desc()).limit(1)
"""The stored time of the newest event (no row for an empty ledger): a clock reading earlier than it
was set back (``dataward.service.clock_check``)."""

HASH_AT_QUERY = select(ledger_events.c.hash).where(ledger_events.c.seq == bindparam("mark_seq"))
"""The hash of event ``:mark_seq`` (no row when the ledger does not hold it): whether the ledger still
extends a head seen before (``dataward.service.ledger_mark``)."""


def head(conn: Connection) -> tuple[int, str]:
    """``(seq, hash)`` of the newest event, or ``(0, GENESIS)`` for an empty ledger."""
    row = conn.execute(
        select(ledger_events.c.seq, ledger_events.c.hash).order_by(ledger_events.c.seq.desc()).limit(1)
    ).first()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))


def ward_id(conn: Connection) -> str:
    """The ward id the catalog was created for: every format-2 event signature names it."""
    value = conn.execute(select(ward_meta.c.value).where(ward_meta.c.key == "ward_id")).scalar()
    if not value:
        raise RuntimeError("the catalog has no ward id (ward_meta.ward_id)")
    return str(value)


def append(
    conn: Connection,
    signer: WardSigner,
    *,
    actor: Actor,
    type: str,
    subject: dict[str, Any],
    payload: dict[str, Any] | None = None,
    changes: Iterable[RowChange] = (),
    now: datetime,
) -> Event:
    """Append one event and apply its catalog changes, inside the caller's transaction."""
    changes = list(changes)
    body = dict(payload or {})
    if changes:
        body["changes"] = [c.to_dict() for c in changes]
    seq, prev = head(conn)
    event = seal(
        seq=seq + 1,
        prev=prev,
        time=now,
        actor=actor,
        type=type,
        subject=subject,
        payload=body,
        signer=signer,
        ward_id=ward_id(conn),
        format=CURRENT_FORMAT,
    )
    conn.execute(
        insert(ledger_events).values(
            seq=event.seq,
            prev=event.prev,
            hash=event.hash,
            time=event.time,
            type=event.type,
            actor_principal=actor.principal,
            actor_key=actor.key,
            subject=canonical_json(event.subject).decode("utf-8"),
            payload=canonical_json(event.payload).decode("utf-8"),
            sig=event.sig,
            format=event.format,
        )
    )
    apply_changes(conn, changes)
    return event


def _row_to_event(row: Any) -> Event:
    return Event(
        seq=int(row.seq),
        prev=row.prev,
        time=row.time,
        actor={"principal": row.actor_principal, "key": row.actor_key},
        type=row.type,
        subject=json.loads(row.subject),
        payload=json.loads(row.payload),
        hash=row.hash,
        sig=row.sig,
        format=LEGACY_FORMAT if row.format is None else int(row.format),
    )


def read_events(
    conn: Connection,
    *,
    types: Iterable[str] | None = None,
    since: int | None = None,
    limit: int | None = None,
    newest_first: bool = False,
    mentioning: Iterable[str] | None = None,
) -> Iterator[Event]:
    """Events in sequence order (or newest first), optionally filtered by type prefix, and by ids their
    subject names (``mentioning``: any of them, as a JSON string value)."""
    from sqlalchemy import or_

    query = select(ledger_events)
    if since is not None:
        query = query.where(ledger_events.c.seq > since)
    type_list = list(types or [])
    if type_list:
        query = query.where(or_(*(ledger_events.c.type.like(f"{t}%") for t in type_list)))
    if mentioning is not None:
        ids = sorted(set(mentioning))
        query = query.where(or_(*(ledger_events.c.subject.contains(json.dumps(i), autoescape=True) for i in ids)))
    query = query.order_by(ledger_events.c.seq.desc() if newest_first else ledger_events.c.seq)
    if limit is not None:
        query = query.limit(limit)
    for row in conn.execute(query):
        yield _row_to_event(row)


def read_chain(conn: Connection) -> tuple[list[Event], list[tuple[str, str]]]:
    """Every event in sequence order, and each one's subject and payload as stored (JSON text): what
    ``verify_chain`` checks hashes over without re-encoding them."""
    events: list[Event] = []
    texts: list[tuple[str, str]] = []
    for row in conn.execute(select(ledger_events).order_by(ledger_events.c.seq)):
        events.append(_row_to_event(row))
        texts.append((row.subject, row.payload))
    return events, texts


def read_stored(conn: Connection, *, batch: int = 10_000, since: int = 0) -> list[StoredEvent]:
    """Every event (from ``seq`` ``since`` on) in sequence order as its stored columns
    (``STORED_COLUMNS``: subject and payload as their JSON texts, unparsed), fetched by the database
    driver's own cursor in batches: what ``verify_stored`` checks. The caller's transaction is used."""
    columns = ", ".join(STORED_COLUMNS)
    cursor = conn.connection.cursor()
    try:
        cursor.arraysize = batch
        where = f" WHERE seq >= {int(since)}" if since else ""
        cursor.execute(f"SELECT {columns} FROM {ledger_events.name}{where} ORDER BY seq")
        rows: list[StoredEvent] = []
        while chunk := cursor.fetchmany(batch):
            rows.extend(chunk)
        return rows
    finally:
        cursor.close()


@dataclass
class StoredFacts:
    """What ``verify``'s checks after the chain check read from the ledger's stored rows, gathered in
    one pass without making an event of each row: every catalog change in ledger order (as the
    payloads hold them), and the chunk of every ``contribution.submitted`` event in ledger order."""

    changes: list[Any] = field(default_factory=list)
    chunks: list[Any] = field(default_factory=list)


_SUBMITTED = "contribution.submitted"


@functools.cache
def fast_json() -> tuple[Any, tuple[type[BaseException], ...]] | None:
    """``msgspec``'s JSON decoder and the errors it raises, when the optional ``fast`` extra is
    installed (imported on first use: a command that does not verify does not pay for it); else None."""
    try:
        import msgspec
    except ImportError:
        return None
    return msgspec.json.Decoder().decode, (msgspec.DecodeError, RecursionError)


def stored_facts(rows: Iterable[StoredEvent], exact: Sequence[int] | None = None) -> StoredFacts:
    """The catalog changes and submitted chunks of the stored rows (``read_stored``), reading each
    row's payload text and type only; the subject is never parsed.

    A payload is parsed as ``decode_stored`` parses it (``json.loads``; a text that does not parse,
    or is not an object, holds nothing here: the chain check reports that row as altered). It is not
    parsed at all when it is a text holding neither ``"changes"`` nor ``"chunk"`` nor a backslash:
    without a backslash JSON cannot spell a key otherwise than as itself, so such a payload has no
    ``changes`` or ``chunk`` key at any depth.

    ``exact`` (``verify_stored``'s marks, one per row) names the rows whose payload text is byte for
    byte the one sealed: written by the sealing encoder from a parsed value, so it holds no duplicate
    key (``msgspec`` keeps the last of duplicates, as ``json`` does, in any case) and nothing two
    faithful parsers read differently (``msgspec`` reads integers of any size as ints, floats to the
    same double). Those rows are parsed by ``msgspec`` when it is installed (the ``fast`` extra), every
    other row by ``json.loads``, and so is any text ``msgspec`` refuses (a lone surrogate, ``NaN``,
    ``1e400``, nesting deeper than it goes), so the values read are ``json.loads``' in every case."""
    facts = StoredFacts()
    loads = json.loads
    found = fast_json() if exact is not None else None
    fast, fast_errors = found if found is not None else (None, ())
    changes, chunks = facts.changes, facts.chunks
    for i, row in enumerate(rows):
        kind, text = row[4], row[8]
        if type(text) is str and '"changes"' not in text and '"chunk"' not in text and "\\" not in text:
            continue
        try:
            if fast is not None and exact[i]:  # type: ignore[index]
                try:
                    payload = fast(text)
                except fast_errors:
                    payload = loads(text)
            else:
                payload = loads(text)
        except (ValueError, TypeError, RecursionError):
            continue
        if type(payload) is not dict:
            continue
        found = payload.get("changes")
        if type(found) is list:
            changes.extend(found)
        if kind == _SUBMITTED:
            chunk = payload.get("chunk")
            if chunk:
                chunks.append(chunk)
    return facts


def count(conn: Connection) -> int:
    """How many events the ledger holds."""
    return int(conn.execute(select(func.count()).select_from(ledger_events)).scalar_one())


def event_changes(event: Event) -> list[RowChange]:
    """The catalog changes an event carries."""
    return [RowChange.from_dict(c) for c in event.payload.get("changes", [])]
