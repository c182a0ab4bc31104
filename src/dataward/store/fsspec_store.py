"""A content-addressed object store on any fsspec filesystem (``file://``, ``memory://``, ``s3://``...).

Same layout as :class:`~dataward.store.local.LocalObjectStore`: ``objects/ab/cdef...`` for objects
and ``tmp/`` for writes in progress. An object is written under a temporary name and then moved
to its final name, which is an atomic rename where the filesystem has one (local disks) and a
copy-then-publish on object stores, where a key only becomes visible once fully uploaded.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from os import PathLike
from typing import Any

import blake3
import fsspec

from dataward.domain.hashing import HASH_PREFIX, blake3_hex
from dataward.store.base import (
    CHUNK_SIZE,
    ObjectStore,
    checked,
    digest_hex,
    hash_stream,
    is_object_name,
    missing_object,
)


class FsspecObjectStore(ObjectStore):
    """Objects under ``url`` on the fsspec filesystem that the URL names."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        self._url = url
        self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self._root = root.rstrip("/")
        self._objects = f"{self._root}/objects"
        self._tmp = f"{self._root}/tmp"

    @property
    def url(self) -> str:
        return self._url

    def _path(self, digest: str) -> str:
        hex_part = digest_hex(digest)
        return f"{self._objects}/{hex_part[:2]}/{hex_part[2:]}"

    # --- writing ------------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        data = bytes(data)
        digest = HASH_PREFIX + blake3_hex(data)
        final = self._path(digest)
        if self._present(final, len(data)):
            return digest
        tmp = self._new_temp()
        try:
            with self.fs.open(tmp, "wb") as out:
                out.write(data)
            self._publish(tmp, final)
        finally:
            self._discard(tmp)
        return digest

    def put_file(self, path: str | PathLike[str]) -> str:
        hasher = blake3.blake3()
        size = 0
        tmp = self._new_temp()
        try:
            with open(path, "rb") as src, self.fs.open(tmp, "wb") as out:
                while chunk := src.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            digest = HASH_PREFIX + hasher.hexdigest()
            final = self._path(digest)
            if not self._present(final, size):
                self._publish(tmp, final)
        finally:
            self._discard(tmp)
        return digest

    def _present(self, final: str, size: int) -> bool:
        try:
            return int(self.fs.size(final)) == size
        except FileNotFoundError:
            return False

    def _new_temp(self) -> str:
        self.fs.makedirs(self._tmp, exist_ok=True)
        return f"{self._tmp}/obj-{uuid.uuid4().hex}.tmp"

    def _publish(self, tmp: str, final: str) -> None:
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(tmp, final)

    def _discard(self, tmp: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    # --- reading ------------------------------------------------------------------------------

    def get(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            with self.fs.open(path, "rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            raise missing_object(digest, path) from None
        return checked(digest, data, path)

    def exists(self, digest: str) -> bool:
        return bool(self.fs.isfile(self._path(digest)))

    def size(self, digest: str) -> int:
        path = self._path(digest)
        try:
            return int(self.fs.size(path))
        except FileNotFoundError:
            raise missing_object(digest, path) from None

    def iter_digests(self) -> Iterator[str]:
        try:
            found = self.fs.find(self._objects)
        except FileNotFoundError:
            return
        prefix = self._objects.strip("/") + "/"
        digests = []
        for path in found:
            rel = str(path).strip("/")
            if not rel.startswith(prefix):
                continue
            parts = rel[len(prefix) :].split("/")
            if len(parts) == 2 and len(parts[0]) == 2 and is_object_name(parts[0] + parts[1]):
                digests.append(HASH_PREFIX + parts[0] + parts[1])
        yield from sorted(digests)

    def verify(self, digest: str) -> bool:
        try:
            with self.fs.open(self._path(digest), "rb") as stream:
                actual, _ = hash_stream(stream)
        except FileNotFoundError:
            return False
        return actual == digest
