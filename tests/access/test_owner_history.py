"""Who owned a bot while the key it acted with was live (``dataward.access.sides.OwnerHistory``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dataward.access import Approval, approvals_status
from dataward.access.policy import DatasetPolicy
from dataward.access.roles import Role
from dataward.access.sides import owner_history


@dataclass
class _E:
    seq: int
    time: str
    type: str
    subject: dict[str, Any]
    payload: dict[str, Any] = field(default_factory=dict)


def _issued(seq: int, key: str, principal: str = "bot", parent: str | None = None) -> _E:
    return _E(seq, f"t{seq:02}", "key.issued", {"principal": principal, "key": key}, {"key": {"parent_id": parent}})


def _moved(seq: int, before: str, after: str) -> _E:
    return _E(seq, f"t{seq:02}", "principal.transferred", {"principal": "bot"}, {"from": before, "to": after})


def test_every_owner_from_the_key_s_issue_to_the_act_is_on_the_side() -> None:
    rotated = _E(5, "t05", "key.rotated", {"principal": "bot", "key": "k1", "successor": "k2"}, {"key": {}})
    offboarded = _E(7, "t07", "principal.disabled", {"principal": "ann"}, {"transferred": ["bot"], "transfer_to": "cy"})
    events = [_issued(1, "adm", "admin"), _issued(2, "k1", parent="adm"), _moved(3, "ann", "bob"), _issued(4, "k3")]
    h = owner_history([*events, rotated, _moved(6, "bob", "ann"), offboarded, _moved(9, "cy", "dee")])
    # k1 was issued while ann owned the bot; it went to bob, back to ann, then to cy (ann offboarded).
    assert h.owners_while("bot", "k1", 8) == {"ann", "bob", "cy"}
    # k2 came from rotating k1: whoever held k1 holds k2, so the span starts at k1's issue.
    assert h.owners_while("bot", "k2", 8) == {"ann", "bob", "cy"}
    # k3 was issued while bob owned it: ann is on the side only because the bot came back to her.
    assert h.owners_while("bot", "k3", 5) == {"bob"}
    # A hand-over after the act does not count; an unknown key or a bot never handed on widens nothing.
    assert h.owners_while("bot", "k1", 2) == {"ann"}
    assert h.owners_while("bot", "nope", 8) == frozenset()
    assert h.owners_while("other", "k1", 8) == frozenset()
    assert h.owner_at("bot", 4) == "bob" and h.owner_at("bot", 10) is None
    # Now (no act seq): every hand-over so far.
    assert h.owners_while("bot", "k3", None) == {"bob", "ann", "cy", "dee"}


def test_the_span_is_taken_in_ledger_order_not_by_time() -> None:
    """An act may be dated before the hand-overs it follows (a clock read before another use case
    committed, hosts a little apart): the owners are those of the ledger's order."""
    later = [_moved(3, "ann", "bob"), _moved(4, "bob", "cy")]
    for e in later:
        e.time = "t99"  # dated after the act at seq 5
    h = owner_history([_issued(1, "k1"), *later])
    assert h.owners_while("bot", "k1", 5) == {"ann", "bob", "cy"}
    assert h.owners_while("bot", "k1", 4) == {"ann", "bob"}
    assert h.owner_at("bot", 3) == "bob" and h.owner_at("bot", 2) == "ann" and h.owner_at("bot", 5) is None


def test_an_approval_by_an_owner_while_the_key_was_live_does_not_count() -> None:
    policy = DatasetPolicy.from_yaml("approvals:\n  required: 1\n")
    given = Approval("ann", "h", Role.APPROVER, "ok", datetime(2026, 1, 1, tzinfo=UTC))
    status = approvals_status(
        policy, "h", [given], submitter_id="bot", submitter_owner_id="cy", submitter_earlier_owners={"ann"}
    )
    assert not status.satisfied and [a.approver_id for a in status.conflicted] == ["ann"]
