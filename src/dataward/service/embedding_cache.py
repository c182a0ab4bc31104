"""The ward's store of sentence embeddings (``gates.embedding_store``): one file per encoded text list
under ``cache/embeddings/`` in the ward folder, so the next process that gates a contribution against
the same training version does not embed its trusted sample again.

A cached vector that someone altered would move what the language-model detectors see, so every file
carries a BLAKE3 MAC under a key derived from the ward's signing key (as the gate seed's key is): a file
written without that key, or changed, or put under another list's name, is ignored and the texts are
embedded again. The cache is best effort: a folder that cannot be written keeps nothing, and anything
unreadable is a miss. It holds at most ``MAX_ENTRIES`` lists; the least recently used go first.
Deleting the folder is always safe."""

from __future__ import annotations

import contextlib
import hmac
import io
import os
import tempfile
from pathlib import Path

import blake3
import numpy as np

from dataward.ledger.signing import WardSigner

CACHE_CONTEXT = "dataward 2026-12-05 embedding cache MAC v1"
"""The BLAKE3 key-derivation context of the cache's MAC key: names this one use of the signing key."""
FOLDER = Path("cache") / "embeddings"
"""Where the files live, inside the ward folder."""
MAX_ENTRIES = 64
"""Text lists kept at most (a 1,000-record training version is two lists of about 1.5 MB each)."""
_TAG = 32


class WardEmbeddingCache:
    """An ``EmbeddingStore`` in a ward folder, authenticated with the ward's key."""

    def __init__(
        self,
        ward_folder: Path,
        signer: WardSigner,
        *,
        folder: Path = FOLDER,
        context: str = CACHE_CONTEXT,
        max_entries: int | None = None,
    ) -> None:
        """``folder`` (inside the ward folder), the MAC key's derivation ``context`` and ``max_entries``
        make another cache of arrays of the same kind (``service.near_copies`` keeps digests so);
        ``max_entries`` defaults to ``MAX_ENTRIES`` (read when pruning)."""
        self.folder = Path(ward_folder) / folder
        self._key = signer.derive_key(context)
        self._max_entries = max_entries

    def _tag(self, key: str, payload: bytes) -> bytes:
        return blake3.blake3(key.encode() + b"\0" + payload, key=self._key).digest()

    def _path(self, key: str) -> Path | None:
        # Keys are BLAKE3 hex digests; anything else never names a file.
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            return None
        return self.folder / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The vectors kept under ``key``, when the file is there and its MAC holds; else None."""
        path = self._path(key)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        payload, tag = data[:-_TAG], data[-_TAG:]
        if len(data) <= _TAG or not hmac.compare_digest(tag, self._tag(key, payload)):
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # read now: the last to be pruned
        try:
            return np.load(io.BytesIO(payload), allow_pickle=False)
        except ValueError:
            return None

    def put(self, key: str, vectors: np.ndarray) -> None:
        """Keep ``vectors`` under ``key``: written to a temporary file, then moved into place whole."""
        path = self._path(key)
        if path is None:
            return
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(vectors), allow_pickle=False)
        payload = buffer.getvalue()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".npy")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(payload + self._tag(key, payload))
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._prune()
        except OSError:
            return  # a cache that cannot be written keeps nothing; the gate is unaffected

    def _prune(self) -> None:
        files = [p for p in self.folder.glob("*.npy") if not p.name.startswith(".")]
        limit = MAX_ENTRIES if self._max_entries is None else self._max_entries
        if len(files) <= limit:
            return
        by_age = sorted(files, key=lambda p: p.stat().st_mtime)
        for old in by_age[: len(files) - limit]:
            with contextlib.suppress(OSError):
                old.unlink()
