"""Nobody approves their own change, also through the key of a bot they handed on.

ben hands benbot to cat; the key an admin issued for it while ben owned it keeps working, so ben may hold
it, and what benbot approves with it is ben's word as well. While the dataset's policy has separation of
duties off, benbot approves ben's own contribution with that key. Separation of duties is then turned on:
an approval written before the rule existed is counted at the merge by today's rule (ben's own approval
would be listed as conflicted), and so must benbot's, given with a key ben held.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.helpers import wine_rows, write_csv
from tests.service.test_block_override import team  # noqa: F401  (the fixture)

GATE = "gate:\n  detectors: [duplicates]\n"
LAX = "approvals:\n  required: 1\nseparation_of_duties: false\n" + GATE
STRICT = "approvals:\n  required: 1\n" + GATE


def _bens_contribution_approved_while_lax(team: dict[str, Ward], tmp_path: Path) -> str:  # noqa: F811
    admin = team["admin"]
    admin.set_policy("wine", LAX)
    admin.transfer_principal("benbot", "cat")
    c = team["ben"].contribute("wine", write_csv(tmp_path / "b.csv", wine_rows(120, 125)), source="s:ben")
    assert c["gate"]["verdict"] != "block"
    if pending := [item["id"] for item in admin.review_list(contribution=c["ref"])]:
        team["dan"].review_decide(pending, "accept", reason="checked")
    team["benbot"].approve(c["ref"], reason="fine")  # ben's key for his former bot
    admin.set_policy("wine", STRICT)
    return str(c["ref"])


def test_a_self_approval_through_a_handed_on_bots_key_does_not_count_once_the_rule_holds(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = team["admin"]
    ref = _bens_contribution_approved_while_lax(team, tmp_path)
    with pytest.raises(PolicyViolation, match="cannot be merged"):
        admin.merge(ref)
    assert [v["ref"] for v in admin.versions("wine")] == ["wine@v1"]


def test_a_self_approval_through_a_handed_on_bots_key_does_not_count_at_promotion(
    team: dict[str, Ward],  # noqa: F811
    tmp_path: Path,
) -> None:
    admin = team["admin"]
    ref = _bens_contribution_approved_while_lax(team, tmp_path)
    admin.set_policy("wine", LAX)
    admin.merge(ref)
    admin.set_policy("wine", STRICT)
    with pytest.raises(PolicyViolation, match=r"wine#2 has 0 of 1 valid approval.*conflicted"):
        admin.promote("wine@v2")
    assert [v["stage"] for v in admin.versions("wine")][-1] != "training"
