"""A server that answers the client with hostile content: the client must end with a dataward error (a
message, an exit code), never a traceback, and never report a failure as a success.

The attacks, each answered by a real HTTP server on loopback: a JSON body nested 200,000 deep (raised
``RecursionError`` through the client: a traceback); an error document whose details hold a ``hint`` or
a ``message`` (``TypeError``); an error document with exit code 0 (the CLI printed the error and exited
0, so a script or CI step took the failed command for a success); a download whose document header is
not JSON (``JSONDecodeError``); a job answer without a status (``KeyError``)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.client import HTTPWard
from dataward.domain.errors import DatawardError, InputError
from dataward.domain.transport_errors import ServerUnreachable

KEY = "dw_abcdefgh_" + "a" * 52
BOMB = b"[" * 200_000 + b"]" * 200_000

ANSWERS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "/api/v1/whoami": (200, BOMB, {}),
    "/api/v1/datasets": (401, b'{"error": "unauthenticated", "message": ' + BOMB + b"}", {}),
    "/api/v1/principals": (
        422,
        json.dumps({"error": "bad_input", "message": "refused", "details": {"hint": "x", "message": "y"}}).encode(),
        {},
    ),
    "/api/v1/grants": (422, json.dumps({"error": "bad_input", "message": "refused", "exit_code": 0}).encode(), {}),
    "/api/v1/versions/wine%40v1/export": (200, b"PAR1", {"X-Dataward-Document": "{not json"}),
    "/api/v1/checkpoints": (200, b'{"ok": true}', {}),
}


class _Hostile(http.server.BaseHTTPRequestHandler):
    def log_message(self, *_args: object) -> None:
        pass

    def _answer(self) -> None:
        status, body, headers = ANSWERS.get(self.path.split("?")[0], (404, b"{}", {}))
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(5)


def test_a_json_nesting_bomb_is_an_unreadable_answer_not_a_traceback(hostile: str) -> None:
    with HTTPWard(hostile, key=KEY) as ward:
        with pytest.raises(ServerUnreachable, match="not JSON"):
            ward.whoami()
        with pytest.raises(ServerUnreachable, match="without a dataward error document"):
            ward.datasets()


def test_details_named_like_the_error_fields_are_kept_as_details(hostile: str) -> None:
    with HTTPWard(hostile, key=KEY) as ward, pytest.raises(InputError) as refused:
        ward.principals()
    assert refused.value.message == "refused" and refused.value.hint is None
    assert refused.value.details == {"hint": "x", "message": "y"}


def test_an_error_sent_with_exit_code_zero_still_fails_the_command(hostile: str) -> None:
    with HTTPWard(hostile, key=KEY) as ward, pytest.raises(InputError) as refused:
        ward.grants()
    assert refused.value.exit_code == 2
    done = CliRunner().invoke(app, ["--url", hostile, "grant", "list"], env={"DATAWARD_KEY": KEY})
    assert done.exit_code == 2, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)


def test_a_download_with_an_unreadable_document_header_writes_nothing(hostile: str, tmp_path: Path) -> None:
    with HTTPWard(hostile, key=KEY) as ward, pytest.raises(ServerUnreachable, match="document header"):
        ward.export("wine@v1", tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []


def test_a_job_answer_without_a_status_is_an_error(hostile: str) -> None:
    with HTTPWard(hostile, key=KEY) as ward, pytest.raises(DatawardError, match="not a job"):
        ward._job("/checkpoints", {})


def test_the_cli_shows_the_bomb_as_an_error_with_its_exit_code(hostile: str) -> None:
    done = CliRunner().invoke(app, ["--url", hostile, "whoami"], env={"DATAWARD_KEY": KEY})
    assert done.exit_code == 1 and "not JSON" in done.output, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
