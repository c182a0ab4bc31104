"""The heart of the service: one transaction per use case.

A writing use case runs ``authenticate -> authorize -> compute -> append ledger event + update
catalog`` inside a single short write transaction, so the ledger and its catalog projections never
disagree. A refusal rolls the use case back and is itself recorded as an ``access.denied`` event.

A reading use case (``write=False``) runs in a read transaction, which takes no write lock: other
commands go on while it reads, and it can take as long as it needs (loading gate inputs, a self-test,
writing an export, re-hashing every object). When it records something (an export, a self-test) its
events are queued and appended afterwards in one short write transaction that first re-authenticates
and re-authorizes the caller and re-runs the use case's checks (``UseCase.expect``): if anything it
read has changed meanwhile, nothing is appended and the check's ``Conflict`` is raised. The key's
last-used time is batched (``auth.touch_due``) and written in that same short transaction.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from dataward.access.removals import Removals
from dataward.access.roles import Action, Scope
from dataward.catalog import ledger_store
from dataward.catalog.database import CatalogDatabase, LazyRead
from dataward.catalog.projection import RowChange, update_row
from dataward.catalog.tables import quarantine
from dataward.domain.errors import AccessDenied, AuthenticationError, Busy, Conflict, NotFound
from dataward.ledger.events import Actor, Event, decode_stored, format_time, stored_int, utc_now
from dataward.ledger.signing import SignatureVerifier, WardSigner
from dataward.service import auth, concealment, refusals, signed_identity
from dataward.service.clock_check import refuse_clock_behind
from dataward.service.dataset_keys import check_key_fits_dataset
from dataward.service.ledger_mark import LedgerMark, Seen
from dataward.service.remembered import MISSING, ReadCache
from dataward.service.removal_list import RemovalList
from dataward.service.removal_list import attach as attach_list
from dataward.store import ObjectStore

Clock = Callable[[], datetime]

READ_ACTIONS = frozenset(
    {
        Action.LEDGER_READ,
        Action.DATASET_READ,
        Action.DATASET_EXPORT,
        Action.ACCESS_REVIEW,
        Action.VERIFY,
        Action.TRACE,
        Action.MODEL_READ,
    }
)
"""Actions whose use cases read by default (``use_case(write=False)``): they change nothing in the
catalog, so they take no write lock; an event they record (an export) is appended after the read."""

HOUSEKEEPING_WAIT_S = 0.5
"""How long a read waits for the write lock to record its key's last-used time before leaving it to a
later request."""


STALE_ATTEMPTS = 3
"""How many times a use case whose long work went stale (``Stale``) is run in all before the
conflict reaches the caller."""

T = TypeVar("T")


class Stale(Conflict):
    """What a use case read changed while it worked without the lock (a promotion while a gate ran, a
    version retired during an export). Nothing was recorded; ``retry_stale`` runs the use case again."""


def retry_stale(run: Callable[[], T], attempts: int = STALE_ATTEMPTS) -> T:
    """``run()``, run again while it raises ``Stale``, at most ``attempts`` times in all: an optimistic
    use case that lost a race does its work again on fresh data; the last ``Stale`` is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return run()
        except Stale:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def new_id(prefix: str) -> str:
    """A random, prefixed identifier (``p_``, ``c_``, ``g_`` ...): unguessable and easy to read."""
    return f"{prefix}_{secrets.token_hex(8)}"


log = logging.getLogger("dataward.removals")
_WARNED_GRANTS: set[str] = set()


def without_revoked_grants(caller: auth.Caller, removals: Removals) -> auth.Caller:
    """``caller`` without the grants the list of access removals holds revoked. The catalog's row of such
    a grant says it is active only when the catalog predates the revocation (a restored backup, a cut
    ledger): the role stays taken away, and ``verify`` names the event to record again."""
    kept = tuple(g for g in caller.grants if removals.grant_refusal(g.id) is None)
    if len(kept) == len(caller.grants):
        return caller
    for grant in caller.grants:
        if (fact := removals.grant_refusal(grant.id)) is not None and grant.id not in _WARNED_GRANTS:
            _WARNED_GRANTS.add(grant.id)  # once a process: a served ward would log it on every request
            log.warning(
                "the grant %s (%s on %s of %s) was revoked by event #%s, which the ward's list of access "
                "removals holds; the catalog says it is active, so it appears to predate that event",
                grant.id,
                grant.role.value,
                grant.scope,
                caller.principal.name,
                fact.seq,
            )
    return replace(caller, grants=kept)


@dataclass
class _Queued:
    """An event a reading use case asked for, appended once its short write transaction opens."""

    type: str
    subject: dict[str, Any]
    payload: dict[str, Any] | None
    changes: tuple[RowChange, ...]


@dataclass
class UseCase:
    """What a use case sees: its connection, its caller, the time, and ``emit`` to record events.

    In a writing use case ``conn`` is the write transaction and ``emit`` appends at once. In a
    reading one ``conn`` is a read transaction and ``emit`` queues the event for the short write
    transaction that follows the body (see the module docstring); ``expect`` adds a check to run
    there, and ``on_commit`` an action to run last inside it (e.g. moving an export into place).
    """

    source: Connection | Callable[[], Connection]
    """The transaction, or what opens it at the first use of ``conn`` (a served read)."""
    caller: auth.Caller
    now: datetime
    signer: WardSigner
    events: list[Event] = field(default_factory=list)
    write: bool = True
    queued: list[_Queued] = field(default_factory=list)
    checks: list[Callable[[Connection], None]] = field(default_factory=list)
    commit_actions: list[Callable[[], None]] = field(default_factory=list)
    head: str | None = None
    """The ledger head this request read (a served read), under which ``remembered`` results hold."""
    reads: ReadCache | None = None
    store: ObjectStore | None = None
    """The object store, for indexing the id lists of the rows ``emit`` inserts (``service.holders``)."""

    @property
    def conn(self) -> Connection:
        """The use case's transaction."""
        if not isinstance(self.source, Connection):
            self.source = self.source()
        return self.source

    @property
    def actor(self) -> Actor:
        return self.caller.actor

    def remembered(self, key: Hashable, read: Callable[[Connection], T]) -> T:
        """``read(conn)``, or what it returned to an earlier request of this process under the same
        ledger head (see ``dataward.service.remembered``). ``read`` must depend on the catalog only,
        never on the caller, and return something immutable: the result is shared. Without a ledger
        head to check against (a write, an embedded ward) it is simply run."""
        if self.reads is None or self.head is None:
            return read(self.conn)
        value = self.reads.get(key, self.head)
        if value is not MISSING:
            return value  # type: ignore[no-any-return]
        conn = self.conn  # may open the transaction, reading the head again in its snapshot
        value = read(conn)
        if self.head is not None:
            self.reads.put(key, self.head, value)
        return value

    def emit(
        self,
        type: str,
        subject: dict[str, Any],
        payload: dict[str, Any] | None = None,
        changes: list[RowChange] | tuple[RowChange, ...] = (),
    ) -> Event | None:
        """Append a signed event and apply its catalog changes in this transaction; in a reading use
        case, queue it for the write that follows the body (returns None then)."""
        if not self.write:
            self.queued.append(_Queued(type, subject, payload, tuple(changes)))
            return None
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
        if self.store is not None:
            from dataward.service import holders  # numpy: only when something is written

            holders.index_changes(self.conn, self.store, changes)
        self.events.append(event)
        return event

    def expect(self, check: Callable[[Connection], None]) -> None:
        """Re-run ``check`` inside the short write transaction before queued events are appended. It
        re-reads what the use case relied on and raises ``Conflict`` when that has changed."""
        self.checks.append(check)

    def on_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` inside the write transaction once the queued events are appended: if it
        fails, they are not recorded; it is not run when anything before it fails."""
        self.commit_actions.append(action)


def close_pending_reviews(uc: UseCase, contribution_id: str, why: str) -> list[RowChange]:
    """Changes rejecting every pending review item of a contribution that leaves as a unit (rejected,
    withdrawn or quarantined): its records never enter a version, so nothing is left to review."""
    pending = uc.conn.execute(
        select(quarantine.c.id).where(quarantine.c.contribution_id == contribution_id, quarantine.c.status == "pending")
    )
    return [closed_item(uc, q.id, why) for q in pending]


def closed_item(uc: UseCase, item_id: str, why: str) -> RowChange:
    """The change closing one review item as ``rejected`` without a reviewer's decision, by this use case's
    caller and event, with ``why`` as its ``decision_reason``."""
    return update_row(
        "quarantine",
        {"id": item_id},
        status="rejected",
        decided_by=uc.caller.principal_id,
        decided_at=format_time(uc.now),
        decision_reason=why,
    )


class ConcealedDenial(AccessDenied):
    """A refusal recorded as ``access.denied`` but answered with ``shown`` (a NotFound), so that a
    caller without the right to see something cannot tell whether it exists."""

    def __init__(self, message: str, shown: NotFound) -> None:
        super().__init__(message)
        self.shown = shown


class WardContext:
    """The one context every service of a ward shares: where the ward is, its catalog database, its
    object store, its signing key, the clock and the acting principal's credential; and ``use_case``,
    the transaction every use case runs in."""

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
        callers: auth.CallerCache | None = None,
        reads: ReadCache | None = None,
        mark: LedgerMark | None = None,
        removals: RemovalList | None = None,
    ) -> None:
        self.folder = folder
        self.db = db
        self.store = store
        self.signer = signer
        self.credential = credential
        self.clock = clock
        self.ward_id = ward_id
        self.callers = callers
        """Keys verified by recent requests (a served ward, see ``remember_callers``); None: every
        request looks its key up in full."""
        self.reads = reads
        """Catalog reads remembered under the ledger head (a served ward, see ``Ward.remember_reads``);
        used only where keys are remembered too, since both rest on the one statement a served read
        starts with."""
        self.mark = mark if mark is not None else LedgerMark(folder, signer.public_key_b64, ward_id)
        """The newest ledger head this process knows of (shared by the wards ``as_key`` makes): every
        use case refuses a ledger that does not extend it (``dataward.service.ledger_mark``)."""
        self.removals = (
            removals
            if removals is not None
            else RemovalList(folder, signer.public_key_b64, ward_id, clock=lambda: self.clock())
        )
        """The ward's signed list of access removals (shared like the mark): every authentication refuses a
        key or principal on it, even when the catalog was rolled back to before its removal
        (``dataward.service.removal_list``)."""
        attach_list(db.engine, self.removals)  # reads of this catalog hold what the list holds quarantined
        self.after_commit: list[Callable[[list[Event]], None]] = []
        """What runs once a use case's events are committed (a checkpoint after a promotion, the
        OpenLineage events), in the order registered; see ``checkpoint_after``."""

    def now(self) -> datetime:
        return self.clock()

    @property
    def ledger(self) -> tuple[str, str]:
        """The ward's public key and id: what rows read from the catalog are checked against."""
        return self.signer.public_key_b64, self.ward_id

    def check_head(self, floor: Seen | None, action: Action, now: datetime, probe: Any) -> None:
        """Refuse (``IntegrityViolation``) a ledger that does not extend ``floor``, the mark taken before
        this transaction began, and (``ClockBehind``) a clock ``now`` set back behind the ledger's newest
        event; an action of ``auth.DIAGNOSTIC_ACTIONS`` goes on (``verify`` reports both). ``probe`` is
        the row of ``HEAD_PROBE`` or ``REQUEST_PROBE``."""
        if action in auth.DIAGNOSTIC_ACTIONS:
            self.mark.check(floor, probe.head_seq, probe.head, probe.at_mark)
        else:
            self.mark.enforce(floor, probe.head_seq, probe.head, probe.at_mark)
            refuse_clock_behind(probe.head_seq, probe.head_time, now, lambda: self._sealed(probe.head_seq))

    def _sealed(self, seq: Any) -> bool:
        """Whether ledger event ``seq`` is as the ward signed it (its hash over its stored columns, and its
        signature): asked only before a request is refused on that event's time."""
        with self.db.reading() as conn:
            row = next(iter(ledger_store.read_stored(conn, since=stored_int(seq))), None)
        if row is None or stored_int(row[0]) != stored_int(seq):
            return False
        event = decode_stored(row)
        try:
            digest = event.computed_hash()
        except (ValueError, TypeError, RecursionError):
            return False
        verifier = SignatureVerifier(self.signer.public_key_b64)
        return digest == event.hash and verifier.verify(event.signed_message(self.ward_id), event.sig or "")

    def _check_head(self, conn: Connection, floor: Seen | None, action: Action, now: datetime) -> None:
        """``check_head`` on the ledger as ``conn`` sees it (the transaction's first statement)."""
        self.check_head(floor, action, now, self.mark.probe(conn, floor))

    def _authenticate(self, conn: Connection, now: datetime, action: Action) -> tuple[auth.Caller, bool]:
        """The caller of this transaction (for ``action``), and whether refusal summaries are pending.

        With remembered callers, the auth epoch and the pending summaries are read first, in one
        statement, and a key verified under that same epoch is not looked up again."""
        diagnosing = action in auth.DIAGNOSTIC_ACTIONS
        # Once per process, before the first caller is judged: a key or principal that only the witness's
        # copies of the list still hold taken away (the file deleted with a rolled-back catalog) is refused
        # on this first request, not from the second on.
        self.removals.read_witness_once(conn)
        if self.callers is None:
            caller = auth.authenticate(conn, self.credential, now, ledger=self.ledger, diagnosing=diagnosing)
            caller = self.check_removals(caller, now, action)
            return caller, refusals.pending(conn, now)
        epoch, pending = refusals.epoch_and_pending(conn, now)
        caller = auth.authenticate(
            conn, self.credential, now, ledger=self.ledger, cache=self.callers, epoch=epoch, diagnosing=diagnosing
        )
        caller = self.check_removals(caller, now, action)
        return caller, pending

    def read_witness_due(self) -> None:
        """Read the witness's copies of the list of removals, on a read transaction of its own, when this
        process has not read them yet and a try is due (``RemovalList.read_witness_once``): what a served
        read does before it judges a caller, since it may judge a remembered caller without a transaction
        of its own. Costs nothing once the witness was read."""
        if self.removals.witness_due():
            with self.db.reading() as conn:
                self.removals.read_witness_once(conn)

    def check_removals(self, caller: auth.Caller, now: datetime, action: Action) -> auth.Caller:
        """Refuse a caller whose key or principal the list of access removals keeps refused, whatever
        the catalog says; and everyone when the list was tampered with, except ``verify`` (an action of
        ``auth.DIAGNOSTIC_ACTIONS``), which reports it (``dataward.service.removal_list``). Returns the
        caller without the grants the list holds revoked (a restored catalog's rows give them back)."""
        if action in auth.DIAGNOSTIC_ACTIONS:
            state, _ = self.removals.current()
            RemovalList.check_removed(
                state, caller.key.id, caller.key.prefix, caller.principal.id, caller.principal.name, now
            )
        else:
            state = self.removals.check(
                caller.key.id, caller.key.prefix, caller.principal.id, caller.principal.name, now
            )
        return without_revoked_grants(caller, state)

    def _touch(self, conn: Connection, caller: auth.Caller, now: datetime) -> None:
        auth.touch(conn, caller, now)
        if self.callers is not None:
            # Noted at once: should the transaction roll back, the time is written again once the
            # entry lapses (``CallerCache.ttl_s``); it only serves to find unused keys.
            self.callers.touched(self.credential, now)

    @contextmanager
    def use_case(
        self,
        action: Action,
        scope: Scope,
        *,
        detail: dict[str, Any] | None = None,
        check: bool = True,
        write: bool | None = None,
        missing: NotFound | None = None,
    ) -> Iterator[UseCase]:
        """Authenticate the caller, authorize ``action`` on ``scope``, and run the body in one transaction.

        ``check=False`` leaves authorization to the body (for decisions that need catalog facts, such
        as whose key is being revoked). ``write=False`` runs the body in a read transaction (see the
        module docstring): for a use case that only reads, or only records that it read. By default
        the actions in ``READ_ACTIONS`` read and every other action writes. Raises
        ``AuthenticationError``/``AccessDenied`` (after recording ``access.denied``) when refused,
        wherever in the use case the refusal happens. A refusal on one dataset the caller may not see
        is answered as a dataset that does not exist, or with ``missing`` when given: what the caller
        is told when the thing it named does not exist (see ``service/concealment.py``).
        """
        now = self.now()
        caller: auth.Caller | None = None
        case: UseCase | None = None
        named = concealment.take_named()
        if write is None:
            write = action not in READ_ACTIONS
        # Taken before the transaction begins: whatever it names was committed by then, so the
        # transaction's snapshot must hold it (``dataward.service.ledger_mark``).
        floor = self.mark.floor()
        try:
            if write:
                with self.db.transaction() as conn:
                    self._check_head(conn, floor, action, now)
                    caller, pending = self._authenticate(conn, now, action)
                    signed_identity.keep_snapshot(conn, self.signer, self.ward_id)
                    if pending:
                        refusals.flush(conn, self.signer, now)
                    if auth.touch_due(caller, now):
                        self._touch(conn, caller, now)
                    if check:
                        auth.authorize(conn, caller, action, scope, now)
                    check_key_fits_dataset(conn, caller, scope)
                    case = UseCase(conn, caller, now, self.signer, store=self.store)
                    yield case
            else:
                if self.callers is not None:
                    with self.db.reading_lazily() as lazy:
                        served = _ServedRead(self, lazy, now, action, scope, check, floor)
                        caller = served.authenticate()
                        if check:
                            auth.authorize(None, caller, action, scope, now)
                        case = UseCase(served.open, caller, now, self.signer, write=False, head=served.head)
                        case.reads = self.reads
                        served.case = case
                        yield case
                        caller, flush = case.caller, served.pending
                else:
                    with self.db.reading() as conn:
                        self._check_head(conn, floor, action, now)
                        caller, flush = self._authenticate(conn, now, action)
                        if check:
                            auth.authorize(conn, caller, action, scope, now)
                        case = UseCase(conn, caller, now, self.signer, write=False, store=self.store)
                        yield case
                if case.queued or case.checks or case.commit_actions:
                    caller = self._commit_read(case, action, scope, check=check, flush=flush)
                elif flush or auth.touch_due(caller, now):
                    # Only housekeeping is left (a last-used time, a refusal summary): the read has
                    # succeeded and is neither failed nor held up long for it; the next request
                    # writes them when the lock is busy now.
                    with suppress(Busy):
                        self._commit_read(case, action, scope, check=check, flush=flush, timeout=HOUSEKEEPING_WAIT_S)
        except (AuthenticationError, AccessDenied) as exc:
            # The use case was rolled back; the refusal itself must still be auditable.
            self._record_denial(exc, caller, action, scope, now, detail)
            if isinstance(exc, ConcealedDenial):
                raise exc.shown from None
            if not isinstance(exc, AuthenticationError):
                shown = concealment.shown_instead(caller, scope, now, missing, named)
                if shown is not None:
                    raise shown from None
            raise
        if case is not None and case.events:
            self.mark.observe(case.events[-1].seq, case.events[-1].hash)
            self.checkpoint_after(case.events)

    def admit(
        self,
        action: Action,
        scope: Scope | None = None,
        *,
        authorize: bool = False,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Authenticate the caller now (and, with ``authorize``, authorize ``action`` on ``scope``), before
        a use case parses, validates or looks up anything its request holds; refused and recorded as
        ``use_case`` refuses. Call it first, before anything is looked up by name.

        A request's content can be costly to read (a policy's YAML, parameters to hash and sign) or say
        something by the way it fails (whether a contribution exists): a key that does not authenticate
        gets its 401 before any of that is done for it (docs/server.md, "Authentication"). A read, and
        short: a served ward checks a remembered key with one statement. The use case that follows
        authenticates and authorizes again in its own transaction."""
        with self.use_case(action, scope or Scope.ward(), check=authorize, write=False, detail=detail):
            pass

    def _commit_read(
        self, case: UseCase, action: Action, scope: Scope, *, check: bool, flush: bool, timeout: float | None = None
    ) -> auth.Caller:
        """The short write transaction after a reading use case: housekeeping (the key's last-used
        time, pending refusal summaries) and, when it asked for any, its checks and queued events."""
        now = self.now()
        caller = case.caller
        floor = self.mark.floor()
        with self.db.transaction(timeout=timeout) as conn:
            self._check_head(conn, floor, action, now)
            if flush and refusals.pending(conn, now):
                refusals.flush(conn, self.signer, now)
            if case.queued or case.checks or case.commit_actions:
                # The long work ran without the lock: the key may have been revoked, the grant taken
                # away, or what was read changed meanwhile. Nothing is signed unless all still holds.
                caller, _ = self._authenticate(conn, now, action)
                if check:
                    auth.authorize(conn, caller, action, scope, now)
                for expectation in case.checks:
                    expectation(conn)
                for q in case.queued:
                    case.events.append(
                        ledger_store.append(
                            conn,
                            self.signer,
                            actor=caller.actor,
                            type=q.type,
                            subject=q.subject,
                            payload=q.payload,
                            changes=q.changes,
                            now=now,
                        )
                    )
                    from dataward.service import holders

                    holders.index_changes(conn, self.store, q.changes)
                for commit_action in case.commit_actions:
                    commit_action()
            if auth.touch_due(caller, now):
                self._touch(conn, caller, now)
        return caller

    def checkpoint_after(self, events: list[Event]) -> None:
        """Called once a use case's events are committed: runs the ``after_commit`` hooks (the
        checkpoint service signs a checkpoint after a promotion, see ``service/checkpoints.py``)."""
        for hook in self.after_commit:
            hook(events)

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


class _ServedRead:
    """The start of a reading use case of a served ward (keys remembered): one statement reads the
    auth epoch, the pending refusal summaries and the ledger head (``refusals.REQUEST_PROBE``). A
    remembered key is then checked with no other statement, and the read transaction is opened only
    when the use case needs the catalog itself (``UseCase.conn``): a request served from what is
    remembered costs that one statement.

    On PostgreSQL that statement runs on its own, before the transaction. When the transaction is
    opened, the statement is read again in the transaction's snapshot and the caller authenticated
    and authorized again under it, so that whatever the use case reads from the catalog is read under
    the auth epoch and ledger head it was checked against; a key revoked in between is refused there.
    """

    def __init__(
        self,
        context: WardContext,
        lazy: LazyRead,
        now: datetime,
        action: Action,
        scope: Scope,
        check: bool,
        floor: Seen | None,
    ) -> None:
        self.context, self.lazy, self.now = context, lazy, now
        self.action, self.scope, self.check = action, scope, check
        self.floor = floor
        self.case: UseCase | None = None
        self.conn: Connection | None = None
        self.params = {"minute": refusals.minute_of(now), **LedgerMark.params(floor)}
        self._read(lazy.first(refusals.REQUEST_PROBE, self.params))

    def _read(self, probe: Any) -> None:
        # The ledger must extend the newest head this process knows of, whether the caller is then
        # remembered or looked up: a revoked key must not come back with a cut ledger.
        self.context.check_head(self.floor, self.action, self.now, probe)
        self.epoch: str | None = probe.epoch
        self.pending = bool(probe.pending)
        self.head: str | None = probe.head

    def authenticate(self) -> auth.Caller:
        """The caller: remembered under the epoch just read, or looked up in the read transaction."""
        self.context.read_witness_due()
        callers = self.context.callers
        credential = self.context.credential
        if callers is not None and credential and self.lazy.separate:
            caller = auth.remembered_caller(credential, self.now, callers, self.epoch)
            if caller is not None:
                return self.context.check_removals(caller, self.now, self.action)
        self.open()
        return self._caller

    def open(self) -> Connection:
        """The read transaction (see the class docstring)."""
        if self.conn is None:
            conn = self.lazy.conn
            if self.lazy.separate:
                self._read(conn.execute(refusals.REQUEST_PROBE, self.params).one())
            self._caller = auth.authenticate(
                conn,
                self.context.credential,
                self.now,
                ledger=self.context.ledger,
                cache=self.context.callers,
                epoch=self.epoch,
                diagnosing=self.action in auth.DIAGNOSTIC_ACTIONS,
            )
            self._caller = self.context.check_removals(self._caller, self.now, self.action)
            if self.case is not None:  # opened by the use case's body, after it was authorized
                if self.check:
                    auth.authorize(conn, self._caller, self.action, self.scope, self.now)
                self.case.caller, self.case.head = self._caller, self.head
            self.conn = conn
        return self.conn


class OverContext:
    """What a service and the ``Ward`` facade read from the ward's shared ``WardContext``."""

    context: WardContext

    @property
    def folder(self) -> Path:
        """The ward's folder (its configuration, key and, by default, catalog and objects)."""
        return self.context.folder

    @property
    def db(self) -> CatalogDatabase:
        """The catalog database."""
        return self.context.db

    @property
    def store(self) -> ObjectStore:
        """The content-addressed object store."""
        return self.context.store

    @property
    def signer(self) -> WardSigner:
        """The ward's signing key."""
        return self.context.signer

    @property
    def ward_id(self) -> str:
        """The ward's id."""
        return self.context.ward_id

    def now(self) -> datetime:
        """The time, by the ward's clock."""
        return self.context.now()

    def use_case(
        self,
        action: Action,
        scope: Scope,
        *,
        detail: dict[str, Any] | None = None,
        check: bool = True,
        write: bool | None = None,
        missing: NotFound | None = None,
    ) -> AbstractContextManager[UseCase]:
        """``WardContext.use_case``: one authorized transaction for one use case."""
        return self.context.use_case(action, scope, detail=detail, check=check, write=write, missing=missing)

    def admit(
        self,
        action: Action,
        scope: Scope | None = None,
        *,
        authorize: bool = False,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """``WardContext.admit``: the caller authenticated (and authorized) before its request is read."""
        self.context.admit(action, scope, authorize=authorize, detail=detail)


class Service(OverContext):
    """One part of the service (identity, contributions, gates ...), acting over the ward's shared
    ``WardContext``. A service that needs another is handed it when the ward is composed (see
    ``service/ward.py``); it never reaches it through the context."""

    def __init__(self, context: WardContext) -> None:
        self.context = context
