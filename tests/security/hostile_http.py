"""A loopback HTTP server whose answers each test sets per path, for the hostile-server tests.

``Hostile`` stands for a hostile (or compromised) dataward server: ``http.server`` in a thread on
loopback, no mock of httpx. The ``hostile`` fixture (``tests/security/conftest.py``) starts one per test.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MiB = 1 << 20
Route = Callable[[BaseHTTPRequestHandler], None]


class Hostile:
    """A loopback HTTP server whose answers the test sets per path; it counts the body bytes it sent."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.sent = 0
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                route = hostile.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with contextlib.suppress(OSError):  # the client hung up: what the cap is for
                    route(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def chunked(self, status: int, head: bytes, total: int, tail: bytes = b"", document: dict | None = None) -> Route:
        """An answer of ``head``, ``total`` bytes of ``A`` and ``tail``, chunked (no length told first)."""

        def answer(h: BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            if document is not None:
                h.send_header("X-Dataward-Document", json.dumps(document))
            h.end_headers()

            def chunk(data: bytes) -> None:
                if not data:
                    return  # an empty chunk would end the body
                h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.sent += len(data)

            chunk(head)
            for _ in range(total // (256 << 10)):
                chunk(b"A" * (256 << 10))
            chunk(tail)
            h.wfile.write(b"0\r\n\r\n")

        return answer

    def whole(self, body: bytes, *, content_type: str = "application/json", document: dict | None = None) -> Route:
        def answer(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            if document is not None:
                h.send_header("X-Dataward-Document", json.dumps(document))
            h.end_headers()
            h.wfile.write(body)
            self.sent += len(body)

        return answer


@contextmanager
def running() -> Iterator[Hostile]:
    """A ``Hostile`` server serving in a thread until the block ends. It looks for the end every 50 ms
    (``serve_forever``'s default half second was a test's wait at every shutdown)."""
    server = Hostile()
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
