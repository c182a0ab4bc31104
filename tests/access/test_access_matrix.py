"""The authorization matrix: every role x every action x every place a grant and an action can be.

EXPECTED is written out by hand as the specification; it is deliberately not derived from
PERMISSIONS. A new Action without a row here fails test_every_action_has_a_row.
"""

from __future__ import annotations

import pytest
from access_factories import NOW, grant, human

from dataward.access import PERMISSIONS, Action, Role, Scope, ScopeKind, authorize
from dataward.domain.errors import InputError

R, C, RV, AP, PR, OW = Role.READER, Role.CONTRIBUTOR, Role.REVIEWER, Role.APPROVER, Role.PROMOTER, Role.OWNER
WARD, DATASET, MODEL = ScopeKind.WARD, ScopeKind.DATASET, ScopeKind.MODEL
READERS = {R, RV, AP, PR, OW}

# action -> (roles that allow it besides admin, scope kinds it applies to)
EXPECTED: dict[Action, tuple[set[Role], set[ScopeKind]]] = {
    Action.PRINCIPAL_CREATE: (set(), {WARD}),
    Action.PRINCIPAL_DISABLE: (set(), {WARD}),
    Action.PRINCIPAL_ENABLE: (set(), {WARD}),
    Action.PRINCIPAL_TRANSFER: (set(), {WARD}),
    Action.KEY_ISSUE: (set(), {WARD}),
    Action.KEY_REVOKE: (set(), {WARD}),
    Action.GRANT_CREATE: ({OW}, {WARD, DATASET, MODEL}),
    Action.GRANT_REVOKE: ({OW}, {WARD, DATASET, MODEL}),
    Action.DATASET_CREATE: ({OW}, {WARD}),
    Action.ACCESS_REVIEW: ({OW}, {WARD}),
    Action.LEDGER_READ: (READERS, {WARD}),
    Action.VERIFY: (READERS, {WARD}),
    Action.DATASET_READ: (READERS | {C}, {DATASET}),
    Action.DATASET_EXPORT: (READERS, {DATASET}),
    Action.CONTRIBUTION_SUBMIT: ({C, OW}, {DATASET}),
    Action.CONTRIBUTION_WITHDRAW: ({C, OW}, {DATASET}),
    Action.GATE_RUN: ({RV, OW}, {DATASET}),
    Action.GATE_OVERRIDE: ({OW}, {DATASET}),
    Action.REVIEW_DECIDE: ({RV, OW}, {DATASET}),
    Action.CONTRIBUTION_APPROVE: ({AP, OW}, {DATASET}),
    Action.CONTRIBUTION_REJECT: ({RV, AP, OW}, {DATASET}),
    Action.CONTRIBUTION_MERGE: ({AP, OW}, {DATASET}),
    Action.VERSION_PROMOTE: ({PR, OW}, {DATASET}),
    Action.VERSION_RETIRE: ({PR, OW}, {DATASET}),
    Action.POLICY_SET: ({OW}, {DATASET}),
    Action.VALIDATION_WRITE: ({OW}, {DATASET}),
    Action.QUARANTINE: ({RV, OW}, {DATASET}),
    Action.TRACE: (READERS, {DATASET}),
    Action.MODEL_REGISTER: ({C, OW}, {MODEL}),
    Action.MODEL_RELEASE: ({PR, OW}, {MODEL}),
    Action.TRAINING_RECORD: ({C, OW}, {MODEL}),
    Action.MODEL_READ: (READERS | {C}, {MODEL}),
    Action.MODEL_GATE: ({RV, PR, OW}, {MODEL}),
    Action.MODEL_APPROVE: ({AP, OW}, {MODEL}),
}

# Where the grant sits, and where the action is attempted.
GRANT_PLACES = {
    "ward": Scope.ward(),
    "dataset cats": Scope.dataset("cats"),
    "model m1": Scope.model("m1"),
}
TARGETS = {
    "ward": Scope.ward(),
    "own dataset": Scope.dataset("cats"),
    "other dataset": Scope.dataset("dogs"),
    "own model": Scope.model("m1"),
    "other model": Scope.model("m2"),
}


def expected_outcome(role: Role, action: Action, grant_scope: Scope, target: Scope) -> bool:
    roles, kinds = EXPECTED[action]
    if target.kind not in kinds:
        return False
    if not grant_scope.covers(target):
        return False
    return role is Role.ADMIN or role in roles


def test_every_action_has_a_row() -> None:
    assert set(EXPECTED) == set(Action), f"actions without a row: {set(Action) - set(EXPECTED)}"
    assert set(PERMISSIONS) == set(Action)


@pytest.mark.parametrize("action", list(Action), ids=str)
@pytest.mark.parametrize("role", list(Role), ids=str)
def test_matrix(role: Role, action: Action) -> None:
    alice = human("alice")
    mismatches = []
    outcomes = set()
    for place_name, place in GRANT_PLACES.items():
        if role is Role.ADMIN and place.kind is not ScopeKind.WARD:
            with pytest.raises(InputError, match="only be granted on the ward"):
                grant("alice", role, place)
            continue
        grants = [grant("alice", role, place), grant("bob", Role.ADMIN, Scope.ward())]
        for target_name, target in TARGETS.items():
            decision = authorize(alice, None, grants, action, target, NOW)
            want = expected_outcome(role, action, place, target)
            outcomes.add(decision.allowed)
            if decision.allowed != want:
                mismatches.append(f"{role} on {place_name} -> {action} on {target_name}: {decision.reason}")
            if decision.allowed:
                assert decision.grant is not None and decision.grant.principal_id == "alice"
            else:
                assert decision.reason
    assert not mismatches, "\n".join(mismatches)
    # Both outcomes occur: a role that allows the action is allowed somewhere, and only an admin
    # acting on an action that applies everywhere is never denied.
    assert (True in outcomes) == (role is Role.ADMIN or role in EXPECTED[action][0])
    if role is not Role.ADMIN:
        assert False in outcomes


def test_no_grants_denies_everything() -> None:
    alice = human("alice")
    for action in Action:
        for target in TARGETS.values():
            assert not authorize(alice, None, [], action, target, NOW).allowed


def test_another_principals_grant_does_not_count() -> None:
    decision = authorize(
        human("alice"),
        None,
        [grant("bob", Role.OWNER, Scope.ward())],
        Action.DATASET_READ,
        Scope.dataset("cats"),
        NOW,
    )
    assert not decision.allowed
    assert "reader" in decision.reason and "dataset:cats" in decision.reason
