"""A real ``dataward serve`` process against clients that send a whole request head, then trickle its
body: a byte now and then, never idle long enough for ``--body-timeout``.

The attack: with no key at all, a few connections (one fewer than ``--limit-concurrency``) posting the
console's sign-in form, or an API request without a key, one byte per socket every little while,
locked every other client out (each held its connection, which was no longer waiting for a head and
so never evicted) for as long as they trickled, and every one of them the server finally dropped left
a 50-line ``ClientDisconnect`` traceback in its log. Here with a small connection cap and short
timeouts (``--body-timeout 1``, ``--body-deadline 2``), so that the tests take seconds.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.server.test_slow_clients import Process, serve, whoami_status

LIMIT = 8
"""``--limit-concurrency``: the server holds LIMIT - 1 connections."""
DEADLINE = 2.0
"""``--body-deadline``: seconds a body other than an upload has to arrive whole."""
RATE = 1000
"""``--min-upload-rate``: bytes per second an upload must average after its first DEADLINE seconds."""
SIGN_IN_COOKIE = "__Host-dataward-signin=x"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    options = ["--header-timeout", "1", "--body-timeout", "1", "--limit-concurrency", str(LIMIT)]
    options += ["--body-deadline", str(DEADLINE), "--min-upload-rate", str(RATE)]
    yield from serve(tmp_path_factory.mktemp("slow-bodies"), options)


def _head(server: Process, target: str, length: int, headers: str = "") -> socket.socket:
    """A connection that has sent a whole request head announcing a body of ``length`` bytes."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(f"POST {target} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {length}\r\n\r\n".encode())
    return s


def _sign_in(server: Process) -> socket.socket:
    return _head(
        server,
        "/console/sign-in",
        100_000,
        f"Cookie: {SIGN_IN_COOKIE}\r\nContent-Type: application/x-www-form-urlencoded\r\n",
    )


def _keyless(server: Process) -> socket.socket:
    return _head(server, "/api/v1/principals", 100_000, "Content-Type: application/json\r\n")


def _answer(s: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``within`` seconds pass)."""
    s.settimeout(within)
    received = b""
    try:
        while chunk := s.recv(65536):
            received += chunk
    except OSError:  # the time is up, or the connection was reset
        pass
    return received


def _trickled(s: socket.socket, piece: bytes, *, every: float, limit: float) -> bytes:
    """Send ``piece`` every ``every`` seconds until the server answers (or ``limit`` seconds pass), then
    read the answer until the server closes the connection (or 2 s pass): its body may arrive in a
    later packet than its head."""
    started = time.monotonic()
    answer = b""
    s.settimeout(every)
    while time.monotonic() - started < limit and not answer:
        try:
            s.send(piece)
            answer = s.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
    return answer + _answer(s, within=2) if answer else answer


def _closed(s: socket.socket) -> bool:
    """Whether the server has closed ``s`` (what it answered before is read and dropped)."""
    s.settimeout(0.05)
    try:
        while chunk := s.recv(65536):
            del chunk
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


def _log(server: Process) -> str:
    return server.log.read_text(errors="replace")


def _steady_upload(server: Process, seconds: float, rate: int, out: dict[str, object]) -> None:
    """Upload ``rate`` bytes per second for ``seconds`` (a chunk every quarter second), noting the status."""

    def body() -> Iterator[bytes]:
        for _ in range(int(seconds * 4)):
            time.sleep(0.25)
            yield b"a,b\n" * (rate // 16)

    headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/octet-stream"}
    try:
        url = f"{server.url}/api/v1/uploads"
        answer = httpx.post(url, params={"filename": "steady.csv"}, headers=headers, content=body(), timeout=30)
        out["status"], out["text"] = answer.status_code, answer.text
    except httpx.TransportError as exc:
        out["status"], out["text"] = 0, repr(exc)


def test_trickled_bodies_do_not_lock_out_a_genuine_client(server: Process) -> None:
    before = len(_log(server))
    upload: dict[str, object] = {}
    uploading = threading.Thread(target=_steady_upload, args=(server, 2.5 * DEADLINE, 2 * RATE, upload))
    uploading.start()
    time.sleep(0.3)
    # With the upload, as many connections as the server holds trickling sign-in forms (the only body
    # the server reads without a key), and as many keyless API requests.
    attackers = [_sign_in(server) for _ in range(LIMIT - 2)]
    started = time.monotonic()
    statuses = [whoami_status(server)]  # the server is full: a trickling sign-in makes room for it
    assert time.monotonic() - started < DEADLINE, "served only once the body deadline freed a connection"
    attackers += [_keyless(server) for _ in range(LIMIT - 2)]
    try:
        while time.monotonic() - started < 2.5 * DEADLINE:
            for s in attackers:
                with contextlib.suppress(OSError):
                    s.send(b"k")  # one byte each, well within the idle timeout
            statuses.append(whoami_status(server))
            time.sleep(0.3)
        uploading.join(timeout=30)
        closed = [_closed(s) for s in attackers]
    finally:
        for s in attackers:
            s.close()
    assert statuses and all(status == 200 for status in statuses), statuses
    assert upload.get("status") == 201, upload  # a steady upload outlasting the deadline is served
    assert all(closed), f"{closed.count(False)} trickling connection(s) still held past the body deadline"
    time.sleep(0.5)
    added = _log(server)[before:]
    assert "Traceback" not in added and "ClientDisconnect" not in added, added[-3000:]


def test_a_request_without_a_genuine_key_is_refused_before_its_body(server: Process) -> None:
    complete = httpx.post(f"{server.url}/api/v1/principals", json={"name": "x"}, timeout=5)
    assert complete.status_code == 401
    made_up = "dw_zzzzzzzz_" + "q" * 52
    for headers in ("", "Authorization: Bearer nonsense\r\n", f"Authorization: Bearer {made_up}\r\n"):
        s = _head(server, "/api/v1/principals", 100_000, headers + "Content-Type: application/json\r\n")
        started = time.monotonic()
        try:
            answer = _answer(s, within=3)  # the server closes the connection once it has answered
        finally:
            s.close()
        assert time.monotonic() - started < 0.9, "answered only when the body timed out"  # --body-timeout 1
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 401"), answer[:300]
        assert b'www-authenticate: Bearer realm="dataward"' in head.lower().replace(b"bearer", b"Bearer")
        assert b"connection: close" in head.lower()
        document = json.loads(body)
        assert set(document) == set(complete.json()) and document["error"] == "unauthenticated", document


def test_a_trickled_body_ends_with_408_at_its_deadline(server: Process) -> None:
    s = _head(server, "/api/v1/keys", 100, f"Authorization: Bearer {server.key}\r\nContent-Type: application/json\r\n")
    started = time.monotonic()
    try:
        answer = _trickled(s, b" ", every=0.3, limit=4 * DEADLINE)  # steady, but 100 bytes would take 30 s
        closed = _closed(s)
    finally:
        s.close()
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"did not arrive whole within 2 seconds" in answer, answer
    assert DEADLINE - 0.2 < took < DEADLINE + 1.5, took
    assert closed, "the connection stayed open after the 408"


def test_an_upload_below_the_minimum_rate_ends_with_408(server: Process) -> None:
    headers = f"Authorization: Bearer {server.key}\r\nContent-Type: application/octet-stream\r\n"
    s = _head(server, "/api/v1/uploads?filename=slow.csv", 100_000, headers)
    started = time.monotonic()
    try:
        # 4 * RATE / 64 bytes every quarter second: a quarter of the rate.
        answer = _trickled(s, b"a,b\n" * (RATE // 64), every=0.25, limit=4 * DEADLINE)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"upload arrived too slowly" in answer, answer
    assert time.monotonic() - started < 3 * DEADLINE


def test_a_steady_upload_and_a_kept_alive_connection_are_served(server: Process) -> None:
    upload: dict[str, object] = {}
    _steady_upload(server, 2 * DEADLINE, 2 * RATE, upload)
    assert upload.get("status") == 201, upload
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.url, timeout=5) as http:
        for _ in range(3):  # the same connection, kept alive between requests
            assert http.get("/api/v1/whoami", headers=headers).status_code == 200
            assert http.post("/api/v1/keys", headers=headers, json={}).status_code in (201, 422)
            time.sleep(0.4)


def test_a_client_leaving_mid_body_leaves_no_traceback(server: Process) -> None:
    before = len(_log(server))
    for _ in range(5):
        s = _sign_in(server)
        s.sendall(b"key=dw_")
        time.sleep(0.1)
        s.close()
    s = _head(server, "/api/v1/keys", 100, f"Authorization: Bearer {server.key}\r\nContent-Type: application/json\r\n")
    s.sendall(b'{"tt')
    time.sleep(0.1)
    s.close()
    time.sleep(0.5)
    assert whoami_status(server) == 200
    added = _log(server)[before:]
    assert "Traceback" not in added and "ClientDisconnect" not in added, added[-3000:]
    assert len(added.splitlines()) <= 8, added
