"""A model's release approvals take two people also when one approval came from a bot handed on since.

ann approves the model, and so does her bot with the key an admin issued for it (one approver). The bot is
then handed to amy; the key keeps working (ann did not mint it), so its approval stands. It was given for
ann's side and must not become amy's second word.
"""

from __future__ import annotations

import pytest

from dataward.domain.errors import PolicyViolation
from tests.models.conftest import Models

TWO = "approvals:\n  required: 0\ngate:\n  detectors: [triggers, duplicates]\nrelease:\n  approvals: 2\n"


def test_a_bots_release_approval_stays_its_former_owners_once_handed_on(models: Models) -> None:
    ward, ann, pat = models.ward, models.as_("ann"), models.as_("pat")
    ward.set_policy("man", TWO)
    models.as_("rita").model_gate("man-clf@v1")
    ward.create_principal("ann-bot", kind="service", owner="ann")
    ward.grant("ann-bot", "approver", "model:man-clf")
    ward.create_principal("amy")
    ann.approve_model("man-clf@v1", reason="gate passed")
    ward.as_key(ward.issue_key("ann-bot")["key"]).approve_model("man-clf@v1", reason="my human agrees")
    ward.transfer_principal("ann-bot", "amy")
    with pytest.raises(PolicyViolation, match="1 of 2 approval"):
        pat.release_model("man-clf@v1")
    assert ward.model("man-clf@v1")["stage"] == "candidate"


def test_a_bot_handed_on_approving_with_its_former_owners_key_adds_nothing_to_her_approval(models: Models) -> None:
    ward, ann, pat = models.ward, models.as_("ann"), models.as_("pat")
    ward.set_policy("man", TWO)
    models.as_("rita").model_gate("man-clf@v1")
    ward.create_principal("ann-bot", kind="service", owner="ann")
    ward.grant("ann-bot", "approver", "model:man-clf")
    ward.create_principal("amy")
    bot = ward.as_key(ward.issue_key("ann-bot")["key"])  # issued while ann owns it: she may hold it
    ward.transfer_principal("ann-bot", "amy")
    ann.approve_model("man-clf@v1", reason="gate passed")
    bot.approve_model("man-clf@v1", reason="agreed")
    with pytest.raises(PolicyViolation, match="1 of 2 approval"):
        pat.release_model("man-clf@v1")
    assert ward.model("man-clf@v1")["stage"] == "candidate"
