"""A real ``dataward serve`` process against clients that send requests and never read the answers.

The attack: with no key at all, one fewer connection than ``--limit-concurrency``, each with a tiny
receive buffer, pipelining requests for a large public answer (the OpenAPI document) or many small
ones (``/healthz``), and never reading. Once the kernel's buffers and the transport's were full, each
connection's next request waited in uvicorn's ``send`` forever (uvicorn has no write timeout); such a
connection was neither waiting for a request head nor receiving a body, so nothing could be evicted
and every new connection, a genuine admin's among them, was refused for as long as the attacker
liked. Here with a small connection cap and a short ``--write-timeout``, so that the tests take
seconds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.server.test_slow_clients import Process, serve, whoami_status

LIMIT = 8
"""``--limit-concurrency``: the server holds LIMIT - 1 connections."""
WRITE_TIMEOUT = 3.0
"""``--write-timeout``: seconds an answer may make no write progress."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    options = ["--header-timeout", "5", "--limit-concurrency", str(LIMIT), "--write-timeout", str(WRITE_TIMEOUT)]
    yield from serve(tmp_path_factory.mktemp("slow-readers"), options)


def _non_reader(server: Process, path: str, repeats: int, within: float = 2.0) -> socket.socket:
    """A connection with a tiny receive buffer that pipelines ``repeats`` GETs of ``path`` (as many as it
    can send ``within`` seconds) and never reads."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(("127.0.0.1", server.port))
    s.setblocking(False)
    data = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * repeats
    started = time.monotonic()
    while data and time.monotonic() - started < within:
        try:
            data = data[s.send(data) :]
        except BlockingIOError:
            time.sleep(0.05)
    return s


def _attack(server: Process) -> list[socket.socket]:
    """As many never-reading connections as the server holds: all but one pipelining more OpenAPI
    documents (160 KB each) than the kernel buffers on loopback (4 MiB), the last ``/healthz``."""
    attackers = []
    for _ in range(LIMIT - 2):
        attackers.append(_non_reader(server, "/api/v1/openapi.json", 60, within=0.5))
        time.sleep(0.5)  # one at a time (all at once, uvicorn's task limit would answer some 503 and close)
    attackers.append(_non_reader(server, "/healthz", 30000, within=3))
    time.sleep(0.5)
    return attackers


def _closed(s: socket.socket, within: float = 1.0) -> bool:
    """Whether the server has closed ``s``: reading what is buffered ends in a reset or an end of file
    (an open connection keeps yielding its pipelined answers past a few megabytes)."""
    s.setblocking(True)
    s.settimeout(within)
    received = 0
    try:
        while chunk := s.recv(65536):
            received += len(chunk)
            if received > 4 << 20:
                return False
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_clients_that_never_read_do_not_lock_out_a_genuine_client(server: Process) -> None:
    attackers = _attack(server)
    try:
        started = time.monotonic()
        statuses = [whoami_status(server) for _ in range(3)]
        assert statuses == [200, 200, 200], statuses
        assert time.monotonic() - started < WRITE_TIMEOUT, "served only once the write timeout freed a connection"
    finally:
        for s in attackers:
            s.close()
    assert whoami_status(server) == 200


def test_an_answer_nobody_reads_closes_its_connection_after_the_write_timeout(server: Process) -> None:
    s = _non_reader(server, "/api/v1/openapi.json", 60, within=0.5)
    try:
        time.sleep(WRITE_TIMEOUT + 2)
        assert _closed(s), "a connection whose client never reads was kept past --write-timeout"
    finally:
        s.close()
    assert whoami_status(server) == 200


def test_a_slow_but_steady_reader_is_served_whole(server: Process) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        whole = http.get("/api/v1/openapi.json").content
    assert len(whole) > 64 << 10, len(whole)  # larger than the transport's buffer: writing pauses
    repeats = 2
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", server.port))
    s.settimeout(5)
    try:
        s.sendall(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * repeats)
        received = b""
        started = time.monotonic()
        # About 48 KiB a second through a small receive buffer: the answers are several times what
        # the transport buffers and take longer than the write timeout, but the writes always progress.
        while received.count(whole) < repeats and time.monotonic() - started < 20:
            chunk = s.recv(4096)
            assert chunk, f"closed after {len(received)} bytes and {time.monotonic() - started:.1f} s"
            received += chunk
            time.sleep(len(chunk) / (48 << 10))
    finally:
        s.close()
    assert received.count(whole) == repeats
    assert time.monotonic() - started > WRITE_TIMEOUT
    assert whoami_status(server) == 200
