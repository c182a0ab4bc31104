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

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dataward.domain.hashing import canonical_json, jcs, jcs_hash, json_hash
from dataward.ledger.signing import SignatureVerifier, WardSigner, key_fingerprint

GENESIS = "b3:" + "0" * 64

LEGACY_FORMAT = 1
CURRENT_FORMAT = 2
FORMATS = (LEGACY_FORMAT, CURRENT_FORMAT)

EVENT_DOMAIN = b"dataward:ledger-event:v2\x00"
"""Prefix of every format-2 event signature: these bytes are signed only as a ledger event."""


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
    import json

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

    def signed_message(self, ward_id: str) -> bytes:
        """The bytes ``sig`` signs: domain-separated (ward, seq, hash) in format 2, the bare hash in 1."""
        if self.format == LEGACY_FORMAT:
            return self.hash.encode("utf-8")
        return EVENT_DOMAIN + jcs({"hash": self.hash, "seq": self.seq, "ward": ward_id})

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


def verify_chain(events: Iterable[Event], verifier: SignatureVerifier, ward_id: str) -> list[ChainProblem]:
    """Re-check sequence, links, formats, hashes and signatures of the whole chain, in order.

    Reports every discrepancy rather than stopping at the first, so an auditor sees its extent.
    A chain may move from format 1 to format 2 once; an event in an older format than the one
    before it is reported as ``downgraded`` (its rules are weaker, so it is never accepted).
    """
    problems: list[ChainProblem] = []
    expected_seq, expected_prev, newest_format = 1, GENESIS, LEGACY_FORMAT
    for event in events:
        if event.seq != expected_seq:
            problems.append(ChainProblem(event.seq, "gap", f"expected event #{expected_seq}, found #{event.seq}"))
        if event.prev != expected_prev:
            problems.append(
                ChainProblem(event.seq, "broken_link", "prev does not match the hash of the event before it")
            )
        if event.format not in FORMATS:
            problems.append(ChainProblem(event.seq, "unknown_format", f"event format {event.format} is unknown"))
            expected_seq, expected_prev = event.seq + 1, event.hash
            continue
        if event.format < newest_format:
            problems.append(
                ChainProblem(
                    event.seq,
                    "downgraded",
                    f"event is in format {event.format} after an event in format {newest_format}",
                )
            )
        newest_format = max(newest_format, event.format)
        try:
            digest = event.computed_hash()
        except ValueError as exc:
            digest = f"(cannot be computed: {exc})"
        if digest != event.hash:
            problems.append(
                ChainProblem(event.seq, "altered", f"content hash is {digest}, the event says {event.hash}")
            )
        if not verifier.verify(event.signed_message(ward_id), event.sig):
            problems.append(
                ChainProblem(
                    event.seq,
                    "bad_signature",
                    f"signature does not verify under the key {key_fingerprint(verifier.public_key_b64)}",
                )
            )
        expected_seq, expected_prev = event.seq + 1, event.hash
    return problems
