"""The ward's list of access removals: every event that takes a key, a principal or a role away, or a
contribution's records (a quarantine), signed again by the ward on one line of an append-only file kept
beside the kept checkpoints (``removals.jsonl`` in the ward folder, or in a served ward's state folder),
and sent to the witness when one is set.

Why: a revocation is a row of the catalog and an event of its ledger. Restore a catalog backup taken
before it (or cut the ledger's tail and put the row back) and both forget it. The kept checkpoints
and the witness show that the ledger went backwards, but once the operator moves the newer kept
checkpoints aside (the only way to go on after restoring an older backup on purpose), nothing in the
catalog remembers the revocation. This list does: every request's authentication consults it, and a
key or principal on it is refused whatever the catalog says, with an error naming the event. A
quarantined contribution on it holds its records out of training the same way (``listed_quarantines``).

The file is read again only when its size, modification time or inode changes, so the hot path costs
one ``stat``. What this process has read is remembered: lines that later disappear from the file still
count, and their disappearance is reported. A line that is not signed by the ward's key, is edited,
or does not chain to the line before it makes every request refused (``IntegrityViolation``) except
``verify``, which reports it. Deleting the whole file is like deleting the kept checkpoints: the folder
no longer knows what it held. The witness copies still do: a server reads them at start, any other
process the first time it reads what the list takes away (``listed_removals``), a process that could not
reach the witness again on a later request (``WITNESS_RETRY``), and ``verify`` shows what the file lost.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dataward.access.removals import RemovalFact, Removals, fold, removed_by
from dataward.domain.errors import DatawardError, IntegrityViolation, KeyRevoked, PrincipalSuspended
from dataward.ledger.events import Event, format_time, utc_now
from dataward.ledger.removal_line import FIRST_PREV, RemovalLine
from dataward.ledger.signing import SignatureVerifier, WardSigner
from dataward.service.config import REMOVALS_FILE

log = logging.getLogger("dataward.removals")

_TAMPERED_HINT = (
    "run `dataward verify` to see which lines; put back removals.jsonl from a backup (its lines are also "
    "in the witness, under removals/), or, if it cannot be restored, move it out of the folder and restart "
    "the server: the ward starts a new list with the next removal"
)


@dataclass
class ListRead:
    """The lines of one list file that verify, in file order, and what is wrong with the others."""

    lines: list[RemovalLine] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    """``(where, why)``: a line that does not parse, is not signed by the ward, or breaks the chain."""
    torn: str | None = None
    """Why the file's last line was not read: it has no line end and does not parse, the mark of a write
    cut short (a crash, a full disk), not of tampering (``torn_tail``). None when it was read."""


def check_lines(texts: Iterable[tuple[str, bytes]], verifier: SignatureVerifier, ward_id: str) -> ListRead:
    """Parse and check ``(where, text)`` lines of one list, in order: each must be signed by the ward's
    key for this ward, be line ``n`` of the list and name the line before it as its ``prev``."""
    read = ListRead()
    expected_n, expected_prev = 0, FIRST_PREV
    for where, text in texts:
        try:
            line = RemovalLine.from_json(text, source=where)
        except DatawardError as exc:
            read.problems.append((where, exc.message))
            continue
        if line.ward != ward_id:
            read.problems.append((where, f"the line is of ward {line.ward}, this ward is {ward_id}"))
            continue
        if not line.verify_signature(verifier):
            read.problems.append(
                (where, f"event #{line.seq}'s line is not signed by the ward's key (forged or edited)")
            )
            continue
        if line.n != expected_n or line.prev != expected_prev:
            read.problems.append(
                (
                    where,
                    f"line {line.n} (event #{line.seq}) does not follow the line before it: "
                    f"{max(line.n - expected_n, 0) or 'some'} line(s) before it were removed or reordered",
                )
            )
        read.lines.append(line)
        expected_n, expected_prev = line.n + 1, line.digest
    return read


def read_list(path: Path, public_key: str, ward_id: str) -> ListRead:
    """Every line of the list file at ``path`` (none when there is no file), checked (``check_lines``)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ListRead()
    except OSError as exc:
        return ListRead(problems=[(path.name, f"cannot be read: {exc.strerror or exc}")])
    cut = torn_tail(data)
    texts = [(f"{path.name} line {i}", text) for i, text in enumerate(data[:cut].split(b"\n"), start=1) if text.strip()]
    read = check_lines(texts, SignatureVerifier(public_key), ward_id)
    if cut is not None:
        read.torn = (
            f"{path.name}: its last {len(data) - cut} byte(s), from byte {cut} on, are a line without its end that "
            "does not parse: a write cut short (a crash or a full disk). Not read; the ward's next removal cuts "
            "them off before it is written"
        )
    return read


def torn_tail(data: bytes) -> int | None:
    """Where the torn last line of list file ``data`` begins (its byte offset), None when there is none.

    ``append`` writes its lines in one write that ends with a line end, so a write cut short leaves a
    last line without one, and a line cut short does not parse (a JSON object is whole or not JSON). Only
    such a line is torn. A last line without its end that parses is a whole line and counts (someone who
    takes the end off a line does not take the line away); any other line that does not parse, verify or
    chain is tampering (``check_lines``). A torn line gives an attacker nothing that deleting the whole
    last line would not: a process that read it still holds it, the ledger's ``listed`` events and the
    witness's copies still show it (``verify``)."""
    if not data or data.endswith(b"\n"):
        return None
    start = data.rfind(b"\n") + 1
    if not data[start:].strip():
        return None
    try:
        RemovalLine.from_json(data[start:])
    except DatawardError:
        return start
    return None


WITNESS_RETRY = timedelta(seconds=30)
"""How long a process waits, after it failed to read the witness's copies of the list, before a request
tries again: long enough that a witness out of reach does not slow every request by a failed read, short
enough that a long-lived process (a server worker) soon learns what the witness holds once it is back."""


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class RemovalList:
    """The list of access removals of one ward, as this process knows it (one per ``Ward`` and the
    wards ``as_key`` makes from it, like the ledger mark)."""

    def __init__(
        self, folder: Path | None, public_key: str, ward_id: str, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.path = folder / REMOVALS_FILE if folder is not None else None
        self._clock = clock
        self._public_key = public_key
        self._ward_id = ward_id
        self._stamp: tuple[int, int, int] | None = None
        self._loaded = False
        self._known: dict[str, RemovalLine] = {}
        """Every valid line this process read or wrote, by digest, in the order first seen."""
        self._witnessed: dict[str, RemovalLine] = {}
        """Lines read from the witness (``take_witnessed``): in force, but not held to the file."""
        self.witness_read = False
        """Whether this process read the witness's copies yet (``take_witness``), or found no witness set."""
        self._witness_retry_at: datetime | None = None
        """When a read of the witness may be tried again after one failed or while one runs (``WITNESS_RETRY``)."""
        self._witness_failure: str | None = None
        """Why the last read of the witness failed: a failure for another reason is logged as a warning,
        the same one again (every ``WITNESS_RETRY``) at debug level. Only the last is kept: an object
        store's errors may differ in a request id each time, which must not grow a set for days."""
        self._state = Removals()
        self._problem: str | None = None
        self._lock = threading.Lock()

    def current(self) -> tuple[Removals, str | None]:
        """The removals in force, and what is wrong with the file (None when nothing is). Reads the file
        again only when it changed since the last read."""
        if self.path is None:
            return self._state, None
        stamp = _stamp(self.path)
        if self._loaded and stamp == self._stamp:
            return self._state, self._problem
        with self._lock:
            if not self._loaded or stamp != self._stamp:
                self._reload(stamp)
            return self._state, self._problem

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        assert self.path is not None
        read = read_list(self.path, self._public_key, self._ward_id)
        present = {line.digest for line in read.lines}
        lost = [line for digest, line in self._known.items() if digest not in present]
        for line in read.lines:
            self._known.setdefault(line.digest, line)
        if read.torn is not None:
            log.warning("the ward's list of access removals ends in a torn write: %s", read.torn)
        problems = [f"{where}: {why}" for where, why in read.problems]
        if lost:
            problems.append(
                f"{len(lost)} line(s) this process read are gone from {REMOVALS_FILE} (event "
                + ", ".join(f"#{line.seq}" for line in lost[:5])
                + "); they still count"
            )
        self._problem = "; ".join(problems) if problems else None
        self._state = self._fold()
        self._stamp, self._loaded = stamp, True

    def _fold(self) -> Removals:
        extra = [line for digest, line in self._witnessed.items() if digest not in self._known]
        return fold(line.fact() for line in in_order([*extra, *self._known.values()]))

    def take_witnessed(self, lines: Iterable[RemovalLine]) -> int:
        """Count ``lines`` (witness copies, each already checked as signed by the ward's key for this
        ward) as in force in this process, whatever the file says: a server reads them once at start,
        so that a list deleted with a rolled-back catalog still refuses what the witness holds. Not
        held to the file: a list moved aside on purpose does not make them "gone". Returns how many
        were new to this process."""
        with self._lock:
            new = 0
            for line in lines:
                if line.digest not in self._witnessed and line.digest not in self._known:
                    new += 1
                self._witnessed.setdefault(line.digest, line)
            self._state = self._fold()
            return new

    def take_witness(self, conn: Any) -> int:
        """Read the witness's copies of the list (the witness the signed ledger of ``conn``'s catalog
        names) and count each one signed by the ward's key for this ward as in force (``take_witnessed``).
        A server does it once per worker at start; every other process the first time it reads what the
        list takes away (``listed_removals``: the loader, export, merge, promotion ...), so that a list
        deleted with a rolled-back catalog does not give the witness's quarantines back to training on the
        folder itself. An unreachable witness is logged, not raised (``verify`` reports it), and read again
        by a request ``WITNESS_RETRY`` later (``read_witness_once``). Returns how many removals were new to
        this process (the file lacks them)."""
        from dataward.service.checkpoints import read_witness_removals
        from dataward.service.signed_witness import signed_witness

        self.current()  # the file first: what the witness adds to it is what it lacks
        location = signed_witness(conn).location
        if not location:
            self.witness_read = True
            return 0
        try:
            copies = read_witness_removals(location, self._ward_id)
        except (OSError, ValueError) as exc:
            # Not marked read: a witness down at a worker's start would otherwise never be read by it.
            self._witness_retry_at = self._clock() + WITNESS_RETRY
            # A witness that stays out of reach (a share never mounted, a witness set whose first checkpoint
            # never reached it) would otherwise log the same warning every 30 s in every worker, for days.
            reason = str(exc)
            level = logging.DEBUG if reason == self._witness_failure else logging.WARNING
            self._witness_failure = reason
            log.log(
                level,
                "the witness's copies of the list of access removals were not read (tried again every %ds; "
                "the same failure is logged again at debug level): %s",
                WITNESS_RETRY.total_seconds(),
                exc,
            )
            return 0
        self.witness_read = True
        self._witness_failure = None
        verifier = SignatureVerifier(self._public_key)
        lines = []
        for where, text in copies:
            try:
                line = RemovalLine.from_json(text, source=where)
            except DatawardError:
                continue  # reported by verify
            if line.ward == self._ward_id and line.verify_signature(verifier):
                lines.append(line)
        return self.take_witnessed(lines)

    def witness_due(self) -> bool:
        """Whether ``read_witness_once`` would read the witness now (this process has not read it, and no
        try failed or runs within ``WITNESS_RETRY``). A clock set back to before the last try (a host
        clock corrected by NTP) makes a try due: the retry is not put off by however far it went back."""
        if self.witness_read:
            return False
        retry_at = self._witness_retry_at
        now = self._clock()
        return retry_at is None or now >= retry_at or now < retry_at - WITNESS_RETRY

    def read_witness_once(self, conn: Any) -> None:
        """``take_witness`` the first time this process asks (authentication, ``listed_removals``), and
        again on a later request while the witness could not be read, at most once per ``WITNESS_RETRY``
        (and by one request at a time): a witness out of reach costs a failed read now and then, not on
        every request, and a process started while it was down learns what it holds once it is back."""
        if not self.witness_due():
            return
        with self._lock:
            if not self.witness_due():
                return
            self._witness_retry_at = self._clock() + WITNESS_RETRY  # this request reads; others go on meanwhile
        if (lost := self.take_witness(conn)) > 0:
            log.warning(
                "%d removal(s) held by the witness are missing from %s; they count; run verify", lost, REMOVALS_FILE
            )

    def check(self, key_id: str, key_name: str, principal_id: str, principal_name: str, now: datetime) -> Removals:
        """Refuse a key or a principal the list keeps refused, whatever the catalog says (``KeyRevoked``,
        ``PrincipalSuspended``), and anything when the file was tampered with (``IntegrityViolation``).
        Returns the removals in force (their revoked grants are the caller's to drop)."""
        state, problem = self.current()
        if problem is not None:
            raise IntegrityViolation(
                f"the ward's list of access removals was tampered with: {problem}", hint=_TAMPERED_HINT
            )
        self.check_removed(state, key_id, key_name, principal_id, principal_name, now)
        return state

    @staticmethod
    def check_removed(
        state: Removals, key_id: str, key_name: str, principal_id: str, principal_name: str, now: datetime
    ) -> None:
        """Refuse what ``state`` keeps refused (see ``check``)."""
        fact = state.key_refusal(key_id, format_time(now))
        if fact is not None:
            raise KeyRevoked(
                f"the key {key_name} was taken away by event #{fact.seq} ({fact.type} at {fact.time}), which the "
                "ward's list of access removals holds; the catalog says it is usable, so the catalog appears to "
                "predate that event (a restored backup, or a cut ledger)",
                hint=_reapply_hint(f"`dataward key revoke {key_name}`"),
                event=fact.seq,
            )
        fact = state.principal_refusal(principal_id)
        if fact is not None:
            raise PrincipalSuspended(
                f"the principal {principal_name} was stopped by event #{fact.seq} ({fact.type} at {fact.time}), "
                "which the ward's list of access removals holds; the catalog says it is active, so the catalog "
                "appears to predate that event (a restored backup, or a cut ledger)",
                hint=_reapply_hint(f"`dataward principal disable {principal_name}`"),
                event=fact.seq,
            )

    def append(self, signer: WardSigner, events: Iterable[Event]) -> list[RemovalLine]:
        """Sign a line for each event of ``events`` that takes access away and append it to the file
        (under an exclusive lock: several server workers may append at once). Returns the new lines."""
        wanted = [(e, removed_by(e.type, e.time, e.subject, e.payload)) for e in events]
        wanted = [(e, r) for e, r in wanted if r is not None]
        if not wanted or self.path is None:
            return []
        import fcntl  # here: POSIX only, and only a ward that takes access away needs it

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        written: list[RemovalLine] = []
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            fh.seek(0)
            data = fh.read()
            if (cut := torn_tail(data)) is not None:
                # A write cut short before this one (a crash, a full disk): its partial line goes, so that
                # this write's lines follow the last whole one.
                log.warning("cutting a torn write off the end of %s (from byte %d on)", REMOVALS_FILE, cut)
                fh.truncate(cut)
                data = data[:cut]
            n, prev = _next_place(data)
            out = b"" if not data or data.endswith(b"\n") else b"\n"
            for event, removed in wanted:
                assert removed is not None
                line = RemovalLine.sign(
                    signer,
                    ward=self._ward_id,
                    n=n,
                    prev=prev,
                    seq=event.seq,
                    hash=event.hash,
                    type=event.type,
                    time=event.time,
                    removed=removed,
                )
                written.append(line)
                out += line.to_json().encode("utf-8") + b"\n"
                n, prev = n + 1, line.digest
            fh.write(out)
            fh.flush()
            os.fsync(fh.fileno())
        with self._lock:
            for line in written:
                self._known.setdefault(line.digest, line)
            self._state = self._fold()
        return written

    def known_lines(self) -> list[RemovalLine]:
        """Every valid line this process read or wrote, in the order first seen (``verify`` reports
        those gone from the file)."""
        self.current()
        with self._lock:
            return list(self._known.values())


_lists_by_catalog: weakref.WeakKeyDictionary[Any, RemovalList] = weakref.WeakKeyDictionary()
"""The list each open catalog (by its SQLAlchemy engine) is read with: reads that decide what reaches
training get the catalog's connection, not the ward (``service/guard.py``)."""


def attach(engine: Any, removals: RemovalList) -> None:
    """Read the catalog of ``engine`` with the list ``removals`` (``listed_quarantines``)."""
    _lists_by_catalog[engine] = removals


def listed_removals(conn: Any) -> Removals:
    """What the ward's list of removals takes away, for reads of the catalog of ``conn``, whatever that
    catalog says (a restored backup, a cut ledger), with the witness's copies of its lines (read the first
    time, ``RemovalList.take_witness``). A list tampered with refuses every request already, at
    authentication; here its lines in force still count."""
    engine = getattr(conn, "engine", None)
    listed = _lists_by_catalog.get(engine) if engine is not None else None
    if listed is None:
        return Removals()
    listed.read_witness_once(conn)
    return listed.current()[0]


def listed_quarantines(conn: Any) -> dict[str, RemovalFact]:
    """Contributions the ward's list of removals keeps quarantined (``listed_removals``), each with the
    event that quarantined it."""
    return dict(listed_removals(conn).quarantined)


def quarantine_listed(removals: Removals, contribution_id: str, row_status: str) -> dict[str, Any] | None:
    """What a view of a contribution whose catalog row says ``row_status`` adds when ``removals`` (the
    ward's list) holds it quarantined and the row does not: ``{event, at, note}``, the note naming the
    row's status (the catalog predates the quarantine: a restored backup, a cut ledger). None otherwise.
    Every view that shows a contribution's status (``contributions``, ``trace``, the card) shows it
    ``quarantined`` with this, so that none says merged what the list holds out of training."""
    fact = removals.quarantine(contribution_id) if row_status != "quarantined" else None
    if fact is None:
        return None
    return {
        "event": fact.seq,
        "at": fact.time,
        "note": f"the catalog says {row_status}: it predates the quarantine, which the ward's list of removals "
        "holds; run `dataward verify`",
    }


def in_order(lines: Iterable[RemovalLine]) -> list[RemovalLine]:
    """``lines`` in the order their events happened: by the event's time, then place in its list. Not by
    ``seq`` (after a restore, new events reuse the numbers of lost ones), and not by file alone (lines
    of a list moved aside, read back from the witness, are older than the new list's)."""
    return sorted(lines, key=lambda line: (line.time, line.n))


def _next_place(data: bytes) -> tuple[int, str]:
    """The ``n`` and ``prev`` of the line after the last one of ``data`` that parses."""
    for text in reversed(data.split(b"\n")):
        if not text.strip():
            continue
        try:
            last = RemovalLine.from_json(text)
        except DatawardError:
            continue
        return last.n + 1, last.digest
    return 0, FIRST_PREV


def _reapply_hint(command: str) -> str:
    return (
        "run `dataward verify` to see every access removal the catalog lost; an admin applies it again "
        f"with {command}, which records it in the ledger once more"
    )


__all__ = [
    "ListRead",
    "RemovalList",
    "attach",
    "check_lines",
    "in_order",
    "listed_quarantines",
    "listed_removals",
    "quarantine_listed",
    "read_list",
    "torn_tail",
]
