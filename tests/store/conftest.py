"""An S3-compatible server on loopback (moto's standalone server), for the stores and wards on S3."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from benchmarks.s3_server import S3Unavailable, make_bucket, s3_environment, s3_server

BUCKET = "dataward-tests"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The endpoint of a bucket-holding S3 server started for this test session (skips without one)."""
    try:
        with s3_server() as endpoint:
            make_bucket(endpoint, BUCKET)
            yield endpoint
    except S3Unavailable as exc:
        pytest.skip(f"no S3-compatible server: {exc}")


@pytest.fixture
def s3_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh ``s3://`` prefix, with the environment pointing s3fs at the loopback server.

    fsspec keeps one ``S3FileSystem`` per set of arguments for the process: one made by an earlier test of
    the same worker (another server, no credentials in its environment) would be handed back here and
    never read this environment. The cache is emptied before and after."""
    import s3fs

    for key, value in s3_environment(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield f"s3://{BUCKET}/{uuid.uuid4().hex}"
    s3fs.S3FileSystem.clear_instance_cache()
