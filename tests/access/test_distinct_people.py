"""Counting approvals of distinct people when some answer for more than one human (a bot handed on)."""

from __future__ import annotations

from dataward.access.sides import distinct_people


def test_one_approval_per_human() -> None:
    assert distinct_people([{"a"}, {"a"}, {"b"}]) == {0, 2}


def test_a_bot_answering_for_two_does_not_stand_for_both_when_both_approved() -> None:
    assert distinct_people([{"a", "b"}, {"a"}, {"b"}]) == {1, 2}


def test_bots_answering_for_several_are_packed_not_taken_first_come() -> None:
    # First come would take {b, c} alone; {a, b} and {c, d} are two people's.
    assert distinct_people([{"b", "c"}, {"a", "b"}, {"c", "d"}]) == {1, 2}


def test_a_bot_answering_for_two_counts_once_beside_neither() -> None:
    assert len(distinct_people([{"a", "b"}, {"a"}])) == 1
    assert len(distinct_people([{"a", "b"}, {"c"}])) == 2
