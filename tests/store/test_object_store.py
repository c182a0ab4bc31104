"""Behaviour every object store must have, run on the local folder and on fsspec backends."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataward.domain.errors import InputError, IntegrityViolation
from dataward.domain.hashing import content_hash
from dataward.store import FsspecObjectStore, LocalObjectStore, ObjectStore, ProblemKind, open_store


@pytest.fixture(params=["local", "fsspec-file", "fsspec-memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "store")
    elif request.param == "s3":
        # A real S3 protocol exchange through s3fs, against the loopback server of tests/store/conftest.py.
        yield FsspecObjectStore(request.getfixturevalue("s3_url"))
    elif request.param == "fsspec-file":
        yield FsspecObjectStore((tmp_path / "store").as_uri())
    else:
        root = f"memory://dataward-test-{uuid.uuid4().hex}"
        store = FsspecObjectStore(root)
        yield store
        with contextlib.suppress(FileNotFoundError):
            store.fs.rm(store.fs._strip_protocol(root), recursive=True)


def test_round_trip_returns_the_content_hash(store: ObjectStore) -> None:
    data = b"some training data\n" * 100
    digest = store.put(data)
    assert digest == content_hash(data)
    assert store.get(digest) == data
    assert store.exists(digest)
    assert digest in store
    assert store.size(digest) == len(data)
    assert store.verify(digest)


def test_empty_object_is_an_object(store: ObjectStore) -> None:
    digest = store.put(b"")
    assert store.get(digest) == b""
    assert list(store.iter_digests()) == [digest]


def test_same_content_is_stored_once(store: ObjectStore) -> None:
    first = store.put(b"identical")
    second = store.put(b"identical")
    other = store.put(b"different")
    assert first == second
    assert sorted(store.iter_digests()) == sorted([first, other])


def test_put_file_streams_and_matches_put(store: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # several read chunks
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    digest = store.put_file(src)
    assert digest == content_hash(data)
    assert store.put(data) == digest
    assert list(store.iter_digests()) == [digest]
    assert store.get(digest) == data


def test_a_missing_object_is_an_integrity_violation_named_by_its_digest(store: ObjectStore) -> None:
    """The ward reads only objects it stored: one absent was lost or deleted behind its back, which is
    reported as verify reports it (missing), never as "no such thing", and without the store's path in
    the message a server would send (the path is the error's local detail only)."""
    absent = content_hash(b"never stored")
    assert not store.exists(absent)
    assert not store.verify(absent)
    for read in (store.get, store.size):
        with pytest.raises(IntegrityViolation, match=f"object {absent} is missing from the object store") as info:
            read(absent)
        assert info.value.exit_code == 7 and info.value.details == {"digest": absent, "problem": "missing"}
        assert "dataward verify" in (info.value.hint or "")
        assert store.url not in str(info.value) and absent[5:] in (info.value.local_detail or "")


@pytest.mark.parametrize("bad", ["", "b3:xyz", "sha256:" + "0" * 64, "b3:" + "A" * 64, "b3:../../etc/passwd"])
def test_malformed_digest_is_refused(store: ObjectStore, bad: str) -> None:
    with pytest.raises(InputError, match="not an object digest"):
        store.get(bad)
    assert bad not in store


def test_verify_all_reports_missing_expected_objects(store: ObjectStore) -> None:
    present = store.put(b"here")
    absent = content_hash(b"gone")
    problems = list(store.verify_all(expected=[present, absent]))
    assert [(p.digest, p.kind) for p in problems] == [(absent, ProblemKind.MISSING)]
    assert problems[0].to_dict()["kind"] == "missing"


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "a"), LocalObjectStore)
    assert isinstance(open_store(str(tmp_path / "b")), LocalObjectStore)
    assert isinstance(open_store((tmp_path / "c").as_uri()), FsspecObjectStore)
    memory = open_store(f"memory://dataward-test-{uuid.uuid4().hex}")
    assert isinstance(memory, FsspecObjectStore)
    assert memory.get(memory.put(b"x")) == b"x"


def test_file_url_and_plain_path_share_one_layout(tmp_path: Path) -> None:
    digest = open_store(tmp_path).put(b"shared")
    assert open_store(tmp_path.as_uri()).get(digest) == b"shared"
    assert LocalObjectStore(tmp_path).get(digest) == b"shared"
