"""Access control as enforced by the service: every path (CLI, Python API, server) goes through it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dataward.domain.errors import (
    AccessDenied,
    AuthenticationError,
    Conflict,
    InputError,
    KeyExpired,
    KeyRevoked,
    NotFound,
    PolicyViolation,
)
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import LIGHT_GATE_POLICY, wine_rows, wine_schema_specs, write_csv


class Clock:
    """A clock the test moves forward: expiry, rotation windows and staleness without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def team(tmp_path: Path, clock: Clock) -> dict[str, Ward]:
    """admin; alice (human, owner of the scraper bot, approver); bob (approver); scraper (service, contributor)."""
    admin, _ = Ward.init(tmp_path / "ward", clock=clock)
    label, specs = wine_schema_specs()
    admin.create_dataset("wine", Schema.parse(label, specs))
    admin.create_dataset("other", Schema.parse(label, specs))
    admin.set_policy("wine", LIGHT_GATE_POLICY)
    admin.create_principal("alice")
    admin.create_principal("bob")
    admin.create_principal("scraper", kind="service", owner="alice")
    admin.grant("alice", "approver", "dataset:wine")
    admin.grant("bob", "approver", "dataset:wine")
    admin.grant("scraper", "contributor", "dataset:wine")
    keys = {name: admin.issue_key(name)["key"] for name in ("alice", "bob", "scraper")}
    return {"admin": admin, **{name: admin.as_key(key) for name, key in keys.items()}}


def _contribute(ward: Ward, tmp_path: Path, name: str = "a") -> dict:
    path = write_csv(tmp_path / f"{name}.csv", wine_rows(0, 60, shuffled=True))
    return ward.contribute("wine", path, source=f"https://scrape.example/{name}")


def _denials(ward: Ward) -> list[dict]:
    return ward.ledger(types=["access.denied"])


def test_bot_contributes_owner_cannot_approve_another_approver_can(team: dict[str, Ward], tmp_path: Path) -> None:
    c = _contribute(team["scraper"], tmp_path)
    assert c["submitted_by"] == "scraper"
    with pytest.raises(PolicyViolation, match="owns the service principal"):
        team["alice"].approve(c["ref"], reason="looks fine")
    assert _denials(team["admin"])[0]["payload"]["action"] == "contribution.approve"
    with pytest.raises(PolicyViolation, match="0 of 1 valid approval"):
        team["admin"].merge(c["ref"])
    result = team["bob"].approve(c["ref"], reason="spot-checked 20 rows against the source")
    assert result["satisfied"]
    assert team["admin"].merge(c["ref"])["records"] == 60


def test_self_approval_is_refused(team: dict[str, Ward], tmp_path: Path) -> None:
    team["admin"].grant("bob", "contributor", "dataset:wine")
    c = _contribute(team["bob"], tmp_path)
    with pytest.raises(PolicyViolation, match="submitted this contribution"):
        team["bob"].approve(c["ref"], reason="mine")


def test_contributor_cannot_approve_merge_or_promote(team: dict[str, Ward], tmp_path: Path) -> None:
    c = _contribute(team["scraper"], tmp_path)
    for attempt in (lambda: team["scraper"].approve(c["ref"], reason="x"), lambda: team["scraper"].merge(c["ref"])):
        with pytest.raises(AccessDenied, match="scraper"):
            attempt()
    # A dataset it may not see answers as one that does not exist; the attempt is still recorded.
    with pytest.raises(NotFound, match="no dataset named 'other'"):
        team["scraper"].contribute("other", tmp_path / "a.csv", source="s")
    actions = {d["payload"]["action"] for d in _denials(team["admin"])}
    assert {"contribution.approve", "contribution.merge", "contribution.submit"} <= actions


def test_revocation_takes_effect_on_the_next_request(team: dict[str, Ward], tmp_path: Path) -> None:
    _contribute(team["scraper"], tmp_path, "a")
    key_id = team["scraper"].credential.split("_")[1]
    team["alice"].revoke_key(key_id, reason="bot compromised")  # owners revoke their bots' keys
    with pytest.raises(KeyRevoked):
        _contribute(team["scraper"], tmp_path, "b")
    denial = _denials(team["admin"])[0]
    assert denial["payload"]["error"] == "key_revoked" and denial["actor"]["key"] == key_id


def test_expired_and_rotated_keys_are_refused_with_distinct_errors(
    team: dict[str, Ward], clock: Clock, tmp_path: Path
) -> None:
    rotated = team["bob"].rotate_key(team["bob"].credential.split("_")[1], overlap_hours=2)
    successor = team["admin"].as_key(rotated["key"])
    clock.advance(hours=1)
    team["bob"].versions("wine")  # still inside the overlap window
    clock.advance(hours=2)
    with pytest.raises(KeyExpired, match="rotated"):
        team["bob"].versions("wine")
    successor.versions("wine")
    clock.advance(days=91)
    with pytest.raises(KeyExpired, match="expired"):
        successor.versions("wine")


def test_a_rotated_keys_hint_names_only_a_successor_that_works(team: dict[str, Ward], clock: Clock) -> None:
    old_id = team["bob"].credential.split("_")[1]
    first = team["bob"].rotate_key(old_id, overlap_hours=1)
    second = team["admin"].as_key(first["key"]).rotate_key(first["id"], overlap_hours=1)
    # The old key named both ways, as the new one is (``id`` and ``prefix``).
    assert (second["rotated_from_id"], second["rotated_from"]) == (first["id"], first["prefix"])
    clock.advance(hours=2)
    with pytest.raises(KeyExpired) as caught:  # both rotated: the newest key of the chain is named
        team["bob"].versions("wine")
    assert second["prefix"] in (caught.value.hint or "") and first["prefix"] not in (caught.value.hint or "")
    team["admin"].revoke_key(second["id"], reason="leaked")
    with pytest.raises(KeyExpired) as caught:
        team["bob"].versions("wine")
    hint = caught.value.hint or ""
    assert second["prefix"] not in hint and first["prefix"] not in hint and "new key" in hint
    with pytest.raises(Conflict, match="already rotated") as caught:  # nor is a rotation sent to it
        team["admin"].rotate_key(first["id"])
    assert second["prefix"] not in (caught.value.hint or "") and "new key" in (caught.value.hint or "")


def test_guessed_and_malformed_keys_are_refused(team: dict[str, Ward]) -> None:
    real = team["bob"].credential
    guessed = real[: real.rindex("_") + 1] + "A" * len(real.split("_")[-1])
    for bad in (guessed, "dw_nothing", "not-a-key"):
        with pytest.raises(AuthenticationError):
            team["admin"].as_key(bad).versions("wine")


def test_offboarding_suspends_owned_bots_unless_transferred(team: dict[str, Ward], tmp_path: Path) -> None:
    team["admin"].disable_principal("alice", reason="left the company")
    with pytest.raises(AuthenticationError):
        team["alice"].versions("wine")
    with pytest.raises(AuthenticationError):
        _contribute(team["scraper"], tmp_path)
    statuses = {p["name"]: p["status"] for p in team["admin"].principals()}
    assert statuses["alice"] == "disabled" and statuses["scraper"] == "suspended"


def test_offboarding_with_transfer_keeps_the_bot_working(team: dict[str, Ward], tmp_path: Path) -> None:
    info = team["admin"].disable_principal("alice", transfer_to="bob")
    assert info["transferred"] == ["scraper"]
    c = _contribute(team["scraper"], tmp_path)
    with pytest.raises(PolicyViolation, match="owns the service principal"):
        team["bob"].approve(c["ref"], reason="now bob is accountable for the bot")


def test_keys_the_old_owner_issued_for_a_bot_die_when_it_changes_hands(team: dict[str, Ward], tmp_path: Path) -> None:
    """alice issues a key for her bot and keeps a copy; the bot is handed to bob. With that key alice
    would submit as bob's bot and approve it herself (separation of duties now names bob), so the keys
    she issued for the bot, and every key minted through them, are revoked by the transfer."""
    alice_copy = team["alice"].as_key(team["alice"].issue_key("scraper")["key"])
    moved = team["admin"].transfer_principal("scraper", "bob")
    assert moved["owner"] == "bob"
    with pytest.raises(KeyRevoked):
        _contribute(alice_copy, tmp_path)
    # The key an admin issued for the bot keeps it working for its new owner.
    c = _contribute(team["scraper"], tmp_path)
    with pytest.raises(PolicyViolation, match="owns the service principal"):
        team["bob"].approve(c["ref"], reason="my bot now")
    event = team["admin"].ledger(types=["principal.transferred"])[0]
    assert event["payload"]["revoked_keys"] == [alice_copy.credential.split("_")[1]]
    assert team["admin"].verify().ok


def test_validation_set_is_write_locked_to_the_dataset_owner(team: dict[str, Ward], tmp_path: Path) -> None:
    label, specs = wine_schema_specs()
    team["admin"].create_dataset("wine-validation", Schema.parse(label, specs), validation_for="wine")
    path = write_csv(tmp_path / "v.csv", wine_rows(0, 30))
    with pytest.raises(AccessDenied):
        team["scraper"].contribute("wine-validation", path, source="s")
    c = team["admin"].contribute("wine-validation", path, source="curated")
    assert team["admin"].merge(c["ref"])["records"] == 30


def test_access_review_shows_each_recent_change_of_the_clean_validation_set(
    team: dict[str, Ward], clock: Clock, tmp_path: Path
) -> None:
    """The gates trust the clean validation set and one owner writes it: every new version of it within
    the review's window is a row naming who wrote it, its size against the one before, and the diff."""
    label, specs = wine_schema_specs()
    team["admin"].create_dataset("wine-validation", Schema.parse(label, specs), validation_for="wine")
    team["admin"].grant("alice", "owner", "dataset:wine")
    first = team["admin"].contribute("wine-validation", write_csv(tmp_path / "v1.csv", wine_rows(0, 30)), source="s")
    team["admin"].merge(first["ref"])
    clock.advance(days=40)
    second = team["alice"].contribute("wine-validation", write_csv(tmp_path / "v2.csv", wine_rows(30, 40)), source="s")
    team["alice"].merge(second["ref"])

    rows = [r for r in team["admin"].access_review(recent_days=30) if r["kind"] == "validation_changed"]
    assert len(rows) == 1  # the first version is 40 days old
    (row,) = rows
    assert (row["principal"], row["dataset"], row["severity"]) == ("alice", "wine", "low")
    assert "wine-validation of wine is at v2" in row["detail"]
    assert "40 records, 30 before" in row["detail"]
    assert "merged by alice from contributions of alice" in row["detail"]
    assert "dataward diff wine-validation@v1 v2" in row["action"]
    both = [r for r in team["admin"].access_review(recent_days=60) if r["kind"] == "validation_changed"]
    assert [r["principal"] for r in both] == ["admin", "alice"]
    assert "30 records, its first version" in both[0]["detail"]


def test_access_review_says_a_rollback_of_the_clean_validation_set_merged_nothing(
    team: dict[str, Ward], tmp_path: Path
) -> None:
    """A quarantine's rollback version of the validation set is a change like any other, but nobody merged
    it: the row says who made it and that it merged no contribution, and its diff is against its parent."""
    label, specs = wine_schema_specs()
    admin = team["admin"]
    admin.create_dataset("wine-validation", Schema.parse(label, specs), validation_for="wine")
    for n, (lo, hi) in enumerate(((0, 30), (30, 40))):
        c = admin.contribute("wine-validation", write_csv(tmp_path / f"v{n}.csv", wine_rows(lo, hi)), source="s")
        admin.merge(c["ref"])
    admin.quarantine_contribution(c["ref"], reason="poisoned validation rows")

    rows = [r for r in admin.access_review(recent_days=30) if r["kind"] == "validation_changed"]
    assert [r["detail"].split(" since ")[0][-2:] for r in rows] == ["v1", "v2", "v3"]
    rollback = rows[2]
    assert "30 records, 40 before" in rollback["detail"]
    assert "merged by" not in rollback["detail"], rollback["detail"]
    assert "made by admin, merging no contribution" in rollback["detail"]
    assert "dataward diff wine-validation@v2 v3" in rollback["action"]
    assert "merged by admin from contributions of admin" in rows[1]["detail"]


def test_key_scopes_only_narrow(team: dict[str, Ward], tmp_path: Path) -> None:
    _contribute(team["scraper"], tmp_path)
    team["admin"].grant("bob", "contributor", "dataset:other")
    narrow = team["admin"].as_key(team["admin"].issue_key("bob", scopes=["dataset:other"])["key"])
    with pytest.raises(NotFound):  # the key sees only dataset:other: wine is not found
        narrow.approve("wine#1", reason="x")
    with pytest.raises(AccessDenied, match=r"wider|role|scope"):
        team["admin"].issue_key("scraper", scopes=["approver"])


def test_access_review_lists_stale_keys_and_training_writers(
    team: dict[str, Ward], clock: Clock, tmp_path: Path
) -> None:
    clock.advance(days=45)
    team["bob"].versions("wine")
    rows = team["admin"].access_review(unused_days=30)
    kinds = {(r["kind"], r["principal"]) for r in rows}
    assert any(kind.startswith("key") and who == "scraper" for kind, who in kinds)
    assert all(r["action"] for r in rows)
    assert not any(who == "bob" and "unused" in kind for kind, who in kinds)


def test_every_grant_and_key_event_names_its_actor(team: dict[str, Ward]) -> None:
    events = team["admin"].ledger(types=["grant.", "key.", "principal."], newest_first=False)
    assert len(events) >= 10
    admin_id = next(p["id"] for p in team["admin"].principals() if p["name"] == "admin")
    assert all(e["actor"]["principal"] == admin_id for e in events)
    assert team["admin"].verify().ok


def test_contributors_withdraw_only_their_own(team: dict[str, Ward], tmp_path: Path) -> None:
    c = _contribute(team["scraper"], tmp_path)
    team["admin"].grant("bob", "contributor", "dataset:wine")
    with pytest.raises(AccessDenied):
        team["bob"].withdraw(c["ref"], reason="not mine")
    assert team["scraper"].withdraw(c["ref"], reason="wrong file")["status"] == "withdrawn"
    with pytest.raises(Exception, match="withdrawn"):
        team["admin"].merge(c["ref"])


def test_dataset_policy_tightens_keys_scoped_to_it(team: dict[str, Ward]) -> None:
    team["admin"].set_policy("wine", "keys:\n  max_ttl_days: 30\n" + LIGHT_GATE_POLICY)
    with pytest.raises(InputError):
        team["admin"].issue_key("bob", ttl_days=200, scopes=["dataset:wine"])
    assert team["admin"].issue_key("bob", ttl_days=20, scopes=["dataset:wine"])["key"].startswith("dw_")


def test_dataset_key_rules_bind_every_key_that_writes_to_it(team: dict[str, Ward], tmp_path: Path) -> None:
    """An unscoped key lives by the ward's rules (up to 365 days); it may not write to a dataset whose
    policy keeps keys to 30 days: another path round the dataset's rule."""
    admin = team["admin"]
    admin.grant("bob", "contributor", "dataset:wine")
    admin.set_policy("wine", "keys:\n  max_ttl_days: 30\n" + LIGHT_GATE_POLICY)
    long_lived = admin.as_key(admin.issue_key("bob", ttl_days=200)["key"])
    denied_before = len(admin.ledger(types=["access.denied"]))
    with pytest.raises(AccessDenied, match=r"live 200 days; dataset wine's policy lets keys .* at most 30 days") as e:
        _contribute(long_lived, tmp_path)
    assert "--ttl-days 30" in e.value.hint
    assert len(admin.ledger(types=["access.denied"])) == denied_before + 1
    # Reading is not held to it, and a key that fits writes.
    assert long_lived.contributions("wine") is not None
    fits = admin.as_key(admin.issue_key("bob", ttl_days=30)["key"])
    assert _contribute(fits, tmp_path)["ref"].startswith("wine#")


FLAGGING_GATE = (
    "gate:\n  detectors: [duplicates, outliers]\n  alpha: 0.5\n  flag_fdr: null\nfirst_import: self-reference\n"
)


def test_dataset_key_rules_bind_review_decisions_and_containment(team: dict[str, Ward], tmp_path: Path) -> None:
    """Deciding review items and containing an incident are use cases on the ward that act on a dataset:
    the dataset's key rule binds them as it binds a use case on the dataset. A 200-day key accepted
    flagged records and quarantined by principal where the dataset allows 30 days."""
    admin = team["admin"]
    admin.grant("bob", "reviewer", "dataset:wine")
    admin.set_policy("wine", "keys:\n  max_ttl_days: 30\n" + FLAGGING_GATE)
    scraper = admin.as_key(admin.issue_key("scraper", ttl_days=30)["key"])
    c = _contribute(scraper, tmp_path)
    long_lived = admin.as_key(admin.issue_key("bob", ttl_days=200)["key"])
    queue = long_lived.review_list(contribution=c["ref"])  # reading is not held to the rule
    assert queue, "a permissive alpha must flag something to review"
    denied_before = len(_denials(admin))
    refused = r"live 200 days; dataset wine's policy lets keys that write to it live at most 30 days"
    with pytest.raises(AccessDenied, match=refused):
        long_lived.review_decide([queue[0]["id"]], "accept", reason="fine")
    with pytest.raises(AccessDenied, match=refused):
        long_lived.review_decide([], "accept", reason="fine", contribution=c["ref"])
    with pytest.raises(AccessDenied, match=refused) as e:
        long_lived.quarantine_by("principal:scraper", reason="incident")
    assert "--ttl-days 30" in e.value.hint
    assert len(_denials(admin)) == denied_before + 3
    # Nothing was decided or held out; a key that fits does both.
    assert {q["status"] for q in admin.review_list(contribution=c["ref"], status="all")} == {"pending"}
    fits = admin.as_key(admin.issue_key("bob", ttl_days=30)["key"])
    assert fits.review_decide([queue[0]["id"]], "accept", reason="fine")[0]["status"] == "accepted"
    assert fits.quarantine_by("principal:scraper", reason="incident")["datasets"][0]["quarantined"] == [c["ref"]]


def test_a_new_datasets_owner_grant_keeps_the_rules_of_grant_add(team: dict[str, Ward]) -> None:
    """``create_dataset(owner=X)`` is a grant: it is refused where ``grant add X owner`` is (X disabled
    or suspended; a key narrowed to ``dataset.create``, which could not grant ``owner`` itself)."""
    admin = team["admin"]
    label, specs = wine_schema_specs()
    admin.create_principal("dave")
    admin.disable_principal("dave", reason="left")
    admin.disable_principal("scraper", reason="stopped")
    for who, status in (("dave", "disabled"), ("scraper", "suspended")):
        with pytest.raises(Conflict, match=f"'{who}' is {status}: it cannot be given the owner grant"):
            admin.create_dataset(f"of-{who}", Schema.parse(label, specs), owner=who)
    admin.create_principal("frank")
    admin.grant("frank", "owner", "ward")
    frank = admin.as_key(admin.issue_key("frank")["key"])
    narrow = frank.as_key(frank.issue_key(scopes=["dataset.create"])["key"])
    with pytest.raises(AccessDenied, match=r"limited to scopes dataset\.create, which do not allow grant\.create"):
        narrow.create_dataset("bobs", Schema.parse(label, specs), owner="bob")
    names = {d["name"] for d in admin.datasets()}
    assert not names & {"of-dave", "of-scraper", "bobs"}
    assert [g["scope"] for g in admin.grants("bob") if g["role"] == "owner"] == []
    # The narrowed key still creates datasets its principal owns; an unrestricted key hands one to bob.
    narrow.create_dataset("franks", Schema.parse(label, specs))
    assert ("owner", "dataset:franks") in [(g["role"], g["scope"]) for g in admin.grants("frank")]
    frank.create_dataset("bobs", Schema.parse(label, specs), owner="bob")
    assert ("owner", "dataset:bobs") in [(g["role"], g["scope"]) for g in admin.grants("bob")]


def test_the_last_owner_grant_of_a_dataset_goes_only_by_an_admin_and_the_review_says_so(
    team: dict[str, Ward],
) -> None:
    """Co-owners could revoke each other, then themselves, and leave a dataset nobody answers for, with
    nothing in the access review."""
    admin, alice, bob = team["admin"], team["alice"], team["bob"]
    label, specs = wine_schema_specs()
    admin.create_dataset("cats", Schema.parse(label, specs), owner="alice")
    alice.grant("bob", "owner", "dataset:cats")
    bob.revoke_grant("alice", "owner", "dataset:cats")  # bob still answers for it
    denied_before = len(_denials(admin))
    with pytest.raises(
        AccessDenied, match=r"owner grant of 'bob' on dataset:cats is the last one .* only an admin or an owner of the"
    ) as e:
        bob.revoke_grant("bob", "owner", "dataset:cats")
    assert "dataward grant add HUMAN owner --scope dataset:cats" in e.value.hint
    assert len(_denials(admin)) == denied_before + 1
    assert ("owner", "dataset:cats") in [(g["role"], g["scope"]) for g in admin.grants("bob")]
    assert [r for r in admin.access_review() if r["kind"] == "dataset_without_owner"] == []
    # An admin may take it (an incident), and the review then names the dataset and the fix.
    admin.revoke_grant("bob", "owner", "dataset:cats")
    rows = [r for r in admin.access_review() if r["kind"] == "dataset_without_owner"]
    assert [(r["dataset"], r["severity"], r["principal"]) for r in rows] == [("cats", "medium", "alice")]
    assert "--scope dataset:cats" in rows[0]["action"]


def test_the_last_active_admin_grant_cannot_be_revoked(team: dict[str, Ward]) -> None:
    """The only admin could revoke its own admin grant, leaving a ward nobody can administer."""
    admin = team["admin"]
    last = r"the admin grant of '(admin|alice)' is the last one an active human holds: .* nobody can administer"
    with pytest.raises(Conflict, match=last):
        admin.revoke_grant("admin", "admin", "ward")
    assert admin.create_principal("erin")["name"] == "erin"  # still an admin
    admin.grant("alice", "admin", "ward")
    admin.revoke_grant("admin", "admin", "ward")  # alice still administers the ward
    with pytest.raises(Conflict, match=last) as e:
        team["alice"].revoke_grant("alice", "admin", "ward")
    assert "grant admin to another active human first" in e.value.hint


def test_a_bot_left_holding_owner_is_not_someone_in_charge(team: dict[str, Ward]) -> None:
    """Owner bob grants owner on his dataset to a bot and revokes his own grant: the last-owner rule
    counted the bot, and left a dataset only a bot owned (the review said nothing). Only an active human
    counts, for the last owner of a dataset as for the last admin; a bot's own grant goes freely."""
    admin, bob = team["admin"], team["bob"]
    label, specs = wine_schema_specs()
    admin.create_dataset("cats", Schema.parse(label, specs), owner="bob")
    admin.create_principal("bobbot", kind="service", owner="bob")
    bob.grant("bobbot", "owner", "dataset:cats")
    with pytest.raises(
        AccessDenied,
        match=r"owner grant of 'bob' on dataset:cats is the last one an active human holds \(only "
        r"service principal\(s\) bobbot would hold it",
    ):
        bob.revoke_grant("bob", "owner", "dataset:cats")
    assert ("owner", "dataset:cats") in [(g["role"], g["scope"]) for g in admin.grants("bob")]
    bob.revoke_grant("bobbot", "owner", "dataset:cats")  # the bot's grant leaves no human fewer
    # The last admin: a bot made admin is not someone left to administer the ward.
    admin.create_principal("adminbot", kind="service", owner="alice")
    admin.grant("adminbot", "admin", "ward")
    with pytest.raises(Conflict, match=r"last one an active human holds \(only service principal\(s\) adminbot"):
        admin.revoke_grant("admin", "admin", "ward")
    admin.revoke_grant("adminbot", "admin", "ward")


def test_an_owner_of_the_whole_ward_may_revoke_a_datasets_last_owner_grant(team: dict[str, Ward]) -> None:
    """The review says an admin or an owner of the whole ward can act on a dataset nobody owns (a ward
    owner grants owner anywhere); the refusal said only an admin may. A ward owner may, and the review
    then lists the dataset."""
    admin = team["admin"]
    label, specs = wine_schema_specs()
    admin.create_dataset("cats", Schema.parse(label, specs), owner="bob")
    admin.create_principal("wendy")
    admin.grant("wendy", "owner", "ward")
    wendy = admin.as_key(admin.issue_key("wendy")["key"])
    wendy.revoke_grant("bob", "owner", "dataset:cats")
    rows = [r for r in admin.access_review() if r["kind"] == "dataset_without_owner"]
    assert [(r["dataset"], r["principal"]) for r in rows] == [("cats", "bob")]
    assert "an owner of the whole ward" in rows[0]["detail"]


def test_rotation_never_extends_a_key(team: dict[str, Ward], clock: Clock) -> None:
    short = team["admin"].as_key(team["admin"].issue_key("bob", ttl_days=2)["key"])
    successor = short.rotate_key(short.credential.split("_")[1], overlap_hours=1)
    created = datetime.fromisoformat(successor["created_at"])
    expires = datetime.fromisoformat(successor["expires_at"])
    assert expires - created <= timedelta(days=2)


def test_owner_of_a_bot_cannot_review_its_records(team: dict[str, Ward], tmp_path: Path) -> None:
    team["admin"].grant("alice", "reviewer", "dataset:wine")
    team["admin"].set_policy(
        "wine",
        "gate:\n  detectors: [duplicates, outliers]\n  alpha: 0.5\n  flag_fdr: null\nfirst_import: self-reference\n",
    )
    c = _contribute(team["scraper"], tmp_path)
    queue = team["alice"].review_list(contribution=c["ref"])
    assert queue, "a permissive alpha must flag something to review"
    with pytest.raises(PolicyViolation, match="owns the service principal"):
        team["alice"].review_decide([queue[0]["id"]], "accept", reason="my bot is fine")


def test_separation_of_duties_survives_a_transfer(team: dict[str, Ward], tmp_path: Path) -> None:
    c = _contribute(team["scraper"], tmp_path)
    team["admin"].transfer_principal("scraper", "bob")
    with pytest.raises(PolicyViolation, match=r"owned the service principal .* when it was submitted"):
        team["alice"].approve(c["ref"], reason="it is bob's bot now")


def test_any_standing_key_reads_the_wards_public_key_and_a_revoked_one_does_not(team: dict[str, Ward]) -> None:
    """A dataset's approver checks a model attestation offline with the ward's public key: it needs no
    role on the ward (a public key is public), only a key that still stands."""
    published = team["admin"].public_key()
    assert team["bob"].public_key()["public_key"] == published["public_key"]
    assert team["scraper"].public_key()["fingerprint"] == published["fingerprint"]
    team["admin"].revoke_key(team["bob"].credential.split("_")[1], reason="left")
    with pytest.raises(AuthenticationError):
        team["bob"].public_key()
