"""Keys, principals and grants written or altered in the catalog alone give no power.

Someone who can write the catalog database but does not hold the ward's signing key (a database
account in served mode) tries to give herself power by editing the rows authentication and
authorization read: each attempt is refused with ``IntegrityViolation`` naming the row, and nothing is
done under the name it would have acted as. Legitimate grants, keys, rotations and revocations keep
working as before, revocation on the very next request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from dataward.access.keys import generate_key
from dataward.catalog import ledger_store
from dataward.client.http import HTTPWard
from dataward.domain.errors import (
    AccessDenied,
    IntegrityViolation,
    KeyExpired,
    KeyRevoked,
    NotFound,
    PrincipalSuspended,
)
from dataward.domain.hashing import canonical_json
from dataward.domain.schema import Schema
from dataward.ledger.events import format_time
from dataward.ledger.signing import WardSigner
from dataward.service import auth, signed_identity
from dataward.service.ward import Ward
from tests.helpers import wine_schema_specs
from tests.security.attacks import _sqlite
from tests.security.key_team import Clock, contribute, key_id
from tests.server.conftest import serve_ward


def _id(admin: Ward, name: str) -> str:
    return next(p["id"] for p in admin.principals() if p["name"] == name)


def _edit(ward: Ward, sql: str, *params: object) -> None:
    """Write to the catalog directly, as a database account without the signing key would."""
    db = _sqlite(ward)
    try:
        assert db.execute(sql, params).rowcount >= 1
    finally:
        db.close()


def _column(ward: Ward, sql: str, *params: object) -> object:
    db = _sqlite(ward)
    try:
        return db.execute(sql, params).fetchone()[0]
    finally:
        db.close()


def _minted_with(ward: Ward, key: str) -> object:
    return _column(ward, "SELECT minted_with FROM api_keys WHERE id = ?", key)


def _grant_ids(admin: Ward, name: str, role: str = "%") -> list[str]:
    db = _sqlite(admin)
    try:
        query = "SELECT id FROM grants WHERE principal_id = ? AND role LIKE ?"
        rows = db.execute(query, (_id(admin, name), role)).fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


def test_a_forged_key_row_gives_no_power(team: dict[str, Ward], clock: Clock) -> None:
    """mallory writes a key of her own making for the admin into the catalog: she knows its secret, the
    ledger never recorded it, and it must not let her grant herself admin."""
    admin = team["admin"]
    plaintext, record = generate_key(_id(admin, "admin"), now=clock())
    _edit(
        admin,
        "INSERT INTO api_keys (id, principal_id, prefix, hash, scopes, created_at, expires_at) VALUES (?,?,?,?,?,?,?)",
        record.id,
        record.principal_id,
        record.prefix,
        record.hash,
        None,
        format_time(record.created_at),
        format_time(record.expires_at),
    )
    forged = admin.as_key(plaintext)
    with pytest.raises(IntegrityViolation, match=rf"refusing to authenticate key {record.id}: .*never recorded") as e:
        forged.grant("mallory", "admin", "ward")
    assert e.value.details["row"] == f"api_keys {record.id}"
    assert admin.grants("mallory") == []


@pytest.mark.parametrize(
    ("role", "kind", "name", "act"),
    [
        # bob's reader grant on wine made admin of the ward: he makes himself a new principal.
        ("admin", "ward", None, lambda bob: bob.create_principal("eve")),
        # the same role on a wider scope: bob reads the other dataset.
        ("reader", "ward", None, lambda bob: bob.versions("other")),
        # a wider role on the same scope: bob, a reader, rewrites wine's policy.
        ("owner", "dataset", "wine", lambda bob: bob.set_policy("wine", "gate:\n  detectors: [duplicates]\n")),
    ],
    ids=["role-and-scope", "scope", "role"],
)
def test_a_widened_grant_row_gives_no_power(team: dict[str, Ward], role: str, kind: str, name: str | None, act) -> None:
    admin, bob = team["admin"], team["bob"]
    (grant,) = _grant_ids(admin, "bob")
    _edit(admin, "UPDATE grants SET role = ?, scope_kind = ?, scope_name = ? WHERE id = ?", role, kind, name, grant)
    with pytest.raises(IntegrityViolation, match=rf"grant {grant}: {role} on .*in the signed ledger") as e:
        act(bob)
    assert e.value.details["row"] == f"grants {grant}"


@pytest.mark.parametrize("how", ["copied", "moved"])
def test_a_grant_row_put_under_another_principal_gives_no_power(team: dict[str, Ward], how: str) -> None:
    """The admin's grant, copied under mallory's id (a new row) or moved to her (its principal id
    changed), does not make mallory an admin."""
    admin, mallory = team["admin"], team["mallory"]
    (grant,) = _grant_ids(admin, "admin", "admin")
    who = _id(admin, "mallory")
    if how == "copied":
        _edit(
            admin,
            "INSERT INTO grants (id, principal_id, role, scope_kind, scope_name, granted_by, granted_at) "
            "SELECT 'g_copied', ?, role, scope_kind, scope_name, granted_by, granted_at FROM grants WHERE id = ?",
            who,
            grant,
        )
        row, why = "g_copied", "never recorded"
    else:
        _edit(admin, "UPDATE grants SET principal_id = ? WHERE id = ?", who, grant)
        row, why = grant, "principal_id is"
    with pytest.raises(IntegrityViolation, match=why) as e:
        mallory.create_principal("eve")
    assert e.value.details["row"] == f"grants {row}"
    assert _column(admin, "SELECT count(*) FROM principals WHERE name = 'eve'") == 0


def test_a_revoked_key_unrevoked_in_the_catalog_stays_refused(team: dict[str, Ward]) -> None:
    admin, bob = team["admin"], team["bob"]
    kid = key_id(bob)
    admin.revoke_key(kid, reason="leaked")
    with pytest.raises(KeyRevoked):
        bob.versions("wine")
    _edit(admin, "UPDATE api_keys SET revoked_at = NULL WHERE id = ?", kid)
    with pytest.raises(IntegrityViolation, match=r"revoked_at is None in the catalog") as e:
        bob.versions("wine")
    assert e.value.details["row"] == f"api_keys {kid}"


def test_an_expiry_extended_in_the_catalog_does_not_keep_a_key_alive(team: dict[str, Ward], clock: Clock) -> None:
    scraper = team["scraper"]  # a 1-day key
    clock.advance(days=2)
    with pytest.raises(KeyExpired):
        scraper.whoami()
    _edit(
        team["admin"],
        "UPDATE api_keys SET expires_at = ? WHERE id = ?",
        format_time(clock() + timedelta(days=365)),
        key_id(scraper),
    )
    with pytest.raises(IntegrityViolation, match=r"expires_at is .* in the catalog"):
        scraper.whoami()


def test_a_suspension_undone_in_the_catalog_stays_refused(team: dict[str, Ward]) -> None:
    admin, bob = team["admin"], team["bob"]
    who, kid = _id(admin, "bob"), key_id(bob)
    admin.disable_principal("bob", reason="left")
    with pytest.raises((KeyRevoked, PrincipalSuspended)):
        bob.whoami()
    revoked_at = _column(admin, "SELECT revoked_at FROM api_keys WHERE id = ?", kid)
    _edit(admin, "UPDATE principals SET status = 'active' WHERE id = ?", who)
    _edit(admin, "UPDATE api_keys SET revoked_at = NULL WHERE id = ?", kid)
    with pytest.raises(IntegrityViolation, match="revoked_at is None in the catalog"):
        bob.whoami()
    # With the key row put back as signed, the principal row alone is refused.
    _edit(admin, "UPDATE api_keys SET revoked_at = ? WHERE id = ?", revoked_at, kid)
    with pytest.raises(IntegrityViolation, match=r"principal 'bob'\): .*status is 'active' in the catalog") as e:
        bob.whoami()
    assert e.value.details["row"] == f"principals {who}"


def test_an_owner_changed_in_the_catalog_is_refused(team: dict[str, Ward], tmp_path: Path) -> None:
    """alice owns the scraper bot, so she may not approve its work. Had she moved the bot to bob in the
    catalog, its contributions would record bob as the accountable owner and alice could approve them."""
    admin = team["admin"]
    _edit(admin, "UPDATE principals SET owner_id = ? WHERE id = ?", _id(admin, "bob"), _id(admin, "scraper"))
    with pytest.raises(IntegrityViolation, match=r"principal 'scraper'\): .*owner_id is") as e:
        contribute(team["scraper"], tmp_path)
    assert e.value.details["row"] == f"principals {_id(admin, 'scraper')}"
    assert admin.contributions("wine") == []


def test_legitimate_grants_keys_and_revocations_still_behave(team: dict[str, Ward]) -> None:
    admin, mallory = team["admin"], team["mallory"]
    with pytest.raises(NotFound):  # a dataset she may not see is not found
        mallory.versions("wine")
    admin.grant("mallory", "reader", "dataset:wine")
    assert mallory.versions("wine") == []
    admin.revoke_grant("mallory", "reader", "dataset:wine")
    with pytest.raises(NotFound, match="no dataset named 'wine'"):  # on the very next request
        mallory.versions("wine")
    admin.grant("mallory", "reader", "dataset:wine")
    assert mallory.versions("wine") == []
    # A rotated key and its successor both work in the overlap; a revoked one is refused at once.
    rotated = mallory.rotate_key(key_id(mallory), overlap_hours=1)
    successor = admin.as_key(rotated["key"])
    assert successor.versions("wine") == [] and mallory.versions("wine") == []
    admin.revoke_key(key_id(successor), reason="done")
    with pytest.raises(KeyRevoked):
        successor.versions("wine")
    admin.disable_principal("mallory", reason="left")
    with pytest.raises((KeyRevoked, PrincipalSuspended)):
        mallory.whoami()
    assert admin.verify().ok


@pytest.fixture
def served(tmp_path: Path) -> Iterator:
    yield from serve_ward(tmp_path)


def test_a_grant_written_into_a_served_wards_catalog_gives_no_power(served) -> None:
    """The server authenticates through the same code: a grant a database account wrote is refused there."""
    admin = HTTPWard(served.url, key=served.admin_key)
    try:
        admin.create_principal("mallory")
        key = admin.issue_key("mallory")["key"]
        who = next(p["id"] for p in admin.principals() if p["name"] == "mallory")
    finally:
        admin.close()
    import sqlite3

    db = sqlite3.connect(served.ward / "catalog.sqlite", isolation_level=None)
    try:
        db.execute(
            "INSERT INTO grants (id, principal_id, role, scope_kind, scope_name, granted_by, granted_at) "
            "SELECT 'g_forged', ?, 'admin', 'ward', NULL, granted_by, granted_at FROM grants LIMIT 1",
            (who,),
        )
        # and a new auth epoch, so that no key remembered by the server is trusted without a fresh look
        db.execute("UPDATE ward_meta SET value = 'forged' WHERE key = 'auth_epoch'")
    finally:
        db.close()
    mallory = HTTPWard(served.url, key=key)
    try:
        with pytest.raises(IntegrityViolation, match="g_forged"):
            mallory.create_principal("eve")
    finally:
        mallory.close()


# --- the signed identity snapshot: a cold process does not replay the whole ledger -------------------


def _snapshot(ward: Ward) -> str | None:
    return _column(ward, "SELECT value FROM ward_meta WHERE key = ?", signed_identity.SNAPSHOT_KEY)


def _saved_snapshot(team: dict[str, Ward], monkeypatch: pytest.MonkeyPatch) -> str:
    """A snapshot saved by a write (with a small spacing, so that the small team's ledger is enough)."""
    monkeypatch.setattr(signed_identity, "SNAPSHOT_SPACING", 8)
    team["admin"].grant("mallory", "reader", "dataset:other")
    text = _snapshot(team["admin"])
    assert text is not None
    return text


def _parsed(text: str) -> tuple[dict, dict]:
    """A stored snapshot's header (seq, hash, sig) and tables."""
    first, _, body = text.partition("\n")
    return json.loads(first), json.loads(body)


def _cold() -> None:
    """Forget what this process folded, as a new process (a CLI command) starts."""
    signed_identity._states.clear()


def test_a_cold_process_starts_from_the_signed_snapshot(team: dict[str, Ward], monkeypatch: pytest.MonkeyPatch) -> None:
    admin, bob = team["admin"], team["bob"]
    saved, _ = _parsed(_saved_snapshot(team, monkeypatch))
    reads: list[int] = []
    real = ledger_store.read_stored

    def spy(conn, *, batch: int = 10_000, since: int = 0):
        reads.append(since)
        return real(conn, batch=batch, since=since)

    monkeypatch.setattr(ledger_store, "read_stored", spy)
    _cold()
    # A read that authenticates and checks nothing else against the ledger (a listing of versions or of
    # transformations also checks the rows it lists against the guard's replay of the ledger, once per
    # process, as export does).
    assert bob.whoami()["principal"] == "bob"
    assert reads and all(since >= saved["seq"] for since in reads)  # never the whole ledger
    # Events after the snapshot are folded: a revocation made since is refused as such, and undoing it
    # in the catalog is refused as tampering.
    kid = key_id(bob)
    admin.revoke_key(kid, reason="leaked")
    _cold()
    with pytest.raises(KeyRevoked):
        bob.versions("wine")
    _edit(admin, "UPDATE api_keys SET revoked_at = NULL WHERE id = ?", kid)
    _cold()
    with pytest.raises(IntegrityViolation, match="revoked_at is None in the catalog"):
        bob.versions("wine")


@pytest.mark.parametrize("signature", ["kept", "forger's"])
def test_a_snapshot_edited_in_the_catalog_gives_no_power(
    team: dict[str, Ward], monkeypatch: pytest.MonkeyPatch, signature: str
) -> None:
    """mallory writes herself an admin grant into the catalog and into the snapshot as well, keeping its
    signature or signing it with a key of her own: the snapshot is not used, the grant is refused."""
    admin, mallory = team["admin"], team["mallory"]
    header, lists = _parsed(_saved_snapshot(team, monkeypatch))
    (model,) = [g for g in lists["grants"] if g["role"] == "admin"]
    forged = {**model, "id": "g_forged", "principal_id": _id(admin, "mallory")}
    lists["grants"].append(forged)
    if signature == "kept":
        text = json.dumps(header) + "\n" + canonical_json(lists).decode()
    else:
        tables = {t: {(row["id"],): row for row in lists[t]} for t in lists}
        forger = WardSigner.generate()
        text = signed_identity.snapshot_text(forger, admin.ward_id, header["seq"], header["hash"], tables)
    _edit(
        admin,
        "INSERT INTO grants (id, principal_id, role, scope_kind, scope_name, granted_by, granted_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        *(forged[c] for c in ("id", "principal_id", "role", "scope_kind", "scope_name", "granted_by", "granted_at")),
    )
    _edit(admin, "UPDATE ward_meta SET value = ? WHERE key = ?", text, signed_identity.SNAPSHOT_KEY)
    _cold()
    with pytest.raises(IntegrityViolation, match="never recorded") as e:
        mallory.create_principal("eve")
    assert e.value.details["row"] == "grants g_forged"


def test_an_older_snapshot_put_back_does_not_undo_a_revocation(
    team: dict[str, Ward], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, bob = team["admin"], team["bob"]
    older = _saved_snapshot(team, monkeypatch)
    kid = key_id(bob)
    admin.revoke_key(kid, reason="leaked")
    for name in [f"p{i}" for i in range(12)]:  # enough events for a newer snapshot
        admin.create_principal(name)
    assert _snapshot(admin) != older
    _edit(admin, "UPDATE ward_meta SET value = ? WHERE key = ?", older, signed_identity.SNAPSHOT_KEY)
    _edit(admin, "UPDATE api_keys SET revoked_at = NULL WHERE id = ?", kid)
    _cold()
    with pytest.raises(IntegrityViolation, match="revoked_at is None in the catalog"):
        bob.whoami()


def test_a_ledger_that_does_not_verify_refuses_everything_but_verify(team: dict[str, Ward]) -> None:
    """An edited ledger event and a forged grant: with nothing to check the grant against, mallory is
    refused; the admin can still run verify, which reports both."""
    admin, mallory = team["admin"], team["mallory"]
    _edit(
        admin,
        "UPDATE ledger_events SET payload = replace(payload, '\"wine\"', '\"wint\"') WHERE type = 'grant.created'",
    )
    _edit(
        admin,
        "INSERT INTO grants (id, principal_id, role, scope_kind, scope_name, granted_by, granted_at) "
        "SELECT 'g_forged', ?, 'admin', 'ward', NULL, granted_by, granted_at FROM grants LIMIT 1",
        _id(admin, "mallory"),
    )
    _cold()
    with pytest.raises(IntegrityViolation, match="does not verify"):
        mallory.create_principal("eve")
    with pytest.raises(IntegrityViolation, match="does not verify"):
        admin.create_principal("eve")
    report = admin.verify()
    assert not report.ok
    assert _column(admin, "SELECT count(*) FROM principals WHERE name = 'eve'") == 0


def test_verify_runs_on_the_signed_grants_only(team: dict[str, Ward]) -> None:
    """A grant written behind the ledger's back is what ``verify`` is asked to find: the admin, given one
    more in the catalog, still runs it and sees the row; mallory, whose only power to verify would be a
    grant she wrote herself, is refused for want of a role, and the forged row does not stop the check."""
    admin, mallory = team["admin"], team["mallory"]
    ids = {name: _id(admin, name) for name in ("admin", "mallory")}
    for name, who in ids.items():
        _edit(
            admin,
            "INSERT INTO grants (id, principal_id, role, scope_kind, scope_name, granted_by, granted_at) "
            f"SELECT 'g_forged_{name}', ?, 'admin', 'ward', NULL, granted_by, granted_at FROM grants LIMIT 1",
            who,
        )
    _cold()
    report = admin.verify()
    assert {(p.area, p.kind) for p in report.problems} >= {("catalog", "extra_row")}
    with pytest.raises(AccessDenied):
        mallory.verify()
    with pytest.raises(IntegrityViolation, match="g_forged_admin"):
        admin.create_principal("eve")


def test_a_transaction_on_an_older_view_of_the_ledger_does_not_refold_it(
    team: dict[str, Ward], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose read transaction started before newer events were committed (another request of
    a server) continues from a kept state its view holds: the whole ledger is not read again."""
    admin, bob = team["admin"], team["bob"]
    bob.whoami()
    reads: list[int] = []
    real = ledger_store.read_stored

    def spy(conn, *, batch: int = 10_000, since: int = 0):
        reads.append(since)
        return real(conn, batch=batch, since=since)

    with admin.db.reading() as old_view:
        before = ledger_store.head(old_view)[0]  # the read transaction's view starts here
        admin.grant("mallory", "reader", "dataset:wine")
        bob.whoami()  # the process now holds a state newer than the old view
        monkeypatch.setattr(ledger_store, "read_stored", spy)
        caller = auth.authenticate(old_view, bob.credential, admin.now(), ledger=bob.context.ledger)
    assert caller.principal.name == "bob"
    assert reads and 0 not in reads
    assert min(reads) <= before


# --- rows of other principals that decide whom a use case reaches -----------------------------------


def test_names_swapped_in_the_catalog_do_not_send_a_grant_to_the_other_principal(team: dict[str, Ward]) -> None:
    """mallory swaps her name with bob's in the catalog: the admin's `grant bob approver` would be
    signed onto mallory's id, and stay valid once she swaps the names back."""
    admin = team["admin"]
    bob, mallory = _id(admin, "bob"), _id(admin, "mallory")
    _edit(admin, "UPDATE principals SET name = 'swap' WHERE id = ?", bob)
    _edit(admin, "UPDATE principals SET name = 'bob' WHERE id = ?", mallory)
    _edit(admin, "UPDATE principals SET name = 'mallory' WHERE id = ?", bob)
    with pytest.raises(IntegrityViolation, match=r"refusing to grant a role to principal 'bob': .*name is 'bob'") as e:
        admin.grant("bob", "approver", "dataset:wine")
    assert e.value.details["row"] == f"principals {mallory}"
    assert _column(admin, "SELECT count(*) FROM grants WHERE principal_id = ?", mallory) == 0


def test_a_bot_moved_to_another_owner_in_the_catalog_gives_no_key_for_it(team: dict[str, Ward]) -> None:
    """The owner of a bot manages its keys. mallory makes herself the scraper's owner in the catalog
    and asks for a key for it: refused, and no key is issued."""
    admin = team["admin"]
    scraper = _id(admin, "scraper")
    _edit(admin, "UPDATE principals SET owner_id = ? WHERE id = ?", _id(admin, "mallory"), scraper)
    keys = _column(admin, "SELECT count(*) FROM api_keys WHERE principal_id = ?", scraper)
    with pytest.raises(IntegrityViolation, match=r"manage the keys of principal 'scraper': .*owner_id is") as e:
        team["mallory"].issue_key("scraper")
    assert e.value.details["row"] == f"principals {scraper}"
    assert _column(admin, "SELECT count(*) FROM api_keys WHERE principal_id = ?", scraper) == keys


def test_revocations_reach_the_principal_the_ledger_names_whatever_the_catalog_says(team: dict[str, Ward]) -> None:
    """Containment is not held up by the same edits: bob swaps his name with mallory's, and moves his bot
    to her, in the catalog; the admin still revokes bob's grant, the bot's key and bob himself."""
    admin = team["admin"]
    bob, mallory, scraper = _id(admin, "bob"), _id(admin, "mallory"), _id(admin, "scraper")
    _edit(admin, "UPDATE principals SET name = 'swap' WHERE id = ?", bob)
    _edit(admin, "UPDATE principals SET name = 'bob' WHERE id = ?", mallory)
    _edit(admin, "UPDATE principals SET name = 'mallory' WHERE id = ?", bob)
    _edit(admin, "UPDATE principals SET owner_id = ? WHERE id = ?", mallory, scraper)
    out = admin.revoke_grant("bob", "reader", "dataset:wine")
    (grant,) = _grant_ids(admin, "mallory")  # bob's grant, under the catalog's swapped name
    assert out["id"] == grant
    assert _column(admin, "SELECT revoked_at IS NOT NULL FROM grants WHERE id = ?", grant) == 1
    kid = key_id(team["scraper"])
    admin.revoke_key(kid, reason="leaked")
    assert _column(admin, "SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = ?", kid) == 1
    admin.disable_principal("bob", reason="left")
    assert _column(admin, "SELECT status FROM principals WHERE id = ?", bob) == "disabled"
    assert _column(admin, "SELECT status FROM principals WHERE id = ?", mallory) == "active"


def test_names_swapped_in_the_catalog_do_not_send_a_datasets_ownership_elsewhere(team: dict[str, Ward]) -> None:
    admin = team["admin"]
    bob, mallory = _id(admin, "bob"), _id(admin, "mallory")
    _edit(admin, "UPDATE principals SET name = 'swap' WHERE id = ?", bob)
    _edit(admin, "UPDATE principals SET name = 'bob' WHERE id = ?", mallory)
    _edit(admin, "UPDATE principals SET name = 'mallory' WHERE id = ?", bob)
    label, specs = wine_schema_specs()
    with pytest.raises(IntegrityViolation, match=r"make a dataset owned by principal 'bob': .*name is 'bob'"):
        admin.create_dataset("reds", Schema.parse(label, specs), owner="bob")
    assert _column(admin, "SELECT count(*) FROM grants WHERE principal_id = ?", mallory) == 0
    assert _column(admin, "SELECT count(*) FROM datasets WHERE name = 'reds'") == 0


def test_a_dataset_owner_changed_in_the_catalog_does_not_own_its_validation_set(team: dict[str, Ward]) -> None:
    """A validation set is write-locked to its dataset's owner: an owner written into the dataset's row
    in the catalog alone does not become the validation set's."""
    admin = team["admin"]
    _edit(admin, "UPDATE datasets SET owner_id = ? WHERE name = 'wine'", _id(admin, "mallory"))
    label, specs = wine_schema_specs()
    with pytest.raises(IntegrityViolation, match=r"make a validation set for datasets .*owner_id is") as e:
        admin.create_dataset("wine-clean", Schema.parse(label, specs), validation_for="wine")
    assert e.value.details["row"].startswith("datasets ")
    assert _column(admin, "SELECT count(*) FROM datasets WHERE name = 'wine-clean'") == 0


def test_a_minted_key_unlinked_in_the_catalog_is_still_revoked_with_its_parent(team: dict[str, Ward]) -> None:
    """mallory mints a second key with hers, clears its lineage (parent, minted with) in the catalog so
    that revoking hers would not reach it, and puts it back afterwards: the revocation reached it all
    the same."""
    admin, mallory = team["admin"], team["mallory"]
    child = admin.as_key(mallory.issue_key()["key"])
    cid = key_id(child)
    parent = _column(admin, "SELECT parent_id FROM api_keys WHERE id = ?", cid)
    assert parent == key_id(mallory)
    links = (_column(admin, "SELECT parent_id FROM api_keys WHERE id = ?", cid), _minted_with(admin, cid))
    _edit(admin, "UPDATE api_keys SET parent_id = NULL, minted_with = NULL WHERE id = ?", cid)
    admin.revoke_key(key_id(mallory), reason="leaked")
    _edit(admin, "UPDATE api_keys SET parent_id = ?, minted_with = ? WHERE id = ?", *links, cid)
    with pytest.raises(KeyRevoked):
        child.whoami()
