"""Approving a version that its maker may not approve (a rollback made by whoever ran the quarantine):
the refusal names who may approve it and what the maker may approve instead, and an approval that does
not count says whose it is and why (issue: "1 of 2 valid approval(s), 1 repeated" and "'admin' made this
version and may not approve it" left a user with no way forward but guessing)."""

from __future__ import annotations

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.security.test_version_approvals import team  # noqa: F401  (the fixture)


def test_the_maker_is_told_who_may_approve_and_what_it_may_approve_itself(team: dict[str, Ward]) -> None:  # noqa: F811
    admin = team["admin"]
    with pytest.raises(PolicyViolation, match="made this version") as refused:
        admin.approve("wine@v1", reason="my rollback")
    hint = refused.value.hint or ""
    assert "'dave' or 'erin' may approve wine@v1" in hint, hint
    assert "alice" not in hint.split(" may approve")[0]  # the scraper's owner is on its side
    assert "dataward approve wine#1" in hint, hint


def test_a_repeated_approval_says_whose_it_is_why_it_does_not_count_and_who_may_add_one(
    team: dict[str, Ward],  # noqa: F811
) -> None:
    out = team["dave"].approve("wine@v1", reason="the whole version")
    assert out["satisfied"] is False
    said = out["approvals"]
    assert "wine#1: 1 of 2 valid approval(s), 1 repeated (not counted: dave's approval of the version;" in said
    assert "each person counts once" in said
    assert "the version may still be approved by 'erin'" in said, said
    assert "wine#1 may still be approved by 'admin' or 'erin'" in said, said
    assert team["erin"].approve("wine@v1", reason="second pair of eyes")["satisfied"] is True
