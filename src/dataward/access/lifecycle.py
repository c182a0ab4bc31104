"""Identity lifecycle: offboarding a human and handing over the service principals they own.

The functions compute what must change and return updated records; the service writes them and
their ledger events in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dataward.access.authorize import ApiKey, Principal, PrincipalKind, PrincipalStatus, require_aware
from dataward.domain.errors import Conflict, InputError
from dataward.ledger.events import format_time


def check_new_owner(new_owner: Principal, *, leaving: Principal | None = None) -> None:
    """Refuse an owner who cannot be accountable: a service principal, or a human not active."""
    if new_owner.kind is not PrincipalKind.HUMAN:
        raise InputError(
            f"{new_owner.name!r} is a service principal; only a human can own a service principal",
            hint="transfer to an active human",
        )
    if leaving is not None and new_owner.id == leaving.id:
        raise InputError(f"cannot transfer ownership from {leaving.name!r} to itself")
    if not new_owner.is_active:
        raise Conflict(
            f"{new_owner.name!r} is {new_owner.status.value} and cannot take ownership",
            hint="transfer to an active human",
        )


def transfer_ownership(service: Principal, new_owner: Principal) -> Principal:
    """``service`` owned by ``new_owner`` from now on (its status is unchanged)."""
    if service.kind is not PrincipalKind.SERVICE:
        raise InputError(f"{service.name!r} is a human; only service principals have owners")
    check_new_owner(new_owner)
    if service.owner_id == new_owner.id:
        raise Conflict(f"{new_owner.name!r} already owns {service.name!r}")
    return replace(service, owner_id=new_owner.id)


@dataclass(frozen=True)
class OffboardPlan:
    """What offboarding one human changes. Every record here is the updated version.

    ``human``: the human, now disabled. ``suspended``: service principals they owned, now suspended.
    ``transferred``: service principals they owned, now owned by ``transfer_to``. ``revoked_keys``:
    the human's live keys and, when nothing is transferred, the live keys of the suspended service
    principals, all revoked at ``now``: whoever held them may keep copies, so they must never
    work again even if a principal is later re-enabled.
    """

    human: Principal
    transfer_to: Principal | None
    suspended: tuple[Principal, ...]
    transferred: tuple[Principal, ...]
    revoked_keys: tuple[ApiKey, ...]
    now: datetime

    @property
    def changed_principals(self) -> tuple[Principal, ...]:
        return (self.human, *self.suspended, *self.transferred)

    def to_dict(self) -> dict[str, Any]:
        return {
            "human": self.human.id,
            "transfer_to": None if self.transfer_to is None else self.transfer_to.id,
            "suspended": [p.id for p in self.suspended],
            "transferred": [p.id for p in self.transferred],
            "revoked_keys": [k.id for k in self.revoked_keys],
            "time": format_time(self.now),
        }


def offboard(
    human: Principal,
    principals: Iterable[Principal],
    keys: Iterable[ApiKey],
    transfer_to: Principal | None = None,
    *,
    now: datetime,
) -> OffboardPlan:
    """Plan the offboarding of ``human``.

    Without ``transfer_to``, every service principal the human owns is suspended and its keys
    revoked. With ``transfer_to`` (an active human), ownership passes to them and the service
    principals keep working. The human's own keys are revoked either way.
    """
    require_aware(now, "now")
    if human.kind is not PrincipalKind.HUMAN:
        raise InputError(
            f"{human.name!r} is a service principal; offboarding applies to humans",
            hint="suspend a service principal, or offboard its owner",
        )
    if not human.is_active:
        raise Conflict(f"{human.name!r} is already {human.status.value}")
    if transfer_to is not None:
        check_new_owner(transfer_to, leaving=human)

    owned = [p for p in principals if p.kind is PrincipalKind.SERVICE and p.owner_id == human.id]
    owned_ids = {p.id for p in owned}
    suspended: list[Principal] = []
    transferred: list[Principal] = []
    if transfer_to is not None:
        transferred = [replace(p, owner_id=transfer_to.id) for p in owned]
        dying = {human.id}
    else:
        suspended = [replace(p, status=PrincipalStatus.SUSPENDED) for p in owned]
        dying = {human.id} | owned_ids
    revoked = [replace(k, revoked_at=now) for k in keys if k.principal_id in dying and k.revoked_at is None]
    return OffboardPlan(
        human=replace(human, status=PrincipalStatus.DISABLED),
        transfer_to=transfer_to,
        suspended=tuple(suspended),
        transferred=tuple(transferred),
        revoked_keys=tuple(revoked),
        now=now,
    )


def reinstate(principal: Principal, owner: Principal | None) -> Principal:
    """``principal`` active again: a disabled human, or a suspended service principal whose ``owner``
    (its accountable human, as the ledger names it) is active.

    Raises Conflict when it is already active, or when it is a service principal whose owner is not
    active: a bot answers to a human, so it never acts while nobody active answers for it."""
    if principal.is_active:
        raise Conflict(f"{principal.name!r} is already active")
    if principal.kind is PrincipalKind.SERVICE:
        if owner is None or owner.id != principal.owner_id:
            raise InputError(f"service principal {principal.name!r} needs its owner to be enabled")
        if not owner.is_active:
            raise Conflict(
                f"service principal {principal.name!r} is owned by {owner.name!r}, who is {owner.status.value}: "
                "it can be enabled only while an active human answers for it",
                hint=f"transfer it to an active human (`dataward principal transfer {principal.name} --to HUMAN`) "
                f"or enable {owner.name!r}, then enable it",
            )
    return replace(principal, status=PrincipalStatus.ACTIVE)


def check_can_receive(principal: Principal, owner: Principal | None, what: str) -> None:
    """Refuse giving ``what`` (a key, a role) to a principal that cannot use it: one that is disabled
    or suspended, or a service principal whose ``owner`` is not active. Such a gift would do nothing
    until the principal is enabled, and would then take effect unseen; the refusal names the way out."""
    if not principal.is_active:
        raise Conflict(
            f"{principal.name!r} is {principal.status.value}: it cannot be given {what}",
            hint=f"an admin can enable it first: `dataward principal enable {principal.name}`",
        )
    if principal.kind is PrincipalKind.SERVICE and owner is not None and not owner.is_active:
        raise Conflict(
            f"service principal {principal.name!r} is owned by {owner.name!r}, who is {owner.status.value}: "
            f"it cannot be given {what}",
            hint=f"transfer it to an active human: `dataward principal transfer {principal.name} --to HUMAN`",
        )
