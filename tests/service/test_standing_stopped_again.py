"""An approval by a principal stopped again after the backup does not count again after the restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.service.test_approvals_after_revocation import _key_ref, _submitted
from tests.service.test_block_override import team  # noqa: F401  (the fixture)
from tests.service.test_standing_after_restore import _restore_after


def test_an_approval_by_a_principal_disabled_again_after_the_backup_does_not_count(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    """dan was disabled once and enabled again (both in the restored ledger); he approves; his key is
    rotated; after the backup he is disabled again (so only that disabling voids the approval). The list
    holds that second disabling, but the ledger's older one makes ``Standing.with_listed`` skip it, so
    the approval counts again after the restore."""
    admin = team["admin"]
    admin.disable_principal("dan", reason="on leave")
    admin.enable_principal("dan", reason="back")
    key = admin.issue_key("dan")["key"]
    dan = admin.as_key(key)
    ref = _submitted({**team, "dan": dan}, tmp_path)
    dan.approve(ref, reason="looks fine")
    # The key he approved with is replaced (a rotation keeps its approvals counting); the new one is
    # the key his later disabling revokes.
    admin.rotate_key(_key_ref(key), overlap_hours=0)

    def disable(w: Ward) -> None:
        w.disable_principal("dan", reason="left for cause")
        with pytest.raises(PolicyViolation, match=r"approver disabled since"):
            w.merge(ref)  # before the restore: dan's approval no longer counts

    restored = _restore_after(team, tmp_path, disable)
    # Before the restore the merge was refused (dan's approval void); the list holds the same disabling.
    with pytest.raises(PolicyViolation, match=r"approver disabled since"):
        restored.merge(ref)
