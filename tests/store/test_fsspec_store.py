"""fsspec-specific behaviour: tampering and interrupted writes on a non-local filesystem."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from dataward.domain.errors import IntegrityViolation
from dataward.domain.hashing import content_hash
from dataward.store import FsspecObjectStore, ProblemKind


@pytest.fixture
def memory_store() -> Iterator[FsspecObjectStore]:
    root = f"memory://dataward-test-{uuid.uuid4().hex}"
    store = FsspecObjectStore(root)
    yield store
    with contextlib.suppress(FileNotFoundError):
        store.fs.rm(store.fs._strip_protocol(root), recursive=True)


def test_tampered_memory_object_is_refused(memory_store: FsspecObjectStore) -> None:
    digest = memory_store.put(b"original")
    hex_part = digest.removeprefix("b3:")
    root = memory_store.fs._strip_protocol(memory_store.url)
    with memory_store.fs.open(f"{root}/objects/{hex_part[:2]}/{hex_part[2:]}", "wb") as out:
        out.write(b"replaced")
    with pytest.raises(IntegrityViolation, match=digest):
        memory_store.get(digest)
    assert [p.kind for p in memory_store.verify_all()] == [ProblemKind.CORRUPTED]


def test_failed_move_leaves_no_object(memory_store: FsspecObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("connection lost")

    monkeypatch.setattr(memory_store.fs, "mv", crash)
    with pytest.raises(OSError, match="connection lost"):
        memory_store.put(b"interrupted")
    assert not memory_store.exists(content_hash(b"interrupted"))
    assert list(memory_store.iter_digests()) == []
    root = memory_store.fs._strip_protocol(memory_store.url)
    assert memory_store.fs.ls(f"{root}/tmp") == []
