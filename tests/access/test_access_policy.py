"""Dataset policy: YAML parsing and errors, separation of duties, stale approvals, promotion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from access_factories import NOW, grant, human, service

from dataward.access import (
    Approval,
    ContributionFacts,
    DatasetPolicy,
    KeyPolicy,
    PrincipalStatus,
    PromotionFacts,
    Role,
    Scope,
    approvals_status,
    can_promote,
    check_approval,
    roles_on,
)
from dataward.domain.errors import InputError, PolicyViolation

CATS = Scope.dataset("cats")
H1 = "b3:" + "1" * 64
H2 = "b3:" + "2" * 64

POLICY_YAML = """
approvals:
  required: 2
  roles: [approver, owner]
separation_of_duties: true
promotion:
  roles: [promoter]
  require_gate: review
  require_approvals: true
gate:
  detectors: [label_consistency, duplicates]
  thresholds: {block: 0.001}
keys:
  max_ttl_days: 30
"""


def approval(who: str, content_hash: str = H1, role: Role = Role.APPROVER, minutes: int = 0) -> Approval:
    return Approval(who, content_hash, role, "checked the samples", NOW + timedelta(minutes=minutes))


# ---- YAML -----------------------------------------------------------------------------------------


def test_policy_yaml_round_trips_and_hash_is_spelling_independent() -> None:
    policy = DatasetPolicy.from_yaml(POLICY_YAML)
    assert policy.approvals.required == 2
    assert policy.promotion.roles == (Role.PROMOTER,)
    assert policy.promotion.require_gate.accepted_verdicts == {"pass", "review"}
    assert policy.gate == {"detectors": ["label_consistency", "duplicates"], "thresholds": {"block": 0.001}}
    assert policy.key_policy(KeyPolicy()).max_ttl_days == 30
    again = DatasetPolicy.from_yaml(policy.to_yaml())
    assert again == policy and again.hash() == policy.hash()
    reordered = DatasetPolicy.from_yaml(
        "keys: {max_ttl_days: 30}\n" + POLICY_YAML.replace("keys:\n  max_ttl_days: 30\n", "")
    )
    assert reordered.hash() == policy.hash()
    assert DatasetPolicy.from_yaml(POLICY_YAML.replace("required: 2", "required: 3")).hash() != policy.hash()


def test_empty_policy_gives_safe_defaults() -> None:
    policy = DatasetPolicy.from_yaml("")
    assert policy == DatasetPolicy()
    assert policy.approvals.required == 1 and policy.separation_of_duties
    assert policy.promotion.require_approvals and policy.promotion.require_gate.value == "review"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("approvals: {required: 1}\nreviewers: 2", "unknown key(s) in the policy: reviewers"),
        ("approvals: {required: 1, quorum: 2}", "'approvals'"),
        ("approvals: {required: two}", "'approvals.required' must be a whole number"),
        ("approvals: {required: -1}", "'approvals.required'"),
        ("approvals: {required: true}", "'approvals.required'"),
        ("approvals: {roles: approver}", "'approvals.roles' must be a non-empty list"),
        ("approvals: {roles: []}", "'approvals.roles'"),
        ("approvals: {roles: [approver, boss]}", "unknown role 'boss'"),
        ("separation_of_duties: 'yes'", "'separation_of_duties' must be true or false"),
        ("promotion: {require_gate: block}", "'promotion.require_gate' must be 'pass' or 'review'"),
        ("promotion: {require_approvals: 1}", "'promotion.require_approvals'"),
        ("promotion: [promoter]", "'promotion' must be a mapping"),
        ("gate: [a, b]", "'gate' must be a mapping"),
        ("gate: {since: 2024-01-01}", "'gate' must hold plain JSON values"),
        # Beyond what the ledger signs (RFC 8785): these reached the policy event's seal as a server error.
        ("approvals: {required: 99999999999999999999}", "'approvals.required' must be a whole number from 0 to"),
        ("gate: {seed: 18446744073709551616}", "'gate' must hold plain JSON values the ledger can sign"),
        ("release: {approvals: 9007199254740992}", "'release' must hold plain JSON values the ledger can sign"),
        ("keys: {max_ttl_days: forever}", "keys.max_ttl_days"),
        ("keys: {lifetime: 3}", "unknown key policy setting"),
        ("- just\n- a list", "must be a mapping of settings"),
        ("approvals: {required: 1\n", "not valid YAML at line"),
    ],
)
def test_policy_errors_name_the_field(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        DatasetPolicy.from_yaml(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("approvals:\n  required: 2\n  required: 1\n", "'required' twice in one mapping (lines 2 and 3)"),
        ("first_import: validation\nfirst_import: self-reference\n", "'first_import' twice"),
        ("gate: {detectors: [duplicates], detectors: [outliers]}\n", "'detectors' twice in one mapping (line 1)"),
        ("gate:\n  options:\n    outliers: {k: 1, k: 2}\n", "'k' twice"),
    ],
)
def test_a_setting_given_twice_is_refused(text: str, message: str) -> None:
    """``safe_load`` kept the last value silently: ``required: 2`` then ``required: 1`` set one approval."""
    with pytest.raises(InputError) as caught:
        DatasetPolicy.from_yaml(text)
    assert message in caught.value.message, caught.value.message


def test_policy_yaml_cannot_construct_python_objects() -> None:
    with pytest.raises(InputError):
        DatasetPolicy.from_yaml("gate: !!python/object/apply:os.system ['true']")


# ---- separation of duties -------------------------------------------------------------------------


def test_self_approval_is_refused() -> None:
    alice = human("alice")
    decision = check_approval(DatasetPolicy(), alice, "alice", None, {Role.APPROVER})
    assert not decision.allowed and "separation of duties" in decision.reason
    with pytest.raises(PolicyViolation):
        decision.raise_if_denied(PolicyViolation)


def test_owner_of_the_submitting_bot_cannot_approve_but_another_approver_can() -> None:
    policy = DatasetPolicy()
    alice, bob = human("alice"), human("bob")
    decision = check_approval(policy, alice, "scraper", "alice", {Role.APPROVER})
    assert not decision.allowed and "owns the service principal" in decision.reason
    assert check_approval(policy, bob, "scraper", "alice", {Role.APPROVER}).allowed


def test_a_bot_cannot_approve_for_its_own_human() -> None:
    helper = service("helper", "alice")
    assert not check_approval(DatasetPolicy(), helper, "alice", None, {Role.APPROVER}).allowed
    assert not check_approval(DatasetPolicy(), helper, "scraper", "alice", {Role.APPROVER}).allowed


def test_without_separation_of_duties_self_approval_is_allowed() -> None:
    policy = DatasetPolicy.from_yaml("separation_of_duties: false")
    assert check_approval(policy, human("alice"), "alice", None, {Role.OWNER}).allowed


def test_approver_needs_a_role_the_policy_accepts() -> None:
    grants = [grant("carol", Role.REVIEWER, CATS), grant("root", Role.ADMIN, Scope.ward())]
    decision = check_approval(DatasetPolicy(), human("carol"), "bob", None, roles_on("carol", grants, CATS))
    assert not decision.allowed and "approver, owner" in decision.reason
    assert check_approval(DatasetPolicy(), human("root"), "bob", None, roles_on("root", grants, CATS)).allowed
    disabled = human("dave", PrincipalStatus.DISABLED)
    assert not check_approval(DatasetPolicy(), disabled, "bob", None, {Role.APPROVER}).allowed


# ---- approvals bound to content --------------------------------------------------------------------


def test_only_current_eligible_distinct_approvals_count() -> None:
    policy = DatasetPolicy.from_yaml("approvals: {required: 2}")
    approvals = [
        approval("bob", H1),
        approval("bob", H2, minutes=1),  # stale: given for the earlier content
        approval("carol", H1, Role.REVIEWER, minutes=2),  # ineligible role
        approval("bob", H1, minutes=3),  # a second approval by bob adds nothing
        approval("alice", H1, minutes=4),  # the submitter
    ]
    status = approvals_status(policy, H1, approvals, submitter_id="alice")
    assert [a.approver_id for a in status.counted] == ["bob"]
    assert len(status.stale) == 1 and len(status.ineligible) == 1
    assert len(status.repeated) == 1 and len(status.conflicted) == 1
    assert not status.satisfied and status.missing == 1
    assert "1 of 2 valid approval(s)" in status.summary()
    assert status.to_dict()["missing"] == 1


def test_approval_becomes_stale_when_the_contribution_changes() -> None:
    policy = DatasetPolicy()
    before = approvals_status(policy, H1, [approval("bob", H1)])
    assert before.satisfied
    after = approvals_status(policy, H2, [approval("bob", H1)])
    assert not after.satisfied and [a.approver_id for a in after.stale] == ["bob"]


def test_approval_needs_a_reason() -> None:
    with pytest.raises(InputError, match="reason"):
        Approval("bob", H1, Role.APPROVER, "  ", NOW)


# ---- promotion ---------------------------------------------------------------------------------------


def facts(*contributions: ContributionFacts, roles=frozenset({Role.PROMOTER}), promoter=None) -> PromotionFacts:
    return PromotionFacts(
        dataset="cats",
        version_id="v3",
        promoter=promoter or human("pat"),
        promoter_roles=frozenset(roles),
        contributions=tuple(contributions),
    )


def contribution(cid: str, approvals=(), verdict: str | None = "pass", content_hash: str = H1) -> ContributionFacts:
    return ContributionFacts(cid, content_hash, "scraper", "alice", tuple(approvals), verdict)


def test_promotion_meeting_the_policy_is_allowed() -> None:
    decision = can_promote(DatasetPolicy(), facts(contribution("c1", [approval("bob")])))
    assert decision.allowed, decision.reason


def test_promotion_without_enough_approvals_is_refused() -> None:
    policy = DatasetPolicy.from_yaml("approvals: {required: 2}")
    decision = can_promote(policy, facts(contribution("c1", [approval("bob")]), contribution("c2", [])))
    assert not decision.allowed
    assert len(decision.problems) == 2
    assert "c1 has 1 of 2" in decision.reason and "c2 has 0 of 2" in decision.reason


def test_promotion_with_only_stale_or_self_approvals_is_refused() -> None:
    stale = contribution("c1", [approval("bob", H2)])
    by_bot_owner = contribution("c2", [approval("alice")])
    decision = can_promote(DatasetPolicy(), facts(stale, by_bot_owner))
    assert not decision.allowed
    assert "1 stale" in decision.reason and "1 conflicted" in decision.reason


def test_promotion_checks_gate_verdicts_and_promoter_role() -> None:
    ok = [approval("bob")]
    strict = DatasetPolicy.from_yaml("promotion: {require_gate: pass}")
    assert not can_promote(strict, facts(contribution("c1", ok, verdict="review"))).allowed
    assert not can_promote(strict, facts(contribution("c1", ok, verdict="block"))).allowed
    assert not can_promote(strict, facts(contribution("c1", ok, verdict=None))).allowed
    lenient = DatasetPolicy.from_yaml("promotion: {require_gate: review}")
    assert can_promote(lenient, facts(contribution("c1", ok, verdict="review"))).allowed
    assert not can_promote(lenient, facts(contribution("c1", ok, verdict="block"))).allowed
    no_role = can_promote(strict, facts(contribution("c1", ok), roles={Role.APPROVER}))
    assert not no_role.allowed and "promoter, owner" in no_role.reason
    assert can_promote(strict, facts(contribution("c1", ok), roles={Role.ADMIN})).allowed
    no_approvals_needed = DatasetPolicy.from_yaml("promotion: {require_approvals: false}")
    assert can_promote(no_approvals_needed, facts(contribution("c1", []))).allowed


def test_dataset_key_overrides_only_tighten_the_ward_policy() -> None:
    ward = KeyPolicy(max_ttl_days=60, default_ttl_days=30)
    tighter = DatasetPolicy.from_yaml("keys: {max_ttl_days: 20}").key_policy(ward)
    assert tighter.max_ttl_days == 20 and tighter.default_ttl_days == 20
    looser = DatasetPolicy.from_yaml("keys: {max_ttl_days: 365, stale_after_days: 90}").key_policy(ward)
    assert looser.max_ttl_days == 60 and looser.stale_after_days == ward.stale_after_days


def test_a_stored_policy_is_written_without_aliases_and_an_older_one_with_them_still_reads() -> None:
    """Policies given by a caller may hold no YAML alias; the catalog's text is the ward's own. yaml's
    dumper writes a list met twice as an anchor and an alias, which would make the ward's own text one
    it refuses; and a policy stored before the rule may hold one, and must still be read."""
    import yaml

    from dataward.access.policy import DatasetPolicy
    from dataward.domain.errors import InputError

    shared = ["duplicates", "outliers"]
    policy = DatasetPolicy.from_dict({"gate": {"detectors": shared, "advisory": shared}})
    text = policy.to_yaml()
    assert "&" not in text and "*" not in text
    assert DatasetPolicy.from_yaml(text) == policy
    older = yaml.safe_dump(policy.to_dict(), sort_keys=False)
    assert "&id001" in older  # what the plain dumper wrote
    with pytest.raises(InputError, match="YAML anchor or alias"):
        DatasetPolicy.from_yaml(older)
    assert DatasetPolicy.from_yaml(older, stored=True) == policy
