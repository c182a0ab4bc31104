"""A whole API key in a URL path: the server refuses it (``credential_misplaced``) and keeps it out of its
logs; the client and the CLI, given a whole key to trace, rotate or revoke, send only its id."""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.client import HTTPWard
from dataward.domain.errors import AccessDenied, NotFound
from dataward.service.ward import Ward
from tests.server.conftest import Served

API = "/api/v1"


def _fresh_key(served: Served, name: str) -> str:
    admin = HTTPWard(served.url, key=served.admin_key)
    admin.create_principal(name)
    return str(admin.issue_key(name)["key"])


def test_a_whole_key_in_the_url_path_is_refused(served: Served) -> None:
    key = _fresh_key(served, "pathy")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for method, path in (
            ("GET", f"/trace/{key}"),
            ("GET", f"/trace/{quote(key, safe='')}"),
            ("GET", f"/trace/{key.upper()}"),
            ("GET", f"/trace/%64w_{key[3:]}"),  # "d" percent-encoded
            ("POST", f"/keys/{key}/rotate"),
            ("POST", f"/keys/{key}/revoke"),
            ("GET", f"/no/such/route/{key}"),
        ):
            answer = http.request(method, API + path, headers=headers, json={})
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["error"] == "credential_misplaced"
        # Nothing happened to the key: not rotated, not revoked.
        listed = HTTPWard(served.url, key=served.admin_key).keys("pathy")
        assert [k["state"] for k in listed] == ["active"]
        # The key id alone names it, as before.
        assert http.get(f"{API}/trace/{key.rsplit('_', 1)[0]}", headers=headers).status_code == 200


def test_the_client_sends_only_the_key_id_of_a_whole_key(served: Served) -> None:
    key = _fresh_key(served, "pasty")
    sent: list[str] = []
    client = HTTPWard(served.url, key=key)
    client._http.event_hooks["request"].append(lambda request: sent.append(str(request.url)))
    secret = key.rsplit("_", 1)[1]
    assert client.trace(key)["subject"]["id"] == key.rsplit("_", 1)[0]
    rotated = client.rotate_key(key, overlap_hours=0)
    successor = HTTPWard(served.url, key=rotated["key"])
    successor._http.event_hooks["request"].append(lambda request: sent.append(str(request.url)))
    successor.revoke_key(rotated["key"], reason="done")
    assert sent and not any(secret in url or rotated["key"] in url for url in sent), sent


def test_the_cli_given_a_whole_key_never_puts_its_secret_in_a_url(served: Served) -> None:
    key = _fresh_key(served, "cliffy")
    sent: list[str] = []
    original = httpx.Client.send

    def spy(self: httpx.Client, request: httpx.Request, **kwargs: object) -> httpx.Response:
        sent.append(str(request.url))
        return original(self, request, **kwargs)  # type: ignore[arg-type]

    env = {"DATAWARD_URL": served.url, "DATAWARD_WARD": None, "DATAWARD_KEY": key, "COLUMNS": "200"}
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.Client, "send", spy)
        traced = runner.invoke(app, ["trace", key], env=env)
        rotated = runner.invoke(app, ["key", "rotate", key, "--overlap-hours", "1"], env=env)
        revoked = runner.invoke(app, ["key", "revoke", key, "--reason", "pasted"], env=env)
    for result in (traced, rotated, revoked):
        assert result.exit_code == 0, result.output
    secret = key.rsplit("_", 1)[1]
    assert sent and not any(secret in url for url in sent), sent
    assert secret not in traced.output + revoked.output


def test_folder_mode_keeps_a_whole_keys_secret_out_of_messages_and_the_ledger(served: Served) -> None:
    key = _fresh_key(served, "foldy")
    secret = key.rsplit("_", 1)[1]
    HTTPWard(served.url, key=served.admin_key).create_principal("nosy")
    nosy_key = str(HTTPWard(served.url, key=served.admin_key).issue_key("nosy")["key"])
    ward = Ward.open(served.ward, key=nosy_key)
    try:
        with pytest.raises(AccessDenied) as refused:
            ward.trace(key)  # someone else's key: refused, and the refusal is recorded
        assert secret not in str(refused.value)
        made_up = "dw_aaaaaaaa_" + "b" * 52
        with pytest.raises(NotFound) as missing:
            Ward.open(served.ward, key=served.admin_key).revoke_key(made_up)
        assert "b" * 20 not in str(missing.value)
        events = Ward.open(served.ward, key=served.admin_key).ledger(limit=50)
        assert secret not in str(events)
    finally:
        ward.db.dispose()


def test_access_log_lines_never_hold_a_whole_key() -> None:
    from dataward.server.security import RedactKeys

    key = "dw_abcdefgh_" + "c" * 52
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", f"/t/{key}", "1.1", 401),
        None,
    )
    RedactKeys().filter(record)
    line = record.getMessage()
    assert "c" * 16 not in line and "dw_abcdefgh_<redacted>" in line
