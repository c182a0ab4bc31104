"""Uploads: a contribution's file streamed to disk beside the ward, hashed while it arrives.

An upload is written to a private temporary file in the ward's ``server/uploads`` folder, counted
and BLAKE3-hashed chunk by chunk, and only renamed into place once complete and within the size
limit; a refused, oversize or interrupted upload leaves nothing behind. An upload belongs to the
principal that sent it and may be named only with the key that sent it, is consumed by one
contribution, and is deleted after ``upload_ttl_s`` if no contribution used it. A principal may hold
at most ``max_pending`` uploads and ``max_pending_bytes`` bytes of them at once, complete or still
arriving, in every worker process together (the folder is what they share: a partial file's name
carries its owner). Every chunk of an arriving upload is counted against that quota before it is
written: under a lock file of the owner, the owner's holding is counted afresh from the folder and the
partial file is extended to take the chunk, so that parallel uploads, in one process or several, see
each other's bytes and cannot together hold more than the quota.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import blake3

from dataward.domain.errors import InputError, NotFound
from dataward.domain.transport_errors import PayloadTooLarge, QuotaExceeded

_SUFFIX = re.compile(r"^(\.[A-Za-z0-9]{1,10}){1,2}$")


@dataclass(frozen=True)
class Upload:
    """One complete upload: where its bytes are, whose it is (the principal, the id of the key that sent
    it), and what it hashed to."""

    id: str
    path: Path
    owner: str
    filename: str
    size: int
    hash: str
    key: str = ""


class UploadArea:
    """The folder of uploads of one ward."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        ttl_s: float,
        max_pending: int = 8,
        max_pending_bytes: int = 1 << 30,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        # A complete upload's owner and size never change: read once from its meta.json, not per chunk.
        self._complete: dict[str, tuple[str, int]] = {}
        self._complete_lock = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The owners' lock files, beside the uploads (never swept: deleting one while held would let
        # two holders in).
        self.locks = folder.with_name(folder.name + ".locks")
        self.locks.mkdir(exist_ok=True, mode=0o700)

    def pending(self, owner: str) -> tuple[int, int]:
        """How many uploads ``owner`` holds here (complete or arriving) and how many bytes they take; an
        arriving one counts with the bytes reserved for it so far."""
        count = size = 0
        tag = _owner_tag(owner)
        seen: set[str] = set()
        for path in self.folder.iterdir():
            try:
                if path.name.endswith(f".{tag}.partial"):
                    count, size = count + 1, size + path.stat().st_size
                elif re.fullmatch(r"u_[0-9a-f]{24}", path.name):
                    seen.add(path.name)
                    known = self._complete.get(path.name)
                    if known is None:
                        meta = json.loads((path / "meta.json").read_text("utf-8"))
                        known = (str(meta.get("owner")), int(meta.get("size", 0)))
                        self._complete[path.name] = known
                    if known[0] == owner:
                        count, size = count + 1, size + known[1]
            except (OSError, ValueError):
                continue  # gone meanwhile, or another owner's being written
        with self._complete_lock:
            for gone in self._complete.keys() - seen:
                self._complete.pop(gone, None)
        return count, size

    @contextmanager
    def _owner_lock(self, owner: str) -> Iterator[None]:
        """Hold the lock of ``owner``'s uploads, across the server's worker processes and threads (each
        caller opens the lock file itself, so threads of one process exclude each other too)."""
        fd = os.open(self.locks / f"{_owner_tag(owner)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _begin(self, owner: str, partial: Path) -> int:
        """Create ``partial`` for ``owner`` if it may start another upload; its open descriptor."""
        with self._owner_lock(owner):  # checked and begun at once, so that parallel requests cannot all pass
            held, held_bytes = self.pending(owner)
            if held >= self.max_pending:
                raise self._over_quota("as many")
            if held_bytes >= self.max_pending_bytes:
                raise self._over_quota("more bytes of")
            return os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def _take(self, owner: str, fh: BinaryIO, digest: Any, written: int, chunk: bytes) -> None:
        """Count ``chunk`` against ``owner``'s quota, then hash and write it. Counting and reserving
        are one step under the owner's lock: the partial file is extended to hold the chunk before the
        lock is let go, so every other upload of the owner counts these bytes from then on."""
        with self._owner_lock(owner):
            _held, held_bytes = self.pending(owner)  # this upload's partial counts with ``written`` bytes
            if held_bytes + len(chunk) > self.max_pending_bytes:
                raise self._over_quota("more bytes of")
            if written + len(chunk) > self.max_bytes:
                raise PayloadTooLarge(
                    f"the upload exceeds the server's limit of {self.max_bytes} bytes",
                    hint="split the contribution into smaller ones",
                    limit=self.max_bytes,
                )
            os.ftruncate(fh.fileno(), written + len(chunk))
        _absorb(digest, fh, chunk)

    def _finish(self, owner: str, partial: Path, final_dir: Path, path: Path, meta: dict[str, Any]) -> None:
        """Move ``partial`` into place with its meta.json, seen by the owner's counting as one upload
        throughout (never as none, never as two)."""
        with self._owner_lock(owner):
            final_dir.mkdir(mode=0o700)
            (final_dir / "meta.json").write_text(json.dumps(meta), "utf-8")
            os.replace(partial, path)

    def _over_quota(self, what: str) -> QuotaExceeded:
        return QuotaExceeded(
            f"you hold {what} pending uploads than this server allows ({self.max_pending} uploads, "
            f"{self.max_pending_bytes} bytes)",
            hint="name your uploads in a contribution first, or wait until the unused ones expire "
            f"({int(self.ttl_s // 60)} minutes after upload)",
            max_pending=self.max_pending,
            max_pending_bytes=self.max_pending_bytes,
        )

    async def receive(self, chunks: AsyncIterator[bytes], *, owner: str, filename: str, key: str = "") -> Upload:
        """Stream ``chunks`` into a new upload of principal ``owner`` sent with key ``key`` (its id); nothing
        remains if it fails or is too large. The quota is the principal's, whichever of its keys sends."""
        self.sweep()
        name = Path(filename.replace("\\", "/")).name
        suffix = "".join(Path(name).suffixes[-2:])
        if suffix and not _SUFFIX.match(suffix):
            suffix = ""
        upload_id = f"u_{secrets.token_hex(12)}"
        partial = self.folder / f".{upload_id}.{_owner_tag(owner)}.partial"
        final_dir = self.folder / upload_id
        digest = blake3.blake3()
        size = 0
        # The lock may be held by another worker process a moment: waited for off the event loop.
        fd = await anyio.to_thread.run_sync(self._begin, owner, partial)
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in chunks:
                    if not chunk:
                        continue
                    # Counted, hashed and written off the event loop: other requests go on meanwhile.
                    await anyio.to_thread.run_sync(self._take, owner, fh, digest, size, chunk)
                    size += len(chunk)
            if size == 0:
                raise InputError(f"{filename} is empty", hint="an empty contribution changes nothing")
            path = final_dir / f"data{suffix}"
            meta = {"owner": owner, "key": key, "filename": filename, "size": size, "hash": "b3:" + digest.hexdigest()}
            await anyio.to_thread.run_sync(self._finish, owner, partial, final_dir, path, meta)
        except BaseException:
            # Refused, oversize, or the client went away mid-stream: leave nothing behind.
            partial.unlink(missing_ok=True)
            shutil.rmtree(final_dir, ignore_errors=True)
            raise
        return Upload(upload_id, path, owner, filename, size, meta["hash"], key)

    def claim(self, upload_id: str, owner: str, key: str = "") -> Upload:
        """The upload ``upload_id`` of ``owner`` sent with key ``key``; ``NotFound`` for anyone else's, one
        another key sent (a key narrowed to one dataset must not submit a file a wider key sent, nor the
        reverse), or an unknown one."""
        missing = NotFound(f"no upload {upload_id!r}", hint="upload the file first (POST /api/v1/uploads)")
        if not re.fullmatch(r"u_[0-9a-f]{24}", upload_id):
            raise missing
        folder = self.folder / upload_id
        try:
            meta = json.loads((folder / "meta.json").read_text("utf-8"))
        except (OSError, ValueError):
            raise missing from None
        if meta.get("owner") != owner or meta.get("key", "") != key:
            raise missing
        data = [p for p in folder.iterdir() if p.name.startswith("data")]
        if not data:
            raise missing
        return Upload(upload_id, data[0], owner, meta["filename"], meta["size"], meta["hash"], key)

    def owned_by(self, upload_id: str, owner: str, key: str = "") -> bool:
        """Whether ``upload_id`` is an upload of ``owner`` sent with key ``key``."""
        try:
            self.claim(upload_id, owner, key)
        except NotFound:
            return False
        return True

    def discard(self, upload_id: str) -> None:
        """Delete an upload (once its contribution is stored, or refused)."""
        if re.fullmatch(r"u_[0-9a-f]{24}", upload_id):
            shutil.rmtree(self.folder / upload_id, ignore_errors=True)

    def sweep(self) -> None:
        """Delete uploads nobody used within ``ttl_s``, and partial files of crashed processes."""
        now = time.time()
        for path in self.folder.iterdir():
            try:
                if now - path.stat().st_mtime > self.ttl_s:
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
            except OSError:
                pass


def _owner_tag(owner: str) -> str:
    """The owner's principal id as it may appear in a file name."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", owner)[:64]


def _absorb(digest: Any, fh: BinaryIO, chunk: bytes) -> None:
    digest.update(chunk)
    fh.write(chunk)
