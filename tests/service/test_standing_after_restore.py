"""Approvals and override requests count only while their maker stands, after a restore too.

A key revoked, or a role taken away, after the catalog's last backup is held by the ward's signed list
of removals, not by the restored catalog or its ledger. An approval given with that key, or an override
request made by an owner who lost that role, must not count again because an older catalog was put
back: the merge waits for an approval that stands, and the override for two owners who do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.security.test_restore_removals import back_up, move_checkpoints_aside, restore
from tests.service.test_approvals_after_revocation import _key_ref, _submitted
from tests.service.test_block_override import _blocked, team  # noqa: F401  (the fixture)


def _restore_after(team: dict[str, Ward], tmp_path: Path, take_away: object) -> Ward:  # noqa: F811
    """Back up the catalog, run ``take_away(admin)``, put the backup back, move the newer kept
    checkpoints aside (the restore drill) and open the ward again."""
    folder = team["admin"].folder
    team["admin"].close()
    back_up(folder, tmp_path / "backup")
    admin = Ward.open(folder)
    take_away(admin)  # type: ignore[operator]
    admin.close()
    restore(folder, tmp_path / "backup")
    move_checkpoints_aside(folder, tmp_path / "moved")
    return Ward.open(folder)


def test_an_approval_given_with_a_key_revoked_after_the_backup_does_not_count(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    ref = _submitted(team, tmp_path)
    key = team["admin"].issue_key("dan")["key"]
    team["admin"].as_key(key).approve(ref, reason="looks fine")
    cat = team["admin"].issue_key("cat")["key"]
    admin = _restore_after(team, tmp_path, lambda w: w.revoke_key(_key_ref(key), reason="dan's key leaked"))
    # The restored ledger holds the approval and not the revocation; the list holds the revocation.
    with pytest.raises(PolicyViolation, match=r"approver's key dw_\w+ revoked since \(by an event the ward's list"):
        admin.merge(ref)
    admin.as_key(cat).approve(ref, reason="checked it myself")
    assert admin.merge(ref)["ref"] == "wine@v2"


@pytest.mark.parametrize(
    "take_away",
    [
        pytest.param(lambda w: w.revoke_grant("ben", "owner", "dataset:wine"), id="role-revoked"),
        pytest.param(lambda w: w.disable_principal("ben", reason="left for cause"), id="principal-disabled"),
    ],
)
def test_an_override_request_by_an_owner_taken_away_after_the_backup_does_not_count(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
    take_away: object,
) -> None:
    ref = _blocked(team["scraper"], tmp_path)["ref"]
    team["ben"].override_block(ref, reason="checked")
    keys = {name: team["admin"].issue_key(name)["key"] for name in ("cat", "sam")}
    admin = _restore_after(team, tmp_path, take_away)
    # ben's request, his grant and his active row are in the restored catalog; the list says otherwise.
    second = admin.as_key(keys["cat"]).override_block(ref, reason="agreed")
    assert second["status"] == "requested" and admin.contribution(ref)["gate_verdict"] == "block"
    done = admin.as_key(keys["sam"]).override_block(ref, reason="agreed too")
    assert done["status"] == "overridden" and done["requested_by"] == "cat"
