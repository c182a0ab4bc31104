"""A review decision that no longer counts holds back the promotion of a version that took its records in.

The attack: a leaked reviewer key accepts flagged (poisoned) records, an approver approves the contribution
and it is merged; the leak is found and the key revoked before the version is promoted. Approvals given
with the key stop the promotion (``test_approvals_after_revocation.py``); the accept decisions must too,
or the poisoned records reach training on the word of a key nobody answers for any more.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import Conflict, IntegrityViolation
from dataward.service.ward import Ward
from tests.security.attacks import sql
from tests.security.key_team import key_id
from tests.service.test_approvals_after_revocation import _dan_key, _flagged, _key_ref
from tests.service.test_block_override import team  # noqa: F401  (the fixture)


def _accepted_by_a_leaked_key(
    wards: dict[str, Ward], tmp_path: Path, *, merge: bool
) -> tuple[Ward, str, str | None, Ward]:
    """dan's key accepts the flagged records of a contribution, cat approves it, (it is merged,) and the
    key is revoked as leaked: (admin, the contribution, the version or None, dan)."""
    admin = wards["admin"]
    ref = _flagged(wards, tmp_path)
    key, dan = _dan_key(wards)
    dan.review_decide([], "accept", reason="fine", contribution=ref)
    wards["cat"].approve(ref, reason="checked")
    version = admin.merge(ref)["ref"] if merge else None
    admin.revoke_key(_key_ref(key), reason="dan's key leaked")
    return admin, ref, version, dan


def test_records_accepted_with_a_key_revoked_since_hold_back_the_promotion(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin, ref, version, _ = _accepted_by_a_leaked_key(team, tmp_path, merge=True)
    with pytest.raises(Conflict, match=rf"{version} cannot be promoted: 2 record\(s\) of {ref} .*revoked since"):
        admin.promote(version)
    assert [v["stage"] for v in admin.versions("wine")][-1] != "training"
    # A reviewer whose key stands decides them again; then the promotion goes through.
    assert len(team["cat"].review_decide([], "accept", reason="checked again", contribution=ref)) == 2
    assert admin.promote(version)["stage"] == "training"


def _dan_decisions_edited(admin: Ward, statement: str) -> None:
    """A catalog writer edits dan's decisions in the review table behind the ward's back."""
    sql(admin, statement + " WHERE decided_by = (SELECT id FROM principals WHERE name = 'dan') AND status = 'accepted'")


def test_a_decided_at_edited_in_the_catalog_does_not_revive_a_voided_decision_at_merge(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The void is found by matching the decision's event with the item's decision time; a catalog writer
    who moves that time must not make the leaked key's accepts count again."""
    admin, ref, _, _ = _accepted_by_a_leaked_key(team, tmp_path, merge=False)
    _dan_decisions_edited(admin, "UPDATE quarantine SET decided_at = '2001-01-01T00:00:00+00:00'")
    with pytest.raises(IntegrityViolation, match=r"quarantine .*disagrees with the signed ledger"):
        admin.merge(ref)
    assert [v["ref"] for v in admin.versions("wine")] == ["wine@v1"]


@pytest.mark.parametrize(
    "edit",
    ["UPDATE quarantine SET decided_at = '2001-01-01T00:00:00+00:00'", "UPDATE quarantine SET status = 'rejected'"],
)
def test_a_review_row_edited_in_the_catalog_does_not_revive_a_voided_accept_at_promotion(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
    edit: str,
) -> None:
    admin, _, version, _ = _accepted_by_a_leaked_key(team, tmp_path, merge=True)
    _dan_decisions_edited(admin, edit)
    with pytest.raises(IntegrityViolation, match=r"quarantine .*disagrees with the signed ledger"):
        admin.promote(version)
    assert [v["stage"] for v in admin.versions("wine")][-1] != "training"


def test_review_events_retyped_after_the_ward_read_them_do_not_revive_a_voided_decision(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    """A long-lived process (a server) checks the ledger's chain once, then only newer events: a catalog
    writer who retypes the leaked key's review events afterwards must not take its decisions out of what
    the merge finds void (they were read by their type)."""
    admin, ref, _, dan = _accepted_by_a_leaked_key(team, tmp_path, merge=False)
    with pytest.raises(Conflict, match="decision no longer counts"):
        admin.merge(ref)
    sql(
        admin,
        "UPDATE ledger_events SET type = 'review.noted' WHERE type = 'review.accepted' AND actor_key = ?",
        key_id(dan),
    )
    with pytest.raises(Conflict, match="decision no longer counts"):
        admin.merge(ref)
    assert [v["ref"] for v in admin.versions("wine")] == ["wine@v1"]


def test_a_decision_and_its_key_revoked_in_another_process_hold_back_a_long_lived_wards_merge(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    """A server folded the ledger before; another process (a command line) records the leaked key's
    accepts and then revokes the key. The server's next merge folds the newer events and refuses."""
    import os
    import subprocess
    import sys

    admin = team["admin"]
    ref = _flagged(team, tmp_path)
    key, _ = _dan_key(team)
    team["cat"].approve(ref, reason="checked")
    with pytest.raises(Conflict):  # folded here: two records await review
        admin.merge(ref)
    env = {**os.environ, "DATAWARD_WARD": str(admin.folder)}
    env.pop("DATAWARD_URL", None)

    def cli(*args: str, as_key: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "dataward", *args],
            env={**env, "DATAWARD_KEY": as_key},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    cli("review", "accept", "--contribution", ref, "--reason", "fine", as_key=key)
    assert admin.credential is not None
    cli("key", "revoke", _key_ref(key), "--reason", "dan's key leaked", as_key=admin.credential)
    with pytest.raises(Conflict, match="decision no longer counts"):
        admin.merge(ref)
    assert [v["ref"] for v in admin.versions("wine")] == ["wine@v1"]


def test_a_voided_accepts_row_deleted_from_the_catalog_does_not_let_the_merge_through(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The merge finds voided decisions among the review rows the catalog holds for the contribution, and
    holds back only what the signed ledger has not accepted: a catalog writer who deletes the leaked key's
    accepted rows must not have them merged on that key's word."""
    admin = team["admin"]
    ref = _flagged(team, tmp_path)
    key, dan = _dan_key(team)
    dan.review_decide([], "accept", reason="fine", contribution=ref)
    team["cat"].approve(ref, reason="checked")
    admin.revoke_key(_key_ref(key), reason="dan's key leaked")
    with pytest.raises(Conflict, match="decision no longer counts"):
        admin.merge(ref)
    _dan_decisions_edited(admin, "DELETE FROM quarantine")
    with pytest.raises((Conflict, IntegrityViolation)):
        admin.merge(ref)
    assert [v["ref"] for v in admin.versions("wine")] == ["wine@v1"]


def test_a_voided_accepts_row_deleted_from_the_catalog_does_not_let_the_promotion_through(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = team["admin"]
    ref = _flagged(team, tmp_path)
    key, dan = _dan_key(team)
    dan.review_decide([], "accept", reason="fine", contribution=ref)
    team["cat"].approve(ref, reason="checked")
    version = admin.merge(ref)["ref"]
    admin.revoke_key(_key_ref(key), reason="dan's key leaked")
    _dan_decisions_edited(admin, "DELETE FROM quarantine")
    with pytest.raises((Conflict, IntegrityViolation)):
        admin.promote(version)
    assert [v["stage"] for v in admin.versions("wine")][-1] != "training"
