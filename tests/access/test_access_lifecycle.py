"""Offboarding: a leaving human's bots are suspended with their keys, unless handed to an active human."""

from __future__ import annotations

from datetime import timedelta

import pytest
from access_factories import NOW, human, key_for, service

from dataward.access import (
    PrincipalStatus,
    check_can_receive,
    check_key,
    offboard,
    reinstate,
    revoke,
    transfer_ownership,
)
from dataward.domain.errors import Conflict, InputError, KeyRevoked, PrincipalSuspended

ALICE, BOB = human("alice"), human("bob")
SCRAPER, CI = service("scraper", "alice"), service("ci", "alice")
OTHER_BOT = service("other", "bob")
LATER = NOW + timedelta(hours=1)


def world():
    keys = {name: key_for(name) for name in ("alice", "scraper", "ci", "other", "bob")}
    return [ALICE, BOB, SCRAPER, CI, OTHER_BOT], keys


def test_offboarding_cascades_to_owned_bots_and_their_keys() -> None:
    principals, keys = world()
    already_dead = revoke(keys["ci"][1], NOW)
    records = [k for _, k in keys.values() if k.id != already_dead.id] + [already_dead]
    plan = offboard(ALICE, principals, records, now=LATER)

    assert plan.human.status is PrincipalStatus.DISABLED
    assert {p.id for p in plan.suspended} == {"scraper", "ci"}
    assert all(p.status is PrincipalStatus.SUSPENDED for p in plan.suspended)
    assert plan.transferred == ()
    revoked = {k.principal_id: k for k in plan.revoked_keys}
    assert set(revoked) == {"alice", "scraper"}  # ci's key was already revoked; bob's untouched
    assert all(k.revoked_at == LATER for k in plan.revoked_keys)
    assert plan.to_dict()["suspended"] == ["scraper", "ci"]

    # The next request with the scraper's key is refused twice over.
    scraper_text, _ = keys["scraper"]
    suspended_scraper = next(p for p in plan.suspended if p.id == "scraper")
    with pytest.raises(KeyRevoked):
        check_key(revoked["scraper"], scraper_text, suspended_scraper, LATER)
    with pytest.raises(PrincipalSuspended):
        check_key(keys["scraper"][1], scraper_text, suspended_scraper, LATER)


def test_offboarding_with_transfer_keeps_bots_working_under_a_new_owner() -> None:
    principals, keys = world()
    plan = offboard(ALICE, principals, [k for _, k in keys.values()], transfer_to=BOB, now=LATER)
    assert {p.id for p in plan.transferred} == {"scraper", "ci"}
    assert all(p.owner_id == "bob" and p.is_active for p in plan.transferred)
    assert plan.suspended == ()
    assert [k.principal_id for k in plan.revoked_keys] == ["alice"]
    scraper_text, scraper_key = keys["scraper"]
    check_key(scraper_key, scraper_text, plan.transferred[0], LATER, owner=BOB)


@pytest.mark.parametrize(
    ("target", "error"),
    [
        (human("carol", PrincipalStatus.DISABLED), Conflict),
        (service("bot2", "bob"), InputError),
        (ALICE, InputError),
    ],
)
def test_transfer_to_a_disabled_service_or_self_is_refused(target, error) -> None:
    principals, keys = world()
    with pytest.raises(error):
        offboard(ALICE, principals, [k for _, k in keys.values()], transfer_to=target, now=LATER)


def test_offboarding_refuses_services_and_already_disabled_humans() -> None:
    principals, _ = world()
    with pytest.raises(InputError):
        offboard(SCRAPER, principals, [], now=LATER)
    with pytest.raises(Conflict):
        offboard(human("alice", PrincipalStatus.DISABLED), principals, [], now=LATER)


def test_transfer_ownership_of_a_single_bot() -> None:
    moved = transfer_ownership(SCRAPER, BOB)
    assert moved.owner_id == "bob" and moved.id == "scraper"
    with pytest.raises(Conflict):
        transfer_ownership(moved, BOB)
    with pytest.raises(InputError):
        transfer_ownership(ALICE, BOB)
    with pytest.raises(Conflict):
        transfer_ownership(SCRAPER, human("carol", PrincipalStatus.SUSPENDED))


def test_enabling_a_disabled_human_or_a_suspended_bot_makes_it_active() -> None:
    gone = human("alice", PrincipalStatus.DISABLED)
    assert reinstate(gone, None).is_active
    stopped = service("scraper", "bob", PrincipalStatus.SUSPENDED)
    back = reinstate(stopped, BOB)
    assert back.is_active and back.owner_id == "bob" and back.kind is stopped.kind


def test_a_bot_is_never_enabled_while_nobody_active_answers_for_it() -> None:
    stopped = service("scraper", "alice", PrincipalStatus.SUSPENDED)
    with pytest.raises(Conflict, match="owned by 'alice', who is disabled") as refused:
        reinstate(stopped, human("alice", PrincipalStatus.DISABLED))
    assert "principal transfer scraper" in (refused.value.hint or "")
    with pytest.raises(Conflict, match="already active"):
        reinstate(SCRAPER, ALICE)


def test_keys_and_roles_are_refused_to_a_principal_that_cannot_use_them() -> None:
    check_can_receive(SCRAPER, ALICE, "a key")  # active, owner active: fine
    with pytest.raises(Conflict, match="'scraper' is suspended: it cannot be given a key") as refused:
        check_can_receive(service("scraper", "alice", PrincipalStatus.SUSPENDED), ALICE, "a key")
    assert "principal enable scraper" in (refused.value.hint or "")
    with pytest.raises(Conflict, match="'alice' is disabled: it cannot be given a role"):
        check_can_receive(human("alice", PrincipalStatus.DISABLED), None, "a role")
    with pytest.raises(Conflict, match="owned by 'alice', who is disabled") as orphan:
        check_can_receive(SCRAPER, human("alice", PrincipalStatus.DISABLED), "a key")
    assert "principal transfer scraper" in (orphan.value.hint or "")


def test_the_suspended_refusal_names_the_enable_command() -> None:
    text, record = key_for("scraper")
    with pytest.raises(PrincipalSuspended) as refused:
        check_key(record, text, service("scraper", "alice", PrincipalStatus.SUSPENDED), LATER)
    hint = refused.value.hint or ""
    assert "`dataward principal enable scraper`" in hint and "new key" in hint and "transfer" in hint
    with pytest.raises(PrincipalSuspended) as human_refused:
        check_key(*reversed(key_for("alice")), human("alice", PrincipalStatus.DISABLED), LATER)
    assert "principal enable alice" in (human_refused.value.hint or "")
