"""authorize(): key scopes only narrow, inactive principals and dead keys are denied, no escalation."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from access_factories import NOW, grant, human, key_for, service
from hypothesis import given, settings
from hypothesis import strategies as st

from dataward.access import (
    Action,
    Principal,
    PrincipalKind,
    PrincipalStatus,
    Role,
    Scope,
    authorize,
    authorize_grant,
    roles_on,
    validate_key_scopes,
)
from dataward.domain.errors import AccessDenied, InputError

CATS = Scope.dataset("cats")
DOGS = Scope.dataset("dogs")


def test_key_role_scope_narrows_an_owner_to_a_contributor() -> None:
    alice = human("alice")
    grants = [grant("alice", Role.OWNER, CATS)]
    _, key = key_for("alice", scopes=["contributor"])
    assert authorize(alice, key, grants, Action.CONTRIBUTION_SUBMIT, CATS, NOW).allowed
    denied = authorize(alice, key, grants, Action.POLICY_SET, CATS, NOW)
    assert not denied.allowed
    assert "limited to scopes contributor" in denied.reason
    # Without the key's narrowing the same principal may do it.
    assert authorize(alice, None, grants, Action.POLICY_SET, CATS, NOW).allowed


def test_key_scopes_never_add_a_role_the_principal_lacks() -> None:
    bot = service("bot", "alice")
    grants = [grant("bot", Role.CONTRIBUTOR, CATS)]
    _, key = key_for("bot", scopes=["owner", "version.promote"])
    assert not authorize(bot, key, grants, Action.VERSION_PROMOTE, CATS, NOW).allowed
    assert not authorize(bot, key, grants, Action.POLICY_SET, CATS, NOW).allowed


def test_key_action_scope_allows_only_that_action() -> None:
    alice = human("alice")
    grants = [grant("alice", Role.OWNER, Scope.ward())]
    _, key = key_for("alice", scopes=["dataset.read"])
    assert authorize(alice, key, grants, Action.DATASET_READ, CATS, NOW).allowed
    assert not authorize(alice, key, grants, Action.DATASET_EXPORT, CATS, NOW).allowed


def test_key_resource_scope_limits_where_a_ward_wide_grant_applies() -> None:
    bot = service("bot", "alice")
    grants = [grant("bot", Role.CONTRIBUTOR, Scope.ward())]
    _, key = key_for("bot", scopes=["dataset:cats"])
    assert authorize(bot, key, grants, Action.CONTRIBUTION_SUBMIT, CATS, NOW).allowed
    denied = authorize(bot, key, grants, Action.CONTRIBUTION_SUBMIT, DOGS, NOW)
    assert not denied.allowed and "dataset:cats" in denied.reason


def test_admin_key_restricted_to_owner_acts_as_owner() -> None:
    root = human("root")
    grants = [grant("root", Role.ADMIN, Scope.ward())]
    _, key = key_for("root", scopes=["owner"])
    assert authorize(root, key, grants, Action.POLICY_SET, CATS, NOW).allowed
    assert not authorize(root, key, grants, Action.PRINCIPAL_CREATE, Scope.ward(), NOW).allowed


@pytest.mark.parametrize("status", [PrincipalStatus.DISABLED, PrincipalStatus.SUSPENDED])
def test_inactive_principal_is_denied_whatever_its_grants(status: PrincipalStatus) -> None:
    alice = human("alice", status)
    decision = authorize(alice, None, [grant("alice", Role.ADMIN, Scope.ward())], Action.DATASET_READ, CATS, NOW)
    assert not decision.allowed and status.value in decision.reason


def test_dead_or_foreign_key_is_denied() -> None:
    alice = human("alice")
    grants = [grant("alice", Role.OWNER, CATS)]
    _, key = key_for("alice")
    assert not authorize(alice, replace(key, revoked_at=NOW), grants, Action.DATASET_READ, CATS, NOW).allowed
    expired = authorize(alice, key, grants, Action.DATASET_READ, CATS, NOW + timedelta(days=91))
    assert not expired.allowed and "expired" in expired.reason
    _, bobs = key_for("bob")
    assert not authorize(alice, bobs, grants, Action.DATASET_READ, CATS, NOW).allowed


def test_decision_names_the_missing_roles_and_raises_access_denied() -> None:
    decision = authorize(human("carol"), None, [grant("carol", Role.READER, CATS)], Action.VERSION_PROMOTE, CATS, NOW)
    assert not decision.allowed
    for role in ("promoter", "owner", "admin"):
        assert role in decision.reason
    json.dumps(decision.to_dict())  # the access.denied event payload
    with pytest.raises(AccessDenied) as caught:
        decision.raise_if_denied()
    assert caught.value.details["action"] == "version.promote"
    assert caught.value.details["scope"] == "dataset:cats"


def test_a_ward_refusal_reads_naturally_and_names_the_grant_that_falls_short() -> None:
    """A dataset-scoped reviewer asking for a ward-wide action: the refusal names the ward once, as "the
    ward", and says which of the allowing roles the principal holds, and where (the usual cause)."""
    decision = authorize(
        human("rita"), None, [grant("rita", Role.REVIEWER, CATS)], Action.LEDGER_READ, Scope.ward(), NOW
    )
    assert not decision.allowed
    assert decision.reason.startswith("'rita' may not ledger.read on the ward: it needs one of the roles ")
    assert decision.reason.endswith("on the ward (it holds reviewer on dataset:cats only)")
    assert "on ward" not in decision.reason and "or on the ward" not in decision.reason
    assert decision.hint is not None and decision.hint.startswith("ask an admin to grant one of:")


def test_a_dataset_refusal_names_the_dataset_or_the_ward() -> None:
    decision = authorize(human("rita"), None, [grant("rita", Role.READER, DOGS)], Action.TRACE, CATS, NOW)
    assert decision.reason.endswith("on dataset:cats or on the ward (it holds reader on dataset:dogs only)")
    assert decision.hint is not None and "an owner of dataset:cats or an admin" in decision.hint
    nothing = authorize(human("nina"), None, [], Action.TRACE, CATS, NOW)
    assert "it holds" not in nothing.reason


def test_an_admin_only_refusal_says_so() -> None:
    decision = authorize(
        human("rita"), None, [grant("rita", Role.OWNER, CATS)], Action.PRINCIPAL_ENABLE, Scope.ward(), NOW
    )
    assert decision.reason == "'rita' may not principal.enable: only an admin may"


def test_wrong_scope_kind_is_denied_with_reason() -> None:
    decision = authorize(
        human("root"), None, [grant("root", Role.OWNER, Scope.ward())], Action.POLICY_SET, Scope.ward(), NOW
    )
    assert not decision.allowed and "applies to a dataset scope, not to the ward" in decision.reason


def test_the_narrowest_grant_is_reported() -> None:
    grants = [grant("alice", Role.ADMIN, Scope.ward()), grant("alice", Role.OWNER, CATS)]
    decision = authorize(human("alice"), None, grants, Action.POLICY_SET, CATS, NOW)
    assert decision.allowed and decision.grant == grants[1]


def test_owner_cannot_grant_admin_but_can_grant_other_roles() -> None:
    owner = human("olga")
    grants = [grant("olga", Role.OWNER, Scope.ward())]
    assert authorize_grant(owner, None, grants, Role.APPROVER, CATS, NOW).allowed
    refused = authorize_grant(owner, None, grants, Role.ADMIN, Scope.ward(), NOW)
    assert not refused.allowed and "only an admin" in refused.reason
    assert authorize_grant(
        human("root"), None, [grant("root", Role.ADMIN, Scope.ward())], Role.ADMIN, Scope.ward(), NOW
    ).allowed
    dataset_owner = [grant("olga", Role.OWNER, CATS)]
    assert not authorize_grant(owner, None, dataset_owner, Role.READER, DOGS, NOW).allowed
    with pytest.raises(InputError):
        authorize_grant(owner, None, grants, Role.ADMIN, CATS, NOW)


def test_validate_key_scopes_refuses_scopes_wider_than_the_principal() -> None:
    bot = service("bot", "alice")
    grants = [grant("bot", Role.CONTRIBUTOR, CATS)]
    validate_key_scopes(bot, grants, ["contributor", "contribution.submit", "dataset:cats"])
    validate_key_scopes(bot, grants, None)
    for wider in (["approver"], ["version.promote"], ["dataset:dogs"], ["ward"]):
        with pytest.raises(AccessDenied):
            validate_key_scopes(bot, grants, wider)


def test_roles_on_counts_ward_grants_and_expands_admin() -> None:
    grants = [
        grant("a", Role.READER, Scope.ward()),
        grant("a", Role.APPROVER, CATS),
        grant("b", Role.ADMIN, Scope.ward()),
    ]
    assert roles_on("a", grants, CATS) == {Role.READER, Role.APPROVER}
    assert roles_on("a", grants, DOGS) == {Role.READER}
    assert roles_on("b", grants, DOGS) == set(Role)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Scope.dataset(""),
        lambda: Scope("ward", "x"),
        lambda: Scope("bucket", "x"),
        lambda: Scope.parse("cats"),
        lambda: Scope.parse("dataset:has space"),
        lambda: key_for("a", scopes=["superuser"]),
        lambda: grant("a", "wizard", CATS),
    ],
)
def test_malformed_scopes_roles_and_key_scopes_are_input_errors(build) -> None:
    with pytest.raises(InputError):
        build()


def test_scope_parse_round_trips() -> None:
    for scope in (Scope.ward(), CATS, Scope.model("m-1.2")):
        assert Scope.parse(str(scope)) == scope


def test_service_principal_needs_an_owner_and_times_must_be_aware() -> None:
    from datetime import datetime

    from dataward.access import Principal

    with pytest.raises(InputError, match="no owner"):
        Principal("bot", "bot", "service", None, "active", NOW)
    with pytest.raises(InputError, match="timezone-aware"):
        Principal("a", "a", "human", None, "active", datetime(2026, 1, 1))
    with pytest.raises(InputError, match="timezone-aware"):
        authorize(human("a"), None, [], Action.DATASET_READ, CATS, datetime(2026, 1, 1))


def test_a_key_may_carry_a_lesser_role_its_principal_covers() -> None:
    grants = [grant("olga", Role.OWNER, CATS)]
    validate_key_scopes(human("olga"), grants, ["contributor", "reader"])
    with pytest.raises(AccessDenied):
        validate_key_scopes(human("olga"), grants, ["admin"])


def test_principals_manage_their_own_and_their_bots_keys_but_not_others() -> None:
    from dataward.access import authorize_key_action

    alice, bob, bot = human("alice"), human("bob"), service("bot", "alice")
    for action in (Action.KEY_ISSUE, Action.KEY_REVOKE):
        assert authorize_key_action(alice, None, [], action, alice, NOW).allowed
        assert authorize_key_action(alice, None, [], action, bot, NOW).allowed
        denied = authorize_key_action(alice, None, [], action, bob, NOW)
        assert not denied.allowed and "admin" in denied.reason
        assert authorize_key_action(
            human("root"), None, [grant("root", Role.ADMIN, Scope.ward())], action, bob, NOW
        ).allowed
        assert not authorize_key_action(human("alice", PrincipalStatus.DISABLED), None, [], action, bot, NOW).allowed
    with pytest.raises(InputError):
        authorize_key_action(alice, None, [], Action.DATASET_READ, alice, NOW)


def test_a_narrow_key_cannot_mint_a_wider_one() -> None:
    from dataward.access import authorize_key_action

    bot = service("bot", "alice")
    _, narrow = key_for("bot", scopes=["contribution.submit", "dataset:cats"])
    assert authorize_key_action(bot, narrow, [], Action.KEY_REVOKE, bot, NOW).allowed
    same = ["contribution.submit", "dataset:cats"]
    # A service principal mints nothing for itself unless the key policy allows it.
    refused = authorize_key_action(bot, narrow, [], Action.KEY_ISSUE, bot, NOW, new_scopes=same)
    assert not refused.allowed and "may not mint keys for itself" in refused.reason
    allowed = authorize_key_action(bot, narrow, [], Action.KEY_ISSUE, bot, NOW, new_scopes=same, allow_self_issue=True)
    assert allowed.allowed and allowed.grant is None  # minted on the own-keys rule
    for wider in (None, ["contribution.submit"], ["contribution.submit", "dataset:cats", "owner"]):
        decision = authorize_key_action(
            bot, narrow, [], Action.KEY_ISSUE, bot, NOW, new_scopes=wider, allow_self_issue=True
        )
        assert not decision.allowed, wider
    _, revoked = key_for("bot")
    assert not authorize_key_action(bot, replace(revoked, revoked_at=NOW), [], Action.KEY_REVOKE, bot, NOW).allowed


def test_contributors_withdraw_only_their_own_contributions() -> None:
    from dataward.access import authorize_withdraw

    grants = [grant("carl", Role.CONTRIBUTOR, CATS), grant("olga", Role.OWNER, CATS)]
    carl, olga = human("carl"), human("olga")
    assert authorize_withdraw(carl, None, grants, CATS, "carl", None, NOW).allowed
    assert authorize_withdraw(carl, None, grants, CATS, "carls-bot", "carl", NOW).allowed
    denied = authorize_withdraw(carl, None, grants, CATS, "dora", None, NOW)
    assert not denied.allowed and "its own" in denied.reason
    assert authorize_withdraw(olga, None, grants, CATS, "dora", None, NOW).allowed
    assert not authorize_withdraw(carl, None, grants, DOGS, "carl", None, NOW).allowed


def test_key_scopes_within() -> None:
    from dataward.access import KeyScopes

    narrow = KeyScopes.parse(["contributor", "dataset:cats"])
    assert KeyScopes.parse(["contribution.submit", "dataset:cats"]).within(narrow)
    assert KeyScopes.parse(["reader", "dataset:cats"]).within(KeyScopes.parse(["owner"]))
    assert not KeyScopes.parse(["contributor"]).within(narrow)
    assert not KeyScopes.parse(["dataset:cats"]).within(narrow)
    assert not KeyScopes.parse(["owner", "dataset:cats"]).within(narrow)
    assert not KeyScopes.parse(["contributor", "ward"]).within(narrow)
    assert KeyScopes.parse(["admin"]).within(KeyScopes())


SCOPE_ENTRIES = (
    [r.value for r in Role] + [a.value for a in Action] + ["dataset:cats", "dataset:dogs", "model:m1", "ward"]
)
PLACES = [Scope.ward(), CATS, DOGS, Scope.model("m1")]


@settings(max_examples=300, deadline=None)
@given(
    held=st.lists(st.tuples(st.sampled_from(list(Role)), st.sampled_from(PLACES)), max_size=4),
    key_scopes=st.one_of(st.none(), st.lists(st.sampled_from(SCOPE_ENTRIES), min_size=1, max_size=4)),
    action=st.sampled_from(list(Action)),
    target=st.sampled_from([*PLACES, Scope.model("m2")]),
)
def test_a_key_never_allows_what_its_principal_cannot(held, key_scopes, action, target) -> None:
    grants = [grant("alice", role, place) for role, place in held if role is not Role.ADMIN or place == Scope.ward()]
    _, key = key_for("alice", scopes=key_scopes)
    with_key = authorize(human("alice"), key, grants, action, target, NOW)
    without_key = authorize(human("alice"), None, grants, action, target, NOW)
    assert not with_key.allowed or without_key.allowed
    if key_scopes is None:
        assert with_key.allowed == without_key.allowed


def test_a_service_principal_without_an_owner_is_told_how_to_name_one() -> None:
    with pytest.raises(InputError) as refused:
        Principal("p_s", "scraper", PrincipalKind.SERVICE, None, PrincipalStatus.ACTIVE, NOW)
    assert "has no owner" in refused.value.message
    assert "--owner HUMAN" in (refused.value.hint or "")
