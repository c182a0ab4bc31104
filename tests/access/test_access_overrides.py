"""Who may take part in overriding a gate's block, and how the access review lists overrides."""

from __future__ import annotations

from datetime import timedelta

from access_factories import NOW, human, service

from dataward.access import (
    BlockOverride,
    FindingKind,
    KeyPolicy,
    PrincipalStatus,
    Role,
    Severity,
    access_review,
    check_override,
)
from dataward.ledger.events import format_time

OWNER, ADMIN = {Role.OWNER}, {Role.ADMIN}


def test_two_distinct_owners_neither_the_submitter() -> None:
    ann, ben, sam = human("ann"), human("ben"), human("sam")
    assert check_override(ann, OWNER, "sam", None)
    assert check_override(ben, ADMIN, "sam", None, requested_by=ann)
    refused = check_override(sam, OWNER, "sam", None)
    assert not refused and "submitted this contribution" in refused.reason
    assert "override its block" in refused.reason


def test_the_bots_owner_and_the_owners_other_bots_are_refused() -> None:
    ann, twin = human("ann"), service("twin", "ann")
    assert "owns the service principal" in check_override(ann, OWNER, "bot", "ann").reason
    assert not check_override(twin, OWNER, "bot", "ann")


def test_same_principal_twice_or_same_human_behind_both_is_refused() -> None:
    ann, annbot = human("ann"), service("annbot", "ann")
    again = check_override(ann, OWNER, "sam", None, requested_by=ann)
    assert not again and "already requested" in again.reason
    via_bot = check_override(annbot, OWNER, "sam", None, requested_by=ann)
    assert not via_bot and "same human" in via_bot.reason


def test_roles_below_owner_and_inactive_principals_are_refused() -> None:
    for role in (Role.APPROVER, Role.REVIEWER, Role.PROMOTER, Role.READER, Role.CONTRIBUTOR):
        assert not check_override(human("ann"), {role}, "sam", None)
    assert not check_override(human("ann", PrincipalStatus.DISABLED), OWNER, "sam", None)


def test_access_review_lists_every_override_with_who_when_and_why() -> None:
    long_ago = NOW - timedelta(days=400)
    done = BlockOverride("cats", "cats#3", "ann", "vendor data, checked", long_ago, "ben", "agreed", NOW)
    pending = BlockOverride("cats", "cats#4", "ann", "new scanner", NOW)
    rows = access_review([human("ann"), human("ben")], [], [], [], KeyPolicy(), NOW, overrides=[done, pending])
    by_kind = {f.kind: f for f in rows}
    over = by_kind[FindingKind.BLOCK_OVERRIDDEN]
    assert over.severity is Severity.MEDIUM and over.contribution == "cats#3" and over.principal == "ben"
    assert "ann" in over.detail and "vendor data, checked" in over.detail and "agreed" in over.detail
    assert over.to_dict()["at"] == format_time(NOW)
    assert by_kind[FindingKind.BLOCK_OVERRIDE_PENDING].contribution == "cats#4"
