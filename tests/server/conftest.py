"""A real ``dataward serve`` for the tests: uvicorn on a free loopback port, in a thread of the test
process, serving a ward made for the module (one server per module keeps the tests fast)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from dataward.server import ServerSettings, create_app


@dataclass
class Served:
    """A running server: its URL, the ward folder behind it and its first admin's key."""

    url: str
    ward: Path
    admin_key: str
    settings: ServerSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(ward: Path, **limits: int) -> tuple[uvicorn.Server, threading.Thread, ServerSettings, str]:
    """Start uvicorn serving ``ward`` and wait until it accepts connections."""
    settings = ServerSettings(ward=ward, **limits)
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return server, thread, settings, f"http://127.0.0.1:{port}"


def serve_ward(root: Path, *, catalog_url: str | None = None, **limits: int) -> Iterator[Served]:
    """A new ward under ``root`` (its catalog at ``catalog_url``, default SQLite), served until the
    generator is closed."""
    from dataward.service.ward import Ward

    ward = root / "served-ward"
    opened, key = Ward.init(ward, catalog_url=catalog_url)
    opened.db.dispose()
    server, thread, settings, url = start_server(ward, **limits)
    try:
        yield Served(url, ward, key, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def served_postgresql(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A served ward whose catalog is a fresh PostgreSQL database (skipped without PostgreSQL)."""
    from tests.conftest import _create_database

    base = request.getfixturevalue("postgres_server")
    yield from serve_ward(tmp_path_factory.mktemp("served-pg"), catalog_url=_create_database(base))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One served ward per test module, with small body limits so that limits are cheap to test."""
    yield from serve_ward(
        tmp_path_factory.mktemp("served"),
        max_upload_bytes=256 << 10,
        max_json_bytes=64 << 10,
        auth_failures_per_key=5,
        auth_failures_per_address=1000,
    )
