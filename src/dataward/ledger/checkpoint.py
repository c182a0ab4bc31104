"""Signed checkpoints: the ward's signed statement "my ledger had ``seq`` events, the last one hashing
to ``head``, at ``time``".

Kept outside the ward (a file, a git repository, a ticket, a witness bucket), a checkpoint lets a
verifier holding the ward's public key prove later that today's ledger *extends* it: the event at
``seq`` still exists and still hashes to ``head``. A deleted tail or a rewritten history then shows,
even when the chain left behind is internally consistent.

The signature covers ``CHECKPOINT_DOMAIN`` followed by the RFC 8785 JSON of every field but ``sig``
(docs/ledger-format.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dataward.domain.errors import InputError
from dataward.domain.hashing import jcs
from dataward.ledger.events import Event
from dataward.ledger.signing import SignatureVerifier, WardSigner

CHECKPOINT_TYPE = "dataward.checkpoint"
CHECKPOINT_FORMAT = 1
CHECKPOINT_DOMAIN = b"dataward:checkpoint:v1\x00"
"""Prefix of every checkpoint signature: these bytes are signed only as a checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    """One signed checkpoint of a ward's ledger."""

    ward: str
    seq: int
    head: str
    time: str
    public_key: str
    sig: str = ""
    format: int = CHECKPOINT_FORMAT
    source: str = ""
    """Where it was read from (a file, the ward's kept checkpoints, the witness); not signed."""

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        return {
            "type": CHECKPOINT_TYPE,
            "format": self.format,
            "ward": self.ward,
            "seq": self.seq,
            "head": self.head,
            "time": self.time,
            "public_key": self.public_key,
        }

    def signed_message(self) -> bytes:
        return CHECKPOINT_DOMAIN + jcs(self.body())

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "sig": self.sig}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def verify_signature(self, verifier: SignatureVerifier) -> bool:
        return verifier.verify(self.signed_message(), self.sig)

    @property
    def name(self) -> str:
        """A file name that sorts by sequence number and never collides for different heads."""
        return f"{self.seq:012d}-{self.head.split(':', 1)[-1][:16]}.json"

    @classmethod
    def sign(cls, signer: WardSigner, *, ward: str, seq: int, head: str, time: str) -> Checkpoint:
        unsigned = cls(ward=ward, seq=seq, head=head, time=time, public_key=signer.public_key_b64)
        return cls(**{**unsigned.__dict__, "sig": signer.sign(unsigned.signed_message())})

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "checkpoint") -> Checkpoint:
        """Parse a checkpoint document; ``InputError`` names what is malformed (a bad signature is
        not malformed: it is reported by ``verify``)."""
        if not isinstance(data, dict) or data.get("type") != CHECKPOINT_TYPE:
            raise InputError(
                f'{source} is not a dataward checkpoint (no "type": "{CHECKPOINT_TYPE}")',
                hint="make one with `dataward checkpoint -o FILE`",
            )
        if data.get("format") != CHECKPOINT_FORMAT:
            raise InputError(f"{source}: checkpoint format {data.get('format')!r} is not supported")
        try:
            seq = data["seq"]
            fields = {k: data[k] for k in ("ward", "head", "time", "public_key", "sig")}
        except KeyError as exc:
            raise InputError(f"{source}: checkpoint field {exc.args[0]!r} is missing") from None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise InputError(f"{source}: checkpoint seq must be a non-negative integer, not {seq!r}")
        for key, value in fields.items():
            if not isinstance(value, str):
                raise InputError(f"{source}: checkpoint field {key!r} must be a string")
        return cls(seq=seq, source=source, **fields)

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "checkpoint") -> Checkpoint:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{source} is not JSON: {exc}") from None
        return cls.from_dict(data, source=source)


@dataclass(frozen=True)
class Extension:
    """How today's ledger relates to one checkpoint.

    ``status`` is ``extends`` (the event at ``seq`` still hashes to ``head``), ``missing`` (the
    ledger no longer holds event ``seq``: ``first_bad`` is the first missing event) or
    ``rewritten`` (event ``seq`` exists with another hash: history up to it was rewritten).
    """

    status: str
    first_bad: int | None = None
    found_hash: str | None = None


def extension(checkpoint: Checkpoint, events: Sequence[Event] | Mapping[int, str]) -> Extension:
    """Does ``events`` (the ledger in sequence order, or each event's hash by its ``seq``) extend
    ``checkpoint``?"""
    if checkpoint.seq == 0:
        return Extension("extends")
    by_seq = events if isinstance(events, Mapping) else {e.seq: e.hash for e in events}
    if checkpoint.seq not in by_seq:
        first_missing = next(n for n in range(1, checkpoint.seq + 1) if n not in by_seq)
        return Extension("missing", first_bad=first_missing)
    found = by_seq[checkpoint.seq]
    if found != checkpoint.head:
        return Extension("rewritten", first_bad=checkpoint.seq, found_hash=found)
    return Extension("extends")
