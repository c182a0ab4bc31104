"""A policy raised after a merge does not strand the versions already made: merged contributions and
whole versions can still be approved, bound to content, and never by the work's own side."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dataward.access import Approval, DatasetPolicy, approvals_status
from dataward.domain.errors import AccessDenied, Conflict, IntegrityViolation, PolicyViolation
from dataward.service.ward import Ward
from tests.helpers import merge_reviewed, wine_rows, write_csv
from tests.security.attacks import _sqlite
from tests.security.key_team import Clock, contribute, make_team

TWO_APPROVALS = "approvals:\n  required: 2\ngate:\n  detectors: [duplicates]\nfirst_import: self-reference\n"


def contribute_more(ward: Ward, folder: Path) -> dict:
    """A second batch of other records than the first, so that v2's manifest differs from v1's."""
    path = write_csv(folder / "b.csv", wine_rows(60, 120, shuffled=True))
    return ward.contribute("wine", path, source="https://scrape.example/b")


@pytest.fixture
def team(tmp_path: Path) -> dict[str, Ward]:
    """The key team plus two independent approvers, and wine@v1: the scraper's wine#1, approved once by
    dave and merged, before the policy was raised to two approvals."""
    team = make_team(tmp_path / "ward", Clock())
    admin = team["admin"]
    for name in ("dave", "erin"):
        admin.create_principal(name)
        admin.grant(name, "approver", "dataset:wine")
        team[name] = admin.as_key(admin.issue_key(name)["key"])
    first = contribute(team["scraper"], tmp_path, "a")
    team["dave"].approve(first["ref"], reason="checked the source")
    merge_reviewed(admin, first["ref"])
    admin.set_policy("wine", TWO_APPROVALS)
    return team


def test_a_tightened_policy_no_longer_strands_a_version(team: dict[str, Ward]) -> None:
    admin = team["admin"]
    with pytest.raises(PolicyViolation, match="1 of 2 valid approval"):
        admin.promote("wine@v1")
    # The merged contribution can still receive its second approval, and promotion counts it.
    out = team["erin"].approve("wine#1", reason="re-checked after the policy change")
    assert out["satisfied"] is True
    assert admin.promote("wine@v1")["stage"] == "training"


def test_a_version_can_be_approved_as_a_whole(team: dict[str, Ward]) -> None:
    admin = team["admin"]
    out = team["erin"].approve("wine@v1", reason="looked at the whole version")
    assert out["version"] == "wine@v1" and out["satisfied"] is True
    event = admin.ledger(types=["version.approved"])[0]
    version = admin.versions("wine")[0]
    assert event["subject"]["version"] == version["id"]
    assert event["payload"]["content_hash"] == out["content_hash"]
    traced = admin.trace("wine@v1")["subject"]["approvals"]
    assert [(a["by"], a["current"]) for a in traced] == [("erin", True)]
    # The approval is a projection of its signed event like any row: verify rebuilds it.
    assert admin.verify().ok
    assert admin.promote("wine@v1")["stage"] == "training"
    # Only a candidate is approved: the training version is done.
    with pytest.raises(Conflict, match="only a candidate"):
        team["dave"].approve("wine@v1", reason="again")


def test_nobody_approves_a_version_holding_their_own_work(team: dict[str, Ward]) -> None:
    admin, alice = team["admin"], team["alice"]
    # alice is an approver on wine and owns the scraper that submitted wine#1.
    with pytest.raises(PolicyViolation, match="separation of duties") as refused:
        alice.approve("wine@v1", reason="my bot's data looks fine")
    assert "wine#1" in refused.value.message
    with pytest.raises(PolicyViolation, match="separation of duties"):
        alice.approve("wine#1", reason="merged, so maybe now")
    # The scraper itself holds no approver role; a reader neither.
    with pytest.raises(AccessDenied):
        team["scraper"].approve("wine@v1", reason="self")
    with pytest.raises(AccessDenied):
        team["bob"].approve("wine@v1", reason="reader")
    assert not admin.ledger(types=["version.approved"])
    with pytest.raises(PolicyViolation, match="1 of 2"):
        admin.promote("wine@v1")


def test_a_version_approval_is_bound_to_that_version(team: dict[str, Ward], tmp_path: Path) -> None:
    admin, dave, erin = team["admin"], team["dave"], team["erin"]
    erin.approve("wine@v1", reason="v1 as a whole")
    second = contribute_more(team["scraper"], tmp_path)
    dave.approve(second["ref"], reason="checked")
    erin.approve(second["ref"], reason="checked")
    merge_reviewed(admin, second["ref"])
    # v2 holds wine#1 too, but erin approved v1's content, not v2's: wine#1 has one valid approval.
    with pytest.raises(PolicyViolation) as refused:
        admin.promote("wine@v2")
    assert "wine#1 has 1 of 2 valid approval(s)" in refused.value.message
    assert "wine#2" not in refused.value.message
    erin.approve("wine@v2", reason="v2 as a whole")
    assert admin.promote("wine@v2")["stage"] == "training"


def test_a_version_approval_by_the_same_approver_counts_once(team: dict[str, Ward]) -> None:
    # dave approved wine#1 itself; his approval of the version adds no second approver.
    out = team["dave"].approve("wine@v1", reason="the version too")
    assert out["satisfied"] is False and "1 of 2" in out["approvals"] and "1 repeated" in out["approvals"]
    with pytest.raises(PolicyViolation, match="1 of 2"):
        team["admin"].promote("wine@v1")


def test_an_approval_for_another_manifest_is_stale() -> None:
    policy = DatasetPolicy.from_yaml(TWO_APPROVALS)
    at = datetime(2026, 11, 2, tzinfo=UTC)
    own = Approval("p_dave", "b3:contribution", "approver", "checked", at)
    whole = Approval("p_erin", "b3:manifest-v1", "approver", "v1", at, on="version")
    kw = {"submitter_id": "p_bot", "submitter_owner_id": "p_alice"}
    held = approvals_status(
        policy, "b3:contribution", [own], version_hash="b3:manifest-v1", version_approvals=[whole], **kw
    )
    assert held.satisfied and len(held.counted) == 2
    moved = approvals_status(
        policy, "b3:contribution", [own], version_hash="b3:manifest-v2", version_approvals=[whole], **kw
    )
    assert not moved.satisfied and moved.stale == (whole,)
    # The submitter's side never counts, on a version either.
    mine = Approval("p_alice", "b3:manifest-v1", "approver", "mine", at, on="version")
    side = approvals_status(
        policy, "b3:contribution", [own], version_hash="b3:manifest-v1", version_approvals=[mine], **kw
    )
    assert side.conflicted == (mine,) and not side.satisfied


def test_a_version_whose_manifest_was_swapped_is_not_promoted_on_its_approvals(
    team: dict[str, Ward], tmp_path: Path
) -> None:
    admin = team["admin"]
    team["erin"].approve("wine@v1", reason="v1 as a whole")
    second = contribute_more(team["scraper"], tmp_path)
    team["dave"].approve(second["ref"], reason="checked")
    team["erin"].approve(second["ref"], reason="checked")
    merge_reviewed(admin, second["ref"])
    v1, v2 = admin.versions("wine")
    # Behind the ward's back: v1 now points at v2's manifest, which holds records nobody approved as v1.
    db = _sqlite(admin)
    manifest = db.execute("SELECT manifest_object FROM versions WHERE id = ?", (v2["id"],)).fetchone()[0]
    db.execute("UPDATE versions SET manifest_object = ? WHERE id = ?", (manifest, v1["id"]))
    db.close()
    # erin's approval was for v1's manifest, not for what v1 points at now: it no longer counts (and the
    # guarded read refuses the swapped row; whichever check runs first refuses the promotion).
    with pytest.raises((PolicyViolation, IntegrityViolation)) as refused:
        admin.promote("wine@v1")
    if isinstance(refused.value, PolicyViolation):
        assert "wine#1 has 1 of 2 valid approval(s), 1 stale" in refused.value.message
    db = _sqlite(admin)
    assert db.execute("SELECT stage FROM versions WHERE id = ?", (v1["id"],)).fetchone()[0] == "candidate"
    db.close()
    # The listing refuses the swapped row too, rather than list it (see service/guard.py).
    with pytest.raises(IntegrityViolation, match="manifest_object"):
        admin.versions("wine")
    with pytest.raises(IntegrityViolation):
        team["dave"].approve("wine@v1", reason="approving the swapped content")


def test_nobody_approves_the_version_they_made(team: dict[str, Ward], tmp_path: Path) -> None:
    admin, dave, erin = team["admin"], team["dave"], team["erin"]
    second = contribute_more(team["scraper"], tmp_path)
    dave.approve(second["ref"], reason="checked")
    erin.approve(second["ref"], reason="checked")
    if pending := [item["id"] for item in admin.review_list(contribution=second["ref"])]:
        admin.review_decide(pending, "accept", reason="checked")
    assert erin.merge(second["ref"])["ref"] == "wine@v2"
    with pytest.raises(PolicyViolation, match="'erin' made this version"):
        erin.approve("wine@v2", reason="my own merge")
    # Counted the same way should such an approval exist: the maker's approval of a version is conflicted.
    policy = DatasetPolicy.from_yaml(TWO_APPROVALS)
    at = datetime(2026, 11, 2, tzinfo=UTC)
    made = Approval("p_erin", "b3:m", "approver", "mine", at, on="version")
    status = approvals_status(
        policy,
        "b3:c",
        [],
        submitter_id="p_bot",
        version_hash="b3:m",
        version_approvals=[made],
        version_made_by="p_erin",
    )
    assert status.conflicted == (made,)


def test_one_human_and_their_bot_are_one_approver(team: dict[str, Ward]) -> None:
    """Two approvals must come from two people: dave's own bot, granted approver, adds no second
    approver to dave's approval, on the contribution nor on the version as a whole."""
    admin = team["admin"]
    admin.create_principal("dave-bot", kind="service", owner="dave")
    admin.grant("dave-bot", "approver", "dataset:wine")
    bot = admin.as_key(admin.issue_key("dave-bot")["key"])
    out = bot.approve("wine#1", reason="my human checked it")
    assert out["satisfied"] is False and "1 of 2" in out["approvals"] and "1 repeated" in out["approvals"]
    bot.approve("wine@v1", reason="the version too")
    with pytest.raises(PolicyViolation, match="1 of 2"):
        admin.promote("wine@v1")
    # A second person does count.
    assert team["erin"].approve("wine#1", reason="checked")["satisfied"] is True
    assert admin.promote("wine@v1")["stage"] == "training"


def test_a_policy_relaxed_in_the_catalog_alone_promotes_nothing(team: dict[str, Ward]) -> None:
    """The promotion checks the policy it applies against the signed ledger: two approvals lowered to
    one in the catalog's row, behind the ledger's back, does not let wine@v1 through on one approval."""
    admin = team["admin"]
    db = _sqlite(admin)
    db.execute("UPDATE datasets SET policy = replace(policy, 'required: 2', 'required: 1') WHERE name = 'wine'")
    db.close()
    assert admin.policy("wine")["policy"]["approvals"]["required"] == 1
    with pytest.raises(IntegrityViolation, match=r"refusing to promote dataset 'wine': .*policy is"):
        admin.promote("wine@v1")
    assert admin.versions("wine")[0]["stage"] == "candidate"


def test_an_approval_added_in_the_catalog_alone_counts_for_nothing(team: dict[str, Ward]) -> None:
    """A second approval of wine#1, copied from dave's into erin's name in the catalog's approvals table
    without a signed event, does not promote wine@v1: the promotion checks the approvals it counts."""
    admin = team["admin"]
    erin = next(p["id"] for p in admin.principals() if p["name"] == "erin")
    db = _sqlite(admin)
    db.execute(
        "INSERT INTO approvals (id, contribution_id, principal_id, decision, content_hash, reason, created_at) "
        "SELECT 'a_forged', contribution_id, ?, decision, content_hash, reason, created_at FROM approvals",
        (erin,),
    )
    db.close()
    with pytest.raises(IntegrityViolation, match=r"refusing to promote wine#1 \(approvals a_forged\): "):
        admin.promote("wine@v1")
    assert admin.versions("wine")[0]["stage"] == "candidate"


def test_a_grant_written_into_the_catalog_alone_gives_no_power(team: dict[str, Ward]) -> None:
    """mallory, who holds no role, writes herself an approver grant on wine straight into the catalog and
    tries to approve wine#1: the grant was never recorded in the signed ledger, so she is refused and no
    approval is signed under her name."""
    admin, mallory = team["admin"], team["mallory"]
    who = next(p["id"] for p in admin.principals() if p["name"] == "mallory")
    db = _sqlite(admin)
    db.execute(
        "INSERT INTO grants (id, principal_id, role, scope_kind, scope_name, granted_by, granted_at) "
        "SELECT 'g_forged', ?, 'approver', 'dataset', 'wine', granted_by, granted_at FROM grants LIMIT 1",
        (who,),
    )
    db.close()
    before = len(admin.ledger(types=["contribution.approved"]))
    with pytest.raises(IntegrityViolation, match=r"grant g_forged: approver on dataset:wine\).*never recorded") as e:
        mallory.approve("wine#1", reason="looks fine")
    assert e.value.details["row"] == "grants g_forged"
    assert len(admin.ledger(types=["contribution.approved"])) == before
