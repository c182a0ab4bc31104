"""A model's trainer side survives handing the trainer bot to someone else.

A bot owned by alice trains a model; the bot is then transferred to bob. alice answered for the bot
when it trained, so she may no more approve, release or run the release gate of that model than before
the transfer (as with a contribution: its bot's owner then and now are both its side). Offboarding
alice with the bot handed to bob (``principal disable --transfer-to``) moves the bot the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dataward
from dataward.domain.errors import PolicyViolation
from dataward.service.ward import Ward
from tests.helpers import wine_rows, wine_ward, write_csv


def _trained_by_alices_bot(tmp_path: Path, *, transfer_first: bool = False) -> tuple[Ward, dict[str, Ward]]:
    ward = wine_ward(tmp_path / "ward")
    first = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 120, shuffled=True)), source="s")
    ward.merge(first["ref"])
    ward.promote("wine@v1")
    for name in ("alice", "bob", "carl"):
        ward.create_principal(name)
    ward.create_principal("trainbot", kind="service", owner="alice")
    ward.grant("trainbot", "reader", "dataset:wine")
    ward.grant("trainbot", "contributor", "model:wine-clf")
    for role in ("approver", "reviewer", "promoter"):
        ward.grant("alice", role, "model:wine-clf")
    ward.grant("carl", "approver", "model:wine-clf")
    ward.grant("bob", "approver", "model:wine-clf")
    people = {n: ward.as_key(ward.issue_key(n)["key"]) for n in ("alice", "bob", "carl", "trainbot")}
    if transfer_first:
        ward.transfer_principal("trainbot", "bob")
    (tmp_path / "m.bin").write_bytes(b"weights" * 16)
    with dataward.training_run("wine@training", model="wine-clf", ward=people["trainbot"]) as run:
        run.load()
        run.log_artifact(tmp_path / "m.bin")
    return ward, people


def _refused_everything(alice: Ward) -> None:
    owned = r"'alice' own(s|ed) the service principal that trained this model"
    with pytest.raises(PolicyViolation, match=owned):
        alice.approve_model("wine-clf@v1", reason="looks fine")
    with pytest.raises(PolicyViolation, match=owned):
        alice.model_gate("wine-clf@v1", predict=lambda table: [0] * table.num_rows)
    with pytest.raises(PolicyViolation, match=owned):
        alice.release_model("wine-clf@v1", reason="ship it")


def test_the_owner_when_the_bot_trained_stays_its_side_after_a_transfer(tmp_path: Path) -> None:
    ward, people = _trained_by_alices_bot(tmp_path)
    _refused_everything(people["alice"])  # the control: her own bot's model
    ward.transfer_principal("trainbot", "bob")
    _refused_everything(people["alice"])
    # The owner now is the bot's side too; someone outside it still approves.
    with pytest.raises(PolicyViolation, match="'bob' owns the service principal that trained this model"):
        people["bob"].approve_model("wine-clf@v1", reason="x")
    assert people["carl"].approve_model("wine-clf@v1", reason="checked")["approvals"] == 1


def test_the_owner_offboarded_with_the_bot_handed_on_stays_its_side_when_back(tmp_path: Path) -> None:
    """alice leaves (her bot handed to bob) and comes back: the model her bot trained is still her side's."""
    ward, _ = _trained_by_alices_bot(tmp_path)
    ward.disable_principal("alice", transfer_to="bob", reason="left the team")
    ward.enable_principal("alice", reason="back")
    _refused_everything(ward.as_key(ward.issue_key("alice")["key"]))


def test_a_former_owner_holding_a_key_issued_before_the_transfer_stays_the_trainer_s_side(tmp_path: Path) -> None:
    """trainbot is handed to bob, but the key an admin issued it while alice owned it keeps working: whoever
    trains with that key (alice may hold it) trains for alice's side too."""
    _, people = _trained_by_alices_bot(tmp_path, transfer_first=True)
    _refused_everything(people["alice"])
    assert people["carl"].approve_model("wine-clf@v1", reason="checked")["approvals"] == 1


def test_an_approver_bot_handed_on_cannot_approve_its_former_owner_s_model_with_its_old_key(tmp_path: Path) -> None:
    """The approving bot changes hands: alice's checker, approver on the model, still runs on the key an
    admin issued while alice owned it. It may not approve the model alice's trainbot trained."""
    ward, _ = _trained_by_alices_bot(tmp_path)
    ward.create_principal("checker", kind="service", owner="alice")
    ward.grant("checker", "approver", "model:wine-clf")
    old = ward.as_key(ward.issue_key("checker")["key"])
    ward.transfer_principal("checker", "carl")
    with pytest.raises(PolicyViolation, match="acts with a key issued before it was handed on"):
        old.approve_model("wine-clf@v1", reason="fine")
    fresh = ward.as_key(ward.issue_key("checker")["key"])
    assert fresh.approve_model("wine-clf@v1", reason="checked")["approvals"] == 1


def test_an_owner_between_two_hand_overs_stays_the_side_of_a_model_trained_dated_before_the_first(
    tmp_path: Path,
) -> None:
    """trainbot (alice's, its key issued by an admin) is handed to carl; while carl owns it, it trains with
    that key on a host whose clock is half an hour behind (within the hour the ward tolerates); then it is
    handed to bob. The run follows carl's hand-over in the ledger, though dated before it: carl owned the
    bot when it trained, and may not approve the model."""
    from dataward.domain.schema import Schema
    from tests.helpers import NO_APPROVALS_POLICY, wine_schema_specs
    from tests.security.key_team import Clock

    clock = Clock()
    ward, _ = Ward.init(tmp_path / "ward", clock=clock)
    label, specs = wine_schema_specs()
    ward.create_dataset("wine", Schema.parse(label, specs))
    ward.set_policy("wine", NO_APPROVALS_POLICY)
    first = ward.contribute("wine", write_csv(tmp_path / "a.csv", wine_rows(0, 120, shuffled=True)), source="s")
    ward.merge(first["ref"])
    ward.promote("wine@v1")
    for name in ("alice", "bob", "carl", "dan"):
        ward.create_principal(name)
    ward.create_principal("trainbot", kind="service", owner="alice")
    ward.grant("trainbot", "reader", "dataset:wine")
    ward.grant("trainbot", "contributor", "model:wine-clf")
    for name in ("carl", "dan"):
        ward.grant(name, "approver", "model:wine-clf")
    people = {n: ward.as_key(ward.issue_key(n)["key"]) for n in ("carl", "dan", "trainbot")}
    ward.transfer_principal("trainbot", "carl")
    clock.advance(minutes=-30)
    (tmp_path / "m.bin").write_bytes(b"weights" * 16)
    with dataward.training_run("wine@training", model="wine-clf", ward=people["trainbot"]) as run:
        run.load()
        run.log_artifact(tmp_path / "m.bin")
    clock.advance(minutes=31)
    ward.transfer_principal("trainbot", "bob")
    with pytest.raises(PolicyViolation, match=r"'carl' owned the service principal that trained this model"):
        people["carl"].approve_model("wine-clf@v1", reason="mine")
    assert people["dan"].approve_model("wine-clf@v1", reason="checked")["approvals"] == 1
