"""A bot handed on answers for its owners while its key was live; it does not take two people's word away.

benbot's key was issued while ben owned it; the bot is handed to cat and approves with that key, so its
approval is ben's side's and cat's at once, and counts as neither's second word. ben and cat, two distinct
humans, then approve too: that is two people's approval, whichever came first in time. The bot's approval,
counted first and answering for both, must not leave ben's and cat's as repeats of it.
"""

from __future__ import annotations

from pathlib import Path

from dataward.service.ward import Ward
from tests.service.test_block_override import team  # noqa: F401  (the fixture)
from tests.service.test_handed_on_bot_counts_once import _contributed


def test_two_people_approving_after_the_bot_they_both_answer_for_merge(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = team["admin"]
    ref = _contributed(team, tmp_path)
    admin.transfer_principal("benbot", "cat")
    assert team["benbot"].approve(ref, reason="fine")["approvals"].startswith("1 of 2")
    assert team["ben"].approve(ref, reason="fine")["approvals"].startswith("1 of 2")
    # cat is not ben: two people approved.
    assert team["cat"].approve(ref, reason="fine")["approvals"].startswith("2 of 2")
    admin.merge(ref)
    assert [v["ref"] for v in admin.versions("wine")] == ["wine@v1", "wine@v2"]
