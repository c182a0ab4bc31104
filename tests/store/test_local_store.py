"""Durability and tamper evidence of the local-folder store."""

from __future__ import annotations

import os
import stat
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from dataward.domain.errors import IntegrityViolation
from dataward.domain.hashing import content_hash
from dataward.store import LocalObjectStore, ObjectStore, ProblemKind, local
from dataward.store.base import CHUNK_SIZE


def _tamper(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)
    path.write_bytes(data)


def test_objects_are_sharded_and_read_only(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    digest = store.put(b"payload")
    hex_part = digest.removeprefix("b3:")
    path = tmp_path / "objects" / hex_part[:2] / hex_part[2:]
    assert store.path_of(digest) == path
    assert path.read_bytes() == b"payload"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_tampered_object_is_refused_on_read(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    digest = store.put(b"label=cat")
    _tamper(store.path_of(digest), b"label=dog")
    with pytest.raises(IntegrityViolation) as info:
        store.get(digest)
    assert digest in str(info.value)
    assert info.value.details["digest"] == digest
    assert not store.verify(digest)
    problems = list(store.verify_all())
    assert [(p.digest, p.kind) for p in problems] == [(digest, ProblemKind.CORRUPTED)]


def test_putting_the_content_again_repairs_a_truncated_object(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    digest = store.put(b"0123456789")
    _tamper(store.path_of(digest), b"01234")
    store.put(b"0123456789")
    assert store.get(digest) == b"0123456789"


def test_crash_before_rename_leaves_no_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalObjectStore(tmp_path)

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        store.put(b"half written")
    digest = content_hash(b"half written")
    assert not store.exists(digest)
    assert list(store.iter_digests()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_stray_temp_files_are_ignored(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    digest = store.put(b"real")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    (tmp_path / "tmp" / "obj-abandoned.tmp").write_bytes(b"partial")
    shard = store.path_of(digest).parent
    (shard / "not-an-object.tmp").write_bytes(b"junk")
    (tmp_path / "objects" / "zz").mkdir()
    assert list(store.iter_digests()) == [digest]
    assert list(store.verify_all()) == []


def test_concurrent_puts_from_threads(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    data = os.urandom(200_000)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(store.put(data))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {content_hash(data)}
    assert list(store.iter_digests()) == [content_hash(data)]
    assert store.get(content_hash(data)) == data
    assert list((tmp_path / "tmp").iterdir()) == []


def _put_in_child(root: str, data: bytes) -> str:
    return LocalObjectStore(root).put(data)


def test_concurrent_puts_from_processes(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    with ProcessPoolExecutor(max_workers=2) as pool:
        digests = list(pool.map(_put_in_child, [str(tmp_path)] * 4, [data] * 4))
    assert set(digests) == {content_hash(data)}
    store = LocalObjectStore(tmp_path)
    assert list(store.iter_digests()) == [content_hash(data)]
    assert store.verify(content_hash(data))


def test_verify_all_in_batches_on_threads_reports_what_one_object_at_a_time_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalObjectStore(tmp_path)
    monkeypatch.setattr(local, "_VERIFY_BATCH", 2)
    monkeypatch.setattr(local, "_VERIFY_WINDOW", 3)
    digests = sorted(store.put(f"object {i}".encode()) for i in range(9))
    big = store.put(bytes(range(256)) * (3 * CHUNK_SIZE // 256 + 1))  # hashed in several reads
    _tamper(store.path_of(digests[1]), b"object 1, altered")
    _tamper(store.path_of(digests[6]), b"")
    _tamper(store.path_of(big), store.path_of(big).read_bytes()[:-1])
    absent = content_hash(b"never stored")
    problems = list(store.verify_all([*digests, big, absent]))
    # The same problems, in the same order, as the store contract's check of one object at a time.
    assert problems == list(ObjectStore.verify_all(store, [*digests, big, absent]))
    assert sorted((p.digest, p.kind) for p in problems) == sorted(
        [
            (digests[1], ProblemKind.CORRUPTED),
            (digests[6], ProblemKind.CORRUPTED),
            (big, ProblemKind.CORRUPTED),
            (absent, ProblemKind.MISSING),
        ]
    )
    assert store.verify(digests[0]) and not store.verify(digests[1]) and not store.verify(absent)
