"""Attacks on a ward folder, played the way someone with write access to it would: straight on the
SQLite catalog, the key file and the kept checkpoints, behind the service's back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import text

from dataward.catalog import ledger_store
from dataward.catalog.projection import TABLES, insert_row, replay
from dataward.ledger.checkpoint import Checkpoint
from dataward.ledger.events import Actor, Event, format_time, seal, utc_now
from dataward.ledger.signing import WardSigner
from dataward.service.config import CHECKPOINTS_DIR, SIGNING_KEY_FILE
from dataward.service.ward import Ward


def events_of(ward: Ward) -> list[Event]:
    with ward.db.reading() as conn:
        return list(ledger_store.read_events(conn))


def _sqlite(ward: Ward) -> sqlite3.Connection:
    db = sqlite3.connect(ward.folder / "catalog.sqlite", isolation_level=None)
    db.execute("PRAGMA foreign_keys=OFF")
    return db


def sql(ward: Ward, statement: str, *params: object) -> list[tuple]:
    """Run SQL on the catalog file directly, the way someone with write access to the folder would."""
    db = sqlite3.connect(ward.folder / "catalog.sqlite", isolation_level=None)
    try:
        return db.execute(statement, params).fetchall()
    finally:
        db.close()


def rebuild_catalog_from_ledger(ward: Ward) -> None:
    """The perfect cover-up: make every projected table exactly what the remaining ledger says."""
    state = replay(c for e in events_of(ward) for c in ledger_store.event_changes(e))
    db = _sqlite(ward)
    try:
        db.execute("BEGIN")
        for name, table in TABLES.items():
            db.execute(f"DELETE FROM {name}")
            for row in state[name].values():
                cols = [c.name for c in table.columns]
                db.execute(
                    f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                    [row.get(c) for c in cols],
                )
        db.execute("COMMIT")
    finally:
        db.close()


def delete_kept_checkpoints(ward: Ward) -> None:
    for path in (ward.folder / CHECKPOINTS_DIR).glob("*.json"):
        path.unlink()


def delete_tail(ward: Ward, count: int, *, with_rows: bool) -> list[Event]:
    """Delete the last ``count`` events (and, ``with_rows``, the catalog rows they made), and the
    checkpoints kept in the ward that would betray it. Returns the deleted events."""
    doomed = events_of(ward)[-count:]
    with ward.db.transaction() as conn:
        conn.execute(text("DELETE FROM ledger_events WHERE seq >= :s"), {"s": doomed[0].seq})
    if with_rows:
        rebuild_catalog_from_ledger(ward)
    delete_kept_checkpoints(ward)
    return doomed


def _write_events(ward: Ward, events: list[Event]) -> None:
    with ward.db.transaction() as conn:
        for e in events:
            conn.execute(
                text("UPDATE ledger_events SET prev = :p, hash = :h, sig = :s, payload = :pl WHERE seq = :n"),
                {
                    "p": e.prev,
                    "h": "tmp:" + e.hash,
                    "s": e.sig,
                    "pl": json.dumps(e.payload, sort_keys=True, separators=(",", ":")),
                    "n": e.seq,
                },
            )
        conn.execute(text("UPDATE ledger_events SET hash = substr(hash, 5) WHERE hash LIKE 'tmp:%'"))


def reseal(events: list[Event], signer: WardSigner, ward_id: str, *, start: int = 1) -> list[Event]:
    """Re-hash and re-sign ``events`` from ``start`` on, re-linking each to the one before."""
    out: list[Event] = []
    prev = None
    for e in events:
        if e.seq < start:
            out.append(e)
            prev = e.hash
            continue
        out.append(
            seal(
                seq=e.seq,
                prev=e.prev if prev is None else prev,
                time=e.time,
                actor=Actor(**e.actor),
                type=e.type,
                subject=e.subject,
                payload=e.payload,
                signer=signer,
                ward_id=ward_id,
                format=e.format,
            )
        )
        prev = out[-1].hash
    return out


def rewrite_event(ward: Ward, seq: int, edit: dict[str, Any], *, signer: WardSigner | None) -> None:
    """Change an event's payload; with ``signer`` (the ward's own key, stolen from the folder),
    re-hash and re-sign it and every later event so the chain stays internally consistent."""
    events = events_of(ward)
    target = events[seq - 1]
    edited = Event(**{**target.__dict__, "payload": {**target.payload, **edit}})
    events[seq - 1] = edited
    if signer is not None:
        events = reseal(events, signer, ward.ward_id, start=seq)
    _write_events(ward, events[seq - 1 :])
    delete_kept_checkpoints(ward)


def replace_key_and_resign(ward: Ward, *, forge_admin: str | None = "mallory") -> tuple[Ward, WardSigner]:
    """Swap the ward's signing key for a new one, re-sign the whole chain with it (the first event
    naming the new public key), append a forged admin grant, and re-make the kept checkpoints.

    Without a pinned key nothing in the folder contradicts the result. Returns the re-opened ward.
    """
    forger = WardSigner.generate()
    events = events_of(ward)
    genesis = events[0]
    events[0] = Event(**{**genesis.__dict__, "payload": {**genesis.payload, "public_key": forger.public_key_b64}})
    _write_events(ward, reseal(events, forger, ward.ward_id))
    with ward.db.transaction() as conn:
        conn.execute(text("UPDATE ward_meta SET value = :k WHERE key = 'public_key'"), {"k": forger.public_key_b64})
        if forge_admin:
            now = utc_now()
            stamp = format_time(now)
            admin_id = conn.execute(text("SELECT principal_id FROM grants WHERE role = 'admin'")).scalars().first()
            actor = Actor(admin_id, None)
            ledger_store.append(
                conn,
                forger,
                actor=actor,
                type="principal.created",
                subject={"principal": "p_mallory"},
                payload={"name": forge_admin, "kind": "human"},
                changes=[
                    insert_row(
                        "principals",
                        id="p_mallory",
                        name=forge_admin,
                        kind="human",
                        owner_id=None,
                        status="active",
                        created_at=stamp,
                        created_by=admin_id,
                        description="",
                    )
                ],
                now=now,
            )
            ledger_store.append(
                conn,
                forger,
                actor=actor,
                type="grant.created",
                subject={"principal": "p_mallory"},
                payload={"role": "admin", "scope": "ward"},
                changes=[
                    insert_row(
                        "grants",
                        id="g_mallory",
                        principal_id="p_mallory",
                        role="admin",
                        scope_kind="ward",
                        scope_name=None,
                        granted_by=admin_id,
                        granted_at=stamp,
                    )
                ],
                now=now,
            )
    key_file = ward.folder / SIGNING_KEY_FILE
    key_file.unlink()
    forger.save(key_file)
    delete_kept_checkpoints(ward)
    reopened = Ward.open(ward.folder)
    head = events_of(reopened)[-1]
    forged_cp = Checkpoint.sign(forger, ward=ward.ward_id, seq=head.seq, head=head.hash, time=format_time(utc_now()))
    (ward.folder / CHECKPOINTS_DIR / forged_cp.name).write_text(forged_cp.to_json())
    return reopened, forger


def json_cli(ward: Path, *args: str, key: str = "") -> tuple[int, dict]:
    """The CLI in-process, as a new process would run it (a new ``Ward`` each time), with ``--json``: the exit
    code and the JSON document printed."""
    from typer.testing import CliRunner

    from dataward.cli.app import app

    result = CliRunner().invoke(
        app, ["--ward", str(ward), *args, "--json"], env={"DATAWARD_KEY": key, "COLUMNS": "200"}
    )
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"exit {result.exit_code}: {result.stdout}\n{result.output}") from None
