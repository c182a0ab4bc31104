"""Nobody approves a model their own side trained, also through the key of a bot they handed on.

tom trains man-clf@v1. His bot is handed to amy; the key an admin issued for it while tom owned it keeps
working, so tom may hold it. While the dataset's policy has separation of duties off, the bot approves
the model with that key. Once the rule holds again the release counts approvals by today's rule (tom's
own approval would not count), and so it must not count the bot's, given with a key tom held.
"""

from __future__ import annotations

import pytest

from dataward.domain.errors import PolicyViolation
from tests.models.conftest import Models

RULES = "approvals:\n  required: 0\ngate:\n  detectors: [triggers, duplicates]\nrelease:\n  approvals: 2\n"


def test_a_trainers_approval_through_his_handed_on_bots_key_does_not_count_once_the_rule_holds(
    models: Models,
) -> None:
    ward, pat = models.ward, models.as_("pat")
    ward.set_policy("man", RULES + "separation_of_duties: false\n")
    models.as_("rita").model_gate("man-clf@v1")
    ward.create_principal("tom-bot", kind="service", owner="tom")
    ward.grant("tom-bot", "approver", "model:man-clf")
    ward.create_principal("amy")
    bot = ward.as_key(ward.issue_key("tom-bot")["key"])  # issued while tom owns it: he may hold it
    ward.transfer_principal("tom-bot", "amy")
    bot.approve_model("man-clf@v1", reason="fine")
    models.as_("ann").approve_model("man-clf@v1", reason="gate passed")
    ward.set_policy("man", RULES)
    with pytest.raises(PolicyViolation, match="1 of 2 approval"):
        pat.release_model("man-clf@v1")
    assert ward.model("man-clf@v1")["stage"] == "candidate"
