"""Rotation renews a key's secret, never its life: the attack is a holder rotating a short-lived key
again and again to keep it alive past the expiry an admin chose.

Played in the folder (on the test clock, day after day) and over HTTP (the server's own clock): the
successor of a rotation expires when the rotated key would have, at the latest, down the whole chain,
for a root key an admin issued and for a key minted with another key. Only issuing gives a longer life.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from dataward.client import HTTPWard
from dataward.domain.errors import KeyExpired
from dataward.service.ward import Ward
from tests.security.key_team import Clock, key_id
from tests.server.conftest import Served, serve_ward


def _expiry(info: dict) -> datetime:
    return datetime.fromisoformat(info["expires_at"])


def test_rotating_a_one_day_key_daily_does_not_keep_it_alive(team: dict[str, Ward], clock: Clock) -> None:
    admin = team["admin"]
    issued = admin.issue_key("alice", ttl_days=1)
    ceiling = _expiry(issued)
    holder = admin.as_key(issued["key"])
    for _ in range(3):
        clock.advance(hours=7)
        rotated = holder.rotate_key(key_id(holder), overlap_hours=0)
        assert _expiry(rotated) <= ceiling
        holder = holder.as_key(rotated["key"])
        holder.versions("wine")
    clock.advance(days=1)
    with pytest.raises(KeyExpired):
        holder.versions("wine")
    # The chain, as listed and as the signed ledger has it, never passes the admin's expiry.
    chain = [e["payload"]["key"] for e in admin.ledger(types=["key.rotated"])]
    assert len(chain) == 3 and all(datetime.fromisoformat(k["expires_at"]) <= ceiling for k in chain)
    listed = {k["id"]: k for k in admin.keys(principal="alice")}
    assert all(datetime.fromisoformat(listed[k["id"]]["expires_at"]) <= ceiling for k in chain)
    assert admin.verify().ok


def test_a_minted_key_rotated_keeps_its_own_expiry(team: dict[str, Ward], clock: Clock) -> None:
    alice = team["alice"]  # a 90-day key: the parent outlives the child by far
    child = alice.issue_key(ttl_days=1)
    holder = alice.as_key(child["key"])
    clock.advance(hours=12)
    rotated = holder.rotate_key(key_id(holder), overlap_hours=0)
    assert _expiry(rotated) <= _expiry(child)
    # An admin rotating it does not extend it either: issuing a new key is the way to a longer life.
    clock.advance(hours=1)
    again = team["admin"].rotate_key(rotated["id"], overlap_hours=0)
    assert _expiry(again) <= _expiry(child)
    longer = team["admin"].issue_key("alice", ttl_days=30)
    assert _expiry(longer) > _expiry(child)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve_ward(tmp_path_factory.mktemp("served-rotation"))


def test_rotating_over_http_never_extends_the_admin_expiry(served: Served) -> None:
    admin = HTTPWard(served.url, key=served.admin_key)
    admin.create_principal("carol-rot")
    issued = admin.issue_key("carol-rot", ttl_days=1)
    ceiling = _expiry(issued)
    key = issued["key"]
    for _ in range(2):
        rotated = HTTPWard(served.url, key=key).rotate_key(key.split("_")[1], overlap_hours=0)
        assert _expiry(rotated) <= ceiling
        key = rotated["key"]
    assert HTTPWard(served.url, key=key).whoami()["principal"] == "carol-rot"


def test_folder_cli_path_shares_the_rule(tmp_path: Path, clock: Clock) -> None:
    """The embedded ward's admin rotating its own first key: the successor keeps that key's expiry."""
    admin, first = Ward.init(tmp_path / "w", clock=clock)
    own = admin.as_key(first)
    before = next(k for k in admin.keys(principal=None) if k["id"] == key_id(own))
    clock.advance(days=10)
    rotated = own.rotate_key(key_id(own), overlap_hours=0)
    assert _expiry(rotated) <= datetime.fromisoformat(before["expires_at"])
