"""A real ``dataward serve`` process against slow and idle clients, and forwarding headers it was not
told to trust. The process runs with a small open-file limit (256) so that exhausting it takes a few
hundred sockets, and with short timeouts so that the tests take seconds."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dataward.service.ward import Ward
from tests.server.conftest import free_port

FILES = 256


@dataclass
class Process:
    url: str
    port: int
    key: str
    log: Path


def serve(root: Path, options: list[str], *, files: int | None = None) -> Iterator[Process]:
    """Run ``dataward serve`` on a new ward under ``root`` with ``options`` (its log in
    ``root/server.log``; ``files``: its open-file limit) until the generator is closed."""
    opened, key = Ward.init(root / "ward")
    opened.db.dispose()
    port = free_port()
    log = root / "server.log"
    command = [sys.executable, "-m", "dataward", "serve", "--ward", str(root / "ward"), "--port", str(port)]
    command += options
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def limit_files() -> None:
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=limit_files)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + log.read_text())
            time.sleep(0.1)
        yield Process(url, port, key, log)
    finally:
        process.terminate()
        process.wait(timeout=20)


def whoami_status(server: Process) -> int:
    """The status of an admin's ``whoami`` on a new connection, or 0 when it could not be served."""
    try:
        answer = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {server.key}"}, timeout=3)
    except httpx.TransportError:
        return 0
    return answer.status_code


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    options = ["--header-timeout", "1", "--body-timeout", "1", "--limit-concurrency", "64"]
    yield from serve(tmp_path_factory.mktemp("slow"), options, files=FILES)


def _half_sent(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\n")  # the head never ends
    return s


def _whoami(server: Process) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {server.key}"}, timeout=5)


def test_many_slow_clients_do_not_starve_a_genuine_request(server: Process) -> None:
    held: list[socket.socket] = []
    try:
        for _ in range(FILES + 150):  # more sockets than the server may open files
            try:
                held.append(_half_sent(server.port))
            except OSError:
                break
        started = time.monotonic()
        answer = _whoami(server)
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - started < 5
    finally:
        for s in held:
            s.close()
    time.sleep(0.5)
    flood = server.log.read_text(errors="replace").count("Too many open files")
    assert flood <= 3, flood


def test_a_trickled_request_head_is_cut_off(server: Process) -> None:
    s = _half_sent(server.port)
    started = time.monotonic()
    closed = False
    try:
        while time.monotonic() - started < 6:
            try:
                s.sendall(b"X-Slow: 1\r\n")  # one header line at a time, never the end
                s.settimeout(0.3)
                if s.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
    finally:
        s.close()
    assert closed, "a client trickling its headers kept its connection"
    assert time.monotonic() - started < 4
    assert _whoami(server).status_code == 200


def test_a_stalled_request_body_ends_with_408(server: Process) -> None:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        s.sendall(
            b"POST /api/v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + server.key.encode() + b"\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ttl'
        )
        answer = s.recv(4096)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_forwarding_headers_are_ignored_unless_a_proxy_is_named(server: Process) -> None:
    codes = set()
    with httpx.Client(base_url=server.url, timeout=5) as http:
        for n in range(40):
            bogus = {"Authorization": f"Bearer dw_{'a' * 8}_{'b' * 52}", "X-Forwarded-For": f"10.0.{n}.1"}
            codes.add(http.get("/api/v1/whoami", headers=bogus).status_code)
    # The per-address limit (30 failures a minute) counts this client, whatever it claims to forward.
    assert 429 in codes, codes


def test_a_long_request_and_a_kept_alive_connection_are_not_cut(server: Process) -> None:
    def slow_body() -> Iterator[bytes]:  # 2.5 s in all, never 1 s without a byte
        for _ in range(5):
            time.sleep(0.5)
            yield b"a,b\n" * 100

    headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/octet-stream"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        upload = http.post("/api/v1/uploads", params={"filename": "slow.csv"}, headers=headers, content=slow_body())
        assert upload.status_code == 201, upload.text
        for _ in range(3):  # the same connection, kept alive between requests
            assert http.get("/api/v1/whoami", headers=headers).status_code == 200
            time.sleep(0.5)


def test_accept_errors_for_lack_of_files_are_logged_once_in_a_while(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import errno

    from dataward.server.connections import AcceptErrorsCondensed

    handler = AcceptErrorsCondensed(every_s=60)
    loop = asyncio.new_event_loop()
    passed_on: list[dict[str, object]] = []
    loop.default_exception_handler = passed_on.append  # type: ignore[method-assign]
    try:
        with caplog.at_level("WARNING", logger="dataward.server"):
            for _ in range(5000):
                error = OSError(errno.EMFILE, "Too many open files")
                handler(loop, {"message": "socket.accept() out of system resource", "exception": error})
            handler(loop, {"message": "something else", "exception": ValueError("x")})
    finally:
        loop.close()
    assert len([r for r in caplog.records if "cannot accept" in r.getMessage()]) == 1
    assert handler.suppressed == 4999
    assert len(passed_on) == 1


def test_serve_trusts_forwarding_headers_only_from_a_named_proxy_and_caps_connections_below_files() -> None:
    from dataward.cli.serve_commands import connection_options, open_files_limit

    common = {"limit_concurrency": 10**6, "timeout_keep_alive": 5, "backlog": 511, "max_header_bytes": 16 << 10}
    default = connection_options(forwarded_allow_ips=None, **common)
    assert default["proxy_headers"] is False
    named = connection_options(forwarded_allow_ips=" 10.0.0.5 ,", **common)
    assert named["proxy_headers"] is True and named["forwarded_allow_ips"] == "10.0.0.5"
    files = open_files_limit()
    assert files is None or default["limit_concurrency"] < files
    assert default["http"].endswith(":GuardedH11Protocol")
