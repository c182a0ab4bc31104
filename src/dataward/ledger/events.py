"""Ledger events: canonical JSON, hash-chained to the previous event, signed by the ward key.

``hash`` is ``json_hash`` over ``seq, prev, time, actor, type, subject, payload``; ``sig`` is the
Ed25519 signature of the UTF-8 bytes of ``hash``. The first event's ``prev`` is ``GENESIS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dataward.domain.hashing import json_hash
from dataward.ledger.signing import SignatureVerifier, WardSigner

GENESIS = "b3:" + "0" * 64


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds and a ``Z``: sorts and compares as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


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

    def body(self) -> dict[str, Any]:
        """The signed content: everything but ``hash`` and ``sig``."""
        return {
            "seq": self.seq,
            "prev": self.prev,
            "time": self.time,
            "actor": self.actor,
            "type": self.type,
            "subject": self.subject,
            "payload": self.payload,
        }

    def computed_hash(self) -> str:
        return json_hash(self.body())

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash, "sig": self.sig}


def seal(
    *,
    seq: int,
    prev: str,
    time: datetime,
    actor: Actor,
    type: str,
    subject: dict[str, Any],
    payload: dict[str, Any],
    signer: WardSigner,
) -> Event:
    """Build, hash and sign the next event of the chain."""
    unsigned = Event(seq, prev, format_time(time), actor.to_dict(), type, subject, payload)
    digest = unsigned.computed_hash()
    return Event(**{**unsigned.__dict__, "hash": digest, "sig": signer.sign(digest.encode("utf-8"))})


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    kind: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "detail": self.detail}


def verify_chain(events: Iterable[Event], verifier: SignatureVerifier) -> list[ChainProblem]:
    """Re-check sequence, links, hashes and signatures of the whole chain, in order.

    Reports every discrepancy rather than stopping at the first, so an auditor sees its extent.
    """
    problems: list[ChainProblem] = []
    expected_seq, expected_prev = 1, GENESIS
    for event in events:
        if event.seq != expected_seq:
            problems.append(ChainProblem(event.seq, "gap", f"expected event #{expected_seq}, found #{event.seq}"))
        if event.prev != expected_prev:
            problems.append(
                ChainProblem(event.seq, "broken_link", "prev does not match the hash of the event before it")
            )
        digest = event.computed_hash()
        if digest != event.hash:
            problems.append(
                ChainProblem(event.seq, "altered", f"content hash is {digest}, the event says {event.hash}")
            )
        if not verifier.verify(event.hash.encode("utf-8"), event.sig):
            problems.append(ChainProblem(event.seq, "bad_signature", "signature does not match the ward key"))
        expected_seq, expected_prev = event.seq + 1, event.hash
    return problems
