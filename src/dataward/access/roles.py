"""Roles, actions, scopes, and the one table that says which role may do what where.

Every use case of the service maps to exactly one :class:`Action`. :data:`PERMISSIONS` lists, for
each action, the roles that allow it and the kinds of scope it applies to. Three rules sit on top
of the table and nowhere else:

* ``admin`` exists only on the ward and allows every action on every scope;
* a grant on the ward applies to every dataset and every model;
* a grant on one dataset (or model) applies to that dataset (or model) only.

Anything the table does not allow is denied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from dataward.domain.errors import InputError
from dataward.domain.names import name_problem


class Role(StrEnum):
    READER = "reader"
    CONTRIBUTOR = "contributor"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    PROMOTER = "promoter"
    OWNER = "owner"
    ADMIN = "admin"


class ScopeKind(StrEnum):
    WARD = "ward"
    DATASET = "dataset"
    MODEL = "model"


class Action(StrEnum):
    # ward administration
    PRINCIPAL_CREATE = "principal.create"
    PRINCIPAL_DISABLE = "principal.disable"
    PRINCIPAL_ENABLE = "principal.enable"
    PRINCIPAL_TRANSFER = "principal.transfer"
    KEY_ISSUE = "key.issue"
    KEY_REVOKE = "key.revoke"
    GRANT_CREATE = "grant.create"
    GRANT_REVOKE = "grant.revoke"
    DATASET_CREATE = "dataset.create"
    ACCESS_REVIEW = "access.review"
    LEDGER_READ = "ledger.read"
    VERIFY = "verify"
    # one dataset
    DATASET_READ = "dataset.read"
    DATASET_EXPORT = "dataset.export"
    CONTRIBUTION_SUBMIT = "contribution.submit"
    CONTRIBUTION_WITHDRAW = "contribution.withdraw"
    GATE_RUN = "gate.run"
    GATE_OVERRIDE = "gate.override"
    REVIEW_DECIDE = "review.decide"
    CONTRIBUTION_APPROVE = "contribution.approve"
    CONTRIBUTION_REJECT = "contribution.reject"
    CONTRIBUTION_MERGE = "contribution.merge"
    VERSION_PROMOTE = "version.promote"
    VERSION_RETIRE = "version.retire"
    POLICY_SET = "policy.set"
    VALIDATION_WRITE = "validation.write"
    QUARANTINE = "quarantine"
    TRACE = "trace"
    # one model
    MODEL_REGISTER = "model.register"
    MODEL_RELEASE = "model.release"
    TRAINING_RECORD = "training.record"
    MODEL_READ = "model.read"
    MODEL_GATE = "model.gate"
    MODEL_APPROVE = "model.approve"


@dataclass(frozen=True)
class Scope:
    """Where an action happens or a grant applies: the whole ward, one dataset or one model."""

    kind: ScopeKind
    name: str | None = None

    def __post_init__(self) -> None:
        try:
            kind = ScopeKind(self.kind)
        except ValueError:
            raise InputError(
                f"unknown scope kind {self.kind!r}",
                hint=f"use one of: {', '.join(k.value for k in ScopeKind)}",
            ) from None
        object.__setattr__(self, "kind", kind)
        if kind is ScopeKind.WARD:
            if self.name is not None:
                raise InputError(f"the ward scope takes no name, got {self.name!r}")
        elif name_problem(self.name, kind.value, underscore_first=True) is not None:
            raise InputError(
                f"a {kind.value} scope needs a name of letters, digits, '_', '.', '-', got {self.name!r}: "
                f"{name_problem(self.name, kind.value, underscore_first=True)}"
            )

    @classmethod
    def ward(cls) -> Scope:
        return cls(ScopeKind.WARD)

    @classmethod
    def dataset(cls, name: str) -> Scope:
        return cls(ScopeKind.DATASET, name)

    @classmethod
    def model(cls, name: str) -> Scope:
        return cls(ScopeKind.MODEL, name)

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse ``ward``, ``dataset:NAME`` or ``model:NAME`` (the CLI's spelling)."""
        if text == ScopeKind.WARD.value:
            return cls.ward()
        kind, sep, name = text.partition(":")
        if not sep:
            raise InputError(f"cannot read scope {text!r}", hint="write 'ward', 'dataset:NAME' or 'model:NAME'")
        return cls(kind, name)  # type: ignore[arg-type]  # __post_init__ checks the kind

    def covers(self, other: Scope) -> bool:
        """True when a grant on this scope applies to an action on ``other``."""
        return self.kind is ScopeKind.WARD or self == other

    def __str__(self) -> str:
        return self.kind.value if self.name is None else f"{self.kind.value}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "name": self.name}


@dataclass(frozen=True)
class Permission:
    """One row of :data:`PERMISSIONS`: the roles that allow an action and where it applies."""

    roles: frozenset[Role]
    scope_kinds: frozenset[ScopeKind]


def _row(roles: Iterable[Role], *kinds: ScopeKind) -> Permission:
    return Permission(frozenset(roles), frozenset(kinds))


R, C, RV, AP, PR, OW = Role.READER, Role.CONTRIBUTOR, Role.REVIEWER, Role.APPROVER, Role.PROMOTER, Role.OWNER
W, D, M = ScopeKind.WARD, ScopeKind.DATASET, ScopeKind.MODEL

_PERMISSIONS: dict[Action, Permission] = {
    # Identities and keys of others are the admin's alone (admin is implicit in every row).
    Action.PRINCIPAL_CREATE: _row((), W),
    Action.PRINCIPAL_DISABLE: _row((), W),
    Action.PRINCIPAL_ENABLE: _row((), W),
    Action.PRINCIPAL_TRANSFER: _row((), W),
    Action.KEY_ISSUE: _row((), W),
    Action.KEY_REVOKE: _row((), W),
    # An owner hands out roles on what it owns; granting `admin` additionally needs admin
    # (see authorize_grant), so no owner can lift itself to admin.
    Action.GRANT_CREATE: _row((OW,), W, D, M),
    Action.GRANT_REVOKE: _row((OW,), W, D, M),
    Action.DATASET_CREATE: _row((OW,), W),
    Action.ACCESS_REVIEW: _row((OW,), W),
    Action.LEDGER_READ: _row((R, RV, AP, PR, OW), W),
    Action.VERIFY: _row((R, RV, AP, PR, OW), W),
    Action.DATASET_READ: _row((R, C, RV, AP, PR, OW), D),
    Action.DATASET_EXPORT: _row((R, RV, AP, PR, OW), D),
    Action.CONTRIBUTION_SUBMIT: _row((C, OW), D),
    Action.CONTRIBUTION_WITHDRAW: _row((C, OW), D),
    Action.GATE_RUN: _row((RV, OW), D),
    # Lifting a block takes two distinct owners or admins (see access.overrides), never the submitter.
    Action.GATE_OVERRIDE: _row((OW,), D),
    Action.REVIEW_DECIDE: _row((RV, OW), D),
    Action.CONTRIBUTION_APPROVE: _row((AP, OW), D),
    Action.CONTRIBUTION_REJECT: _row((RV, AP, OW), D),
    Action.CONTRIBUTION_MERGE: _row((AP, OW), D),
    Action.VERSION_PROMOTE: _row((PR, OW), D),
    Action.VERSION_RETIRE: _row((PR, OW), D),
    Action.POLICY_SET: _row((OW,), D),
    # The clean validation set is what the gates trust: only the dataset's owner writes it.
    Action.VALIDATION_WRITE: _row((OW,), D),
    Action.QUARANTINE: _row((RV, OW), D),
    Action.TRACE: _row((R, RV, AP, PR, OW), D),
    Action.MODEL_REGISTER: _row((C, OW), M),
    Action.MODEL_RELEASE: _row((PR, OW), M),
    Action.TRAINING_RECORD: _row((C, OW), M),
    Action.MODEL_READ: _row((R, C, RV, AP, PR, OW), M),
    # The release gate is a reviewer's check; approving a model for release an approver's; neither ever
    # by the side that trained it (see service/models.py).
    Action.MODEL_GATE: _row((RV, PR, OW), M),
    Action.MODEL_APPROVE: _row((AP, OW), M),
}
del R, C, RV, AP, PR, OW, W, D, M
# Read-only, so no caller can widen the table at run time.
PERMISSIONS: Mapping[Action, Permission] = MappingProxyType(_PERMISSIONS)

WRITE_ACTIONS: frozenset[Action] = frozenset(
    {
        Action.CONTRIBUTION_SUBMIT,
        Action.CONTRIBUTION_APPROVE,
        Action.CONTRIBUTION_MERGE,
        Action.GATE_OVERRIDE,
        Action.VERSION_PROMOTE,
        Action.VERSION_RETIRE,
        Action.POLICY_SET,
        Action.VALIDATION_WRITE,
    }
)
"""Dataset actions that change, or decide, what a model trains on (the access review lists them)."""


def parse_role(value: Any) -> Role:
    """A :class:`Role` from its name, or an InputError listing the roles."""
    try:
        return Role(value)
    except ValueError:
        raise InputError(f"unknown role {value!r}", hint=f"use one of: {', '.join(r.value for r in Role)}") from None


def parse_action(value: Any) -> Action:
    """An :class:`Action` from its dotted name, or an InputError."""
    try:
        return Action(value)
    except ValueError:
        raise InputError(f"unknown action {value!r}", hint="see dataward.access.PERMISSIONS") from None


def roles_allowing(action: Action) -> frozenset[Role]:
    """Every role that allows ``action`` somewhere, admin included."""
    return PERMISSIONS[action].roles | {Role.ADMIN}


def role_actions(role: Role) -> frozenset[Action]:
    """Every action ``role`` allows on some scope."""
    return frozenset(a for a in Action if role in roles_allowing(a))


def role_covers(held: Role, wanted: Role) -> bool:
    """True when holding ``held`` allows at least everything ``wanted`` allows."""
    return role_actions(wanted) <= role_actions(held)


def permission_rows() -> list[dict[str, Any]]:
    """The permission table as JSON-ready rows, for documentation and ``--json`` output."""
    return [
        {
            "action": action.value,
            "roles": sorted(r.value for r in roles_allowing(action)),
            "scopes": sorted(k.value for k in PERMISSIONS[action].scope_kinds),
        }
        for action in Action
    ]
