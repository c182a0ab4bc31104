"""A bot and its owner are one approver, also once the bot is handed on.

A policy asking for two approvals asks for two people, not one person and their bot. The attack: ben
approves a contribution and has benbot approve it too with the key an admin issued for it (it counts
once: benbot answers to ben). The bot is then handed to cat; the key was not ben's to mint, so it is not
revoked and its approval keeps standing. Its approval was ben's side's word when it was given: it must
not become a second person's approval because the bot answers to someone else now.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.service.test_block_override import _blocked, team  # noqa: F401  (the fixture)

TWO = "approvals:\n  required: 2\ngate:\n  detectors: [duplicates]\n"


def _contributed(team: dict[str, Ward], tmp_path: Path) -> str:  # noqa: F811
    admin = team["admin"]
    admin.set_policy("wine", TWO)
    c = team["sam"].contribute("wine", write_csv(tmp_path / "x.csv", wine_rows(120, 125)), source="s:x")
    assert c["gate"]["verdict"] != "block"
    if pending := [item["id"] for item in admin.review_list(contribution=c["ref"])]:
        team["dan"].review_decide(pending, "accept", reason="checked")
    return c["ref"]


def test_a_bots_approval_given_for_its_owner_does_not_count_apart_once_it_is_handed_on(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = team["admin"]
    ref = _contributed(team, tmp_path)
    team["ben"].approve(ref, reason="fine")
    assert team["benbot"].approve(ref, reason="fine")["approvals"].startswith("1 of 2")
    admin.transfer_principal("benbot", "cat")
    with pytest.raises(PolicyViolation, match="cannot be merged"):
        admin.merge(ref)
    assert [v["ref"] for v in admin.versions("wine")] == ["wine@v1"]


def test_a_bots_approval_with_a_key_live_while_its_owner_had_it_does_not_count_apart_after(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Approving after the hand-over with the key issued while ben owned the bot: ben may hold that key,
    so the approval is his side's as well."""
    admin = team["admin"]
    ref = _contributed(team, tmp_path)
    admin.transfer_principal("benbot", "cat")
    team["ben"].approve(ref, reason="fine")
    # What the approval answers counts it as the merge will.
    assert team["benbot"].approve(ref, reason="fine")["approvals"].startswith("1 of 2")
    with pytest.raises(PolicyViolation, match="cannot be merged"):
        admin.merge(ref)
    assert [v["ref"] for v in admin.versions("wine")] == ["wine@v1"]


def test_a_block_is_not_lifted_by_one_person_and_the_bot_they_handed_on(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    """An override takes two people: benbot requests it with the key an admin issued while ben owned it, the
    bot is handed to cat (the key keeps working), and ben confirms. Both steps are ben's side's."""
    admin = team["admin"]
    ref = _blocked(team["sam"], tmp_path)["ref"]
    assert team["benbot"].override_block(ref, reason="looks fine")["status"] == "requested"
    admin.transfer_principal("benbot", "cat")
    with pytest.raises(PolicyViolation, match="same human"):
        team["ben"].override_block(ref, reason="agreed")
    assert admin.contribution(ref)["gate_verdict"] == "block"


def test_a_bot_handed_on_does_not_confirm_its_former_owners_override_request(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = team["admin"]
    ref = _blocked(team["sam"], tmp_path)["ref"]
    admin.transfer_principal("benbot", "cat")
    assert team["ben"].override_block(ref, reason="looks fine")["status"] == "requested"
    # benbot acts with the key issued while ben owned it: ben may hold it.
    with pytest.raises(PolicyViolation, match="same human"):
        team["benbot"].override_block(ref, reason="agreed")
    assert admin.contribution(ref)["gate_verdict"] == "block"
