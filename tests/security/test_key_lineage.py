"""Key lineage: a key minted with another key never outlives it, is never wider, and dies with it.

Played as an attacker holding a key: mint a long-lived key from a short-lived one, mint a wider key,
renew a bot's key from the bot itself, and keep using minted keys after the original was revoked.
An explicit lifetime past the minting key's expiry is *refused* (and recorded as a refusal); a key
issued without a lifetime is cut to end with its parent.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from dataward.access import generate_key
from dataward.domain.errors import AccessDenied, KeyExpired, KeyRevoked, NotFound, PolicyViolation
from dataward.service.ward import Ward
from tests.helpers import LIGHT_GATE_POLICY
from tests.security.key_team import Clock, denials, key_id

SELF_ISSUE_POLICY = "keys:\n  allow_self_issued_keys: true\n" + LIGHT_GATE_POLICY


def _expiry(info: dict) -> datetime:
    return datetime.fromisoformat(info["expires_at"])


def _key_expiry(admin: Ward, kid: str) -> datetime:
    return next(datetime.fromisoformat(k["expires_at"]) for k in admin.keys(principal=None) if k["id"] == kid)


def test_a_one_day_bot_key_cannot_mint_a_365_day_key(team: dict[str, Ward]) -> None:
    scraper, admin = team["scraper"], team["admin"]
    # By default a bot mints nothing for itself, however long.
    with pytest.raises(AccessDenied, match="may not mint keys for itself"):
        scraper.issue_key(ttl_days=365)
    # Even where the policy lets bots mint their own keys, the minted key cannot outlive its parent.
    admin.set_policy("wine", SELF_ISSUE_POLICY)
    with pytest.raises(PolicyViolation, match="cannot outlive it"):
        scraper.issue_key(ttl_days=365, scopes=["dataset:wine"])
    refusals = [d for d in denials(admin) if d["payload"]["action"] == "key.issue"]
    assert len(refusals) == 2 and all(d["actor"]["key"] == key_id(scraper) for d in refusals)
    # Without a lifetime the key is cut to end with its parent.
    cut = scraper.issue_key(scopes=["dataset:wine"])
    assert _expiry(cut) == _key_expiry(admin, key_id(scraper))
    assert cut["parent_id"] == key_id(scraper)


def test_a_one_day_human_key_cannot_mint_a_365_day_key_for_its_bot(team: dict[str, Ward]) -> None:
    admin = team["admin"]
    short = admin.as_key(admin.issue_key("alice", ttl_days=1)["key"])
    with pytest.raises(PolicyViolation, match="cannot outlive it"):
        short.issue_key("scraper", ttl_days=365)
    bot_key = short.issue_key("scraper")
    assert bot_key["parent_id"] == key_id(short)
    assert _expiry(bot_key) <= _key_expiry(admin, key_id(short))


def test_a_minted_key_cannot_be_wider_than_its_parent(team: dict[str, Ward], clock: Clock) -> None:
    admin = team["admin"]
    narrow = admin.as_key(admin.issue_key("alice", scopes=["dataset:wine"])["key"])
    for attempt in (
        lambda: narrow.issue_key("scraper"),  # all the bot's roles, everywhere
        lambda: narrow.issue_key(),  # all of alice's roles
    ):
        with pytest.raises(AccessDenied, match="wider"):
            attempt()
    within = narrow.issue_key("scraper", scopes=["dataset:wine"])
    assert within["parent_id"] == key_id(narrow) and within["scopes"] == ["dataset:wine"]
    # The rule holds in the domain too, whoever calls it.
    parent = next(k for k in admin.keys(principal=None) if k["id"] == key_id(narrow))
    assert parent["scopes"] == ["dataset:wine"]
    _, record = generate_key("alice", now=clock(), scopes=["dataset:wine"])
    with pytest.raises(PolicyViolation, match="cannot be wider"):
        generate_key("alice", now=clock(), scopes=None, parent=record)
    with pytest.raises(PolicyViolation, match="cannot be wider"):
        generate_key("alice", now=clock(), scopes=["dataset:wine", "dataset:other"], parent=record)


def test_revoking_a_parent_kills_children_and_grandchildren_on_their_next_request(
    team: dict[str, Ward], tmp_path: Path
) -> None:
    admin = team["admin"]
    root = admin.as_key(admin.issue_key("alice")["key"])  # issued by an admin: no parent
    child = root.as_key(root.issue_key()["key"])
    bot = root.as_key(root.issue_key("scraper")["key"])
    grandchild = child.as_key(child.issue_key()["key"])
    # A rotation made with the key it replaces is minted through it as well.
    renewed = grandchild.rotate_key(key_id(grandchild), overlap_hours=0)
    great = grandchild.as_key(renewed["key"])
    minted = {key_id(k) for k in (child, bot, grandchild, great)}
    for ward in (child, bot, grandchild.as_key(renewed["key"])):
        ward.versions("wine")
    traced = admin.trace(f"dw_{key_id(root)}")
    assert {k["key"].removeprefix("dw_") for k in traced["minted"]} == minted

    revoked = root.revoke_key(key_id(root), reason="leaked in a CI log")
    assert {k["key"].removeprefix("dw_") for k in revoked["revoked_with_it"]} == minted
    for ward in (root, child, bot, great):
        with pytest.raises(KeyRevoked):
            ward.versions("wine")
    # The bot's own key, issued by an admin, is not in this lineage and keeps working.
    team["scraper"].versions("wine")
    event = admin.ledger(types=["key.revoked"])[0]
    assert set(event["payload"]["with_it"]) == minted
    assert admin.verify().ok


def test_a_successor_made_with_the_old_key_dies_with_it(team: dict[str, Ward]) -> None:
    admin, alice = team["admin"], team["alice"]
    rotated = alice.rotate_key(key_id(alice), overlap_hours=1)
    successor = alice.as_key(rotated["key"])
    successor.versions("wine")
    admin.revoke_key(key_id(alice), reason="the old key leaked: whoever held it could have rotated it")
    with pytest.raises(KeyRevoked):
        successor.versions("wine")


def test_keys_minted_with_a_rotated_key_end_with_its_overlap(team: dict[str, Ward], clock: Clock) -> None:
    """Whoever held a key minted more keys with it (a key of its own, one for its bot, one more from
    that); its owner then rotates it to end it. A minted key never outlives the key it was minted
    with: they all end when its overlap does, and only the successor goes on."""
    admin = team["admin"]
    root = admin.as_key(admin.issue_key("alice")["key"])
    child = root.as_key(root.issue_key()["key"])
    bot = root.as_key(root.issue_key("scraper", ttl_days=1)["key"])
    grandchild = child.as_key(child.issue_key()["key"])
    minted = {key_id(k) for k in (child, bot, grandchild)}
    clock.advance(minutes=5)
    rotated = root.rotate_key(key_id(root), overlap_hours=1)
    successor = root.as_key(rotated["key"])
    for ward in (root, child, bot, grandchild, successor):
        ward.versions("wine")  # everything works during the overlap
    clock.advance(hours=1, seconds=1)
    successor.versions("wine")
    for ward in (root, child, bot, grandchild):
        with pytest.raises(KeyExpired):
            ward.versions("wine")
    assert all(_key_expiry(admin, kid) <= datetime.fromisoformat(rotated["old_key_works_until"]) for kid in minted)
    event = admin.ledger(types=["key.rotated"])[0]
    assert set(event["payload"]["ended_with_it"]) == minted
    assert admin.verify().ok


def test_a_service_principal_minting_for_itself_is_refused_by_default(team: dict[str, Ward]) -> None:
    admin, scraper = team["admin"], team["scraper"]
    with pytest.raises(AccessDenied, match="may not mint keys for itself"):
        scraper.issue_key(scopes=["dataset:wine"])
    with pytest.raises(AccessDenied, match="may not mint keys for itself"):
        scraper.rotate_key(key_id(scraper))
    actors = {d["actor"]["key"] for d in denials(admin) if d["payload"]["action"] == "key.issue"}
    assert actors == {key_id(scraper)}
    # Switching it on weakens the policy: an owner may not, an admin may, and only where it says.
    admin.grant("alice", "owner", "dataset:wine")
    with pytest.raises(PolicyViolation, match="only an admin"):
        team["alice"].set_policy("wine", SELF_ISSUE_POLICY)
    admin.set_policy("wine", SELF_ISSUE_POLICY)
    own = scraper.issue_key(scopes=["dataset:wine"])
    assert own["parent_id"] == key_id(scraper)
    with pytest.raises(AccessDenied, match="may not mint keys for itself"):
        scraper.issue_key()  # not limited to wine: the ward's rule (off) applies
    # The owner still issues its bot's keys.
    assert team["alice"].issue_key("scraper")["parent_id"] == key_id(team["alice"])


def test_access_review_lists_key_lineage(team: dict[str, Ward]) -> None:
    admin, alice = team["admin"], team["alice"]
    bot_key = alice.issue_key("scraper")
    admin.set_policy("wine", SELF_ISSUE_POLICY)
    own = team["scraper"].issue_key(scopes=["dataset:wine"])
    rows = admin.access_review()
    lineage = {r["key"]: r for r in rows if r["kind"] in ("key_lineage", "key_self_issued")}
    row = lineage[f"{bot_key['prefix']}…"]
    assert row["kind"] == "key_lineage" and f"dw_{key_id(alice)}" in row["detail"] and row["principal"] == "scraper"
    assert lineage[f"{own['prefix']}…"]["kind"] == "key_self_issued"


def test_verify_rebuilds_key_lineage(team: dict[str, Ward]) -> None:
    admin, alice = team["admin"], team["alice"]
    minted = alice.issue_key("scraper")
    assert admin.verify().ok
    db = sqlite3.connect(admin.folder / "catalog.sqlite")
    try:
        db.execute("UPDATE api_keys SET parent_id = NULL, minted_with = NULL WHERE id = ?", (minted["id"],))
        db.commit()
    finally:
        db.close()
    report = admin.verify()
    assert not report.ok
    assert {p.where for p in report.problems} >= {f"api_keys {minted['id']} .parent_id"}
    # Orphaned in the catalog alone, the key is still revoked with its parent: a revocation follows the
    # lineage the signed ledger recorded.
    revoked = admin.revoke_key(key_id(alice))
    assert [k["key"] for k in revoked["revoked_with_it"]] == [f"dw_{minted['id']}"]


def test_a_minted_key_expires_with_its_parent(team: dict[str, Ward], clock: Clock) -> None:
    admin = team["admin"]
    parent = admin.as_key(admin.issue_key("alice", ttl_days=3)["key"])
    child = parent.as_key(parent.issue_key()["key"])
    clock.advance(days=3, seconds=1)
    for ward in (parent, child):
        with pytest.raises(Exception, match="expired"):
            ward.versions("wine")
    assert _key_expiry(admin, key_id(child)) <= _key_expiry(admin, key_id(parent))


def test_an_admins_narrowed_key_mints_nothing_wider_or_longer_for_itself(team: dict[str, Ward]) -> None:
    """An admin's own keys are minted too: a 1-day key narrowed to ``admin`` or ``key.issue`` used to
    fall back on the admin grant for the admin's own keys, and minted an unscoped 365-day key with no
    parent, which outlived it and survived its revocation."""
    admin = team["admin"]
    for scopes in (["admin"], ["key.issue"]):
        narrow = admin.as_key(admin.issue_key(ttl_days=1, scopes=scopes)["key"])
        with pytest.raises(AccessDenied, match="cannot issue a wider key"):
            narrow.issue_key(ttl_days=365)
        with pytest.raises(AccessDenied, match="cannot issue a wider key"):
            narrow.issue_key()
        # Nor does it take over the secret of a wider key of its own by rotating it.
        with pytest.raises(AccessDenied, match="cannot issue a wider key"):
            narrow.rotate_key(key_id(admin))
        # A key no wider than itself is minted from it: it ends with it and is revoked with it.
        within = narrow.issue_key(scopes=scopes)
        assert within["parent_id"] == key_id(narrow)
        assert _expiry(within) <= _key_expiry(admin, key_id(narrow))
    # An admin still issues keys for someone else on the admin grant, with an unrestricted key.
    assert admin.issue_key("bob")["parent_id"] is None


def test_a_key_narrowed_to_issuing_keys_issues_no_wider_key_for_another_admin(team: dict[str, Ward]) -> None:
    """A key narrowed to ``key.issue`` (a provisioning key) used to issue an unscoped key for a second admin,
    and so bought every power of the ward with a key meant only to hand out keys. For anyone, a narrowed
    key now issues, or rotates, only keys within its own scopes; each refusal is recorded."""
    admin = team["admin"]
    admin.create_principal("second-admin")
    admin.grant("second-admin", "admin", "ward")
    provisioning = admin.as_key(admin.issue_key(ttl_days=1, scopes=["key.issue"])["key"])
    before = len(admin.keys(principal="second-admin"))
    for target in ("second-admin", "bob"):
        with pytest.raises(AccessDenied, match=f"cannot issue a wider key for '{target}'"):
            provisioning.issue_key(target)
        with pytest.raises(AccessDenied, match="cannot issue a wider key"):
            provisioning.issue_key(target, scopes=["admin"])
    # Nor by rotating another admin's unrestricted key, which hands over a fresh secret of it.
    second = admin.issue_key("second-admin")
    with pytest.raises(AccessDenied, match="cannot issue a wider key for 'second-admin'"):
        provisioning.rotate_key(second["id"])
    assert len(admin.keys(principal="second-admin")) == before + 1  # only the admin's own issue
    refused = [d for d in denials(admin) if d["actor"]["key"] == key_id(provisioning)]
    assert len(refused) == 5 and {d["payload"]["action"] for d in refused} == {"key.issue"}
    # Within its scopes it still issues for another admin: a key that can do no more than itself, and
    # its child: it cannot outlive the narrow key, and is revoked with it.
    narrow = provisioning.issue_key("second-admin", scopes=["key.issue"])
    assert narrow["scopes"] == ["key.issue"] and narrow["parent_id"] == key_id(provisioning)
    assert _expiry(narrow) <= _key_expiry(admin, key_id(provisioning))
    with pytest.raises(PolicyViolation, match="cannot outlive it"):
        provisioning.issue_key("second-admin", scopes=["key.issue"], ttl_days=365)
    revoked = admin.revoke_key(key_id(provisioning))
    assert [k["principal"] for k in revoked["revoked_with_it"]] == ["second-admin"]
    with pytest.raises(KeyRevoked):
        admin.as_key(narrow["key"]).issue_key("second-admin", scopes=["key.issue"])
    # A key of no scopes narrows nothing: it issues as an unrestricted key does.
    assert admin.as_key(admin.issue_key(scopes=[])["key"]).issue_key("bob")["scopes"] is None
    # A key narrowed to the admin role alone is no different: it issues only keys within it.
    admin_role = admin.as_key(admin.issue_key(ttl_days=1, scopes=["admin"])["key"])
    with pytest.raises(AccessDenied, match="cannot issue a wider key for 'bob'"):
        admin_role.issue_key("bob")


def test_a_key_narrowed_to_granting_grants_no_role_wider_than_itself(team: dict[str, Ward]) -> None:
    """A key narrowed to ``grant.create`` used to make anyone an admin (or a contributor anywhere), powers
    the key itself never had. A narrowed key now grants only roles it covers; taking roles away stays open."""
    admin = team["admin"]
    granting = admin.as_key(admin.issue_key(ttl_days=1, scopes=["grant.create", "grant.revoke"])["key"])
    for role in ("admin", "reader"):
        with pytest.raises(AccessDenied, match=f"cannot grant {role} on ward"):
            granting.grant("bob", role, "ward")
    # On a dataset the key cannot read, the refusal does not even confirm that the dataset exists.
    with pytest.raises(NotFound, match="no dataset named 'wine'"):
        granting.grant("bob", "contributor", "dataset:wine")
    assert not [g for g in admin.grants("bob") if g["role"] in ("admin", "contributor")]
    refused = [d for d in denials(admin) if d["actor"]["key"] == key_id(granting)]
    assert len(refused) == 3 and {d["payload"]["action"] for d in refused} == {"grant.create"}
    # Taking a role away only removes power: the narrowed key may.
    granting.revoke_grant("bob", "reader", "dataset:wine")
    assert not [g for g in admin.grants("bob") if g["role"] == "reader" and g.get("active", True)]
    # A key narrowed to a role grants what that role covers, where it reaches.
    owner_of_wine = admin.as_key(admin.issue_key(ttl_days=1, scopes=["admin"])["key"])
    owner_of_wine.grant("bob", "contributor", "dataset:wine")
    owner_of_wine.grant("bob", "admin", "ward")


def test_a_key_narrowed_to_moving_bots_hands_no_admin_bot_to_anyone(team: dict[str, Ward]) -> None:
    """A bot's new owner issues its keys on the own-keys rule. So a key narrowed to ``principal.transfer``
    (or to ``principal.disable``, which hands the leaver's bots on) used to give an admin bot to anyone,
    who then issued it an unrestricted admin key. A narrowed key now hands over only bots holding nothing
    it could not grant itself; an unrestricted key, or one narrowed to ``admin``, still may."""
    admin = team["admin"]
    admin.create_principal("opsbot", kind="service", owner="alice")
    admin.grant("opsbot", "admin", "ward")
    mover = admin.as_key(admin.issue_key(ttl_days=1, scopes=["principal.transfer"])["key"])
    with pytest.raises(AccessDenied, match="cannot hand over 'opsbot', which holds admin on ward"):
        mover.transfer_principal("opsbot", "bob")
    # Even a bot that only contributes holds more than a key that can only move bots.
    with pytest.raises(AccessDenied, match="cannot hand over 'scraper'"):
        mover.transfer_principal("scraper", "bob")
    offboarder = admin.as_key(admin.issue_key(ttl_days=1, scopes=["principal.disable"])["key"])
    with pytest.raises(AccessDenied, match="cannot hand over"):
        offboarder.disable_principal("alice", transfer_to="bob")
    owners = {p["name"]: p.get("owner") for p in admin.principals()}
    assert owners["opsbot"] == owners["scraper"] == "alice"
    assert next(p for p in admin.principals() if p["name"] == "alice")["status"] == "active"
    refused = [d for d in denials(admin) if d["actor"]["key"] in {key_id(mover), key_id(offboarder)}]
    assert sorted(d["payload"]["action"] for d in refused) == ["principal.disable"] + ["principal.transfer"] * 2
    # A key narrowed to the admin role covers what the bot holds, and offboarding without a successor
    # hands nothing on (the bots are suspended).
    admin.as_key(admin.issue_key(ttl_days=1, scopes=["admin"])["key"]).transfer_principal("opsbot", "bob")
    assert {p["name"]: p.get("owner") for p in admin.principals()}["opsbot"] == "bob"
    assert offboarder.disable_principal("carol")["status"] == "disabled"
