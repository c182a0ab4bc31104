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
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path

import blake3

from dataward.domain.hashing import HASH_PREFIX, blake3_hex
from dataward.store.base import (
    CHUNK_SIZE,
    ObjectStore,
    ProblemKind,
    StoreProblem,
    checked,
    digest_hex,
    is_object_name,
    missing_object,
)

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
            raise missing_object(digest, str(path)) from None
        return checked(digest, data, str(path))

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def size(self, digest: str) -> int:
        path = self.path_of(digest)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise missing_object(digest, str(path)) from None

    def iter_digests(self) -> Iterator[str]:
        for hex_part, _ in self._listing():
            yield HASH_PREFIX + hex_part

    def _listing(self) -> Iterator[tuple[str, str]]:
        """``(hex name, path)`` of every stored object, in sorted order (one directory scan per shard:
        a regular file's type comes with its directory entry, without a ``stat``)."""
        if not self._objects.is_dir():
            return
        with os.scandir(self._objects) as found:
            shards = sorted((e.name, e.path) for e in found if len(e.name) == 2 and e.is_dir())
        for name, path in shards:
            with os.scandir(path) as found:
                entries = sorted((e.name, e.path) for e in found if is_object_name(name + e.name) and e.is_file())
            for rest, file in entries:
                yield name + rest, file

    def verify(self, digest: str) -> bool:
        return _hash_file(str(self.path_of(digest))) == digest

    def verify_all(self, expected: Iterable[str] | None = None) -> Iterator[StoreProblem]:
        """As :meth:`ObjectStore.verify_all` (the same problems, in the same order), with the objects
        listed by one directory scan per shard and hashed in batches on ``VERIFY_THREADS`` threads: the
        file reads and the ``blake3`` package's hashing release the GIL, so several objects are hashed
        at once when cores are free."""
        seen: set[str] = set()
        listing = self._listing()
        with ThreadPoolExecutor(max_workers=VERIFY_THREADS) as pool:
            while window := list(itertools.islice(listing, _VERIFY_WINDOW)):
                for (hex_part, _), actual in zip(window, _hash_all(pool, [p for _, p in window]), strict=True):
                    digest = HASH_PREFIX + hex_part
                    seen.add(digest)
                    if actual != digest:
                        yield StoreProblem(
                            digest, ProblemKind.CORRUPTED, f"object {digest} in {self.url} does not match its hash"
                        )
        yield from self._expected_problems(expected, seen)


VERIFY_THREADS = max(1, min(4, os.cpu_count() or 1))
"""Threads that hash objects at once in ``verify_all``."""
_VERIFY_WINDOW = 4096
"""Objects listed ahead of the hashing (the listing of a shard is sorted whole)."""
_VERIFY_BATCH = 64
"""Objects per task of the thread pool (a task per object would cost about as much as hashing a small one)."""


def _hash_file(path: str) -> str | None:
    """The ``b3:`` digest of a file's bytes (None when there is no file), read in chunks: the reads and
    the ``blake3`` package's hashing release the GIL. Not memory-mapped: a file cut short while mapped
    would kill the process (``SIGBUS``) instead of being reported."""
    hasher = blake3.blake3()
    try:
        with open(path, "rb", buffering=0) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
    except FileNotFoundError:
        return None
    return HASH_PREFIX + hasher.hexdigest()


def _hash_batch(paths: list[str]) -> list[str | None]:
    return [_hash_file(p) for p in paths]


def _hash_all(pool: ThreadPoolExecutor, paths: list[str]) -> list[str | None]:
    batches = [paths[i : i + _VERIFY_BATCH] for i in range(0, len(paths), _VERIFY_BATCH)]
    return [d for batch in pool.map(_hash_batch, batches) for d in batch]
