"""Overriding a gate's block: who may, and the facts an auditor sees afterwards.

A block is the gate's strongest verdict, so lifting it takes two people: two distinct principals
with owner or admin rights on the dataset, accountable to two distinct humans, neither of them the
contribution's submitter nor the human accountable for the submitting bot. Separation of duties is
the same rule as for approvals (:func:`~dataward.access.policy.separation_problem`) and applies
whatever the dataset policy says about approvals: no policy can let a submitter lift its own block.

Pure logic: the service passes principals, roles and the pending request in, and acts on the
:class:`~dataward.access.authorize.Decision` that comes back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from dataward.access.authorize import Decision, Principal, require_aware
from dataward.access.policy import separation_problem
from dataward.access.roles import Role

OVERRIDE_ROLES: frozenset[Role] = frozenset({Role.OWNER, Role.ADMIN})
"""Roles on the dataset that may take part in a block override."""


def accountable_human(principal: Principal) -> str:
    """The human who answers for ``principal``: itself, or the owner of a service principal."""
    return principal.owner_id or principal.id


def check_override(
    principal: Principal,
    held: Iterable[Role],
    submitter_id: str,
    submitter_owner_id: str | None,
    requested_by: Principal | None = None,
    current_owner_id: str | None = None,
    earlier_owners: Collection[str] = (),
    acting_owners: Collection[str] = (),
    requested_by_owners: Collection[str] = (),
) -> Decision:
    """May ``principal`` (holding ``held`` on the dataset) take part in overriding a block?

    ``requested_by`` is the principal who already asked for the override (None when this is the
    first request): the second principal must be someone else, accountable to another human, so
    that one person with a bot cannot lift a block alone. A bot handed on answers, besides its owner
    now, for its owners while the key it acts with was live: ``acting_owners`` for ``principal``,
    ``requested_by_owners`` for the requester (up to its request).
    """
    base = {"action": "gate.override", "principal_id": principal.id}
    if not principal.is_active:
        return Decision(False, f"principal {principal.name!r} is {principal.status.value}", **base)
    if not set(held) & OVERRIDE_ROLES:
        return Decision(
            False,
            f"{principal.name!r} cannot override a block: it takes owner or admin rights on the dataset",
            hint="ask two owners of the dataset (or admins) to override it",
            **base,
        )
    problem = separation_problem(
        principal,
        submitter_id,
        submitter_owner_id,
        verb="override its block",
        current_owner_id=current_owner_id,
        earlier_owners=earlier_owners,
        acting_owners=acting_owners,
    )
    if problem is not None:
        return Decision(
            False,
            f"separation of duties: {problem}",
            hint="two other owners or admins must override it",
            problems=(problem,),
            **base,
        )
    if requested_by is not None:
        if requested_by.id == principal.id:
            return Decision(
                False,
                f"{principal.name!r} already requested this override; a second, distinct owner or admin must "
                "confirm it",
                hint="ask another owner or admin of the dataset to run the same override",
                **base,
            )
        theirs = {accountable_human(requested_by), *requested_by_owners}
        if theirs & {accountable_human(principal), *acting_owners}:
            return Decision(
                False,
                f"{principal.name!r} and {requested_by.name!r} answer to the same human; an override needs two "
                "distinct people",
                hint="ask an owner or admin accountable to someone else to confirm it",
                **base,
            )
    step = "confirm" if requested_by is not None else "request"
    return Decision(True, f"{principal.name!r} may {step} the override", **base)


@dataclass(frozen=True)
class BlockOverride:
    """One block override as the access review lists it (names already resolved for people)."""

    dataset: str
    contribution: str
    requested_by: str
    requested_reason: str
    requested_at: datetime
    confirmed_by: str | None = None
    confirmed_reason: str | None = None
    confirmed_at: datetime | None = None

    def __post_init__(self) -> None:
        require_aware(self.requested_at, "requested_at")
        if self.confirmed_at is not None:
            require_aware(self.confirmed_at, "confirmed_at")

    @property
    def complete(self) -> bool:
        return self.confirmed_by is not None
