"""A content-addressed object store in a local folder.

Layout::

    ROOT/objects/ab/cdef...   one read-only file per object (first two hex characters shard)
    ROOT/tmp/                 objects being written; never listed, safe to delete when idle

Every write goes to a temporary file in ``ROOT/tmp`` (the same filesystem), is flushed and
fsynced, made read-only and moved to its final name with ``os.replace``; the directory is then
fsynced. A crash at any point leaves either the whole object under its name or nothing there.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

import blake3

from dataward.domain.errors import NotFound
from dataward.domain.hashing import HASH_PREFIX, blake3_hex
from dataward.store.base import CHUNK_SIZE, ObjectStore, checked, digest_hex, hash_stream, is_object_name

_READ_ONLY = 0o444


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; some platforms cannot open directories, which is harmless.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalObjectStore(ObjectStore):
    """Objects as read-only files under ``root/objects``, sharded by the first two hex characters."""

    def __init__(self, root: str | PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"

    @property
    def url(self) -> str:
        return str(self.root)

    def path_of(self, digest: str) -> Path:
        """Where the object named ``digest`` lives (whether or not it exists)."""
        hex_part = digest_hex(digest)
        return self._objects / hex_part[:2] / hex_part[2:]

    # --- writing ------------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        data = bytes(data)
        digest = HASH_PREFIX + blake3_hex(data)
        final = self.path_of(digest)
        if self._present(final, len(data)):
            return digest
        tmp = self._new_temp()
        try:
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            self._publish(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return digest

    def put_file(self, path: str | PathLike[str]) -> str:
        hasher = blake3.blake3()
        size = 0
        tmp = self._new_temp()
        try:
            # One pass: the bytes are hashed while they are copied, so the file is read only once.
            with open(path, "rb") as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = HASH_PREFIX + hasher.hexdigest()
            final = self.path_of(digest)
            if not self._present(final, size):
                self._publish(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return digest

    def _present(self, final: Path, size: int) -> bool:
        # A file of the wrong size under an object's name is damage: writing the object again repairs it.
        try:
            return final.stat().st_size == size
        except FileNotFoundError:
            return False

    def _new_temp(self) -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="obj-", suffix=".tmp")
        os.close(fd)
        return Path(name)

    def _publish(self, tmp: Path, final: Path) -> None:
        os.chmod(tmp, _READ_ONLY)
        shard = final.parent
        new_shard = not shard.exists()
        shard.mkdir(parents=True, exist_ok=True)
        if new_shard:
            _fsync_dir(self._objects)
        os.replace(tmp, final)
        _fsync_dir(shard)

    # --- reading ------------------------------------------------------------------------------

    def get(self, digest: str) -> bytes:
        path = self.path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"object {digest} is not in the store at {self.url}") from None
        return checked(digest, data, str(path))

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"object {digest} is not in the store at {self.url}") from None

    def iter_digests(self) -> Iterator[str]:
        if not self._objects.is_dir():
            return
        for shard in sorted(self._objects.iterdir()):
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for entry in sorted(shard.iterdir()):
                hex_part = shard.name + entry.name
                if is_object_name(hex_part) and entry.is_file():
                    yield HASH_PREFIX + hex_part

    def verify(self, digest: str) -> bool:
        try:
            with open(self.path_of(digest), "rb") as stream:
                actual, _ = hash_stream(stream)
        except FileNotFoundError:
            return False
        return actual == digest
