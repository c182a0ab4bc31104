"""What a key must be before the server does work for it: a made-up key gets no body validation and
is rate-limited; uploads are for keys that can use a file, within a quota per principal; and the API
serves no page that loads scripts from elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dataward.client import HTTPWard
from dataward.domain.schema import Schema
from tests.helpers import wine_schema_specs
from tests.server.conftest import Served, serve_ward

API = "/api/v1"
MADE_UP = "dw_aaaaaaaa_" + "b" * 52


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A served ward with a small upload quota (3 uploads, 100 KiB) and the key-id limit at 5."""
    yield from serve_ward(
        tmp_path_factory.mktemp("checks"),
        max_upload_bytes=256 << 10,
        max_pending_uploads=3,
        max_pending_upload_bytes=100 << 10,
        auth_failures_per_key=5,
        auth_failures_per_address=1000,
    )


@pytest.fixture(scope="module")
def keys(served: Served) -> dict[str, str]:
    admin = HTTPWard(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    found = {}
    for name, role in (("carol", "contributor"), ("erin", "contributor"), ("dave", "reader"), ("idle", None)):
        admin.create_principal(name)
        if role:
            admin.grant(name, role, "dataset:wine")
        found[name] = str(admin.issue_key(name)["key"])
    return found


def _upload(served: Served, key: str, size: int, name: str = "part.csv") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"}
    return httpx.post(
        f"{served.url}{API}/uploads", params={"filename": name}, headers=headers, content=b"a" * size, timeout=30
    )


def _held(served: Served) -> list[Path]:
    return list((served.ward / "server" / "uploads").iterdir())


def test_a_made_up_key_gets_no_validation_and_is_rate_limited(served: Served) -> None:
    bad_body = {"ttl_days": "many", "surprise": 1}
    codes = []
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for _ in range(7):
            answer = http.post(f"{API}/keys", headers={"Authorization": f"Bearer {MADE_UP}"}, json=bad_body)
            codes.append(answer.status_code)
            assert "problems" not in answer.json()["details"], answer.text
            assert "ttl_days" not in answer.text
        malformed = http.post(
            f"{API}/grants",
            headers={"Authorization": f"Bearer dw_cccccccc_{'d' * 52}", "Content-Type": "application/json"},
            content=b"{not json",
        )
        assert malformed.status_code == 401, malformed.text
        # A genuine key still learns what is wrong with its request.
        genuine = http.post(f"{API}/keys", headers={"Authorization": f"Bearer {served.admin_key}"}, json=bad_body)
        assert genuine.status_code == 422 and genuine.json()["details"]["problems"]
    assert codes[0] == 401 and codes[-1] == 429, codes


def test_a_key_that_can_use_no_file_cannot_upload(served: Served, keys: dict[str, str]) -> None:
    for name in ("dave", "idle"):
        answer = _upload(served, keys[name], 1000)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "access_denied"
    assert _held(served) == []
    # Refused like any use case: on the record.
    denials = HTTPWard(served.url, key=served.admin_key).ledger(types=["access.denied"], limit=20)
    assert "an uploaded file" in str(denials)


def test_pending_uploads_are_capped_per_principal(served: Served, keys: dict[str, str]) -> None:
    for _ in range(3):
        assert _upload(served, keys["carol"], 1000).status_code == 201
    fourth = _upload(served, keys["carol"], 1000)
    assert fourth.status_code == 429, fourth.text
    assert fourth.json()["error"] == "quota_exceeded"
    assert fourth.json()["exit_code"] == 4
    # Bytes too: 60 KiB held, then 60 KiB more is over 100 KiB; nothing of the refused one stays.
    assert _upload(served, keys["erin"], 60 << 10).status_code == 201
    before = len(_held(served))
    over = _upload(served, keys["erin"], 60 << 10)
    assert over.status_code == 429 and over.json()["error"] == "quota_exceeded", over.text
    assert len(_held(served)) == before
    # Another principal's quota is its own.
    assert _upload(served, keys["erin"], 10 << 10).status_code == 201


def test_no_page_loads_scripts_from_a_cdn(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for path in (f"{API}/docs", f"{API}/docs/oauth2-redirect", f"{API}/redoc", "/docs"):
            answer = http.get(path)
            assert answer.status_code == 404, path
            assert "cdn" not in answer.text.lower()
        spec = http.get(f"{API}/openapi.json")
        assert spec.status_code == 200 and spec.json()["paths"]
