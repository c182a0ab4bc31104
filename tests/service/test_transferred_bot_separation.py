"""Separation of duties survives handing a bot to someone else.

The outside trial: the scraper (owned by ann) submitted a contribution; the bot was then transferred
to ben, and ben approved what his new bot had submitted before the transfer. Nobody approves (or
overrides the block of) a contribution submitted by a service principal they own: neither the owner
at submission nor the owner now.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dataward.access import Approval, approvals_status
from dataward.access.policy import DatasetPolicy
from dataward.access.roles import Role
from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.security.key_team import Clock, contribute, make_team
from tests.service.test_block_override import _blocked, team, team_template  # noqa: F401  (the fixtures)


def _submitted_then_transferred(team: dict[str, Ward], tmp_path: Path) -> str:  # noqa: F811
    c = team["scraper"].contribute("wine", write_csv(tmp_path / "x.csv", wine_rows(120, 125)), source="s:x")
    assert c["gate"]["verdict"] != "block"
    team["admin"].transfer_principal("scraper", "ben")
    return c["ref"]


def test_the_new_owner_of_a_transferred_bot_cannot_approve_its_earlier_contribution(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    ref = _submitted_then_transferred(team, tmp_path)
    with pytest.raises(PolicyViolation, match=r"'ann' own(s|ed) the service principal that submitted"):
        team["ann"].approve(ref, reason="x")
    with pytest.raises(PolicyViolation, match="'ben' owns the service principal that submitted"):
        team["ben"].approve(ref, reason="x")
    # benbot answers to ben, the scraper's owner now: the same side.
    with pytest.raises(PolicyViolation, match="same human"):
        team["benbot"].approve(ref, reason="x")
    assert team["dan"].approve(ref, reason="checked")["decision"] == "approve"


def test_after_the_transfer_the_new_owner_is_the_bot_s_side(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = team["admin"]
    admin.transfer_principal("scraper", "ben")
    # A key issued after the transfer: ann never owned the bot while it was live.
    fresh = admin.as_key(admin.issue_key("scraper")["key"])
    c = fresh.contribute("wine", write_csv(tmp_path / "y.csv", wine_rows(125, 130)), source="s:y")
    with pytest.raises(PolicyViolation, match="'ben' owns the service principal"):
        team["ben"].approve(c["ref"], reason="x")
    # ann no longer owns it, and did not when it was submitted nor when its key was issued: she may approve it.
    assert team["ann"].approve(c["ref"], reason="checked")["decision"] == "approve"


def test_a_former_owner_holding_an_admin_issued_key_cannot_approve_what_the_bot_submits_after(
    tmp_path: Path,
) -> None:
    """The attack: an admin issued the scraper's key, alice (its owner) deployed it; the scraper is handed
    to carol, the key keeps working (no pipeline outage), and alice submits with it as the scraper, then
    approves. She owned the bot while the key she submitted with was live: she stays on its side."""
    kt = make_team(tmp_path / "ward", Clock())
    admin = kt["admin"]
    admin.grant("carol", "approver", "dataset:wine")
    admin.grant("bob", "approver", "dataset:wine")
    admin.transfer_principal("scraper", "carol")
    ref = contribute(kt["scraper"], tmp_path)["ref"]
    with pytest.raises(PolicyViolation, match=r"'alice' owned the service principal that submitted .* while the key"):
        kt["alice"].approve(ref, reason="fine")
    with pytest.raises(PolicyViolation, match="'carol' owns the service principal that submitted"):
        kt["carol"].approve(ref, reason="fine")
    assert kt["bob"].approve(ref, reason="checked")["approvals"] == "1 of 1 valid approval(s)"


def test_a_former_owner_holding_an_admin_issued_key_cannot_override_the_block(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    team["admin"].transfer_principal("scraper", "ben")
    ref = _blocked(team["scraper"], tmp_path)["ref"]  # with the key an admin issued before the transfer
    for who in ("ann", "ben", "benbot"):
        with pytest.raises(PolicyViolation, match="separation of duties"):
            team[who].override_block(ref, reason="x")
    assert team["cat"].override_block(ref, reason="checked")["status"] == "requested"


def test_the_new_owner_cannot_override_the_block_of_its_earlier_contribution(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    ref = _blocked(team["scraper"], tmp_path)["ref"]
    team["admin"].transfer_principal("scraper", "ben")
    for who in ("ann", "ben", "benbot"):
        with pytest.raises(PolicyViolation, match="separation of duties"):
            team[who].override_block(ref, reason="x")
    assert team["cat"].override_block(ref, reason="checked")["status"] == "requested"
    assert team["sam"].override_block(ref, reason="agreed")["status"] == "overridden"


def test_a_request_made_before_the_requester_got_the_bot_no_longer_stands(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    ref = _blocked(team["scraper"], tmp_path)["ref"]
    assert team["ben"].override_block(ref, reason="looks fine")["status"] == "requested"
    team["admin"].transfer_principal("scraper", "ben")
    # cat's call is a fresh request, not the second half of ben's: ben is now on the bot's side.
    assert team["cat"].override_block(ref, reason="checked")["status"] == "requested"
    assert team["admin"].contribution(ref)["gate_verdict"] == "block"


def test_an_approval_by_the_owner_now_does_not_count() -> None:
    policy = DatasetPolicy.from_yaml("approvals:\n  required: 1\n")
    given = Approval("ben", "h", Role.APPROVER, "ok", datetime(2026, 1, 1, tzinfo=UTC))
    status = approvals_status(
        policy, "h", [given], submitter_id="scraper", submitter_owner_id="ann", submitter_current_owner_id="ben"
    )
    assert not status.satisfied and [a.approver_id for a in status.conflicted] == ["ben"]
    before = approvals_status(policy, "h", [given], submitter_id="scraper", submitter_owner_id="ann")
    assert before.satisfied


def test_the_trial_on_the_command_line(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the trial ran it: ``principal transfer``, then each owner's ``approve`` is refused (exit 6)."""
    from typer.testing import CliRunner

    from dataward.cli.app import app

    admin = team["admin"]
    c = team["scraper"].contribute("wine", write_csv(tmp_path / "x.csv", wine_rows(120, 125)), source="s:x")
    monkeypatch.setenv("DATAWARD_WARD", str(admin.folder))
    monkeypatch.delenv("DATAWARD_URL", raising=False)
    monkeypatch.delenv("DATAWARD_KEY", raising=False)
    runner = CliRunner()
    moved = runner.invoke(app, ["principal", "transfer", "scraper", "--to", "ben"])
    assert moved.exit_code == 0, moved.stdout
    for who in ("ann", "ben"):
        key = admin.issue_key(who)["key"]
        refused = runner.invoke(app, ["approve", c["ref"], "--reason", "x"], env={"DATAWARD_KEY": key})
        assert refused.exit_code == 6, (who, refused.stdout)
    assert not [a for a in admin.ledger(types=["contribution.approved"]) if a["subject"]["contribution"] == c["id"]]


def test_a_former_owner_cannot_approve_her_own_contribution_through_a_bot_she_handed_on(
    tmp_path: Path,
) -> None:
    """The mirror of the attack above: the *approving* bot changes hands. alice's checker bot (approver on
    wine) runs with a key an admin issued before it was handed to carol; alice submits, then approves her
    own contribution as the checker. Before the hand-over that was refused (the same human); the key she
    acts with was live while she owned the bot, so she is still the bot's side."""
    kt = make_team(tmp_path / "ward", Clock())
    admin = kt["admin"]
    admin.create_principal("checker", kind="service", owner="alice")
    admin.grant("checker", "approver", "dataset:wine")
    admin.grant("alice", "contributor", "dataset:wine")
    checker = admin.as_key(admin.issue_key("checker")["key"])  # deployed by alice, its owner
    admin.transfer_principal("checker", "carol")
    ref = contribute(kt["alice"], tmp_path)["ref"]
    with pytest.raises(PolicyViolation, match="separation of duties"):
        checker.approve(ref, reason="fine")
    # A key issued after the hand-over: alice never held it, carol's bot may approve alice's work.
    fresh = admin.as_key(admin.issue_key("checker")["key"])
    assert fresh.approve(ref, reason="checked")["approvals"] == "1 of 1 valid approval(s)"
    # Nor may the old key approve the version holding alice's contribution as a whole.
    version = admin.merge(ref)["ref"]
    with pytest.raises(PolicyViolation, match="acts with a key issued before it was handed on"):
        checker.approve_version(version, reason="fine")


@pytest.mark.parametrize(
    "edit",
    [
        "DELETE FROM ledger_events WHERE type = 'principal.transferred'",
        "UPDATE ledger_events SET type = 'principal.noted' WHERE type = 'principal.transferred'",
        "DELETE FROM ledger_events WHERE type = 'key.issued' AND subject LIKE '%' || ? || '%'",
    ],
    ids=["transfer-deleted", "transfer-retyped", "key-issue-deleted"],
)
def test_a_hand_over_or_key_issue_taken_out_of_the_ledger_is_refused_not_forgotten(tmp_path: Path, edit: str) -> None:
    """Who owned a bot while its key was live is read from ledger events: a catalog writer (no ward key) who
    deletes the hand-over, or the issue of the key, or retypes it so that it is no longer read, must not put
    the former owner back among those who may approve what the bot submitted."""
    from dataward.domain.errors import IntegrityViolation
    from tests.security.attacks import sql
    from tests.security.key_team import key_id

    kt = make_team(tmp_path / "ward", Clock())
    admin = kt["admin"]
    admin.grant("carol", "approver", "dataset:wine")
    admin.transfer_principal("scraper", "carol")
    ref = contribute(kt["scraper"], tmp_path)["ref"]
    sql(admin, edit, *([key_id(kt["scraper"])] if "?" in edit else []))
    with pytest.raises((IntegrityViolation, PolicyViolation)):
        kt["alice"].approve(ref, reason="fine")


def test_a_bot_handed_on_cannot_decide_or_override_for_its_former_owner_with_its_old_key(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The reviewing and overriding bot changes hands: ben's benbot keeps the key issued while ben owned
    it. ben's flagged records, and ben's blocked batch, must not be decided or lifted by it."""
    from tests.service.test_block_override import _blocked

    admin = team["admin"]
    old_key = team["benbot"]
    admin.transfer_principal("benbot", "cat")
    rows = wine_rows(0, 40, shuffled=True)
    for row in rows[:2]:
        row["cultivar"] = (int(row["cultivar"]) + 1) % 3
    flagged = team["ben"].contribute("wine", write_csv(tmp_path / "f.csv", rows), source="s:ben")
    assert flagged["gate"]["queued_for_review"] == 2
    with pytest.raises(PolicyViolation, match="acts with a key issued before it was handed on"):
        old_key.review_decide([], "accept", reason="fine", contribution=flagged["ref"])
    blocked = _blocked(team["ben"], tmp_path)
    with pytest.raises(PolicyViolation, match="acts with a key issued before it was handed on"):
        old_key.override_block(blocked["ref"], reason="fine")
    # A key issued after the hand-over: ben never held it, and cat's bot may decide ben's records.
    fresh = admin.as_key(admin.issue_key("benbot")["key"])
    assert len(fresh.review_decide([], "accept", reason="checked", contribution=flagged["ref"])) == 2


@pytest.mark.parametrize("old_key", [False, True], ids=["merged-then-handed-on", "merged-with-its-old-key"])
def test_the_human_whose_bot_made_a_version_cannot_approve_it_after_handing_the_bot_on(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
    old_key: bool,
) -> None:
    """Nobody approves a version their side made (docs/access.md). benbot (ben's) merges sam's contribution,
    then is handed to cat; or is handed to cat first, and ben merges with the key issued while he owned it.
    Either way ben's side made the version, and ben may not approve it as a whole."""
    from tests.service.test_approvals_after_revocation import _submitted

    admin = team["admin"]
    ref = _submitted(team, tmp_path)
    team["dan"].approve(ref, reason="checked")
    if old_key:
        admin.transfer_principal("benbot", "cat")
    version = team["benbot"].merge(ref)["ref"]
    if not old_key:
        admin.transfer_principal("benbot", "cat")
    with pytest.raises(PolicyViolation, match=r"'ben' .*made this version"):
        team["ben"].approve_version(version, reason="mine")
    with pytest.raises(PolicyViolation, match="'cat' owns the service principal that made this version"):
        team["cat"].approve_version(version, reason="mine")
    assert team["ann"].approve_version(version, reason="checked")["decision"] == "approve"


def test_a_long_lived_ward_sees_keys_issued_and_hand_overs_made_by_another_process(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Who owned a bot when is folded once per process, then only newer events: a server that folded the
    ledger before another process (a command line) issued the scraper a key and handed the scraper on must
    still put ann, its owner while that key was live, on the side of what it submits with it; and not
    on the side of what it submits with a key issued after the hand-over."""
    import json
    import os
    import subprocess
    import sys

    admin = team["admin"]  # the fixture's merge and promotion folded the ledger in this process
    env = {**os.environ, "DATAWARD_WARD": str(admin.folder), "DATAWARD_KEY": str(admin.credential)}
    env.pop("DATAWARD_URL", None)

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "dataward", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    before = admin.as_key(json.loads(cli("key", "issue", "scraper", "--json"))["key"])
    cli("principal", "transfer", "scraper", "--to", "ben")
    after = admin.as_key(json.loads(cli("key", "issue", "scraper", "--json"))["key"])
    old = before.contribute("wine", write_csv(tmp_path / "o.csv", wine_rows(120, 125)), source="s:o")["ref"]
    with pytest.raises(PolicyViolation, match=r"'ann' owned the service principal that submitted .* while the key"):
        team["ann"].approve(old, reason="fine")
    new = after.contribute("wine", write_csv(tmp_path / "n.csv", wine_rows(125, 130)), source="s:n")["ref"]
    assert team["ann"].approve(new, reason="checked")["decision"] == "approve"


def _handed_on_twice_with_an_act_dated_back(
    kt: dict[str, Ward], clock: Clock, act: Callable[[], str], *, between: bool
) -> str:
    """The scraper (alice's, its key issued by an admin) is handed to carol, then to dave. With the old key
    it acts (``between`` the hand-overs, while carol owns it, or after both) on a host whose clock is half
    an hour behind: within the hour the ward tolerates (hosts serving one catalog, a use case whose clock
    was read before another committed). The act follows the first hand-over in the ledger, and is dated
    before it."""
    admin = kt["admin"]
    admin.create_principal("dave")
    admin.transfer_principal("scraper", "carol")
    if not between:
        clock.advance(seconds=1)
        admin.transfer_principal("scraper", "dave")
    clock.advance(minutes=-30)
    done = act()
    clock.advance(minutes=31)
    if between:
        admin.transfer_principal("scraper", "dave")
    return done


def test_an_owner_between_two_hand_overs_is_on_the_side_of_an_act_dated_before_the_first(tmp_path: Path) -> None:
    """Who owned a bot while its key was live is decided in ledger order, not by the events' times, which
    may go back a little from one event to the next: carol owned the scraper while the key it submitted
    with (issued before she got it) was live, so she may not approve what it submitted with it, whatever
    the times say."""
    clock = Clock()
    kt = make_team(tmp_path / "ward", clock)
    for name in ("carol", "bob"):
        kt["admin"].grant(name, "approver", "dataset:wine")
    ref = _handed_on_twice_with_an_act_dated_back(
        kt, clock, lambda: str(contribute(kt["scraper"], tmp_path)["ref"]), between=False
    )
    with pytest.raises(PolicyViolation, match=r"'carol' owned the service principal that submitted .* while the key"):
        kt["carol"].approve(ref, reason="fine")
    assert kt["bob"].approve(ref, reason="checked")["decision"] == "approve"


def test_an_owner_between_two_hand_overs_may_not_approve_a_version_made_dated_before_the_first(
    tmp_path: Path,
) -> None:
    """The same for a version the scraper merged while carol owned it: its maker's owner then is carol (the
    owner in ledger order), not alice, whom the merge's earlier time would name."""
    clock = Clock()
    kt = make_team(tmp_path / "ward", clock)
    admin = kt["admin"]
    admin.grant("scraper", "owner", "dataset:wine")
    for name in ("carol", "bob"):
        admin.grant(name, "approver", "dataset:wine")
    ref = admin.contribute("wine", write_csv(tmp_path / "w.csv", wine_rows(0, 60, shuffled=True)), source="s:w")["ref"]
    if pending := [item["id"] for item in admin.review_list(contribution=ref)]:
        kt["bob"].review_decide(pending, "accept", reason="checked")
    kt["bob"].approve(ref, reason="checked")
    version = _handed_on_twice_with_an_act_dated_back(
        kt, clock, lambda: str(kt["scraper"].merge(ref)["ref"]), between=True
    )
    with pytest.raises(PolicyViolation, match=r"'carol' .*made this version"):
        kt["carol"].approve_version(version, reason="mine")
    assert kt["bob"].approve_version(version, reason="checked")["decision"] == "approve"
