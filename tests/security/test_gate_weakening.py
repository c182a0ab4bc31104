"""An owner cannot switch the gate off: every weakening of a dataset's policy needs an admin, is an event
of its own, and `access review` lists every dataset whose gate is weaker than the ward's defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dataward.domain.errors import InputError, PolicyViolation
from dataward.service.ward import Ward
from tests.security.key_team import Clock, denials, make_team

# The attack as reported: one detector left, thresholds nothing reaches, any harm tolerated.
SWITCHED_OFF = """
gate:
  detectors: [drift]
  alpha: 1.0e-300
  review_p: 1.0e-300
  block_p: 1.0e-300
  max_validation_drop: 1.0
"""


@pytest.fixture
def team(tmp_path: Path) -> dict[str, Ward]:
    team = make_team(tmp_path / "ward", Clock())
    # alice owns `other`, which still has the ward's default policy.
    team["admin"].grant("alice", "owner", "dataset:other")
    return team


def test_an_owner_cannot_switch_the_gate_off(team: dict[str, Ward]) -> None:
    admin, alice = team["admin"], team["alice"]
    weakened_before = len(admin.ledger(types=["policy.gate_weakened"]))  # the light gate set on wine
    with pytest.raises(PolicyViolation, match="only an admin") as refused:
        alice.set_policy("other", SWITCHED_OFF)
    message = refused.value.message
    for field in ("gate.detectors", "gate.alpha", "gate.review_p", "gate.block_p", "gate.max_validation_drop"):
        assert field in message
    assert "no longer run" in message and "outliers" in message
    assert {w["field"] for w in refused.value.details["weakened"]} >= {"gate.block_p", "gate.detectors"}
    # Nothing changed, and the attempt is on the record.
    assert admin.policy("other")["explicit"] is False
    assert len(admin.ledger(types=["policy.gate_weakened"])) == weakened_before
    refusal = denials(admin)[0]
    assert refusal["payload"]["action"] == "policy.set" and "gate.block_p" in refusal["payload"]["reason"]


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ("gate:\n  detectors: [duplicates, outliers]\n", "gate.detectors"),
        ("gate:\n  block_p: 1.0e-9\n", "gate.block_p"),
        ("gate:\n  review_p: 1.0e-3\n", "gate.review_p"),
        ("gate:\n  alpha: 0.001\n", "gate.alpha"),
        ("gate:\n  flag_fdr: 0.05\n", "gate.flag_fdr"),
        ("gate:\n  max_validation_drop: 0.05\n", "gate.max_validation_drop"),
        ("gate:\n  reference_size: 100\n", "gate.reference_size"),
        ("gate:\n  options:\n    outliers: {k: 5}\n", "gate.options.outliers"),
        ("gate:\n  seed: 0\n", "gate.seed"),  # pinned: the samples become predictable
        ("first_import: self-reference\n", "first_import"),
        ("approvals:\n  required: 0\n", "approvals.required"),
        ("approvals:\n  roles: [approver, owner, contributor]\n", "approvals.roles"),
        ("keys:\n  allow_self_issued_keys: true\n", "keys.allow_self_issued_keys"),
    ],
)
def test_each_weakening_alone_needs_an_admin(team: dict[str, Ward], policy: str, field: str) -> None:
    with pytest.raises(PolicyViolation, match="only an admin") as refused:
        team["alice"].set_policy("other", policy)
    assert [w["field"] for w in refused.value.details["weakened"]] == [field]


def test_an_owner_may_tighten_and_an_admin_may_weaken_on_the_record(team: dict[str, Ward]) -> None:
    admin, alice = team["admin"], team["alice"]
    weakened_before = len(admin.ledger(types=["policy.gate_weakened"]))
    tighter = (
        "approvals:\n  required: 2\ngate:\n  block_p: 1.0e-4\n  alpha: 0.05\n  max_validation_drop: 0.01\n"
        "  flag_fdr: null\n"  # every record flagged at alpha goes to the review queue
    )
    assert alice.set_policy("other", tighter)["weakened"] == []
    assert len(admin.ledger(types=["policy.gate_weakened"])) == weakened_before
    # Back to the ward's defaults is weaker than now: the owner may not.
    with pytest.raises(PolicyViolation, match=re.escape("gate.alpha: lowered from 0.05 to 0.01")) as back:
        alice.set_policy("other", "")
    assert "gate.flag_fdr: lowered from null (every flag queued) to 0.2" in back.value.message
    # An admin may, and the weakening is an event of its own, naming what got weaker.
    out = admin.set_policy("other", SWITCHED_OFF)
    assert {w["field"] for w in out["weakened"]} >= {"gate.detectors", "gate.block_p", "approvals.required"}
    gate_event = admin.ledger(types=["policy.gate_weakened"])[0]
    assert gate_event["payload"]["hash"] == out["hash"]
    fields = {w["field"] for w in gate_event["payload"]["weakened"]}
    assert fields == {
        "gate.detectors",
        "gate.alpha",
        "gate.review_p",
        "gate.block_p",
        "gate.max_validation_drop",
        "gate.flag_fdr",  # null (every flag queued) back to the default share
    }
    other_event = admin.ledger(types=["policy.weakened"])[0]
    assert [w["field"] for w in other_event["payload"]["weakened"]] == ["approvals.required"]
    # What an admin allowed, the owner may keep (nothing gets weaker), and tighten.
    assert alice.set_policy("other", SWITCHED_OFF)["weakened"] == []
    assert admin.verify().ok
    assert alice.set_policy("other", SWITCHED_OFF.replace("alpha: 1.0e-300", "alpha: 1.0e-200"))["weakened"] == []


def test_an_admin_key_narrowed_to_the_owner_role_does_not_act_as_admin(team: dict[str, Ward]) -> None:
    admin = team["admin"]
    narrowed = admin.as_key(admin.issue_key(scopes=["owner"])["key"])
    with pytest.raises(PolicyViolation, match="only an admin"):
        narrowed.set_policy("other", SWITCHED_OFF)


def test_access_review_lists_gates_weaker_than_the_default(team: dict[str, Ward]) -> None:
    admin = team["admin"]
    admin.set_policy("other", SWITCHED_OFF)
    rows = [r for r in admin.access_review() if r["kind"] == "gate_weaker_than_default"]
    by_dataset = {r["dataset"]: r for r in rows}
    # `wine` runs only the duplicate check and judges a first import against itself (set by the admin).
    assert set(by_dataset) == {"other", "wine"}
    other = by_dataset["other"]
    assert other["principal"] == "admin" and other["severity"] == "medium"
    for field in ("gate.detectors", "gate.block_p", "gate.max_validation_drop"):
        assert field in other["detail"]
    assert "first_import" in by_dataset["wine"]["detail"]
    # Back to the defaults: no longer listed.
    admin.set_policy("other", "")
    assert "other" not in {r["dataset"] for r in admin.access_review() if r["kind"] == "gate_weaker_than_default"}


def test_pinning_the_gate_seed_needs_an_admin_but_moving_or_unpinning_it_does_not(team: dict[str, Ward]) -> None:
    admin, alice = team["admin"], team["alice"]
    out = admin.set_policy("other", "gate:\n  seed: 3\n")
    assert [w["field"] for w in out["weakened"]] == ["gate.seed"]
    assert admin.ledger(types=["policy.gate_weakened"])[0]["payload"]["weakened"][0]["after"] == 3
    listed = {r["dataset"]: r for r in admin.access_review() if r["kind"] == "gate_weaker_than_default"}
    assert "gate.seed" in listed["other"]["detail"]
    assert alice.set_policy("other", "gate:\n  seed: 4\n")["weakened"] == []  # still as predictable
    assert alice.set_policy("other", "")["weakened"] == []  # unpinned: derived again
    assert "other" not in {r["dataset"] for r in admin.access_review() if r["kind"] == "gate_weaker_than_default"}


@pytest.mark.parametrize("seed", ["-1", "2147483648", "true", "'7'", "1.5"])
def test_a_pinned_seed_that_no_random_state_takes_is_refused(team: dict[str, Ward], seed: str) -> None:
    with pytest.raises(InputError, match="policy seed must be a whole number from 0 to 2147483647"):
        team["admin"].set_policy("other", f"gate:\n  seed: {seed}\n")
    assert team["admin"].policy("other")["explicit"] is False


LLM_DETECTORS = "[llm_triggers, llm_payloads, llm_validation, llm_behaviour_shift, llm_floods, llm_outliers]"
LABELLED_DETECTORS = "[backdoor, clean_validation, drift, duplicates, label_consistency, outliers, triggers]"


def test_only_detectors_that_run_on_the_datasets_kind_count_as_switched_off(team: dict[str, Ward]) -> None:
    """An owner's policy naming the language-model detectors of an instruction dataset, all but `llm_drift`,
    was refused as running fewer of `backdoor, clean_validation, ..., triggers`, which never run on
    instruction data: the refusal names the one detector that does stop running. Naming every detector
    that runs on the kind weakens nothing, for either kind of dataset."""
    from dataward.domain.schema import Schema

    admin, alice = team["admin"], team["alice"]
    admin.create_dataset("howto", Schema.for_kind("instruction"))
    admin.grant("alice", "owner", "dataset:howto")
    with pytest.raises(PolicyViolation, match="only an admin") as refused:
        alice.set_policy("howto", f"gate:\n  detectors: {LLM_DETECTORS}\n")
    assert "runs fewer detectors: llm_drift no longer run" in refused.value.message
    assert "backdoor" not in refused.value.message and "preference_flips" not in refused.value.message
    every = LLM_DETECTORS.replace("]", ", llm_drift]")
    assert alice.set_policy("howto", f"gate:\n  detectors: {every}\n")["weakened"] == []
    assert alice.set_policy("other", f"gate:\n  detectors: {LABELLED_DETECTORS}\n")["weakened"] == []
    reviewed = {r["dataset"] for r in admin.access_review() if r["kind"] == "gate_weaker_than_default"}
    assert "howto" not in reviewed and "other" not in reviewed


def _catalog(ward: Ward, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Read or write the catalog behind the ward's back (served mode: whoever holds the database account)."""
    import sqlite3

    with sqlite3.connect(ward.folder / "catalog.sqlite") as db:
        return db.execute(sql, params).fetchall()


@pytest.mark.parametrize("column", ["schema", "policy"])
def test_a_dataset_row_edited_in_the_catalog_does_not_decide_what_counts_as_weaker(
    team: dict[str, Ward], column: str
) -> None:
    """The attack: an owner who can also write the catalog gave the labelled dataset `other` an instruction
    dataset's schema (or the weak policy itself) for one call, so that a policy naming only the language-model
    detectors, none of which runs on its data, weakened nothing and needed no admin; put back, the gate of
    `other` ran no detector of its kind and passed a batch of flipped labels. The weakening check now reads
    the dataset row only once it agrees with the signed ledger."""
    import json

    from dataward.domain.errors import IntegrityViolation
    from dataward.domain.schema import Schema

    admin, alice = team["admin"], team["alice"]
    weak = f"gate:\n  detectors: {LLM_DETECTORS.replace(']', ', llm_drift]')}\n"
    [(before,)] = _catalog(admin, f"select {column} from datasets where name = 'other'")
    swapped = json.dumps(Schema.for_kind("instruction").to_dict()) if column == "schema" else weak
    _catalog(admin, f"update datasets set {column} = ? where name = 'other'", swapped)
    with pytest.raises(IntegrityViolation, match="refusing to set the policy of dataset 'other'"):
        alice.set_policy("other", weak)
    _catalog(admin, f"update datasets set {column} = ? where name = 'other'", before)
    # Nothing was signed: the policy of `other` is still the ward's default, and an owner is still refused.
    assert admin.policy("other")["explicit"] is False
    with pytest.raises(PolicyViolation, match="only an admin"):
        alice.set_policy("other", weak)
