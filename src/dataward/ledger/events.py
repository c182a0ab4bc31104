"""Ledger events: canonical JSON, hash-chained to the previous event, signed by the ward key.

Two formats exist; every event says which rules it was sealed under, and a chain may only move
forward from one format to the next (docs/ledger-format.md is the full specification):

* **format 2** (every new event): the body is ``format, seq, prev, time, actor, type, subject,
  payload``; ``hash`` is ``b3:`` + BLAKE3 of the body's RFC 8785 canonical JSON; ``sig`` is the
  Ed25519 signature of ``EVENT_DOMAIN`` followed by the RFC 8785 JSON of
  ``{"hash", "seq", "ward"}``, so a signature cannot be replayed in another ward, at another place
  in the chain, or as any other kind of signed statement.
* **format 1** (events written before format 2, still verified under their own rules): the body has
  no ``format`` key; ``hash`` is over Python's sorted-keys compact JSON of the body; ``sig`` signs
  the UTF-8 bytes of ``hash`` alone.

The first event's ``prev`` is ``GENESIS``.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import blake3

from dataward.domain.hashing import canonical_json, content_hash, jcs, jcs_hash, jcs_quick, jcs_text, json_hash
from dataward.ledger.signing import SignatureVerifier, WardSigner, key_fingerprint

GENESIS = "b3:" + "0" * 64

LEGACY_FORMAT = 1
CURRENT_FORMAT = 2
FORMATS = (LEGACY_FORMAT, CURRENT_FORMAT)

EVENT_DOMAIN = b"dataward:ledger-event:v2\x00"
"""Prefix of every format-2 event signature: these bytes are signed only as a ledger event."""

SIGNATURE_SPACING = 1024
"""By default ``verify_chain`` checks the signature of every event whose ``seq`` is a multiple of this,
and of the last event; each of those signatures covers every event before it through the hash chain
(docs/ledger-format.md, "What verify proves"). ``1`` checks every event's own signature."""


def _plain(text: Any) -> bool:
    """A string RFC 8785 writes as itself between quotes: printable ASCII, no quote or backslash."""
    return isinstance(text, str) and text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds and a ``Z``: sorts and compares as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def plain_json(value: Any) -> Any:
    """``value`` as it reads back from its stored JSON (tuples become lists, keys strings), so what
    was hashed at sealing time is exactly what a verifier parses later."""
    return json.loads(canonical_json(value))


@dataclass(frozen=True)
class Actor:
    """Who acted: a principal id and the id of the key it used (None for local/bootstrap actions)."""

    principal: str
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"principal": self.principal, "key": self.key}


@dataclass(frozen=True)
class Event:
    seq: int
    prev: str
    time: str
    actor: dict[str, Any]
    type: str
    subject: dict[str, Any]
    payload: dict[str, Any] = field(default_factory=dict)
    hash: str = ""
    sig: str = ""
    format: int = LEGACY_FORMAT

    def body(self) -> dict[str, Any]:
        """The hashed content: everything but ``hash`` and ``sig`` (``format`` from format 2 on)."""
        body = {
            "seq": self.seq,
            "prev": self.prev,
            "time": self.time,
            "actor": self.actor,
            "type": self.type,
            "subject": self.subject,
            "payload": self.payload,
        }
        if self.format != LEGACY_FORMAT:
            body = {"format": self.format, **body}
        return body

    def canonical_body(self) -> bytes:
        """The exact bytes ``hash`` is computed over, under this event's format."""
        if self.format == LEGACY_FORMAT:
            return canonical_json(self.body())
        return jcs(self.body())

    def computed_hash(self) -> str:
        if self.format == LEGACY_FORMAT:
            return json_hash(self.body())
        return jcs_hash(self.body())

    def quick_hash(self) -> str:
        """``hash`` as :meth:`computed_hash` gives it, through Python's C JSON encoder where it can
        (``jcs_quick``) rather than the pure-Python reference encoder. Any faithful JSON encoding whose
        BLAKE3 equals ``hash`` is the sealed content (another content would be a BLAKE3 collision), so
        a match is a match; a mismatch is confirmed by the exact rules before it is reported."""
        if self.format == LEGACY_FORMAT:
            return self.computed_hash()
        try:
            found = content_hash(jcs_quick(self.body()))
        except ValueError:
            return self.computed_hash()
        return found if found == self.hash else self.computed_hash()

    def signed_message(self, ward_id: str) -> bytes:
        """The bytes ``sig`` signs: domain-separated (ward, seq, hash) in format 2, the bare hash in 1."""
        return signed_message(self.format, self.seq, self.hash, ward_id)

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash, "sig": self.sig}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """An event from its exported form (``to_dict``); extra keys such as ``actor_name`` are ignored."""
        return cls(
            seq=int(data["seq"]),
            prev=data["prev"],
            time=data["time"],
            actor=data["actor"],
            type=data["type"],
            subject=data["subject"],
            payload=data.get("payload", {}),
            hash=data.get("hash", ""),
            sig=data.get("sig", ""),
            format=int(data.get("format", LEGACY_FORMAT)),
        )


def signed_message(format: int, seq: int, digest: str, ward_id: str) -> bytes:
    """The bytes the signature of the event ``seq`` of hash ``digest`` signs, under ``format``'s rules."""
    if format == LEGACY_FORMAT:
        return digest.encode("utf-8")
    if _plain(digest) and _plain(ward_id) and type(seq) is int and abs(seq) < 2**53:
        # What RFC 8785 writes for these three plain values, without its pure-Python encoder.
        return EVENT_DOMAIN + b'{"hash":"%s","seq":%d,"ward":"%s"}' % (
            digest.encode("ascii"),
            seq,
            ward_id.encode("ascii"),
        )
    return EVENT_DOMAIN + jcs({"hash": digest, "seq": seq, "ward": ward_id})


def seal(
    *,
    seq: int,
    prev: str,
    time: datetime | str,
    actor: Actor,
    type: str,
    subject: dict[str, Any],
    payload: dict[str, Any],
    signer: WardSigner,
    ward_id: str,
    format: int = CURRENT_FORMAT,
) -> Event:
    """Build, hash and sign the next event of the chain (in ``format``, the current one by default)."""
    if format not in FORMATS:
        raise ValueError(f"unknown ledger event format {format}")
    stamp = time if isinstance(time, str) else format_time(time)
    unsigned = Event(seq, prev, stamp, actor.to_dict(), type, plain_json(subject), plain_json(payload), format=format)
    sealed = Event(**{**unsigned.__dict__, "hash": unsigned.computed_hash()})
    return Event(**{**sealed.__dict__, "sig": signer.sign(sealed.signed_message(ward_id))})


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    kind: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "detail": self.detail}


def stored_body(event: Event, subject_text: str, payload_text: str) -> bytes | None:
    """The bytes ``hash`` is over, put together from the event's stored JSON texts of its subject and
    payload (Python's canonical JSON, which is RFC 8785's for the values events hold) without parsing
    and re-encoding them; None when a field is not a plain string this shortcut writes exactly.

    Sound because a match is checked against ``hash``: bytes whose BLAKE3 is the sealed hash are the
    sealed bytes, and since every other piece is a self-delimiting token at a fixed place, each stored
    text that parses on its own is then exactly the sealed subject or payload."""
    actor = event.actor
    key = actor.get("key")
    principal = actor.get("principal")
    if actor.keys() != {"principal", "key"} or type(event.seq) is not int or event.format not in FORMATS:
        return None
    strings = (principal, event.prev, event.time, event.type, "" if key is None else key)
    if not all(type(x) is str for x in strings) or not _plain("".join(strings)):
        return None
    quoted_key = "null" if key is None else f'"{key}"'
    head = f'{{"actor":{{"key":{quoted_key},"principal":"{principal}"}},'
    if event.format != LEGACY_FORMAT:
        head += f'"format":{event.format},'
    return (
        f'{head}"payload":{payload_text},"prev":"{event.prev}","seq":{event.seq},"subject":{subject_text},'
        f'"time":"{event.time}","type":"{event.type}"}}'
    ).encode()


def _stored_digest(event: Event, texts: tuple[str, str] | None) -> str | None:
    """``event.hash`` when the event's stored subject and payload texts (each of which parses),
    put together as they are or in their RFC 8785 form (:func:`jcs_text`: floats as ECMAScript writes
    them, which Python's ``1.0`` or ``1e-05`` are not), hash to it; else None."""
    if texts is None:
        return None
    body = stored_body(event, *texts)
    if body is None:
        return None
    if content_hash(body) == event.hash:
        return event.hash
    try:
        body = stored_body(event, jcs_text(texts[0]), jcs_text(texts[1]))
    except ValueError:
        return None
    return event.hash if body is not None and content_hash(body) == event.hash else None


def verify_chain(
    events: Iterable[Event],
    verifier: SignatureVerifier,
    ward_id: str,
    *,
    signature_every: int = 1,
    stored: Sequence[tuple[str, str]] | None = None,
) -> list[ChainProblem]:
    """Re-check sequence, links, formats and hashes of the whole chain, in order, and signatures.

    ``signature_every=1`` checks every event's signature. ``signature_every=N`` checks the signature of
    every event whose ``seq`` is a multiple of N and of the last event: each such signature is over
    the event's hash, which covers its ``prev``, hence every event before it, so a chain whose links
    and hashes all hold and whose last event is signed by the key is, event by event, what the key
    holder sealed. When anything is wrong with a chain checked that way, every signature is checked
    again so that the report shows the extent of the damage.

    ``stored`` (each event's subject and payload as the catalog stores them, in the same order) lets
    hashes be checked over those texts without re-encoding (:func:`stored_body`).

    Reports every discrepancy rather than stopping at the first, so an auditor sees its extent.
    A chain may move from format 1 to format 2 once; an event in an older format than the one
    before it is reported as ``downgraded`` (its rules are weaker, so it is never accepted).
    """
    if signature_every < 1:
        raise ValueError("signature_every must be at least 1")
    events = events if isinstance(events, Sequence) else list(events)
    if stored is not None and len(stored) != len(events):
        raise ValueError("stored texts must be given for every event")
    problems = _check_chain(events, verifier, ward_id, signature_every, stored)
    if problems and signature_every > 1:
        problems = _check_chain(events, verifier, ward_id, 1, stored)
    return problems


def _check_chain(
    events: Sequence[Event],
    verifier: SignatureVerifier,
    ward_id: str,
    every: int,
    stored: Sequence[tuple[str, str]] | None,
) -> list[ChainProblem]:
    problems: list[ChainProblem] = []
    expected_seq, expected_prev, newest_format = 1, GENESIS, LEGACY_FORMAT
    last = len(events) - 1
    for i, event in enumerate(events):
        sign = every == 1 or i == last or event.seq % every == 0
        texts = None if stored is None else stored[i]
        newest_format = _check_event(
            event, expected_seq, expected_prev, newest_format, verifier, ward_id, sign, texts, problems
        )
        expected_seq, expected_prev = event.seq + 1, event.hash
    return problems


def _check_event(
    event: Event,
    expected_seq: int,
    expected_prev: str,
    newest_format: int,
    verifier: SignatureVerifier,
    ward_id: str,
    sign: bool,
    texts: tuple[str, str] | None,
    problems: list[ChainProblem],
) -> int:
    """One event's sequence number, link, format, hash and (when ``sign``) signature, the exact way;
    appends what is wrong to ``problems`` and returns the newest format seen so far."""
    if event.seq != expected_seq:
        problems.append(ChainProblem(event.seq, "gap", f"expected event #{expected_seq}, found #{event.seq}"))
    if event.prev != expected_prev:
        problems.append(ChainProblem(event.seq, "broken_link", "prev does not match the hash of the event before it"))
    if event.format not in FORMATS:
        problems.append(ChainProblem(event.seq, "unknown_format", f"event format {event.format} is unknown"))
        return newest_format
    if event.format < newest_format:
        problems.append(
            ChainProblem(
                event.seq,
                "downgraded",
                f"event is in format {event.format} after an event in format {newest_format}",
            )
        )
    try:
        digest = _stored_digest(event, texts) or event.quick_hash()
    except (ValueError, TypeError, RecursionError) as exc:
        digest = f"(cannot be computed: {exc})"
    if digest != event.hash:
        problems.append(ChainProblem(event.seq, "altered", f"content hash is {digest}, the event says {event.hash}"))
    if sign and not verifier.verify(event.signed_message(ward_id), event.sig):
        problems.append(_bad_signature(event.seq, verifier))
    return max(newest_format, event.format)


StoredEvent = tuple[Any, ...]
"""One event as the catalog stores it, in the order of ``STORED_COLUMNS``: ``subject`` and ``payload``
are the stored JSON texts, ``format`` is None for format 1."""

STORED_COLUMNS = (
    "seq",
    "prev",
    "hash",
    "time",
    "type",
    "actor_principal",
    "actor_key",
    "subject",
    "payload",
    "sig",
    "format",
)


def _decode_text(text: Any, damaged: Any) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):  # a hostile row may nest deeper than the parser goes
        return text if damaged is _RAW else damaged


def stored_int(value: Any) -> int:
    """An integer column as stored, or -1 when an edit left something else there (SQLite keeps any
    type in any column): the chain check then reports the row (a gap, an unknown format) instead of
    failing on it."""
    try:
        return int(value)
    except (ValueError, TypeError, OverflowError):
        return -1


_RAW = object()


def decode_stored(row: StoredEvent, *, damaged: Any = _RAW) -> Event:
    """The event a stored row holds, its subject and payload parsed. A text that does not parse stays
    as it is (so its hash is reported altered), or is replaced by ``damaged`` when one is given."""
    seq, prev, digest, time, kind, principal, key, subject, payload, sig, fmt = row
    return Event(
        seq=stored_int(seq),
        prev=prev,
        time=time,
        actor={"principal": principal, "key": key},
        type=kind,
        subject=_decode_text(subject, damaged),
        payload=_decode_text(payload, damaged),
        hash=digest,
        sig=sig,
        format=LEGACY_FORMAT if fmt is None else stored_int(fmt),
    )


_BODY = {
    CURRENT_FORMAT: '{"actor":{"key":%s,"principal":"%s"},"format":2,"payload":%s,"prev":"%s","seq":%d,'
    '"subject":%s,"time":"%s","type":"%s"}',
    LEGACY_FORMAT: '{"actor":{"key":%s,"principal":"%s"},"payload":%s,"prev":"%s","seq":%d,'
    '"subject":%s,"time":"%s","type":"%s"}',
}
"""The hashed body of a stored event put together from its columns (keys in RFC 8785's order)."""


def verify_stored(
    rows: Sequence[StoredEvent],
    verifier: SignatureVerifier,
    ward_id: str,
    *,
    signature_every: int = 1,
    exact: bytearray | None = None,
    jobs: int = 1,
    meanwhile: Callable[[int], None] | None = None,
) -> list[ChainProblem]:
    """:func:`verify_chain` over the catalog's rows (``STORED_COLUMNS``), parsing a row only where the
    quick way below does not settle it: each event's hash is recomputed over its stored bytes, put
    together with its other columns; the same checks, problems and signature rule.

    A row is checked this quick way when its ``seq`` and ``prev`` are the expected ones, its short
    strings (principal, key, time, type, prev) hold no ``"`` or ``\\``, its subject and payload are
    text, and the put-together body holds ``,"prev":"`` once. The BLAKE3 of those bytes equal to
    ``hash`` then proves every column is exactly what was sealed, and that the subject and payload
    texts are the sealed JSON (docs/ledger-format.md, "Checking stored rows"). When they do not, the
    body is put together again with the two texts in RFC 8785 form (:func:`jcs_text`; Python spells
    some floats otherwise), which proves their values. Any other row, and every row whose bytes do not
    hash to ``hash`` either way, goes through the exact per-event check.

    ``exact`` (a ``bytearray`` of ``len(rows)`` zeros) is set to 1 at every row whose stored payload
    text is proven to be, byte for byte, the payload as it was sealed: the row's columns put together
    as they are hashed to its ``hash`` (the first way above, not the RFC 8785 re-spelling). Such a
    text was written by the sealing encoder from a parsed value, so a faithful JSON parser reads the
    same value from it (``ledger_store.stored_facts`` uses a faster one on those rows only).

    ``jobs=2`` (where the platform can fork, from ``SPLIT_MIN`` rows) checks the rows from
    ``SPLIT_SHARE`` of the way on in a forked child process while this one checks those before, then
    calls ``meanwhile(k)`` (the first ``k`` rows checked and marked here) before it waits for the
    child: the caller's own work on those rows runs beside the child's check. The child starts from
    the stored ``seq``, ``hash`` and format of the row before its first (what this process checks as
    the last of its part), so on a sound chain both parts are what the whole check does row by row;
    when either part finds anything, or the child fails, the whole chain is checked again here, in
    one process, for the report."""
    if signature_every < 1:
        raise ValueError("signature_every must be at least 1")
    if exact is not None and len(exact) != len(rows):
        raise ValueError("exact must have one entry per row")
    if jobs > 1 and len(rows) >= SPLIT_MIN and hasattr(os, "fork"):
        problems = _check_split(rows, verifier, ward_id, signature_every, exact, meanwhile)
        if not problems:
            return problems
        if exact is not None:
            exact[:] = bytes(len(rows))
        problems = _check_stored(rows, verifier, ward_id, signature_every, exact)
    else:
        problems = _check_stored(rows, verifier, ward_id, signature_every, exact)
    if problems and signature_every > 1:
        if exact is not None:
            exact[:] = bytes(len(rows))
        problems = _check_stored(rows, verifier, ward_id, 1, exact)
    return problems


def verify_stored_after(
    rows: Sequence[StoredEvent], verifier: SignatureVerifier, ward_id: str, *, signature_every: int = 1
) -> list[ChainProblem]:
    """:func:`verify_stored` over ``rows[1:]``, a chain's rows after ``rows[0]``, a row the caller
    already trusts (checked before, and still holding the hash it had then): each row's hash over its
    stored columns, its link to the row before, and the signatures of every ``signature_every``-th row
    and of the last. Nothing is reported about ``rows[0]`` itself."""
    if signature_every < 1:
        raise ValueError("signature_every must be at least 1")
    if len(rows) < 2:
        return []
    return _check_stored(rows, verifier, ward_id, signature_every, None, 1)


SPLIT_MIN = 20_000
"""Fewer rows than this are checked in one process even with ``jobs=2`` (a fork costs more)."""

SPLIT_SHARE = 0.4
"""Where the forked child's part of the rows starts: this process also parses the payloads of its own
part while the child checks (``meanwhile``), so it keeps the smaller part."""


CHILD_MIN_WAIT = 60.0
"""Seconds a forked child is waited for at least (see ``_check_split``)."""


def _check_split(
    rows: Sequence[StoredEvent],
    verifier: SignatureVerifier,
    ward_id: str,
    every: int,
    exact: bytearray | None,
    meanwhile: Callable[[int], None] | None,
) -> list[ChainProblem]:
    """The rows from ``SPLIT_SHARE`` on checked in a forked child, those before here (``verify_stored``)."""
    k = int(len(rows) * SPLIT_SHARE)
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return _check_stored(rows, verifier, ward_id, every, exact) or _meanwhile(meanwhile, len(rows))
    if pid == 0:  # the child: check its part, send the marks and problems back, and leave at once
        status = 1
        try:
            os.close(read_end)
            marks = bytearray(len(rows))
            found = _check_stored(rows, verifier, ward_id, every, marks, k)
            with os.fdopen(write_end, "wb") as out:
                out.write(bytes(marks[k:]) + json.dumps([p.to_dict() for p in found]).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    started = time.monotonic()
    try:
        problems = _check_stored(rows, verifier, ward_id, every, exact, 0, k)
        if meanwhile is not None and not problems:
            meanwhile(k)
    finally:
        # The child's part is the larger; it is given ten times this part's time (a minute at least)
        # before it is stopped and its part checked here: a child stuck on a lock another thread held
        # at the fork must not hang verify.
        sent = _read_until(read_end, started + max(CHILD_MIN_WAIT, 10.0 * (time.monotonic() - started)))
        if sent is None:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    answer = _child_answer(sent, len(rows) - k) if status == 0 and sent is not None else None
    if answer is not None:
        marks, found = answer
        if exact is not None:
            exact[k:] = marks
    else:  # the child failed or was stopped: its part is checked here
        found = _check_stored(rows, verifier, ward_id, every, exact, k)
    return problems + found


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything written to pipe ``fd`` until its writer closes it (the fd is closed), or None past
    ``deadline`` (``time.monotonic``)."""
    parts = []
    waiting = select.poll()  # not select.select: a busy server's descriptors pass its limit (1024)
    waiting.register(fd, select.POLLIN)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not waiting.poll(max(1, int(left * 1000))):
                return None
            part = os.read(fd, 1 << 20)
            if not part:
                return b"".join(parts)
            parts.append(part)
    finally:
        os.close(fd)


def _child_answer(sent: bytes, n_marks: int) -> tuple[bytes, list[ChainProblem]] | None:
    """The forked child's marks and problems (None: not what the child writes, checked here instead)."""
    try:
        found = json.loads(sent[n_marks:])
        return sent[:n_marks], [ChainProblem(int(d["seq"]), str(d["kind"]), str(d["detail"])) for d in found]
    except (ValueError, TypeError, KeyError):
        return None


def _meanwhile(meanwhile: Callable[[int], None] | None, k: int) -> list[ChainProblem]:
    if meanwhile is not None:
        meanwhile(k)
    return []


def _check_stored(
    rows: Sequence[StoredEvent],
    verifier: SignatureVerifier,
    ward_id: str,
    every: int,
    exact: bytearray | None = None,
    start: int = 0,
    stop: int | None = None,
) -> list[ChainProblem]:
    """The rows ``start`` to ``stop`` (all by default) of the chain ``rows``; a part that starts later
    expects the ``seq``, ``hash`` and format the row before it holds (see ``verify_stored``)."""
    problems: list[ChainProblem] = []
    if start == 0:
        expected_seq, expected_prev, newest_format = 1, GENESIS, LEGACY_FORMAT
    else:
        before = rows[start - 1]
        expected_seq, expected_prev = stored_int(before[0]) + 1, before[2]
        # As decode_stored reads the column (stored_int: " 2" or b"2" is format 2), so that the child
        # holds what the check of that row leaves (a format-1 row after it is then a downgrade).
        fmt_before = LEGACY_FORMAT if before[10] is None else stored_int(before[10])
        newest_format = CURRENT_FORMAT if fmt_before == CURRENT_FORMAT else LEGACY_FORMAT
    last = len(rows) - 1
    b3 = blake3.blake3
    for i, row in enumerate(itertools.islice(rows, start, stop), start):
        seq, prev, digest, time, kind, principal, key, subject, payload, sig, fmt = row
        # The quick way (see verify_stored): every condition that pins the columns down, then the hash.
        if fmt == CURRENT_FORMAT:
            template = _BODY[CURRENT_FORMAT]
        elif (fmt is None or fmt == LEGACY_FORMAT) and newest_format == LEGACY_FORMAT:
            template = _BODY[LEGACY_FORMAT]
        else:
            template = None
        if (
            template is not None
            and seq == expected_seq
            and prev == expected_prev
            and type(seq) is int
            and type(principal) is str
            and type(time) is str
            and type(kind) is str
            and type(subject) is str
            and type(payload) is str
            and (key is None or type(key) is str)
        ):
            short = principal + time + kind + prev + ("" if key is None else key)
            if '"' not in short and "\\" not in short:
                quoted = "null" if key is None else '"' + key + '"'
                try:
                    text = template % (quoted, principal, payload, prev, seq, subject, time, kind)
                    sealed = text.count(',"prev":"') == 1 and "b3:" + b3(text.encode()).hexdigest() == digest
                    if sealed and exact is not None:
                        exact[i] = 1
                    if not sealed and template is _BODY[CURRENT_FORMAT]:
                        # Python writes some floats otherwise than RFC 8785 (1.0, 1e-05): the texts'
                        # values in RFC 8785 form, by the C parser and encoder (each parses, by making).
                        text = template % (
                            quoted,
                            principal,
                            jcs_text(payload),
                            prev,
                            seq,
                            jcs_text(subject),
                            time,
                            kind,
                        )
                        sealed = text.count(',"prev":"') == 1 and "b3:" + b3(text.encode()).hexdigest() == digest
                except (ValueError, RecursionError):  # a text that is not JSON, not UTF-8, or nested too deep
                    sealed = False
                if sealed:
                    if fmt == CURRENT_FORMAT:
                        newest_format = CURRENT_FORMAT
                    if (every == 1 or i == last or seq % every == 0) and not verifier.verify(
                        signed_message(newest_format, seq, digest, ward_id), sig
                    ):
                        problems.append(_bad_signature(seq, verifier))
                    expected_seq, expected_prev = seq + 1, digest
                    continue
        event = decode_stored(row)
        sign = every == 1 or i == last or event.seq % every == 0
        # Over the stored texts only when both parse (an unparsed text would let a boundary move).
        parsed = type(subject) is str and type(payload) is str and type(event.subject) is dict
        texts = (subject, payload) if parsed and type(event.payload) is dict else None
        newest_format = _check_event(
            event, expected_seq, expected_prev, newest_format, verifier, ward_id, sign, texts, problems
        )
        expected_seq, expected_prev = event.seq + 1, event.hash
    return problems


def _bad_signature(seq: int, verifier: SignatureVerifier) -> ChainProblem:
    return ChainProblem(
        seq, "bad_signature", f"signature does not verify under the key {key_fingerprint(verifier.public_key_b64)}"
    )


def signatures_checked(count: int, signature_every: int) -> int:
    """How many signatures ``verify_chain`` checks in a sound chain of ``count`` events."""
    if signature_every == 1 or count == 0:
        return count
    spaced = count // signature_every
    return spaced + (0 if count % signature_every == 0 else 1)
