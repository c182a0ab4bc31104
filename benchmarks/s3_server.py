"""An S3-compatible server on loopback for the tests and the benchmarks: moto's standalone server.

moto's server speaks the S3 REST protocol over HTTP, so the ward reaches it exactly as it reaches a
real bucket: through ``s3fs`` (fsspec), with the endpoint and credentials from the environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), as in production.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "dataward-test",
    "AWS_SECRET_ACCESS_KEY": "dataward-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""Throwaway credentials: the loopback server accepts any, a real bucket would refuse these."""


class S3Unavailable(RuntimeError):
    """The S3 server could not be started here (a package is missing, or it did not come up)."""


@contextmanager
def s3_server() -> Iterator[str]:
    """Start moto's S3 server on a free loopback port; yields its endpoint URL, stops it on exit.

    Raises ``S3Unavailable`` naming the reason when ``moto[server]`` or ``s3fs`` is not installed or
    the server does not start.
    """
    try:
        import s3fs  # the ward's path to the server; checked before starting anything
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise S3Unavailable(f"{exc.name} is not installed (pip install 's3fs' 'moto[server]')") from None
    # The server logs every request through werkzeug; only its errors are worth seeing.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
        host, port = server.get_host_and_port()
    except Exception as exc:  # any failure to bind or start means: no server here
        raise S3Unavailable(f"moto's S3 server did not start: {exc}") from None
    # s3fs caches one filesystem per set of constructor arguments, and the endpoint comes from the
    # environment, not the arguments: a filesystem made for an earlier server would still point at its
    # closed port. Each server starts and ends with an empty cache.
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()


def s3_environment(endpoint: str) -> dict[str, str]:
    """The environment that points s3fs (and boto) at ``endpoint`` with the throwaway credentials."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


def make_bucket(endpoint: str, name: str) -> None:
    """Create bucket ``name`` on the server at ``endpoint``."""
    import s3fs

    env = s3_environment(endpoint)
    fs = s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": endpoint},
        skip_instance_cache=True,
    )
    fs.mkdir(name)


def apply_environment(endpoint: str) -> dict[str, str | None]:
    """Point this process at ``endpoint``; returns the previous values for ``restore_environment``."""
    env = s3_environment(endpoint)
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return previous


def restore_environment(previous: dict[str, str | None]) -> None:
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
