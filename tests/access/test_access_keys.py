"""Key lifecycle: format, hashing, expiry, rotation overlap, revocation, guessed and malformed keys."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from access_factories import NOW, human, key_for, service

from dataward.access import (
    KeyPolicy,
    PrincipalStatus,
    check_key,
    generate_key,
    parse_key,
    revoke,
    rotate,
    touch,
    verify_secret,
)
from dataward.domain.errors import (
    AuthenticationError,
    Conflict,
    InputError,
    KeyExpired,
    KeyRevoked,
    PrincipalSuspended,
)

ALICE = human("alice")


def test_generated_key_is_scannable_random_and_stored_only_as_a_hash() -> None:
    plaintext, record = key_for("alice")
    assert re.fullmatch(r"dw_[a-z2-7]{8}_[a-z2-7]{52}", plaintext)
    parsed = parse_key(plaintext)
    assert record.id == parsed.key_id and record.prefix == f"dw_{parsed.key_id}"
    assert parsed.secret not in record.hash and parsed.secret not in repr(record)
    assert parsed.secret not in repr(parsed)
    assert record.expires_at == NOW + timedelta(days=90)
    other, other_record = key_for("alice")
    assert other != plaintext and other_record.id != record.id
    # The same secret hashes differently under another salt, and a hash moved to another key id fails.
    assert verify_secret(record.hash, record.id, parsed.secret)
    assert not verify_secret(record.hash, other_record.id, parsed.secret)
    assert not verify_secret("md5$00$00", record.id, parsed.secret)


def test_a_good_key_passes_and_touch_records_its_use() -> None:
    plaintext, record = key_for("alice")
    check_key(record, plaintext, ALICE, NOW + timedelta(days=1))
    used = touch(record, NOW + timedelta(days=1))
    assert used.last_used_at == NOW + timedelta(days=1) and record.last_used_at is None


def test_key_guessed_from_its_prefix_is_refused() -> None:
    plaintext, record = key_for("alice")
    guessed = plaintext[: plaintext.rindex("_") + 1] + "a" * 52
    with pytest.raises(AuthenticationError) as wrong_secret:
        check_key(record, guessed, ALICE, NOW)
    with pytest.raises(AuthenticationError) as unknown:
        check_key(None, guessed, ALICE, NOW)
    # Same message either way: the public id alone tells an attacker nothing.
    assert type(wrong_secret.value) is AuthenticationError
    assert wrong_secret.value.message == unknown.value.message
    # A wrong secret is refused even on a revoked key, before revealing that it is revoked.
    with pytest.raises(AuthenticationError) as on_revoked:
        check_key(replace(record, revoked_at=NOW), guessed, ALICE, NOW)
    assert type(on_revoked.value) is AuthenticationError


def test_a_record_for_another_key_id_is_refused() -> None:
    plaintext, _ = key_for("alice")
    _, other = key_for("alice")
    with pytest.raises(AuthenticationError):
        check_key(other, plaintext, ALICE, NOW)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "dw_",
        "sk_abcdefgh_" + "a" * 52,
        "dw_ABCDEFGH_" + "a" * 52,
        "dw_abcdefgh_" + "a" * 51,
        "dw_abcdefgh" + "a" * 53,
        "dw_abcdefgh_" + "a" * 50 + "1!",
    ],
)
def test_malformed_key_is_an_input_error_that_does_not_echo_the_secret(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_key(text)
    assert "a" * 20 not in str(caught.value)


def test_expired_key_is_refused_with_its_own_error() -> None:
    plaintext, record = key_for("alice", days=10)
    check_key(record, plaintext, ALICE, NOW + timedelta(days=10) - timedelta(seconds=1))
    with pytest.raises(KeyExpired, match="expired") as caught:
        check_key(record, plaintext, ALICE, NOW + timedelta(days=10))
    # Rotation refuses an expired key: the hint sends its holder for a new key, not to `key rotate` alone.
    assert (caught.value.hint or "").startswith("ask an admin or the key's owner for a new key")


def test_revocation_takes_effect_on_the_next_request() -> None:
    plaintext, record = key_for("alice")
    check_key(record, plaintext, ALICE, NOW)
    revoked = revoke(record, NOW + timedelta(seconds=1))
    with pytest.raises(KeyRevoked):
        check_key(revoked, plaintext, ALICE, NOW + timedelta(seconds=1))
    with pytest.raises(Conflict):
        revoke(revoked, NOW + timedelta(seconds=2))


@pytest.mark.parametrize("status", [PrincipalStatus.DISABLED, PrincipalStatus.SUSPENDED])
def test_key_of_an_inactive_principal_is_refused(status: PrincipalStatus) -> None:
    plaintext, record = key_for("alice")
    with pytest.raises(PrincipalSuspended):
        check_key(record, plaintext, human("alice", status), NOW)


def test_service_key_refused_when_its_owner_is_disabled() -> None:
    plaintext, record = key_for("bot")
    bot = service("bot", "alice")
    check_key(record, plaintext, bot, NOW, owner=ALICE)
    with pytest.raises(PrincipalSuspended, match="owner"):
        check_key(record, plaintext, bot, NOW, owner=human("alice", PrincipalStatus.DISABLED))


def test_rotation_overlap_then_old_key_stops_working() -> None:
    old_text, old = key_for("alice", scopes=["contributor"])
    at = NOW + timedelta(days=30)
    new_text, new, old_after = rotate(old, at, timedelta(days=2))
    assert new.principal_id == "alice" and new.scopes == ("contributor",)
    assert new.id != old.id and old_after.successor_id == new.id and old_after.rotated_at == at
    check_key(new, new_text, ALICE, at)
    check_key(old_after, old_text, ALICE, at + timedelta(days=2) - timedelta(seconds=1))
    with pytest.raises(KeyExpired) as caught:
        check_key(old_after, old_text, ALICE, at + timedelta(days=2))
    assert new.id in (caught.value.hint or "")
    check_key(new, new_text, ALICE, at + timedelta(days=2))
    with pytest.raises(Conflict, match="already rotated"):
        rotate(old_after, at, timedelta(days=1))


def test_rotation_overlap_never_outlives_the_old_key() -> None:
    _, old = key_for("alice", days=10)
    _, _, old_after = rotate(old, NOW + timedelta(days=9), timedelta(days=5))
    assert old_after.overlap_until == old.expires_at


def test_rotation_refuses_dead_keys_and_long_overlaps() -> None:
    _, old = key_for("alice")
    with pytest.raises(Conflict):
        rotate(replace(old, revoked_at=NOW), NOW, timedelta(days=1))
    with pytest.raises(InputError, match="maximum"):
        rotate(old, NOW, timedelta(days=30))
    with pytest.raises(InputError):
        rotate(old, NOW, timedelta(days=-1))


def test_key_policy_bounds_lifetimes() -> None:
    policy = KeyPolicy(max_ttl_days=30, default_ttl_days=7)
    _, record = generate_key("alice", now=NOW, policy=policy)
    assert record.expires_at == NOW + timedelta(days=7)
    with pytest.raises(InputError, match="exceeds the key policy's maximum of 30 days"):
        generate_key("alice", now=NOW, ttl=timedelta(days=31), policy=policy)
    # "Forever" is not a lifetime.
    with pytest.raises(InputError):
        generate_key("alice", now=NOW, ttl=timedelta.max, policy=policy)
    with pytest.raises(InputError):
        generate_key("alice", now=NOW, ttl=timedelta(0), policy=policy)
    with pytest.raises(InputError):
        KeyPolicy(max_ttl_days=0)
    with pytest.raises(InputError):
        KeyPolicy(max_ttl_days=30, default_ttl_days=90)
    with pytest.raises(InputError, match="unknown key policy setting"):
        KeyPolicy.from_dict({"forever": True})
    assert KeyPolicy.from_dict({"max_ttl_days": 30}, base=policy).default_ttl_days == 7
