"""A served ward remembers verified keys between requests (``auth.CallerCache``). These tests try to
get around that: a revoked key mid-session, a revocation made by another process, a grant taken away,
an owner suspended, a forged secret next to a remembered key, an expiry passing, and edits behind the
ledger's back; and they check that what is remembered is only ever trusted under the same auth epoch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from dataward.catalog.projection import AUTH_EPOCH
from dataward.domain.errors import AccessDenied, AuthenticationError, KeyExpired, NotFound
from dataward.domain.schema import Schema
from dataward.service import auth
from dataward.service.ward import Ward
from tests.helpers import wine_schema_specs
from tests.server.conftest import Served

API = "/api/v1"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def wine(served: Served) -> str:
    admin = Ward.open(served.ward, key=served.admin_key)
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    return "wine"


def _reader(served: Served, name: str, *, owner: str | None = None) -> str:
    """A new principal with the reader role on wine, and its key (issued through the embedded ward:
    another process than the server, as an operator's CLI would be)."""
    admin = Ward.open(served.ward, key=served.admin_key)
    admin.create_principal(name, kind="service" if owner else "human", owner=owner)
    admin.grant(name, "reader", "dataset:wine")
    return str(admin.issue_key(name)["key"])


def _read(http: httpx.Client, key: str) -> httpx.Response:
    return http.get(f"{API}/datasets/wine/versions", headers=bearer(key))


def test_a_key_revoked_by_another_process_is_refused_on_the_next_request(
    http: httpx.Client, served: Served, wine: str
) -> None:
    key = _reader(served, "rita")
    for _ in range(3):  # remembered by the server after the first
        assert _read(http, key).status_code == 200
    # The revocation comes from outside the server (a CLI on the ward folder): only the catalog's
    # auth epoch tells the server's workers.
    Ward.open(served.ward, key=served.admin_key).revoke_key(key.rsplit("_", 1)[0], reason="stolen")
    refused = _read(http, key)
    assert refused.status_code == 401 and refused.json()["error"] == "key_revoked"
    assert http.get(f"{API}/whoami", headers=bearer(key)).status_code == 401


def test_a_grant_taken_away_mid_session_is_refused_on_the_next_request(
    http: httpx.Client, served: Served, wine: str
) -> None:
    key = _reader(served, "gary")
    assert _read(http, key).status_code == 200
    Ward.open(served.ward, key=served.admin_key).revoke_grant("gary", "reader", "dataset:wine")
    assert _read(http, key).status_code in (403, 404)


def test_a_bot_whose_owner_is_disabled_is_refused_on_the_next_request(
    http: httpx.Client, served: Served, wine: str
) -> None:
    admin = Ward.open(served.ward, key=served.admin_key)
    admin.create_principal("olga")
    bot = _reader(served, "olga-bot", owner="olga")
    assert _read(http, bot).status_code == 200
    admin.disable_principal("olga", reason="left")  # her bot is suspended with her, its keys revoked
    refused = _read(http, bot)
    assert refused.status_code == 401 and refused.json()["error"] in ("principal_suspended", "key_revoked")


def test_a_forged_secret_next_to_a_remembered_key_is_refused(http: httpx.Client, served: Served, wine: str) -> None:
    key = _reader(served, "fred")
    assert _read(http, key).status_code == 200
    key_id, secret = key.rsplit("_", 1)
    forged = f"{key_id}_{'a' * len(secret)}" if secret != "a" * len(secret) else f"{key_id}_{'b' * len(secret)}"
    for _ in range(2):  # never remembered: refused every time
        assert _read(http, forged).status_code == 401
    assert _read(http, key).status_code == 200


def test_a_key_used_in_the_url_is_refused_even_when_remembered(http: httpx.Client, served: Served, wine: str) -> None:
    key = _reader(served, "quinn")
    assert _read(http, key).status_code == 200
    assert http.get(f"{API}/datasets/wine/versions", params={"key": key}, headers=bearer(key)).status_code == 401


# --- the service's side, with a clock ---------------------------------------------------------------


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def remembering(tmp_path: Path) -> tuple[Ward, str, Ticks]:
    ward, _admin_key = Ward.init(tmp_path / "ward")
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.create_principal("rory")
    ward.grant("rory", "reader", "dataset:wine")
    key = str(ward.issue_key("rory", ttl_days=1)["key"])
    ticks = Ticks()
    ward.remember_callers()
    assert ward.callers is not None
    ward.callers.clock = ticks
    return ward, key, ticks


def _epoch(ward: Ward) -> str | None:
    with ward.db.reading() as conn:
        return auth.read_epoch(conn)


def test_every_change_of_a_key_principal_or_grant_replaces_the_epoch(remembering: tuple[Ward, str, Ticks]) -> None:
    ward, key, _ = remembering
    seen = {_epoch(ward)}
    steps = [
        lambda: ward.create_principal("sam"),
        lambda: ward.grant("sam", "reader", "dataset:wine"),
        lambda: ward.issue_key("sam"),
        lambda: ward.revoke_grant("sam", "reader", "dataset:wine"),
        lambda: ward.revoke_key(key.rsplit("_", 1)[0], reason="test"),
        lambda: ward.disable_principal("sam", reason="test"),
    ]
    for step in steps:
        step()
        epoch = _epoch(ward)
        assert epoch is not None and epoch not in seen
        seen.add(epoch)
    # Other changes leave it: what is remembered stays usable.
    before = _epoch(ward)
    ward.set_policy("wine", "approvals:\n  required: 1\n")
    assert _epoch(ward) == before


def test_a_remembered_key_still_expires_on_time(remembering: tuple[Ward, str, Ticks]) -> None:
    ward, key, _ = remembering
    rory = ward.as_key(key)
    rory.versions("wine")
    assert len(ward.callers or ()) >= 1
    ward.clock = lambda base=ward.clock(): base + timedelta(days=1, seconds=1)  # type: ignore[misc]
    with pytest.raises(KeyExpired):
        ward.as_key(key).versions("wine")


def test_a_catalog_edited_behind_the_ledger_is_read_again_after_the_ttl(remembering: tuple[Ward, str, Ticks]) -> None:
    ward, key, ticks = remembering
    rory = ward.as_key(key)
    rory.versions("wine")
    with ward.db.transaction() as conn:  # no event, no epoch: only the entry's age can catch this
        conn.execute(text("UPDATE grants SET revoked_at = '2000-01-01T00:00:00.000000Z' WHERE role = 'reader'"))
    ticks.now += (ward.callers.ttl_s if ward.callers else 0) + 1
    with pytest.raises((AccessDenied, NotFound)):
        ward.as_key(key).versions("wine")


def test_a_wrong_epoch_never_finds_a_remembered_caller(remembering: tuple[Ward, str, Ticks]) -> None:
    ward, key, _ = remembering
    ward.as_key(key).versions("wine")
    cache = ward.callers
    assert cache is not None
    current = _epoch(ward)
    assert cache.get(key, current) is not None
    assert cache.get(key, "another epoch") is None
    assert cache.get(key, current) is None  # a mismatch forgets the entry
    with ward.db.transaction() as conn:
        conn.execute(text("DELETE FROM ward_meta WHERE key = :k"), {"k": AUTH_EPOCH})
    ward.as_key(key).versions("wine")  # looked up again under the (absent) epoch
    assert cache.get(key, None) is not None


def test_refused_keys_are_never_remembered(remembering: tuple[Ward, str, Ticks]) -> None:
    ward, key, _ = remembering
    wrong = key[:-1] + ("a" if key[-1] != "a" else "b")
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            ward.as_key(wrong).versions("wine")
    assert ward.callers is not None and ward.callers.get(wrong, _epoch(ward)) is None
    denied = [e for e in ward.ledger(types=["access.denied"]) if e["payload"].get("claimed_key")]
    assert len(denied) >= 2


def test_the_cache_is_bounded(remembering: tuple[Ward, str, Ticks]) -> None:
    ward, _key, _ = remembering
    assert ward.callers is not None
    ward.callers.max_entries = 3
    keys = []
    for i in range(5):
        ward.create_principal(f"r{i}")
        ward.grant(f"r{i}", "reader", "dataset:wine")
        keys.append(str(ward.issue_key(f"r{i}")["key"]))
    for k in keys:
        ward.as_key(k).versions("wine")
    assert len(ward.callers) == 3


def test_serve_sets_how_long_keys_are_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import uvicorn
    from typer.testing import CliRunner

    from dataward.cli.app import app
    from dataward.server.app import app_from_environment

    folder = tmp_path / "ward"
    Ward.init(folder)
    monkeypatch.setattr(uvicorn, "run", lambda *_a, **_k: None)
    for name in list(os.environ):
        if name.startswith("DATAWARD_"):
            monkeypatch.delenv(name)
    for seconds, remembers in (("0", False), ("12", True)):
        result = CliRunner().invoke(app, ["serve", "--ward", str(folder), "--auth-cache-seconds", seconds])
        assert result.exit_code == 0, result.output
        served = app_from_environment().state.dataward.ward
        assert (served.callers is not None) is remembers
        if remembers:
            assert served.callers.ttl_s == 12.0
    refused = CliRunner().invoke(app, ["serve", "--ward", str(folder), "--auth-cache-seconds", "-1"])
    assert refused.exit_code != 0
