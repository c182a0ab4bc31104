"""An approval given with a key rotated before the backup and revoked (leaked) after it counts again
after the restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.service.test_approvals_after_revocation import _key_ref, _submitted
from tests.service.test_block_override import team  # noqa: F401  (the fixture)
from tests.service.test_standing_after_restore import _restore_after


def test_an_approval_with_a_rotated_key_revoked_after_the_backup_does_not_count(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    """dan approves with key K; K is rotated (its approvals keep counting), the catalog backed up, then
    K found leaked and revoked: the approval no longer counts. After the restore the list holds both
    events, but ``fold`` keeps K's earliest end (the rotation, not a listed key stop), so
    ``Standing.with_listed`` adds nothing and the approval counts again."""
    admin = team["admin"]
    key = admin.issue_key("dan")["key"]
    ref = _submitted(team, tmp_path)
    admin.as_key(key).approve(ref, reason="looks fine")
    admin.rotate_key(_key_ref(key), overlap_hours=0)

    def revoke(w: Ward) -> None:
        w.revoke_key(_key_ref(key), reason="dan's old key leaked; the approval was not his")
        with pytest.raises(PolicyViolation, match=r"approver's key dw_\w+ revoked since"):
            w.merge(ref)  # control: before the restore the approval no longer counts

    restored = _restore_after(team, tmp_path, revoke)
    with pytest.raises(PolicyViolation, match=r"approver's key dw_\w+ revoked since"):
        restored.merge(ref)
