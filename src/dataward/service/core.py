"""The heart of the service: one transaction per use case.

Every use case runs ``authenticate -> authorize -> compute -> append ledger event + update catalog``
inside a single database transaction, so the ledger and its catalog projections never disagree.
A refusal rolls the use case back and is itself recorded as an ``access.denied`` event.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from dataward.access.roles import Action, Scope
from dataward.catalog import ledger_store
from dataward.catalog.database import CatalogDatabase
from dataward.catalog.projection import RowChange, update_row
from dataward.catalog.tables import quarantine
from dataward.domain.errors import AccessDenied, AuthenticationError, NotFound
from dataward.ledger.events import Actor, Event, format_time, utc_now
from dataward.ledger.signing import WardSigner
from dataward.service import auth, refusals
from dataward.store import ObjectStore

Clock = Callable[[], datetime]


def new_id(prefix: str) -> str:
    """A random, prefixed identifier (``p_``, ``c_``, ``g_`` ...): unguessable and easy to read."""
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass
class UseCase:
    """What a use case sees: its connection, its caller, the time, and ``emit`` to record events."""

    conn: Connection
    caller: auth.Caller
    now: datetime
    signer: WardSigner
    events: list[Event] = field(default_factory=list)

    @property
    def actor(self) -> Actor:
        return self.caller.actor

    def emit(
        self,
        type: str,
        subject: dict[str, Any],
        payload: dict[str, Any] | None = None,
        changes: list[RowChange] | tuple[RowChange, ...] = (),
    ) -> Event:
        """Append a signed event and apply its catalog changes in this transaction."""
        event = ledger_store.append(
            self.conn,
            self.signer,
            actor=self.actor,
            type=type,
            subject=subject,
            payload=payload,
            changes=changes,
            now=self.now,
        )
        self.events.append(event)
        return event


def close_pending_reviews(uc: UseCase, contribution_id: str, why: str) -> list[RowChange]:
    """Changes rejecting every pending review item of a contribution that leaves as a unit (rejected,
    withdrawn or quarantined): its records never enter a version, so nothing is left to review."""
    pending = uc.conn.execute(
        select(quarantine.c.id).where(quarantine.c.contribution_id == contribution_id, quarantine.c.status == "pending")
    )
    return [
        update_row(
            "quarantine",
            {"id": q.id},
            status="rejected",
            decided_by=uc.caller.principal_id,
            decided_at=format_time(uc.now),
            decision_reason=why,
        )
        for q in pending
    ]


class ConcealedDenial(AccessDenied):
    """A refusal recorded as ``access.denied`` but answered with ``shown`` (a NotFound), so that a
    caller without the right to see something cannot tell whether it exists."""

    def __init__(self, message: str, shown: NotFound) -> None:
        super().__init__(message)
        self.shown = shown


class WardCore:
    """State shared by every use case: where the ward is, its database, objects, key and caller."""

    def __init__(
        self,
        folder: Path,
        db: CatalogDatabase,
        store: ObjectStore,
        signer: WardSigner,
        *,
        credential: str | None,
        clock: Clock = utc_now,
        ward_id: str = "",
    ) -> None:
        self.folder = folder
        self.db = db
        self.store = store
        self.signer = signer
        self.credential = credential
        self.clock = clock
        self.ward_id = ward_id

    def now(self) -> datetime:
        return self.clock()

    @contextmanager
    def use_case(
        self, action: Action, scope: Scope, *, detail: dict[str, Any] | None = None, check: bool = True
    ) -> Iterator[UseCase]:
        """Authenticate the caller, authorize ``action`` on ``scope``, and run the body in one transaction.

        ``check=False`` leaves authorization to the body (for decisions that need catalog facts, such
        as whose key is being revoked). Raises ``AuthenticationError``/``AccessDenied`` (after
        recording ``access.denied``) when refused, wherever in the use case the refusal happens.
        """
        now = self.now()
        caller: auth.Caller | None = None
        case: UseCase | None = None
        try:
            with self.db.transaction() as conn:
                caller = auth.authenticate(conn, self.credential, now)
                if refusals.pending(conn, now):
                    refusals.flush(conn, self.signer, now)
                if check:
                    auth.authorize(conn, caller, action, scope, now)
                case = UseCase(conn, caller, now, self.signer)
                yield case
        except (AuthenticationError, AccessDenied) as exc:
            # The use case was rolled back; the refusal itself must still be auditable.
            self._record_denial(exc, caller, action, scope, now, detail)
            if isinstance(exc, ConcealedDenial):
                raise exc.shown from None
            raise
        if case is not None and case.events:
            self.checkpoint_after(case.events)

    def checkpoint_after(self, events: list[Event]) -> None:
        """Called once a use case's events are committed; the checkpoint use cases sign a checkpoint
        after a promotion (see ``service/checkpoints.py``)."""

    def _record_denial(
        self,
        exc: AuthenticationError | AccessDenied,
        caller: auth.Caller | None,
        action: Action,
        scope: Scope,
        now: datetime,
        detail: dict[str, Any] | None,
    ) -> None:
        payload = {"action": action.value, "error": exc.code, "reason": exc.message, **(detail or {})}
        with self.db.transaction() as conn:
            if refusals.pending(conn, now):
                refusals.flush(conn, self.signer, now)
            if caller is not None:
                actor = caller.actor
            else:
                # Only a genuine key (revoked, expired, suspended) names its principal; a wrong secret
                # is anonymous, with the key id it claimed in the payload. Such refusals are recorded
                # in full up to a limit per claimed key id and minute, then only counted.
                claimed = auth.claimed_key_id(self.credential)
                if isinstance(exc, AuthenticationError):
                    actor = auth.refused_actor(conn, self.credential, exc)
                else:
                    actor = refusals.ANONYMOUS
                payload["claimed_key"] = claimed
                if not refusals.admit(conn, claimed, now):
                    return
            ledger_store.append(
                conn,
                self.signer,
                actor=actor,
                type="access.denied",
                subject={"scope": str(scope)},
                payload=payload,
                now=now,
            )
