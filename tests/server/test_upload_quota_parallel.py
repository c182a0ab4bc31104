"""The per-principal byte quota of pending uploads against parallel uploads, on a real ``dataward serve``
with two worker processes: every upload starts while the principal holds almost nothing, then sends
the rest of its body; together they may not hold more than the quota, whichever worker took which."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dataward.client import HTTPWard
from dataward.domain.schema import Schema
from tests.helpers import wine_schema_specs
from tests.server.test_slow_clients import serve

API = "/api/v1"
MIB = 1 << 20
BODY = 9 * MIB // 10  # 0.9 MiB: one fits the 1 MiB quota, two do not


@dataclass
class Process:
    url: str
    port: int
    uploads: Path
    keys: dict[str, str]
    ids: dict[str, str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    root = tmp_path_factory.mktemp("quota")
    options = ["--workers", "2", "--max-upload-mb", "1", "--max-pending-upload-mb", "1", "--max-pending-uploads", "8"]
    for served in serve(root, options):
        admin = HTTPWard(served.url, key=served.key)
        label, specs = wine_schema_specs()
        admin.create_dataset("wine", Schema.parse(label, specs))
        keys, ids = {}, {}
        for name in ("carol", "erin"):
            ids[name] = str(admin.create_principal(name)["id"])
            admin.grant(name, "contributor", "dataset:wine")
            keys[name] = str(admin.issue_key(name)["key"])
        yield Process(served.url, served.port, root / "ward" / "server" / "uploads", keys, ids)


def _held_bytes(uploads: Path, owner: str) -> int:
    """The bytes of complete uploads of ``owner`` in the server's folder."""
    total = 0
    for folder in uploads.iterdir():
        if folder.is_dir():
            meta = json.loads((folder / "meta.json").read_text("utf-8"))
            if meta["owner"] == owner:
                total += int(meta["size"])
    return total


def _partials(uploads: Path) -> list[str]:
    return [p.name for p in uploads.iterdir() if p.name.endswith(".partial")]


def _status(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer.split(b" ", 2)[1])


def _slow_upload(server: Process, key: str, name: str, started: threading.Barrier, results: list[int | None]) -> None:
    """Send 100 bytes, wait until every upload has started, then the rest of a 0.9 MiB body."""
    status: int | None = None
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(
            (
                f"POST {API}/uploads?filename={name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {BODY}\r\n\r\n"
            ).encode()
            + b"a" * 100
        )
        started.wait()
        time.sleep(1.0)  # every upload is now under way on the server, counted at 100 bytes
        answer = b""
        try:
            for at in range(100, BODY, 64 << 10):
                s.sendall(b"b" * min(64 << 10, BODY - at))
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # refused mid-body: the server answered and closed
        try:
            while not answer.endswith(b"}") and len(answer) < 1 << 16:
                piece = s.recv(4096)
                if not piece:
                    break
                answer += piece
        except OSError:
            pass
        status = _status(answer)
        if status is not None and status != 201:
            assert b"quota_exceeded" in answer, answer[:500]
    results.append(status)


def test_parallel_uploads_together_hold_no_more_than_the_byte_quota(server: Process) -> None:
    started = threading.Barrier(8)
    results: list[int | None] = []
    threads = [
        threading.Thread(target=_slow_upload, args=(server, server.keys["carol"], f"f{n}.csv", started, results))
        for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 8, results
    assert results.count(201) <= 1, results
    assert set(results) <= {201, 429, None}, results
    assert _held_bytes(server.uploads, server.ids["carol"]) <= MIB
    deadline = time.monotonic() + 10
    while _partials(server.uploads) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _partials(server.uploads) == []  # nothing of a refused upload stays


def test_sequential_uploads_within_the_quota_still_pass(server: Process) -> None:
    headers = {"Authorization": f"Bearer {server.keys['erin']}", "Content-Type": "application/octet-stream"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        for n in range(2):
            answer = http.post(f"{API}/uploads", params={"filename": f"s{n}.csv"}, content=b"c" * (400 << 10))
            assert answer.status_code == 201, answer.text
        third = http.post(f"{API}/uploads", params={"filename": "s2.csv"}, content=b"c" * (400 << 10))
        assert third.status_code == 429 and third.json()["error"] == "quota_exceeded", third.text
        small = http.post(f"{API}/uploads", params={"filename": "s3.csv"}, content=b"c" * (200 << 10))
        assert small.status_code == 201, small.text
    assert _held_bytes(server.uploads, server.ids["erin"]) == 1000 << 10
    assert _partials(server.uploads) == []
