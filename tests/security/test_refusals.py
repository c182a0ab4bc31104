"""Refusals of requests that did not authenticate: never attributed to someone else, never a flood,
and no faster for an unknown key id than for a known one."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from dataward.access import keys as key_module
from dataward.domain.errors import AuthenticationError, KeyRevoked
from dataward.service import auth
from dataward.service.refusals import PER_KEY_PER_MINUTE, PER_MINUTE, SUMMARY_EVENT
from dataward.service.ward import Ward
from tests.security.key_team import Clock, denials, key_id

B32 = "abcdefghijklmnopqrstuvwxyz234567"


def _wrong_secret(kid: str) -> str:
    return f"dw_{kid}_{''.join(secrets.choice(B32) for _ in range(52))}"


def _attempt(admin: Ward, credential: str) -> None:
    with pytest.raises(AuthenticationError):
        admin.as_key(credential).versions("wine")


def test_wrong_secret_with_someone_elses_key_id_is_not_attributed_to_them(team: dict[str, Ward]) -> None:
    admin, alice = team["admin"], team["alice"]
    alice_id = next(p["id"] for p in admin.principals() if p["name"] == "alice")
    _attempt(admin, _wrong_secret(key_id(alice)))
    denial = denials(admin)[0]
    assert denial["actor"] == {"principal": "anonymous", "key": None}
    assert denial["payload"]["claimed_key"] == key_id(alice)
    assert denial["payload"]["error"] == "unauthenticated"
    assert not any(d["actor"]["principal"] == alice_id for d in denials(admin))
    # A genuine key that is refused (revoked) still names its principal: its secret was right.
    admin.revoke_key(key_id(alice))
    with pytest.raises(KeyRevoked):
        alice.versions("wine")
    genuine = denials(admin)[0]
    assert genuine["actor"] == {"principal": alice_id, "key": key_id(alice)}
    assert admin.verify().ok


def test_a_flood_of_bad_attempts_records_a_bounded_number_of_events_and_a_counted_summary(
    team: dict[str, Ward], clock: Clock
) -> None:
    admin, alice = team["admin"], team["alice"]
    before = len(admin.ledger())
    for _ in range(30):
        _attempt(admin, _wrong_secret(key_id(alice)))
    for _ in range(3):
        _attempt(admin, "not-a-key")
    recorded = [d for d in denials(admin) if d["payload"].get("claimed_key") == key_id(alice)]
    assert len(recorded) == PER_KEY_PER_MINUTE
    malformed = [
        d for d in denials(admin) if d["actor"]["principal"] == "anonymous" and not d["payload"]["claimed_key"]
    ]
    assert len(malformed) == 3
    # The summary is written once the minute is over, by the next request of any kind.
    clock.advance(minutes=1)
    alice.versions("wine")
    summaries = admin.ledger(types=[SUMMARY_EVENT])
    assert len(summaries) == 1
    summary = summaries[0]["payload"]
    assert summary["suppressed"] == 30 - PER_KEY_PER_MINUTE
    assert summary["claims"] == [
        {"claimed_key": key_id(alice), "recorded": PER_KEY_PER_MINUTE, "suppressed": 30 - PER_KEY_PER_MINUTE}
    ]
    # 33 refusals, 5 + 3 recorded, one summary, and the ledger reads written by this test.
    added = len(admin.ledger()) - before
    assert added <= PER_KEY_PER_MINUTE + 3 + 1 + 4
    assert admin.verify().ok


def test_garbage_key_ids_cannot_flood_the_ledger_either(team: dict[str, Ward], clock: Clock) -> None:
    admin = team["admin"]
    attempts = PER_MINUTE + 15
    for _ in range(attempts):
        _attempt(admin, _wrong_secret("".join(secrets.choice(B32) for _ in range(8))))
    anonymous = [d for d in denials(admin) if d["actor"]["principal"] == "anonymous"]
    assert len(anonymous) == PER_MINUTE
    clock.advance(minutes=1)
    _attempt(admin, "not-a-key")  # a refusal in the next minute writes the summary too
    summary = admin.ledger(types=[SUMMARY_EVENT])[0]["payload"]
    assert summary["suppressed"] == 15 and summary["recorded"] == PER_MINUTE
    assert admin.verify().ok


def test_unknown_and_known_key_ids_cost_the_same_hmac_and_comparison(
    team: dict[str, Ward], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, alice = team["admin"], team["alice"]
    calls: list[str] = []
    real_mac, real_compare = key_module._mac, key_module.hmac.compare_digest

    def counting_mac(salt: bytes, kid: str, secret: str) -> str:
        calls.append(f"mac:{kid}")
        return real_mac(salt, kid, secret)

    def counting_compare(a: str, b: str) -> bool:
        calls.append("compare")
        return real_compare(a, b)

    monkeypatch.setattr(key_module, "_mac", counting_mac)
    monkeypatch.setattr(key_module.hmac, "compare_digest", counting_compare)

    def work(credential: str) -> list[str]:
        calls.clear()
        with admin.db.reading() as conn, pytest.raises(AuthenticationError, match="is not recognised"):
            auth.authenticate(conn, credential, admin.now(), ledger=admin.context.ledger)
        return [c.split(":")[0] for c in calls]

    known_wrong = work(_wrong_secret(key_id(alice)))
    unknown = work(_wrong_secret("zzzzzzzz"))
    assert known_wrong == unknown == ["mac", "compare"]
    # A stored hash in an unknown scheme costs the same too, and never verifies.
    assert not key_module.verify_secret("md5$00$00", key_id(alice), "a" * 52)


def test_lineage_and_bounded_refusals_on_every_catalog_backend(
    tmp_path: Path, clock: Clock, catalog_url: str | None
) -> None:
    admin, _ = Ward.init(tmp_path / "ward", clock=clock, catalog_url=catalog_url)
    try:
        admin.create_principal("alice")
        alice = admin.as_key(admin.issue_key("alice")["key"])
        child = alice.as_key(alice.issue_key()["key"])
        for _ in range(PER_KEY_PER_MINUTE + 4):
            with pytest.raises(AuthenticationError):
                admin.as_key(_wrong_secret(key_id(alice))).principals()
        clock.advance(minutes=1)
        admin.revoke_key(key_id(alice))
        with pytest.raises(KeyRevoked):
            child.keys(principal=None)
        assert admin.ledger(types=[SUMMARY_EVENT])[0]["payload"]["suppressed"] == 4
        assert admin.verify().ok
    finally:
        admin.db.dispose()
