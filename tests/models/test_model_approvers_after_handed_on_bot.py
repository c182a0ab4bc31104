"""A model's release takes two people; a bot handed on that approved first answers for its owners while its
key was live, and must not turn two distinct people's approvals into repeats of its own."""

from __future__ import annotations

from tests.models.conftest import Models

TWO = "approvals:\n  required: 0\ngate:\n  detectors: [triggers, duplicates]\nrelease:\n  approvals: 2\n"


def test_two_people_approving_a_model_after_the_bot_they_both_answer_for_release_it(models: Models) -> None:
    ward, pat = models.ward, models.as_("pat")
    ward.set_policy("man", TWO)
    models.as_("rita").model_gate("man-clf@v1")
    ward.create_principal("ann-bot", kind="service", owner="ann")
    ward.grant("ann-bot", "approver", "model:man-clf")
    ward.create_principal("amy")
    ward.grant("amy", "approver", "model:man-clf")
    bot = ward.as_key(ward.issue_key("ann-bot")["key"])  # issued while ann owns it
    ward.transfer_principal("ann-bot", "amy")
    bot.approve_model("man-clf@v1", reason="agreed")  # ann's side and amy's
    models.as_("ann").approve_model("man-clf@v1", reason="gate passed")
    ward.as_key(ward.issue_key("amy")["key"]).approve_model("man-clf@v1", reason="gate passed")
    pat.release_model("man-clf@v1")
    assert ward.model("man-clf@v1")["stage"] == "released"
