"""Keys, principals and grants as the signed ledger made them: what authentication and authorization
check the catalog's rows against on every request (see ``guard.checked_identity_rows``).

A process keeps this state per ward and brings it up to date from the ledger's head: when the head has
not moved, a request costs one look at the ledger row the state was folded up to; when it has, only the
newer events are checked (each row's hash and link, the signatures of every ``SIGNATURE_SPACING``-th
row and of the last) and folded. The newest few states are kept (``KEPT_STATES``), so a transaction
whose view of the ledger is older than the newest state (a server's concurrent request) continues from
one it holds. A process that has no state yet (every CLI command, a server's first
request) starts from the **identity snapshot** the ward keeps in ``ward_meta``: these three tables at
some event ``seq`` of hash ``hash``, signed by the ward's key (domain-separated from event
signatures). It is used only when its signature holds and the ledger's event ``seq`` still holds that
``hash``; the events after it are then checked and folded as above. Otherwise the whole ledger is
checked and folded, as ``verify`` would. Someone who can write the catalog without the signing key
cannot make a snapshot: at most they can remove one (the next process folds the whole ledger) or put
back an older one (the events after it are folded: the same state).

A write transaction saves a new snapshot (``keep_snapshot``) once the state has moved
``SNAPSHOT_SPACING`` events past the one the process read or saved, so a cold start checks at most
about that many events whatever the ledger's length (and reads the snapshot: its cost follows the
number of keys, principals and grants).

Deleting the newest events together with the rows they made is truncation, which no check here can
see: the shorter chain verifies. ``WardContext.use_case`` refuses it before this state is read when the
ledger no longer extends the newest head the process knows of (one it read, or the newest kept
checkpoint: ``service/ledger_mark.py``); past that, only an anchored ``verify`` (a checkpoint kept
outside the ward) detects it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from sqlalchemy import Connection, insert, select, update

from dataward.catalog import ledger_store
from dataward.catalog.projection import fold_change
from dataward.catalog.tables import ward_meta
from dataward.domain.errors import IntegrityViolation
from dataward.domain.hashing import canonical_json
from dataward.ledger.events import (
    SIGNATURE_SPACING,
    decode_stored,
    stored_int,
    verify_stored,
    verify_stored_after,
)
from dataward.ledger.signing import SignatureVerifier, WardSigner

IDENTITY_TABLES = ("api_keys", "principals", "grants")
"""The tables authentication and authorization decide on."""

SNAPSHOT_KEY = "identity_snapshot"
"""The ``ward_meta`` entry holding the signed identity snapshot."""

SNAPSHOT_SPACING = 512
"""Events a process's state may move past the snapshot it read or saved before a write saves a new one."""

_DOMAIN = b"dataward.identity-snapshot.v1\x00"

_HINT = "run `dataward verify` to see everything that was altered; restore the catalog from a backup"

Tables = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


@dataclasses.dataclass(frozen=True, eq=False)
class SignedIdentity:
    """The rows of ``IDENTITY_TABLES`` as the signed ledger's changes make them, up to event ``seq`` of
    hash ``hash`` (table -> ``(id,)`` -> row). Never changed once made. ``saved`` is the ``seq`` of the
    newest snapshot this process knows is stored (read or written)."""

    seq: int
    hash: str
    tables: Tables
    saved: int = 0


_EMPTY = SignedIdentity(0, "", {t: {} for t in IDENTITY_TABLES})
_states: dict[tuple[str, str], tuple[SignedIdentity, ...]] = {}
_verifiers: dict[str, SignatureVerifier] = {}


def _verifier(public_key: str) -> SignatureVerifier:
    found = _verifiers.get(public_key)
    if found is None:
        found = _verifiers[public_key] = SignatureVerifier(public_key)
    return found


def signed_identity(conn: Connection, public_key: str, ward_id: str) -> SignedIdentity:
    """The state (:class:`SignedIdentity`) at the ledger's head as ``conn`` sees it, after checking the
    events it was not yet folded from (see the module docstring). Refused with ``IntegrityViolation``
    when those events do not verify."""
    key = (public_key, ward_id)
    verifier = _verifier(public_key)
    start, rows = _kept_start(conn, _states.get(key, ()))
    if rows is None:
        start = _load_snapshot(conn, verifier, ward_id)
        rows = _rows_after(conn, start) if start is not None else None
    if rows is None or start is None:
        start, rows = _EMPTY, ledger_store.read_stored(conn)
        new = checked_rows(rows, verifier, ward_id, after=False, doing="authenticate against")
    else:
        new = checked_rows(rows, verifier, ward_id, after=True, doing="authenticate against")
    state = _fold(start, new) if new else start
    _keep(key, state)
    return state


def checked_rows(rows: list[Any], verifier: SignatureVerifier, ward_id: str, *, after: bool, doing: str) -> list[Any]:
    """The ledger rows not yet folded, once ``rows`` verify as a chain: every row (``after=False``: the
    whole ledger), or those after the first (``after=True``: ``rows[0]`` is the event already folded,
    its hash already checked). Refused with ``IntegrityViolation`` naming the first broken event, as
    "refusing to {doing} a ledger that does not verify"."""
    check = verify_stored_after if after else verify_stored
    problems = check(rows, verifier, ward_id, signature_every=SIGNATURE_SPACING)
    if problems:
        first = problems[0]
        raise IntegrityViolation(
            f"refusing to {doing} a ledger that does not verify: event #{first.seq}: {first.detail}",
            hint=_HINT,
            event=first.seq,
        )
    return rows[1:] if after else rows


KEPT_STATES = 8
"""States kept per ward and process: a transaction that started before the newest events were committed
(another request of a server) continues from one its snapshot of the ledger holds, not from scratch."""


def _kept_start(conn: Connection, kept: tuple[SignedIdentity, ...]) -> tuple[SignedIdentity | None, list[Any] | None]:
    """The newest kept state the ledger as ``conn`` sees it continues, with the rows from it on."""
    if not kept:
        return None, None
    rows = _rows_after(conn, kept[-1])
    if rows is not None:
        return kept[-1], rows
    seq, _ = ledger_store.head(conn)  # an older view of the ledger than the newest state, or another ledger
    for state in reversed(kept[:-1]):
        if state.seq <= seq and (rows := _rows_after(conn, state)) is not None:
            return state, rows
    return None, None


def _keep(key: tuple[str, str], state: SignedIdentity) -> None:
    """Keep ``state`` among the ward's newest ``KEPT_STATES`` (by ``seq``; one per ``seq``)."""
    kept = _states.get(key, ())
    if any(s is state for s in kept):
        return
    merged = sorted([s for s in kept if s.seq != state.seq] + [state], key=lambda s: s.seq)
    _states[key] = tuple(merged[-KEPT_STATES:])


def _rows_after(conn: Connection, state: SignedIdentity) -> list[Any] | None:
    """The ledger's rows from ``state.seq`` on, when the row at ``state.seq`` still holds ``state.hash``
    (None otherwise: the state does not continue into this ledger)."""
    if not state.seq:
        return None
    rows = ledger_store.read_stored(conn, since=state.seq)
    if rows and stored_int(rows[0][0]) == state.seq and rows[0][2] == state.hash:
        return rows
    return None


_NAMES = tuple(f'"{t}"' for t in IDENTITY_TABLES)


def _fold(state: SignedIdentity, rows: list[Any]) -> SignedIdentity:
    """``state`` with the changes of ``rows`` (checked, the next after ``state.seq``) folded in. A payload
    naming none of the tables, and holding no backslash (without one JSON cannot spell a name otherwise
    than as itself), changes none of them and is not parsed."""
    tables, copied = dict(state.tables), set()
    for row in rows:
        text = row[8]
        if type(text) is str and "\\" not in text and not any(name in text for name in _NAMES):
            continue
        for c in ledger_store.event_changes(decode_stored(row)):
            if c.table not in tables:
                continue
            if c.table not in copied:  # copy on write: a state another reader holds never changes
                tables[c.table] = dict(tables[c.table])
                copied.add(c.table)
            fold_change(tables[c.table], c.table, c.op, c.key, c.values)
    last = rows[-1]
    return SignedIdentity(stored_int(last[0]), last[2], tables, state.saved)


def _message(ward_id: str, seq: int, head: str, tables_text: bytes) -> bytes:
    digest = hashlib.sha256(tables_text).hexdigest()
    return _DOMAIN + canonical_json([ward_id, seq, head, digest])


def snapshot_text(signer: WardSigner, ward_id: str, seq: int, head: str, tables: Tables) -> str:
    """The stored form of a snapshot of ``tables`` at event ``seq`` of hash ``head``: a JSON line
    (``seq``, ``hash``, ``sig``), then the tables as canonical JSON (each a list of rows in id order).
    The signature covers the ward id, ``seq``, ``head`` and the SHA-256 of the tables' bytes as
    stored, so reading it back parses them once and re-encodes nothing."""
    lists = {t: [tables[t][k] for k in sorted(tables[t], key=str)] for t in IDENTITY_TABLES}
    body = canonical_json(lists)
    sig = signer.sign(_message(ward_id, seq, head, body))
    return canonical_json({"seq": seq, "hash": head, "sig": sig}).decode("utf-8") + "\n" + body.decode("utf-8")


def _load_snapshot(conn: Connection, verifier: SignatureVerifier, ward_id: str) -> SignedIdentity | None:
    """The stored snapshot, when there is one and its signature holds (None otherwise: the caller then
    folds the whole ledger, which needs no snapshot)."""
    text = conn.execute(select(ward_meta.c.value).where(ward_meta.c.key == SNAPSHOT_KEY)).scalar()
    if not text:
        return None
    try:
        first, _, body = text.partition("\n")
        header = json.loads(first)
        seq, head, sig = int(header["seq"]), str(header["hash"]), str(header["sig"])
        if not verifier.verify(_message(ward_id, seq, head, body.encode("utf-8")), sig):
            return None
        lists = json.loads(body)
        tables: Tables = {t: {(row["id"],): row for row in lists[t]} for t in IDENTITY_TABLES}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return SignedIdentity(seq, head, tables, seq)


def keep_snapshot(conn: Connection, signer: WardSigner, ward_id: str) -> None:
    """Inside a write transaction, after authentication: save this process's state as the ward's
    identity snapshot when it has moved ``SNAPSHOT_SPACING`` events past the one last read or saved,
    and the ledger this transaction sees still holds the event it was folded up to."""
    key = (signer.public_key_b64, ward_id)
    kept = _states.get(key, ())
    state = kept[-1] if kept else None
    if state is None or state.seq - max(s.saved for s in kept) < SNAPSHOT_SPACING:
        return
    if _rows_after(conn, state) is None:
        return
    text = snapshot_text(signer, ward_id, state.seq, state.hash, state.tables)
    if conn.execute(update(ward_meta).where(ward_meta.c.key == SNAPSHOT_KEY).values(value=text)).rowcount == 0:
        conn.execute(insert(ward_meta).values(key=SNAPSHOT_KEY, value=text))
    _keep(key, dataclasses.replace(state, saved=state.seq))
