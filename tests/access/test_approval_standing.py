"""``dataward.access.standing``: which approvals a revocation or a disabling voids, from ledger facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dataward.access import Approval
from dataward.access.standing import standing_from
from dataward.ledger.events import format_time

T0 = datetime(2026, 12, 5, tzinfo=UTC)


@dataclass
class _Event:
    seq: int
    type: str
    subject: dict[str, Any]
    payload: dict[str, Any] = field(default_factory=dict)
    actor: dict[str, Any] = field(default_factory=lambda: {"principal": "p_admin", "key": None})

    @property
    def time(self) -> str:
        return format_time(T0 + timedelta(seconds=self.seq))


def _approved(seq: int, who: str, key: str) -> _Event:
    return _Event(
        seq,
        "contribution.approved",
        {"dataset": "d_1", "contribution": "c_1"},
        {"content_hash": "h", "reason": "ok"},
        {"principal": who, "key": key},
    )


def _approval(seq: int, who: str) -> Approval:
    return Approval(who, "h", "approver", "ok", T0 + timedelta(seconds=seq))


def test_a_revocation_voids_the_key_s_approvals_and_those_of_keys_revoked_with_it() -> None:
    standing = standing_from(
        [
            _approved(1, "p_bob", "k_bob"),
            _approved(2, "p_bot", "k_child"),
            _Event(3, "key.revoked", {"key": "k_bob"}, {"reason": "leaked", "with_it": ["k_child"]}),
        ]
    )
    assert "dw_k_bob revoked since (leaked)" in (standing.void_reason(_approval(1, "p_bob"), "c_1") or "")
    assert "dw_k_child revoked" in (standing.void_reason(_approval(2, "p_bot"), "c_1") or "")
    assert [a.key_id for a in standing.approvals_with(["k_bob"])] == ["k_bob"]


def test_a_rotation_voids_nothing() -> None:
    standing = standing_from(
        [_approved(1, "p_bob", "k_bob"), _Event(2, "key.rotated", {"key": "k_bob", "successor": "k_new"})]
    )
    assert standing.void_reason(_approval(1, "p_bob"), "c_1") is None


def test_a_disabling_voids_what_came_before_it_and_not_what_comes_after_an_enabling() -> None:
    standing = standing_from(
        [
            _approved(1, "p_bob", "k_bob"),
            _Event(2, "principal.disabled", {"principal": "p_bob"}, {"reason": "offboarded", "suspended": ["p_bot"]}),
            _Event(3, "principal.enabled", {"principal": "p_bob"}),
            _approved(4, "p_bob", "k_bob2"),
        ]
    )
    assert standing.void_reason(_approval(1, "p_bob"), "c_1") == "approver disabled since (offboarded)"
    assert standing.void_reason(_approval(4, "p_bob"), "c_1") is None
    # The bot suspended with its owner: its earlier approvals are void too (placed by time here).
    assert "suspended with its owner" in (standing.void_reason(_approval(1, "p_bot"), "c_1") or "")
