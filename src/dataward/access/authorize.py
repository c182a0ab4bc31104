"""Principals, grants, API key records, and the one function that decides whether an action is allowed.

Everything here is plain data: the service loads principals, keys and grants from the catalog,
passes them in with the current time, and gets a :class:`Decision` back. Nothing is read from a
clock or a database, so every rule can be tested exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from dataward.access.roles import (
    PERMISSIONS,
    Action,
    Role,
    Scope,
    ScopeKind,
    parse_action,
    parse_role,
    role_actions,
    role_covers,
    roles_allowing,
)
from dataward.domain.errors import AccessDenied, InputError
from dataward.ledger.events import format_time


def require_aware(value: datetime, name: str) -> datetime:
    """Refuse naive datetimes: comparing them with aware ones is an error waiting to happen."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value


def _optional_aware(value: datetime | None, name: str) -> None:
    if value is not None:
        require_aware(value, name)


def _iso(value: datetime | None) -> str | None:
    """A time as every JSON document of the ward writes it (``format_time``: UTC, microseconds, ``Z``),
    so that one parser reads a key's ``expires_at`` and a rotation's ``old_key_works_until`` alike."""
    return None if value is None else format_time(value)


class PrincipalKind(StrEnum):
    HUMAN = "human"
    SERVICE = "service"


class PrincipalStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # an offboarded human
    SUSPENDED = "suspended"  # a service principal whose owner left, or that was stopped


@dataclass(frozen=True)
class Principal:
    """An identity that acts. A service principal always names the human accountable for it."""

    id: str
    name: str
    kind: PrincipalKind
    owner_id: str | None
    status: PrincipalStatus
    created_at: datetime

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", PrincipalKind(self.kind))
            object.__setattr__(self, "status", PrincipalStatus(self.status))
        except ValueError as exc:
            raise InputError(f"principal {self.name!r}: {exc}") from None
        if not self.id or not self.name:
            raise InputError("a principal needs an id and a name")
        if self.kind is PrincipalKind.SERVICE and not self.owner_id:
            raise InputError(
                f"service principal {self.name!r} has no owner",
                hint=(
                    "every service principal names the human accountable for it: give an active human as its "
                    f"owner (dataward principal create {self.name} --kind service --owner HUMAN)"
                ),
            )
        if self.kind is PrincipalKind.HUMAN and self.owner_id is not None:
            raise InputError(f"human principal {self.name!r} cannot have an owner")
        if self.owner_id == self.id:
            raise InputError(f"principal {self.name!r} cannot own itself")
        require_aware(self.created_at, "created_at")

    @property
    def is_active(self) -> bool:
        return self.status is PrincipalStatus.ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind.value,
            "owner_id": self.owner_id,
            "status": self.status.value,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True)
class Grant:
    """A role given to a principal on the ward, one dataset or one model."""

    principal_id: str
    role: Role
    scope_kind: ScopeKind
    scope_name: str | None
    granted_by: str
    granted_at: datetime
    id: str = ""
    """The grant's catalog id ("" for a grant not read from a catalog): what a revocation names."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", parse_role(self.role))
        scope = Scope(self.scope_kind, self.scope_name)  # validates kind and name
        object.__setattr__(self, "scope_kind", scope.kind)
        if self.role is Role.ADMIN and scope.kind is not ScopeKind.WARD:
            raise InputError(
                f"admin can only be granted on the ward, not on {scope}",
                hint="grant 'owner' to give full control of one dataset or model",
            )
        require_aware(self.granted_at, "granted_at")

    @property
    def scope(self) -> Scope:
        return Scope(self.scope_kind, self.scope_name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal_id": self.principal_id,
            "role": self.role.value,
            "scope": str(self.scope),
            "granted_by": self.granted_by,
            "granted_at": _iso(self.granted_at),
        }


@dataclass(frozen=True)
class KeyScopes:
    """What a key's scope list allows, split by kind of entry.

    A key may list roles (``contributor``), actions (``contribution.submit``) and resources
    (``dataset:cats``, ``model:m``, ``ward``). Roles and actions narrow *what* the key can do; resources
    narrow *where*. An empty part does not narrow.
    """

    roles: frozenset[Role] = frozenset()
    actions: frozenset[Action] = frozenset()
    resources: tuple[Scope, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> KeyScopes:
        roles: set[Role] = set()
        actions: set[Action] = set()
        resources: list[Scope] = []
        for entry in entries:
            if not isinstance(entry, str):
                raise InputError(f"a key scope must be a string, got {entry!r}")
            if entry in Role._value2member_map_:
                roles.add(Role(entry))
            elif entry in Action._value2member_map_:
                actions.add(Action(entry))
            elif entry == ScopeKind.WARD.value or ":" in entry:
                resources.append(Scope.parse(entry))
            else:
                raise InputError(
                    f"unknown key scope {entry!r}",
                    hint="a key scope is a role (contributor), an action (contribution.submit) "
                    "or a resource (dataset:NAME, model:NAME, ward)",
                )
        return cls(frozenset(roles), frozenset(actions), tuple(resources))

    def allows_resource(self, scope: Scope) -> bool:
        return not self.resources or any(r.covers(scope) for r in self.resources)

    def allows(self, action: Action) -> bool:
        """True when this key may be used for ``action`` (the principal's grants must allow it too).

        A role entry lets the key do what that role allows; the effective rights are the
        intersection of the key's entries and the principal's grants, so a key never adds.
        """
        if not self.roles and not self.actions:
            return True
        return action in self.actions or bool(self.roles & roles_allowing(action))

    def within(self, other: KeyScopes) -> bool:
        """True when a key with these scopes can do nothing a key with ``other`` cannot."""
        if other.roles or other.actions:
            if not self.roles and not self.actions:
                return False
            wanted = set(self.actions).union(*(role_actions(r) for r in self.roles))
            if not all(other.allows(a) for a in wanted):
                return False
        if other.resources:
            if not self.resources:
                return False
            if not all(any(o.covers(r) for o in other.resources) for r in self.resources):
                return False
        return True


@dataclass(frozen=True)
class ApiKey:
    """The stored record of an API key. The secret itself is never kept, only ``hash``.

    ``scopes`` is ``None`` for a key that carries all its principal's roles, or a tuple of entries
    that narrow it (see :class:`KeyScopes`). After a rotation the old record gets ``rotated_at``,
    ``successor_id`` and ``overlap_until``: it keeps working until ``overlap_until`` and never after.
    ``parent_id`` is the key this one was minted from (None for a key an admin issued on the
    authority of the admin grant); ``minted_with`` the key that made it, when a key did (the parent,
    or for a rotation's successor the key that made the rotation). See :mod:`dataward.access.keys`.
    """

    id: str
    principal_id: str
    prefix: str
    hash: str
    scopes: tuple[str, ...] | None
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    rotated_at: datetime | None = None
    successor_id: str | None = None
    overlap_until: datetime | None = None
    parent_id: str | None = None
    minted_with: str | None = None

    def __post_init__(self) -> None:
        require_aware(self.created_at, "created_at")
        require_aware(self.expires_at, "expires_at")
        for name in ("last_used_at", "revoked_at", "rotated_at", "overlap_until"):
            _optional_aware(getattr(self, name), name)
        if self.expires_at <= self.created_at:
            raise InputError(f"key {self.prefix} expires before it is created")
        if self.scopes is not None:
            object.__setattr__(self, "scopes", tuple(self.scopes))
            KeyScopes.parse(self.scopes)  # refuse unknown entries at construction

    @property
    def key_scopes(self) -> KeyScopes:
        return KeyScopes() if self.scopes is None else KeyScopes.parse(self.scopes)

    @property
    def display(self) -> str:
        """How the key is named to people: its public prefix followed by an ellipsis."""
        return f"{self.prefix}…"

    def refusal(self, now: datetime) -> tuple[str, str] | None:
        """Why the key cannot be used at ``now`` as ``(kind, message)``, or None if it can.

        ``kind`` is ``revoked``, ``expired`` or ``rotated``.
        """
        require_aware(now, "now")
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked", f"key {self.display} was revoked at {_iso(self.revoked_at)}"
        if self.expires_at <= now:
            return "expired", f"key {self.display} expired at {_iso(self.expires_at)}"
        if self.overlap_until is not None and self.overlap_until <= now:
            return (
                "rotated",
                f"key {self.display} was rotated; its overlap window ended at {_iso(self.overlap_until)}",
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        """The public view of the record (no hash), for ``--json`` output and ledger payloads."""
        return {
            "id": self.id,
            "principal_id": self.principal_id,
            "prefix": self.prefix,
            "scopes": None if self.scopes is None else list(self.scopes),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "last_used_at": _iso(self.last_used_at),
            "revoked_at": _iso(self.revoked_at),
            "rotated_at": _iso(self.rotated_at),
            "successor_id": self.successor_id,
            "overlap_until": _iso(self.overlap_until),
            "parent_id": self.parent_id,
            "minted_with": self.minted_with,
        }


@dataclass(frozen=True)
class Decision:
    """The outcome of a check: allowed or not, and why, in words a person can act on."""

    allowed: bool
    reason: str
    action: str | None = None
    scope: Scope | None = None
    principal_id: str | None = None
    key_id: str | None = None
    grant: Grant | None = None
    hint: str | None = None
    problems: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return self.allowed

    def raise_if_denied(self, error: type[AccessDenied] = AccessDenied) -> None:
        """Raise ``error`` (AccessDenied or a subclass such as PolicyViolation) when not allowed."""
        if not self.allowed:
            raise error(self.reason, hint=self.hint, **self.details())

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "scope": None if self.scope is None else str(self.scope),
            "principal_id": self.principal_id,
            "key_id": self.key_id,
        }
        if self.problems:
            out["problems"] = list(self.problems)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the payload of an ``access.denied`` ledger event when not allowed."""
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "hint": self.hint,
            "grant": None if self.grant is None else self.grant.to_dict(),
            **self.details(),
        }


def _grant_rank(grant: Grant, scope: Scope) -> tuple[int, int]:
    # Report the narrowest grant that explains a decision: exact scope before ward-wide,
    # any role before admin.
    return (0 if grant.scope == scope else 1, 1 if grant.role is Role.ADMIN else 0)


def grants_of(principal_id: str, grants: Iterable[Grant]) -> list[Grant]:
    """The grants held by one principal."""
    return [g for g in grants if g.principal_id == principal_id]


def roles_on(principal_id: str, grants: Iterable[Grant], scope: Scope) -> frozenset[Role]:
    """The roles a principal holds on ``scope``, counting ward-wide grants. Admin implies every role."""
    held = {g.role for g in grants if g.principal_id == principal_id and g.scope.covers(scope)}
    return frozenset(Role) if Role.ADMIN in held else frozenset(held)


def place(scope: Scope) -> str:
    """``scope`` as a sentence names it: "the ward", or ``dataset:NAME`` / ``model:NAME``."""
    return "the ward" if scope.kind is ScopeKind.WARD else str(scope)


def _missing_role(
    principal: Principal, grants: Iterable[Grant], action: Action, scope: Scope, allowing: frozenset[Role]
) -> tuple[str, str]:
    """The refusal (reason, hint) when no grant of ``principal`` allows ``action`` on ``scope``: which
    roles would, where they must be held, and any of them the principal holds elsewhere, since a grant
    on another dataset is the usual cause and the plain refusal would not say so."""
    if allowing == {Role.ADMIN}:
        return f"{principal.name!r} may not {action.value}: only an admin may", "ask an admin of the ward"
    role_names = ", ".join(sorted(r.value for r in allowing))
    where = "the ward" if scope.kind is ScopeKind.WARD else f"{scope} or on the ward"
    reason = (
        f"{principal.name!r} may not {action.value} on {place(scope)}: "
        f"it needs one of the roles {role_names} on {where}"
    )
    elsewhere = sorted(
        f"{g.role.value} on {place(g.scope)}" for g in grants if g.principal_id == principal.id and g.role in allowing
    )
    if elsewhere:
        reason += f" (it holds {', '.join(elsewhere)} only)"
    asked = "an admin" if scope.kind is ScopeKind.WARD else f"an owner of {scope} or an admin"
    return reason, f"ask {asked} to grant one of: {role_names} on {where}"


def authorize(
    principal: Principal,
    key: ApiKey | None,
    grants: Iterable[Grant],
    action: Action | str,
    scope: Scope,
    now: datetime,
) -> Decision:
    """Decide whether ``principal``, acting through ``key``, may perform ``action`` on ``scope``.

    ``key`` is None only for trusted in-process callers (for example the access review asking what
    a principal could do). ``grants`` may hold other principals' grants; only the principal's own
    count. The decision is deny unless a grant allows it, and a key's scopes can only narrow.
    """
    require_aware(now, "now")
    action = parse_action(action)
    permission = PERMISSIONS[action]
    base = {
        "action": action.value,
        "scope": scope,
        "principal_id": principal.id,
        "key_id": None if key is None else key.id,
    }

    def deny(reason: str, hint: str | None = None) -> Decision:
        return Decision(False, reason, hint=hint, **base)

    if not principal.is_active:
        return deny(f"principal {principal.name!r} is {principal.status.value}")
    if key is not None:
        if key.principal_id != principal.id:
            return deny(f"key {key.display} does not belong to principal {principal.name!r}")
        refusal = key.refusal(now)
        if refusal is not None:
            return deny(refusal[1])
    if scope.kind not in permission.scope_kinds:
        kinds = " or ".join(sorted(k.value for k in permission.scope_kinds))
        return deny(f"{action.value} applies to a {kinds} scope, not to {place(scope)}")

    allowing = roles_allowing(action)
    role_names = ", ".join(sorted(r.value for r in allowing))
    candidates = [g for g in grants if g.principal_id == principal.id and g.role in allowing and g.scope.covers(scope)]
    if not candidates:
        return deny(*_missing_role(principal, grants, action, scope, allowing))
    if key is not None and key.scopes is not None:
        narrowed = key.key_scopes
        if not narrowed.allows_resource(scope):
            return deny(
                f"key {key.display} is limited to {', '.join(str(r) for r in narrowed.resources)}, not {scope}",
                hint="use a key whose scopes include this dataset or model",
            )
        if not narrowed.allows(action):
            return deny(
                f"{_limited(key)}, which do not allow {action.value} (needs {role_names} or the action itself)",
                hint="use a key with a wider scope, or issue one",
            )
    grant = min(candidates, key=lambda g: _grant_rank(g, scope))
    return Decision(True, f"allowed by {grant.role.value} on {grant.scope}", grant=grant, **base)


def authorize_grant(
    principal: Principal,
    key: ApiKey | None,
    grants: Iterable[Grant],
    role: Role | str,
    scope: Scope,
    now: datetime,
    *,
    revoke: bool = False,
) -> Decision:
    """Decide whether ``principal`` may grant (or revoke) ``role`` on ``scope``.

    On top of :func:`authorize` for ``grant.create``/``grant.revoke``: only an admin hands out or
    takes away ``admin``, so an owner can never raise itself, and admin is only ever a ward role. A
    narrowed acting key grants only roles that can do nothing the key cannot (taking a role away is
    always within it), so a key narrowed to ``grant.create`` makes nobody an admin.
    """
    role = parse_role(role)
    grants = list(grants)
    if role is Role.ADMIN and scope.kind is not ScopeKind.WARD:
        raise InputError(f"admin can only be granted on the ward, not on {scope}")
    action = Action.GRANT_REVOKE if revoke else Action.GRANT_CREATE
    decision = authorize(principal, key, grants, action, scope, now)
    if decision.allowed and not revoke and key is not None and not _within_key(key, _role_on(role, scope)):
        # As with keys, a narrowed acting key hands out no more than it holds: a key narrowed to
        # ``grant.create`` used to make anyone an admin, a power the key itself never had.
        return Decision(
            False,
            f"{_limited(key)} and cannot grant {role.value} on {scope}, which can do more than the key",
            action=action.value,
            scope=scope,
            principal_id=principal.id,
            key_id=key.id,
            hint="grant roles with an unrestricted key, or with one whose scopes cover the role",
        )
    if not decision.allowed or role is not Role.ADMIN:
        return decision
    # Owners may grant on what they own, but only an admin's own grant can create another admin.
    as_admin = authorize(principal, key, [g for g in grants if g.role is Role.ADMIN], action, scope, now)
    if as_admin.allowed:
        return as_admin
    return Decision(
        False,
        f"only an admin may {'revoke' if revoke else 'grant'} the admin role",
        action=action.value,
        scope=scope,
        principal_id=principal.id,
        key_id=None if key is None else key.id,
        hint="ask an admin of the ward",
    )


def validate_key_scopes(principal: Principal, grants: Iterable[Grant], scopes: Iterable[str] | None) -> None:
    """Refuse key scopes wider than the principal's roles (a key narrows; it never adds).

    Raises AccessDenied naming the first scope entry the principal does not hold.
    """
    if scopes is None:
        return
    mine = grants_of(principal.id, grants)
    parsed = KeyScopes.parse(scopes)
    held = {g.role for g in mine}
    for role in sorted(parsed.roles):
        if not any(role_covers(h, role) for h in held):
            raise AccessDenied(
                f"{principal.name!r} does not hold the role {role.value}, so its key cannot carry it",
                hint="a key's scopes can only narrow its principal's roles",
            )
    for action in sorted(parsed.actions):
        if not any(g.role in roles_allowing(action) for g in mine):
            raise AccessDenied(
                f"{principal.name!r} may not {action.value} anywhere, so its key cannot carry it",
                hint="a key's scopes can only narrow its principal's roles",
            )
    for resource in parsed.resources:
        if not any(g.scope.covers(resource) for g in mine):
            raise AccessDenied(
                f"{principal.name!r} holds no role on {resource}, so its key cannot be scoped to it",
                hint="a key's scopes can only narrow its principal's roles",
            )


def _is_own_service(principal: Principal, target: Principal) -> bool:
    return target.kind is PrincipalKind.SERVICE and target.owner_id == principal.id


def authorize_key_action(
    principal: Principal,
    key: ApiKey | None,
    grants: Iterable[Grant],
    action: Action | str,
    target: Principal,
    now: datetime,
    *,
    new_scopes: Iterable[str] | None = None,
    allow_self_issue: bool = False,
) -> Decision:
    """May ``principal`` issue (``key.issue``, also used for rotation) or revoke (``key.revoke``)
    a key of ``target``?

    Anyone may revoke their own keys and those of the service principals they own: revoking only
    removes power. Issuing a key for oneself or one's own service principal needs no grant (the
    own-keys rule), but a narrowed acting key may only mint keys at least as narrow (``new_scopes``
    within its own scopes), so a leaked narrow key cannot buy a wide one, an admin's included: an admin
    grant authorizes keys for others, never a wider one for oneself. For others too, a narrowed acting
    key issues (or rotates) only keys within its own scopes, so a key narrowed to ``key.issue`` cannot
    issue an unscoped key for another admin. A service principal may not
    mint keys for itself at all unless ``allow_self_issue`` (the key policy's
    ``allow_self_issued_keys``): a leaked bot key must not be able to renew itself. Keys of anyone
    else need ``key.issue``/``key.revoke`` on the ward (admin).

    An allowed issue decision with no ``grant`` was made on the own-keys rule: the acting key mints
    the new key and becomes its parent. With a ``grant`` the admin grant is the authority.
    """
    action = parse_action(action)
    if action not in (Action.KEY_ISSUE, Action.KEY_REVOKE):
        raise InputError(f"authorize_key_action decides key.issue or key.revoke, not {action.value}")
    grants = list(grants)
    ward = Scope.ward()
    base = {
        "action": action.value,
        "scope": ward,
        "principal_id": principal.id,
        "key_id": None if key is None else key.id,
    }
    if (
        action is Action.KEY_ISSUE
        and target.id == principal.id
        and principal.kind is PrincipalKind.SERVICE
        and not allow_self_issue
    ):
        return Decision(
            False,
            f"service principal {principal.name!r} may not mint keys for itself",
            hint="its owner or an admin issues and rotates its keys; a dataset policy can allow it "
            "with keys: {allow_self_issued_keys: true}",
            **base,
        )
    self_or_own = target.id == principal.id or _is_own_service(principal, target)
    if not self_or_own or not principal.is_active:
        decision = authorize(principal, key, grants, action, ward, now)
        if decision.allowed and action is Action.KEY_ISSUE and key is not None and not _within_key(key, new_scopes):
            # The admin grant issues keys for others, but a narrowed acting key hands out no more than it
            # holds: a key narrowed to ``key.issue`` used to issue an unscoped key for another admin, and
            # so bought that admin's every power with a key meant only to issue keys.
            return Decision(
                False,
                f"{_limited(key)} and cannot issue a wider key for {target.name!r}",
                hint="issue keys for others with an unrestricted key, or give the new key scopes within the "
                "acting key's",
                **base,
            )
        return decision
    if key is not None:
        if key.principal_id != principal.id:
            return Decision(False, f"key {key.display} does not belong to principal {principal.name!r}", **base)
        refusal = key.refusal(now)
        if refusal is not None:
            return Decision(False, refusal[1], **base)
    if action is Action.KEY_REVOKE or key is None or key.scopes is None:
        return Decision(True, f"{principal.name!r} manages its own keys and those of its services", **base)
    if _within_key(key, new_scopes):
        return Decision(True, f"key {key.display} mints a key no wider than itself", **base)
    # No fallback on an admin grant here: one's own keys (and one's bots') are always minted with the
    # acting key, so that they never outlive it, are never wider and die with it. An admin's key narrowed
    # to ``admin`` or ``key.issue`` otherwise minted an unscoped key for its holder with no parent.
    return Decision(
        False,
        f"{_limited(key)} and cannot issue a wider key",
        hint="issue keys with an unrestricted key, or give the new key scopes within the acting key's",
        **base,
    )


def authorize_hand_over(
    principal: Principal, key: ApiKey | None, action: Action, bot: Principal, bot_grants: Iterable[Grant]
) -> Decision:
    """May ``principal``, acting with ``key``, hand service principal ``bot`` (holding ``bot_grants``) to
    another owner (``principal.transfer``, or ``principal.disable`` with a successor)? Its new owner issues
    its keys on the own-keys rule, so a narrowed acting key hands over no bot holding a role the key could
    not grant itself: a key narrowed to ``principal.transfer`` would otherwise give an admin bot, and so the
    ward, to anyone. An unrestricted key is decided by the action's own authorization alone."""
    base = {"action": action.value, "scope": Scope.ward(), "principal_id": principal.id}
    if key is None or not key.scopes:
        return Decision(True, "an unrestricted key hands over what the action allows", **base)
    for held in grants_of(bot.id, bot_grants):
        if not _within_key(key, _role_on(held.role, held.scope)):
            return Decision(
                False,
                f"{_limited(key)} and cannot hand over {bot.name!r}, which holds {held.role.value} on "
                f"{held.scope}: its new owner could issue its keys",
                key_id=key.id,
                hint="hand over service principals with an unrestricted key",
                **base,
            )
    return Decision(True, f"{bot.name!r} holds nothing key {key.display} could not grant", key_id=key.id, **base)


def _within_key(key: ApiKey | None, wanted: KeyScopes | Iterable[str] | None) -> bool:
    """True when what the acting ``key`` hands out (``wanted``: key scopes, or a key's scope entries;
    None: everything, as an unscoped key) can do nothing the key cannot: always for an unrestricted
    acting key (or none, in process; a key of no scopes narrows nothing), only for ``wanted`` within its
    scopes otherwise (entries are parsed only then)."""
    if key is None or not key.scopes:
        return True
    if wanted is None:
        return False
    return (wanted if isinstance(wanted, KeyScopes) else KeyScopes.parse(wanted)).within(key.key_scopes)


def _role_on(role: Role, scope: Scope) -> KeyScopes:
    """What holding ``role`` on ``scope`` allows, as key scopes (to compare with a key's)."""
    return KeyScopes(roles=frozenset({role}), resources=(scope,))


def _limited(key: ApiKey) -> str:
    """How a refusal names a narrowed key: "key dw_... is limited to scopes a, b"."""
    return f"key {key.display} is limited to scopes {', '.join(key.scopes or ())}"


def authorize_withdraw(
    principal: Principal,
    key: ApiKey | None,
    grants: Iterable[Grant],
    scope: Scope,
    submitter_id: str,
    submitter_owner_id: str | None,
    now: datetime,
) -> Decision:
    """May ``principal`` withdraw a contribution? Contributors withdraw only their own (or their
    service principals'); owners and admins withdraw any contribution on their dataset.
    """
    grants = list(grants)
    decision = authorize(principal, key, grants, Action.CONTRIBUTION_WITHDRAW, scope, now)
    if not decision.allowed or principal.id in {submitter_id, submitter_owner_id}:
        return decision
    as_owner = authorize(
        principal,
        key,
        [g for g in grants if g.role in (Role.OWNER, Role.ADMIN)],
        Action.CONTRIBUTION_WITHDRAW,
        scope,
        now,
    )
    if as_owner.allowed:
        return as_owner
    return Decision(
        False,
        f"{principal.name!r} may only withdraw its own contributions on {scope}",
        hint="ask the submitter or an owner of the dataset",
        action=Action.CONTRIBUTION_WITHDRAW.value,
        scope=scope,
        principal_id=principal.id,
        key_id=None if key is None else key.id,
    )
