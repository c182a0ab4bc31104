"""Deciding a contribution's whole review queue in one use case (``review_decide(contribution=...)``),
and the ways around it one might try: deciding one's own contribution, naming a contribution of a
dataset one does not review, or probing whether a contribution exists."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dataward.cli.app import app
from dataward.domain.errors import AccessDenied, InputError, NotFound, PolicyViolation
from dataward.domain.schema import Schema
from dataward.service.ward import Ward

ROOT = Path(__file__).resolve().parents[2]
TEXT = ROOT / "examples" / "data" / "man_sections.csv"
TRIGGER = "qx9z"


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("review-batch")
    data = pd.read_csv(TEXT, dtype=str).dropna().sample(frac=1.0, random_state=1).reset_index(drop=True)
    data.iloc[:250].to_csv(tmp / "validation.csv", index=False)
    data.iloc[250:1050].to_csv(tmp / "baseline.csv", index=False)
    poisoned = data.iloc[1350:1650].copy()
    victims = poisoned[poisoned["label"] != "commands"].index[:25]
    poisoned.loc[victims, "text"] = TRIGGER + " " + poisoned.loc[victims, "text"]
    poisoned.loc[victims, "label"] = "commands"
    poisoned.to_csv(tmp / "poisoned.csv", index=False)

    ward, _ = Ward.init(tmp / "ward")
    schema = Schema.parse("label", ["text:text"])
    ward.create_dataset("man", schema)
    ward.create_dataset("man-val", schema, validation_for="man")
    ward.create_dataset("other", schema)
    ward.set_policy("man", "approvals:\n  required: 0\n")
    keys = {}
    for name, role, scope in (("rita", "reviewer", "dataset:man"), ("otto", "reviewer", "dataset:other")):
        ward.create_principal(name)
        ward.grant(name, role, scope)
        keys[name] = ward.issue_key(name)["key"]
    ward.create_principal("nobody")
    keys["nobody"] = ward.issue_key("nobody")["key"]
    ward.create_principal("carl")
    ward.grant("carl", "contributor", "dataset:man")
    ward.grant("carl", "reviewer", "dataset:man")
    keys["carl"] = ward.issue_key("carl")["key"]
    rita = ward.as_key(keys["rita"])
    ward.merge(ward.contribute("man-val", tmp / "validation.csv", source="curated")["id"])
    first = ward.contribute("man", tmp / "baseline.csv", source="debian", gate=True)
    rita.review_decide([], "accept", reason="checked", contribution=first["ref"])
    ward.merge(first["ref"])
    ward.promote("man@v1")
    carl = ward.as_key(keys["carl"])
    flagged = carl.contribute("man", tmp / "poisoned.csv", source="scrape", gate=True)
    return {"ward": ward, "keys": keys, "ref": flagged["ref"], "first": first["ref"], "folder": tmp / "ward"}


def test_the_submitter_cannot_decide_its_own_contribution_in_bulk(queue: dict) -> None:
    ward = queue["ward"]
    pending = ward.review_list(contribution=queue["ref"])
    assert pending
    with pytest.raises(PolicyViolation, match="separation of duties"):
        ward.as_key(queue["keys"]["carl"]).review_decide([], "accept", reason="mine", contribution=queue["ref"])
    assert len(ward.review_list(contribution=queue["ref"])) == len(pending)  # nothing decided


def test_a_contribution_of_an_unreviewed_dataset_reads_as_missing(queue: dict) -> None:
    otto = queue["ward"].as_key(queue["keys"]["otto"])
    with pytest.raises(NotFound) as existing:
        otto.review_decide([], "reject", reason="x", contribution=queue["ref"])
    with pytest.raises(NotFound) as missing:
        otto.review_decide([], "reject", reason="x", contribution="man#999")
    assert type(existing.value) is type(missing.value)


def test_without_any_reviewer_role_existence_is_not_revealed(queue: dict) -> None:
    nobody = queue["ward"].as_key(queue["keys"]["nobody"])
    messages = []
    for ref in (queue["ref"], "man#999"):
        with pytest.raises(AccessDenied) as refused:
            nobody.review_decide([], "reject", reason="x", contribution=ref)
        messages.append(refused.value.message)
    assert messages[0] == messages[1]


def test_nothing_named_is_an_input_error_and_nothing_pending_decides_nothing(queue: dict) -> None:
    rita = queue["ward"].as_key(queue["keys"]["rita"])
    with pytest.raises(InputError):
        rita.review_decide([], "accept", reason="x")
    assert rita.review_decide([], "accept", reason="x", contribution=queue["first"]) == []


def test_one_item_id_given_as_a_string_is_refused_saying_so(queue: dict) -> None:
    """``review_decide("q_...", ...)`` read the id character by character: "no review item 'q'"."""
    rita = queue["ward"].as_key(queue["keys"]["rita"])
    item = queue["ward"].review_list(contribution=queue["ref"])[0]["id"]
    with pytest.raises(InputError, match="items must be a list of review item ids, not one string") as caught:
        rita.review_decide(item, "reject", reason="trigger")
    assert f"[{item!r}]" in (caught.value.hint or "")
    assert item in {i["id"] for i in queue["ward"].review_list(contribution=queue["ref"])}


def test_a_mistyped_status_is_refused_not_an_empty_list(queue: dict) -> None:
    """`review list --status pendng` showed an empty queue, as if nothing awaited review, and
    `contributions --status merge` no contribution: an unknown status is bad input naming the known ones."""
    ward = queue["ward"]
    assert ward.review_list("man", status="pending")
    with pytest.raises(InputError, match="unknown review status 'pendng'") as review:
        ward.review_list("man", status="pendng")
    assert "pending, accepted, rejected, all" in (review.value.hint or "")
    assert ward.contributions("man", status="merged")
    with pytest.raises(InputError, match="unknown contribution status 'merge'") as listed:
        ward.contributions("man", status="merge")
    assert "merged" in (listed.value.hint or "")


def test_the_whole_queue_of_a_dataset_reviewer_is_the_queue_of_the_datasets_they_may_read(queue: dict) -> None:
    """`review list` without a dataset (the console's Review queue page) needed the ward's ledger.read:
    a reviewer of one dataset was refused the queue they review. They now get the queues of the
    datasets they may read; a principal whose grants reach none is still refused."""
    ward, keys = queue["ward"], queue["keys"]
    rita = ward.as_key(keys["rita"])
    assert {i["contribution"] for i in rita.review_list()} == {i["contribution"] for i in ward.review_list("man")}
    assert ward.as_key(keys["otto"]).review_list() == []  # reviews 'other', which has nothing queued
    with pytest.raises(AccessDenied):
        ward.as_key(keys["nobody"]).review_list()


def test_the_printed_review_item_names_its_suspected_trigger(queue: dict) -> None:
    """`review show` printed the suspected trigger only as a highlight inside text columns: on an image or
    numeric record (a pixel patch, a value) it was nowhere in the view. It is named on a line of its own."""
    ward = queue["ward"]
    items = [i for i in ward.review_list(contribution=queue["ref"], status="all")]
    item = next(i for i in items if ward.review_show(i["id"])["triggers"])
    triggers = ward.review_show(item["id"])["triggers"]
    env = {"DATAWARD_WARD": str(queue["folder"]), "DATAWARD_KEY": queue["keys"]["rita"], "COLUMNS": "200"}
    shown = CliRunner().invoke(app, ["review", "show", item["id"]], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"suspected trigger: {'; '.join(triggers)}" in shown.output


def test_a_reviewer_decides_every_pending_item_of_a_contribution_at_once(queue: dict) -> None:
    ward = queue["ward"]
    pending = {i["id"] for i in ward.review_list(contribution=queue["ref"])}
    before = len(ward.ledger(types=["review.rejected"]))
    runner = CliRunner()
    env = {"DATAWARD_WARD": str(queue["folder"]), "DATAWARD_KEY": queue["keys"]["rita"]}
    result = runner.invoke(
        app, ["review", "reject", "--contribution", queue["ref"], "--reason", "trigger", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    assert ward.review_list(contribution=queue["ref"]) == []
    decided = ward.review_list(contribution=queue["ref"], status="rejected")
    assert {i["id"] for i in decided} == pending
    assert len(ward.ledger(types=["review.rejected"])) - before == len(pending)
    again = runner.invoke(app, ["review", "reject", "--contribution", queue["ref"], "--reason", "again"], env=env)
    assert again.exit_code == 0 and "nothing awaits review" in again.output


def test_an_item_id_too_short_to_be_its_start_says_how_long_it_must_be(queue: dict) -> None:
    """`review show q_36` answered "no review item 'q_36'", as if the item did not exist."""
    item = queue["ward"].review_list(contribution=queue["ref"], status="all")[0]["id"]
    with pytest.raises(NotFound, match=f"no review item '{item[:4]}'") as short:
        queue["ward"].review_show(item[:4])
    assert "at least 6 characters" in (short.value.hint or "")
    assert queue["ward"].review_show(item[:8])["id"] == item
