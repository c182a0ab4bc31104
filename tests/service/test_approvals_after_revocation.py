"""An approval counts only while its approver and the key it was given with still stand.

The outside trial (F6): carol's contribution was approved with bob's key; the admin then revoked that
key as leaked (and contained it with ``quarantine dw_KEY``, which found "no contribution"), or disabled
bob for cause, and alice's merge and promotion still counted bob's approval. Now a revocation or a
disabling voids the approvals given before it (the status names why), a rotation does not, and
``quarantine dw_KEY`` lists what the key approved.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dataward.domain.errors import Conflict, IntegrityViolation, PolicyViolation
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.security.attacks import sql
from tests.service.test_block_override import team  # noqa: F401  (the fixture)


def _submitted(team: dict[str, Ward], tmp_path: Path, name: str = "x") -> str:  # noqa: F811
    """sam's contribution, its review queue decided by dan (reviewer): only approvals stand between it
    and a merge."""
    c = team["sam"].contribute("wine", write_csv(tmp_path / f"{name}.csv", wine_rows(120, 125)), source=f"s:{name}")
    assert c["gate"]["verdict"] != "block"
    if pending := [item["id"] for item in team["admin"].review_list(contribution=c["ref"])]:
        team["dan"].review_decide(pending, "accept", reason="checked")
    return str(c["ref"])


def _flagged(team: dict[str, Ward], tmp_path: Path) -> str:  # noqa: F811
    """sam's batch with two records relabelled (exact conflicts with trusted ones): both wait for review."""
    rows = wine_rows(0, 40, shuffled=True)
    for row in rows[:2]:
        row["cultivar"] = (int(row["cultivar"]) + 1) % 3
    c = team["sam"].contribute("wine", write_csv(tmp_path / "f.csv", rows), source="s:flagged")
    assert c["gate"]["verdict"] == "review" and c["gate"]["queued_for_review"] == 2
    return str(c["ref"])


def _dan_key(team: dict[str, Ward]) -> tuple[str, Ward]:  # noqa: F811
    key = team["admin"].issue_key("dan")["key"]
    return key, team["admin"].as_key(key)


def _key_ref(key: str) -> str:
    return "_".join(key.split("_")[:2])


def test_an_approval_given_with_a_key_revoked_since_no_longer_counts_at_merge(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    ref = _submitted(team, tmp_path)
    key, dan = _dan_key(team)
    dan.approve(ref, reason="looks fine")
    team["admin"].revoke_key(_key_ref(key), reason="dan's key leaked; the approval was not his")
    with pytest.raises(
        PolicyViolation,
        match=r"voided \(not counted: dan's approval of the contribution: "
        r"approver's key dw_\w+ revoked since \(dan's key leaked",
    ):
        team["admin"].merge(ref)
    # Another approver's approval (an owner's) is what the merge waits for.
    team["cat"].approve(ref, reason="checked it myself")
    assert team["admin"].merge(ref)["ref"] == "wine@v2"


def test_an_approval_by_a_principal_disabled_since_no_longer_counts_at_merge(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    ref = _submitted(team, tmp_path)
    team["dan"].approve(ref, reason="looks fine")
    team["admin"].disable_principal("dan", reason="offboarded for cause")
    with pytest.raises(PolicyViolation, match=r"approver disabled since \(offboarded for cause\)"):
        team["admin"].merge(ref)


def test_after_the_merge_a_revocation_or_a_disabling_refuses_the_promotion(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    ref = _submitted(team, tmp_path)
    key, dan = _dan_key(team)
    dan.approve(ref, reason="looks fine")
    version = team["admin"].merge(ref)["ref"]
    team["admin"].revoke_key(_key_ref(key), reason="leaked")
    with pytest.raises(PolicyViolation, match=r"cannot be promoted: .*approver's key dw_\w+ revoked since \(leaked\)"):
        team["admin"].promote(version)

    ref2 = _submitted(team, tmp_path, "y")
    team["dan"].approve(ref2, reason="looks fine")
    version2 = team["admin"].merge(ref2)["ref"]
    team["admin"].disable_principal("dan", reason="offboarded")
    with pytest.raises(PolicyViolation, match=r"cannot be promoted: .*approver disabled since \(offboarded\)"):
        team["admin"].promote(version2)


def test_an_approval_given_with_a_key_rotated_since_still_counts(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    ref = _submitted(team, tmp_path)
    key, dan = _dan_key(team)
    dan.approve(ref, reason="looks fine")
    # A rotation replaces the secret; it says nothing against what the key did.
    dan.rotate_key(_key_ref(key), overlap_hours=0)
    version = team["admin"].merge(ref)["ref"]
    assert team["admin"].promote(version)["stage"] == "training"


def test_quarantine_by_key_lists_what_the_key_approved(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    ref = _submitted(team, tmp_path)
    key, dan = _dan_key(team)
    dan.approve(ref, reason="looks fine")
    before = team["admin"].quarantine_by(_key_ref(key), reason="contain it")
    assert before["datasets"] == []
    assert [(a["approved"], a["by"], a["counts"]) for a in before["approvals"]] == [(ref, "dan", True)]
    assert "until the key is revoked" in before["approvals"][0]["why"]
    team["admin"].revoke_key(_key_ref(key), reason="leaked")
    after = team["admin"].quarantine_by(_key_ref(key), reason="contain what the leaked key did")
    [listed] = after["approvals"]
    assert listed["counts"] is False and "revoked since (leaked)" in listed["why"]


def test_a_key_that_did_nothing_is_still_not_found(team: dict[str, Ward]) -> None:  # noqa: F811
    key, _ = _dan_key(team)
    with pytest.raises(Exception, match="touched no contribution and approved nothing"):
        team["admin"].quarantine_by(_key_ref(key), reason="x")


def test_an_edited_revocation_event_is_refused_not_believed(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    ref = _submitted(team, tmp_path)
    key, dan = _dan_key(team)
    dan.approve(ref, reason="looks fine")
    team["admin"].revoke_key(_key_ref(key), reason="leaked")
    # A catalog writer (no ward key) rewrites the revocation so that it names another key.
    sql(
        team["admin"],
        "UPDATE ledger_events SET subject = replace(subject, ?, 'zzzzzzzz') WHERE type = 'key.revoked'",
        _key_ref(key).removeprefix("dw_"),
    )
    with pytest.raises(IntegrityViolation):
        team["admin"].merge(ref)


@pytest.mark.parametrize("stop", ["revoked", "disabled"])
def test_a_review_decision_whose_key_was_revoked_since_goes_back_to_the_queue(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
    stop: str,
) -> None:
    """A leaked reviewer key accepts flagged (poisoned) records; the key is revoked (or its holder disabled).
    Its decisions no longer count: the records wait for review again and the merge waits for them."""
    admin = team["admin"]
    ref = _flagged(team, tmp_path)
    key, dan = _dan_key(team)
    record = admin.review_list(contribution=ref)[0]["record_id"]
    dan.review_decide([], "accept", reason="fine", contribution=ref)
    team["cat"].approve(ref, reason="checked")
    assert admin.review_list(contribution=ref) == []
    if stop == "revoked":
        admin.revoke_key(_key_ref(key), reason="dan's key leaked")
        why = r"key dw_\w+ revoked since \(dan's key leaked\)"
    else:
        admin.disable_principal("dan", reason="left for cause")
        why = r"disabled since \(left for cause\)"
    with pytest.raises(Conflict, match=rf"2 record\(s\) of {ref} await review .*{why}"):
        admin.merge(ref)
    queue = admin.review_list(contribution=ref)
    assert [i["status"] for i in queue] == ["pending", "pending"]
    assert all(i["voided"]["was"] == "accepted" and i["voided"]["by"] == "dan" for i in queue)
    assert re.search(why, queue[0]["voided"]["why"])
    assert admin.review_list(ref.split("#")[0], status="accepted", contribution=ref) == []
    review = admin.trace(record)["contributions"][0]["review"]
    assert review["status"] == "pending" and re.search(why, review["voided"]["why"])
    # A reviewer whose key stands decides them again; then the merge goes through.
    assert len(team["cat"].review_decide([], "accept", reason="checked again", contribution=ref)) == 2
    assert admin.merge(ref)["ref"] == "wine@v2"


@pytest.mark.parametrize("event_type", ["contribution.approved", "key.revoked"])
def test_events_retyped_after_a_long_lived_ward_read_them_do_not_revive_a_voided_approval(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
    event_type: str,
) -> None:
    """A long-lived process (a server) checks the ledger's chain once, then only newer events: a catalog
    writer who afterwards retypes the leaked key's approval event, or its revocation, must not take the
    approval out of what the merge finds void (they were read by their type)."""
    from tests.security.key_team import key_id

    admin = team["admin"]
    ref = _submitted(team, tmp_path)
    key, dan = _dan_key(team)
    dan.approve(ref, reason="looks fine")
    admin.revoke_key(_key_ref(key), reason="dan's key leaked")
    with pytest.raises(PolicyViolation, match="voided"):
        admin.merge(ref)
    column = "actor_key" if event_type == "contribution.approved" else "subject"
    pattern = key_id(dan) if column == "actor_key" else f"%{key_id(dan)}%"
    sql(admin, f"UPDATE ledger_events SET type = 'note.kept' WHERE type = ? AND {column} LIKE ?", event_type, pattern)
    with pytest.raises((PolicyViolation, IntegrityViolation)):
        admin.merge(ref)
    assert [v["ref"] for v in admin.versions("wine")] == ["wine@v1"]
