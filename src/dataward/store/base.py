"""The content-addressed object store contract.

An object is named by the content hash of its bytes (``b3:<hex>``, see
:func:`dataward.domain.hashing.content_hash`), so storing the same bytes twice stores one object
and any change to stored bytes is detected when they are read back.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from os import PathLike
from typing import BinaryIO

import blake3

from dataward.domain.errors import InputError, IntegrityViolation
from dataward.domain.hashing import HASH_PREFIX, blake3_hex

CHUNK_SIZE = 1 << 20
"""Bytes read at a time when hashing or copying a stream, so big files never sit in memory whole."""

_DIGEST = re.compile(r"^b3:([0-9a-f]{64})$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


def checked(digest: str, data: bytes, where: str) -> bytes:
    """``data`` if it hashes to ``digest``; else ``IntegrityViolation`` naming the object by its digest
    (its place ``where`` only as the error's ``local_detail``: a server must not tell its callers where
    its files are)."""
    actual = HASH_PREFIX + blake3_hex(data)
    if actual != digest:
        exc = IntegrityViolation(
            f"object {digest} does not match its hash (its bytes hash to {actual})",
            hint="the stored object was altered or damaged; run `dataward verify` to list every altered or "
            "missing object, and restore them from a backup",
            digest=digest,
            problem="corrupted",
        )
        exc.local_detail = f"the object's file: {where}"
        raise exc
    return data


def missing_object(digest: str, where: str) -> IntegrityViolation:
    """The error of an object absent from the store when it is read. Every digest the ward reads is one
    it stored and recorded (objects are never deleted), so an absent one is data lost or removed behind
    the ward's back: an integrity problem (exit 7), as ``verify`` reports it (``missing``), not a
    ``NotFound`` as if the thing asked for did not exist. Named by its digest; its place ``where`` only
    as ``local_detail``."""
    exc = IntegrityViolation(
        f"object {digest} is missing from the object store: it was deleted or lost outside dataward",
        hint="run `dataward verify` to list every missing or altered object, and restore them from a backup",
        digest=digest,
        problem="missing",
    )
    exc.local_detail = f"the object's file: {where}"
    return exc


def digest_hex(digest: str) -> str:
    """The hex part of a ``b3:<hex>`` digest; refuses anything else so it can never name a path."""
    match = _DIGEST.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise InputError(
            f"{digest!r} is not an object digest",
            hint="object digests look like b3: followed by 64 lowercase hex characters",
        )
    return match.group(1)


def is_object_name(hex_part: str) -> bool:
    """True when ``hex_part`` is 64 lowercase hex characters (the name of a stored object)."""
    return bool(_HEX.match(hex_part))


def hash_stream(stream: BinaryIO) -> tuple[str, int]:
    """The ``b3:`` digest and the byte count of everything left in ``stream``, read in chunks."""
    hasher = blake3.blake3()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        hasher.update(chunk)
        size += len(chunk)
    return HASH_PREFIX + hasher.hexdigest(), size


class ProblemKind(StrEnum):
    MISSING = "missing"
    CORRUPTED = "corrupted"


@dataclass(frozen=True)
class StoreProblem:
    """One object that fails verification: absent, or its bytes no longer match its name."""

    digest: str
    kind: ProblemKind
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"digest": self.digest, "kind": self.kind.value, "message": self.message}


class ObjectStore(ABC):
    """A store of immutable byte objects named by their content hash.

    Implementations write atomically (an object appears whole under its name or not at all) and
    verify the hash of every object they hand back.
    """

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the objects live, as a path or URL a person can read."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data`` and return its digest. Storing bytes that are already there is a no-op."""

    @abstractmethod
    def put_file(self, path: str | PathLike[str]) -> str:
        """Store the content of a file, hashing it in chunks; return its digest."""

    @abstractmethod
    def get(self, digest: str) -> bytes:
        """The bytes of an object, verified against its digest.

        Raises ``IntegrityViolation`` when the object is absent (``missing_object``: the ward reads only
        what it stored) or its stored bytes do not hash to ``digest``.
        """

    @abstractmethod
    def exists(self, digest: str) -> bool:
        """True when an object is stored under ``digest`` (its content is not checked)."""

    @abstractmethod
    def size(self, digest: str) -> int:
        """Stored size of an object in bytes; ``IntegrityViolation`` (``missing_object``) when absent."""

    @abstractmethod
    def iter_digests(self) -> Iterator[str]:
        """Digests of every stored object, in sorted order. Temporary files are never listed."""

    @abstractmethod
    def verify(self, digest: str) -> bool:
        """True when the object is present and its bytes hash to ``digest``."""

    def verify_all(self, expected: Iterable[str] | None = None) -> Iterator[StoreProblem]:
        """Every problem in the store: each stored object that is corrupted, and each digest of
        ``expected`` (e.g. every object the catalog refers to) that is missing."""
        seen: set[str] = set()
        for digest in self.iter_digests():
            seen.add(digest)
            if not self.verify(digest):
                yield StoreProblem(
                    digest, ProblemKind.CORRUPTED, f"object {digest} in {self.url} does not match its hash"
                )
        yield from self._expected_problems(expected, seen)

    def _expected_problems(self, expected: Iterable[str] | None, seen: set[str]) -> Iterator[StoreProblem]:
        """The problems of the digests of ``expected`` not in ``seen`` (the stored objects already
        checked): missing, or present but not listed and corrupted."""
        for digest in expected or ():
            if digest in seen:
                continue
            seen.add(digest)
            if not self.exists(digest):
                yield StoreProblem(digest, ProblemKind.MISSING, f"object {digest} is missing from {self.url}")
            elif not self.verify(digest):
                yield StoreProblem(
                    digest, ProblemKind.CORRUPTED, f"object {digest} in {self.url} does not match its hash"
                )

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str) and _DIGEST.match(digest) is not None and self.exists(digest)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
