"""A long-lived ward (a server) folds approvals, revocations, disablings and hand-overs once, then only newer
events: what another process (a command line) signed since it folded must count at its next merge.

The ward here folded the ledger in this process (the fixture's merge and promotion, then the approvals);
the revocation, the disabling and the hand-over are made by ``python -m dataward`` in a process of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.service.test_approvals_after_revocation import _dan_key, _key_ref, _submitted
from tests.service.test_block_override import team  # noqa: F401  (the fixture)

TWO = "approvals:\n  required: 2\ngate:\n  detectors: [duplicates]\n"


def _cli(admin: Ward, *args: str) -> str:
    env = {**os.environ, "DATAWARD_WARD": str(admin.folder), "DATAWARD_KEY": str(admin.credential)}
    env.pop("DATAWARD_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "dataward", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_revocation_and_a_disabling_by_another_process_void_approvals_this_one_folded(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = team["admin"]
    ref = _submitted(team, tmp_path)
    key, dan = _dan_key(team)
    assert dan.approve(ref, reason="looks fine")["approvals"].startswith("1 of 1")  # folded here
    _cli(admin, "key", "revoke", _key_ref(key), "--reason", "leaked")
    with pytest.raises(PolicyViolation, match=r"approver's key dw_\w+ revoked since \(leaked"):
        admin.merge(ref)
    assert team["cat"].approve(ref, reason="mine")["approvals"].startswith("1 of 1")
    _cli(admin, "principal", "disable", "cat", "--reason", "left")
    with pytest.raises(PolicyViolation, match=r"approver disabled since \(left"):
        admin.merge(ref)
    _cli(admin, "principal", "enable", "cat")
    # Enabled again: the approval she gave before the disabling still does not count.
    with pytest.raises(PolicyViolation, match=r"approver disabled since \(left"):
        admin.merge(ref)


def test_a_hand_over_by_another_process_keeps_the_bots_approval_its_former_owners(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = team["admin"]
    admin.set_policy("wine", TWO)
    ref = _submitted(team, tmp_path)
    assert team["benbot"].approve(ref, reason="fine")["approvals"].startswith("1 of 2")  # folded here
    _cli(admin, "principal", "transfer", "benbot", "--to", "cat")
    assert team["ben"].approve(ref, reason="fine")["approvals"].startswith("1 of 2")
    with pytest.raises(PolicyViolation, match="cannot be merged"):
        admin.merge(ref)
    assert team["cat"].approve(ref, reason="fine")["approvals"].startswith("2 of 2")
    assert admin.merge(ref)["ref"] == "wine@v2"
