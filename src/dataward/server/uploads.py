"""Uploads: a contribution's file streamed to disk beside the ward, hashed while it arrives.

An upload is written to a private temporary file in the ward's ``server/uploads`` folder, counted
and BLAKE3-hashed chunk by chunk, and only renamed into place once complete and within the size
limit; a refused, oversize or interrupted upload leaves nothing behind. An upload belongs to the
principal that sent it and may be named only with the key that sent it, is consumed by one
contribution, and is deleted after ``upload_ttl_s`` if no contribution used it. A principal may hold
at most ``max_pending`` uploads and ``max_pending_bytes`` bytes of them at once, complete or still
arriving, in every worker process together (the folder is what they share: a partial file's name
carries its owner).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import AsyncIterator
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
        self._starting = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def pending(self, owner: str) -> tuple[int, int]:
        """How many uploads ``owner`` holds here (complete or arriving) and how many bytes they take."""
        count = size = 0
        tag = _owner_tag(owner)
        for path in self.folder.iterdir():
            try:
                if path.is_dir():
                    meta = json.loads((path / "meta.json").read_text("utf-8"))
                    if meta.get("owner") == owner:
                        count, size = count + 1, size + int(meta.get("size", 0))
                elif path.name.endswith(f".{tag}.partial"):
                    count, size = count + 1, size + path.stat().st_size
            except (OSError, ValueError):
                continue  # gone meanwhile, or being written
        return count, size

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
        with self._starting:  # checked and begun at once, so that parallel requests cannot all pass
            held, held_bytes = self.pending(owner)
            if held >= self.max_pending:
                raise self._over_quota("as many")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if held_bytes + size > self.max_pending_bytes:
                        raise self._over_quota("more bytes of")
                    if size > self.max_bytes:
                        raise PayloadTooLarge(
                            f"the upload exceeds the server's limit of {self.max_bytes} bytes",
                            hint="split the contribution into smaller ones",
                            limit=self.max_bytes,
                        )
                    # Hashing and writing off the event loop: other requests go on meanwhile.
                    await anyio.to_thread.run_sync(_absorb, digest, fh, chunk)
            if size == 0:
                raise InputError(f"{filename} is empty", hint="an empty contribution changes nothing")
            final_dir.mkdir(mode=0o700)
            path = final_dir / f"data{suffix}"
            os.replace(partial, path)
            meta = {"owner": owner, "key": key, "filename": filename, "size": size, "hash": "b3:" + digest.hexdigest()}
            (final_dir / "meta.json").write_text(json.dumps(meta), "utf-8")
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
