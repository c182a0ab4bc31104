"""The access review lists what an auditor must act on, and nothing that cannot be used."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from access_factories import NOW, grant, human, key_for, service

from dataward.access import (
    Enabling,
    FindingKind,
    KeyPolicy,
    PrincipalStatus,
    Role,
    Scope,
    Severity,
    access_review,
)
from dataward.access.ownership import OwnedDataset

POLICY = KeyPolicy(
    max_ttl_days=365, default_ttl_days=90, rotation_age_days=90, stale_after_days=30, near_expiry_days=14
)
CATS, DOGS = Scope.dataset("cats"), Scope.dataset("dogs")


def days_ago(n: int):
    return NOW - timedelta(days=n)


def review(principals, keys=(), grants=(), training=(), **kwargs):
    return access_review(principals, keys, grants, training, POLICY, NOW, **kwargs)


def kinds(findings, principal=None):
    return sorted(f.kind.value for f in findings if principal is None or f.principal == principal)


def test_key_rows_expired_near_expiry_old_and_unused() -> None:
    alice = human("alice")
    _, fresh = key_for("alice", at=days_ago(1))
    fresh = replace(fresh, last_used_at=NOW)
    _, expired = key_for("alice", at=days_ago(40), days=30)
    _, expiring = key_for("alice", at=days_ago(80), days=90)
    expiring = replace(expiring, last_used_at=days_ago(1))
    _, old = key_for("alice", at=days_ago(100), days=365)
    old = replace(old, last_used_at=days_ago(2))
    _, idle = key_for("alice", at=days_ago(60), days=365)
    idle = replace(idle, last_used_at=days_ago(45))
    _, never = key_for("alice", at=days_ago(31), days=365)

    findings = review([alice], [fresh, expired, expiring, old, idle, never])
    by_key = {}
    for f in findings:
        by_key.setdefault(f.key, []).append(f.kind)
    assert fresh.display not in by_key
    assert by_key[expired.display] == [FindingKind.KEY_EXPIRED]
    assert by_key[expiring.display] == [FindingKind.KEY_NEAR_EXPIRY]
    assert by_key[old.display] == [FindingKind.KEY_ROTATION_DUE]
    assert by_key[idle.display] == [FindingKind.KEY_UNUSED]
    assert by_key[never.display] == [FindingKind.KEY_UNUSED]
    never_row = next(f for f in findings if f.key == never.display)
    assert "never used" in never_row.detail and never.prefix in never_row.action
    rotate_row = next(f for f in findings if f.key == old.display)
    assert rotate_row.action.startswith(f"rotate key {old.prefix}")


def test_unused_days_threshold_is_configurable() -> None:
    _, key = key_for("alice", at=days_ago(10), days=365)
    assert kinds(review([human("alice")], [key])) == []
    assert kinds(review([human("alice")], [key], unused_days=7)) == ["key_unused"]


def test_dead_keys_and_keys_of_inactive_principals_are_left_out() -> None:
    _, revoked = key_for("alice", at=days_ago(200), days=365)
    revoked = replace(revoked, revoked_at=days_ago(1))
    _, rotated = key_for("alice", at=days_ago(200), days=365)
    rotated = replace(rotated, successor_id="zzzzzzzz", rotated_at=days_ago(1), overlap_until=NOW)
    _, bobs = key_for("bob", at=days_ago(200), days=365)
    findings = review([human("alice"), human("bob", PrincipalStatus.DISABLED)], [revoked, rotated, bobs])
    assert [f for f in findings if f.key is not None] == []


def test_a_rotated_key_still_inside_its_overlap_is_listed_as_usable_until_the_overlap_ends() -> None:
    """Rotation keeps the old key working for up to 7 days: it is not dead until then, so it is listed."""
    _, old = key_for("alice", at=days_ago(10), days=365)
    old = replace(old, successor_id="zzzzzzzz", rotated_at=days_ago(1), overlap_until=NOW + timedelta(days=6))
    _, ended = key_for("alice", at=days_ago(10), days=365)
    ended = replace(ended, successor_id="yyyyyyyy", rotated_at=days_ago(8), overlap_until=days_ago(1))
    rows = [f for f in review([human("alice")], [old, ended]) if f.key is not None]
    assert [(f.kind, f.key, f.severity) for f in rows] == [(FindingKind.KEY_IN_OVERLAP, old.display, Severity.LOW)]
    assert "rotated on" in rows[0].detail and "usable until" in rows[0].detail
    assert f"dataward key revoke {old.prefix}" in rows[0].action


def test_service_principal_with_a_disabled_or_missing_owner_is_flagged_high() -> None:
    principals = [
        human("alice", PrincipalStatus.DISABLED),
        human("bob"),
        service("scraper", "alice"),
        service("ghost-bot", "nobody"),
        service("ci", "bob"),
        service("stopped", "alice", PrincipalStatus.SUSPENDED),
    ]
    findings = [f for f in review(principals) if f.kind is FindingKind.SERVICE_OWNER_INACTIVE]
    assert sorted(f.principal for f in findings) == ["ghost-bot", "scraper"]
    scraper = next(f for f in findings if f.principal == "scraper")
    assert scraper.severity is Severity.HIGH and scraper.owner == "alice"
    assert "disabled" in scraper.detail and "transfer ownership of scraper" in scraper.action


def test_write_and_promote_access_to_training_datasets_is_listed() -> None:
    principals = [human("root"), human("alice"), human("pat"), service("scraper", "alice"), human("rita")]
    grants = [
        grant("root", Role.ADMIN, Scope.ward()),
        grant("scraper", Role.CONTRIBUTOR, CATS),
        grant("pat", Role.PROMOTER, CATS),
        grant("alice", Role.OWNER, DOGS),
        grant("rita", Role.READER, CATS),
    ]
    findings = [
        f for f in review(principals, grants=grants, training=["cats"]) if f.kind is FindingKind.TRAINING_WRITE_ACCESS
    ]
    rows = {f.principal: f for f in findings}
    assert set(rows) == {"root", "scraper", "pat"}  # alice owns dogs only; rita only reads
    assert all(f.dataset == "cats" for f in findings)
    assert rows["scraper"].owner == "alice" and "can submit" in rows["scraper"].detail
    assert "promote" in rows["pat"].detail and "promoter on dataset:cats" in rows["pat"].action
    assert rows["root"].severity is Severity.MEDIUM  # ward-wide power is broader than one grant
    assert rows["scraper"].severity is Severity.INFO


def test_recent_grants_are_listed_with_who_granted_them() -> None:
    principals = [human("root"), human("alice")]
    grants = [
        grant("alice", Role.APPROVER, CATS, at=days_ago(2), by="root"),
        grant("alice", Role.READER, DOGS, at=days_ago(40), by="root"),
    ]
    rows = [f for f in review(principals, grants=grants, recent_days=7) if f.kind is FindingKind.RECENT_GRANT]
    assert len(rows) == 1
    assert rows[0].dataset == "cats" and "approver on dataset:cats granted by root" in rows[0].detail


def test_rows_are_ordered_by_severity_and_json_ready() -> None:
    principals = [human("alice", PrincipalStatus.DISABLED), service("scraper", "alice"), human("bob")]
    _, key = key_for("bob", at=days_ago(100), days=365)
    findings = review(principals, [key], [grant("bob", Role.READER, CATS, at=days_ago(1))])
    ranks = [f.severity.rank for f in findings]
    assert ranks == sorted(ranks) and findings[0].severity is Severity.HIGH
    payload = json.loads(json.dumps([f.to_dict() for f in findings]))
    assert set(payload[0]) == {
        "kind",
        "severity",
        "principal",
        "principal_id",
        "owner",
        "dataset",
        "key",
        "detail",
        "action",
        "contribution",
        "at",
    }


def test_a_clean_ward_has_no_findings() -> None:
    _, key = key_for("alice", at=days_ago(5))
    key = replace(key, last_used_at=days_ago(1))
    assert (
        review([human("alice")], [key], [grant("alice", Role.READER, CATS, at=days_ago(300))], training=["cats"]) == []
    )


def test_principals_enabled_again_are_listed_with_the_grants_they_hold_again() -> None:
    principals = [human("root"), human("alice"), service("bot", "alice")]
    grants = [grant("alice", Role.APPROVER, CATS), grant("bot", Role.CONTRIBUTOR, CATS)]
    enablings = [
        Enabling("alice", by="root", at=days_ago(1), was="disabled", reason="came back"),
        Enabling("bot", by="root", at=days_ago(40), was="suspended"),
    ]
    rows = [f for f in review(principals, grants=grants, enablings=enablings, recent_days=7)]
    (row,) = [f for f in rows if f.kind is FindingKind.PRINCIPAL_ENABLED]
    assert row.principal == "alice" and row.severity is Severity.MEDIUM
    assert "was disabled and enabled again by root" in row.detail and "'came back'" in row.detail
    assert "its grants apply again: approver on dataset:cats" in row.detail
    assert "principal disable alice" in row.action


def test_a_dataset_no_active_principal_holds_owner_on_is_listed_high_when_in_training() -> None:
    """Co-owners revoking each other's grants left a dataset nobody answers for, and the review said nothing:
    its recorded owner was active (``dataset_owner_inactive`` looks only at the recorded owner)."""
    principals = [human("root"), human("alice"), human("bob", PrincipalStatus.DISABLED)]
    datasets = [
        OwnedDataset("cats", "alice", in_training=True),
        OwnedDataset("dogs", "alice"),
        OwnedDataset("owned", "alice"),
        OwnedDataset("bobs", "alice"),
    ]
    grants = [
        grant("root", Role.OWNER, Scope.ward()),  # the ward's owners answer for no dataset in particular
        grant("alice", Role.OWNER, Scope.dataset("owned")),
        grant("bob", Role.OWNER, Scope.dataset("bobs")),  # held by a principal who cannot act
    ]
    found = review(principals, grants=grants, datasets=datasets, training=["cats"])
    rows = {f.dataset: f for f in found if f.kind is FindingKind.DATASET_WITHOUT_OWNER}
    assert {d: f.severity for d, f in rows.items()} == {
        "cats": Severity.HIGH,
        "dogs": Severity.MEDIUM,
        "bobs": Severity.MEDIUM,
    }
    cats = rows["cats"]
    assert cats.principal == "alice" and "no active human holds owner on dataset cats (in training)" in cats.detail
    assert "dataward grant add HUMAN owner --scope dataset:cats" in cats.action
    # A disabled recorded owner is dataset_owner_inactive's row, not a second one.
    disabled = [human("alice", PrincipalStatus.DISABLED)]
    assert [f.kind for f in review(disabled, datasets=[OwnedDataset("cats", "alice")])] == [
        FindingKind.DATASET_OWNER_INACTIVE
    ]


def test_a_dataset_only_a_bot_holds_owner_on_is_listed() -> None:
    """Owner bob granted owner to his bot and revoked his own grant: the review counted the bot as an
    owner and listed nothing. A bot answers to its human, not for a dataset."""
    principals = [human("root"), human("alice"), human("bob"), service("bot", "bob")]
    datasets = [OwnedDataset("cats", "alice", in_training=True), OwnedDataset("owned", "alice")]
    grants = [
        grant("bot", Role.OWNER, Scope.dataset("cats")),
        grant("bot", Role.OWNER, Scope.dataset("owned")),
        grant("bob", Role.OWNER, Scope.dataset("owned")),  # a human holds it too: no row
    ]
    found = review(principals, grants=grants, datasets=datasets, training=["cats"])
    (row,) = [f for f in found if f.kind is FindingKind.DATASET_WITHOUT_OWNER]
    assert (row.dataset, row.severity, row.principal) == ("cats", Severity.HIGH, "alice")
    assert "no active human holds owner on dataset cats" in row.detail and "only service principal(s) bot" in row.detail
    assert "an owner of the whole ward" in row.detail
