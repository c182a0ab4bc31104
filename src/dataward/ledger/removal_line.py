"""Signed lines of the list of access removals: the ward's signed statement "event ``seq`` (hashing to
``hash``) of type ``type`` took these keys and principals away", one JSON object per line.

Each line names its place (``n``, from 0) and the hash of the line before it (``prev``; ``GENESIS``
for the first), and its signature covers ``REMOVAL_DOMAIN`` followed by the RFC 8785 JSON of every
field but ``sig``. So a line cannot be forged or edited without the ward's key, a line taken out of
the middle breaks the next one's ``prev``, and a line cannot be replayed in another ward or as any
other kind of signed statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dataward.access.removals import RemovalFact, Removed
from dataward.domain.errors import InputError
from dataward.domain.hashing import jcs, jcs_hash
from dataward.ledger.events import GENESIS
from dataward.ledger.signing import SignatureVerifier, WardSigner

REMOVAL_LINE_TYPE = "dataward.removal"
REMOVAL_LINE_FORMAT = 6
"""The format lines are written in. Format 2 lists revoked grants as well (``grants``), format 3 quarantined
contributions (``contributions``, with the id lists of the records they added and their datasets: ``held``,
``held_in``), format 4 the chunks holding those records as well (``held_chunks``), format 5 withdrawn model versions
(``models``), format 6 the SHA-256 digests of their artifacts and model files (``model_files``); lines of earlier
formats read as they were signed, and their ward listed no grant revocation (format 1) or quarantine (formats 1
and 2), nor the chunks of a quarantine's records (format 3: its exact copies are held back after a restore from
before the contribution, its near copies are not), nor a model withdrawal (formats 1 to 4), nor the bytes of a
withdrawn model (format 5: they are found through the withdrawn version's signed row, when the ledger holds it)."""
READ_FORMATS = (1, 2, 3, 4, 5, 6)
_OPTIONAL_LISTS = {
    "grants": 2,
    "contributions": 3,
    "held": 3,
    "held_in": 3,
    "held_chunks": 4,
    "models": 5,
    "model_files": 6,
}
"""Lists a line holds only when they name something, with the format that first wrote them."""
REMOVAL_DOMAIN = b"dataward:removal:v1\x00"
"""Prefix of every removal line's signature: these bytes are signed only as a removal line."""

_TEXT = ("ward", "prev", "hash", "type", "time", "keys_from")
_LISTS = ("keys", "principals", "enabled")


@dataclass(frozen=True)
class RemovalLine:
    """One line of the list: an access-removing event, chained to the line before and signed."""

    ward: str
    n: int
    prev: str
    seq: int
    hash: str
    type: str
    time: str
    keys: tuple[str, ...] = ()
    keys_from: str = ""
    principals: tuple[str, ...] = ()
    enabled: tuple[str, ...] = ()
    grants: tuple[str, ...] = ()
    contributions: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    held_in: tuple[str, ...] = ()
    held_chunks: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    model_files: tuple[str, ...] = ()
    sig: str = ""
    format: int = REMOVAL_LINE_FORMAT

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        return {
            "type_of_line": REMOVAL_LINE_TYPE,
            "format": self.format,
            "ward": self.ward,
            "n": self.n,
            "prev": self.prev,
            "seq": self.seq,
            "hash": self.hash,
            "type": self.type,
            "time": self.time,
            "keys": list(self.keys),
            "keys_from": self.keys_from,
            "principals": list(self.principals),
            "enabled": list(self.enabled),
            # Only when they name something: lines written before grants (or quarantines) were listed
            # sign no such field.
            **({"grants": list(self.grants)} if self.grants else {}),
            **({"contributions": list(self.contributions)} if self.contributions else {}),
            **({"held": list(self.held)} if self.held else {}),
            **({"held_in": list(self.held_in)} if self.held_in else {}),
            **({"held_chunks": list(self.held_chunks)} if self.held_chunks else {}),
            **({"models": list(self.models)} if self.models else {}),
            **({"model_files": list(self.model_files)} if self.model_files else {}),
        }

    def signed_message(self) -> bytes:
        return REMOVAL_DOMAIN + jcs(self.body())

    @property
    def digest(self) -> str:
        """The hash the next line names as its ``prev`` (over the signed fields and the signature)."""
        return jcs_hash({**self.body(), "sig": self.sig})

    def verify_signature(self, verifier: SignatureVerifier) -> bool:
        return verifier.verify(self.signed_message(), self.sig)

    def fact(self) -> RemovalFact:
        """The removal this line records, for ``dataward.access.removals.fold``."""
        removed = Removed(
            self.keys,
            self.keys_from,
            self.principals,
            self.enabled,
            self.grants,
            self.contributions,
            self.held,
            self.held_in,
            self.held_chunks,
            self.models,
            self.model_files,
        )
        return RemovalFact(self.seq, self.hash, self.type, self.time, removed)

    def to_json(self) -> str:
        """The line as written: compact JSON, no newline inside."""
        return json.dumps({**self.body(), "sig": self.sig}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def sign(
        cls,
        signer: WardSigner,
        *,
        ward: str,
        n: int,
        prev: str,
        seq: int,
        hash: str,
        type: str,
        time: str,
        removed: Removed,
    ) -> RemovalLine:
        """The signed line ``n`` (after the line whose digest is ``prev``) for event ``seq``."""
        unsigned = cls(
            ward=ward,
            n=n,
            prev=prev,
            seq=seq,
            hash=hash,
            type=type,
            time=time,
            keys=removed.keys,
            keys_from=removed.keys_from,
            principals=removed.principals,
            enabled=removed.enabled,
            grants=removed.grants,
            contributions=removed.contributions,
            held=removed.held,
            held_in=removed.held_in,
            held_chunks=removed.held_chunks,
            models=removed.models,
            model_files=removed.model_files,
        )
        return cls(**{**unsigned.__dict__, "sig": signer.sign(unsigned.signed_message())})

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "removal line") -> RemovalLine:
        """Parse one line; ``InputError`` names what is malformed (a bad signature is not malformed:
        the reader checks it)."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{source} is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("type_of_line") != REMOVAL_LINE_TYPE:
            raise InputError(f"{source} is not a dataward removal line")
        if data.get("format") not in READ_FORMATS or isinstance(data.get("format"), bool):
            raise InputError(f"{source}: removal line format {data.get('format')!r} is not supported")
        fields: dict[str, Any] = {"format": data["format"]}
        for name in ("n", "seq"):
            value = data.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InputError(f"{source}: {name!r} must be a non-negative integer")
            fields[name] = value
        for name in (*_TEXT, "sig"):
            value = data.get(name)
            if not isinstance(value, str):
                raise InputError(f"{source}: {name!r} must be a string")
            fields[name] = value
        for name in _LISTS:
            value = data.get(name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputError(f"{source}: {name!r} must be a list of strings")
            fields[name] = tuple(value)
        for name, since in _OPTIONAL_LISTS.items():
            value = data.get(name, [])
            listed = isinstance(value, list) and all(isinstance(v, str) for v in value)
            if not listed or (name in data and (not value or data["format"] < since)):
                raise InputError(
                    f"{source}: {name!r} must be a non-empty list of strings, on a line of format {since} or later"
                )
            fields[name] = tuple(value)
        return cls(**fields)


FIRST_PREV = GENESIS
"""The ``prev`` of the first line."""


__all__ = ["FIRST_PREV", "REMOVAL_DOMAIN", "RemovalLine"]
