"""Use cases of access control: principals, API keys, grants, dataset policies and access reviews."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from functools import partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from dataward.access import (
    DEFAULT_KEY_POLICY,
    ApiKey,
    DatasetPolicy,
    Decision,
    Enabling,
    KeyPolicy,
    Principal,
    ValidationChange,
    WeakGate,
    access_review,
    authorize,
    authorize_grant,
    authorize_hand_over,
    authorize_key_action,
    check_can_receive,
    check_new_owner,
    descendants,
    ended_with,
    generate_key,
    offboard,
    reinstate,
    revoke,
    rotate,
    transfer_ownership,
    validate_key_scopes,
)
from dataward.access.authorize import PrincipalKind, PrincipalStatus
from dataward.access.containment import QuarantinedWork
from dataward.access.keys import key_end, without_secret
from dataward.access.ownership import OwnedDataset, co_owners, owned_by, owner_fix
from dataward.access.removals import LISTED
from dataward.access.roles import Action, Role, Scope, ScopeKind
from dataward.catalog import ledger_store
from dataward.catalog.batched import rows_in
from dataward.catalog.projection import insert_row, update_row
from dataward.catalog.tables import api_keys, contributions, datasets, grants, principals, versions
from dataward.domain.errors import AccessDenied, Conflict, InputError, NotFound, PolicyViolation
from dataward.domain.limits import MAX_DAYS, check_free_json, within_range
from dataward.domain.weakening import Weakening
from dataward.ledger.events import format_time, parse_time
from dataward.service import auth, rows
from dataward.service.core import Service, UseCase, WardContext, new_id
from dataward.service.guard import SignedCheck, checked_identity_people
from dataward.service.overrides import block_overrides
from dataward.service.removal_list import listed_removals
from dataward.service.signed_identity import signed_identity

if TYPE_CHECKING:
    from dataward.domain.schema import Schema
    from dataward.service.datasets import DatasetService

PRINCIPAL_KINDS = ("human", "service")


def principal_info(p: Principal, owner_name: str | None = None) -> dict[str, Any]:
    """The JSON view of a principal, with its owner's name."""
    return {**p.to_dict(), "owner": owner_name}


def _principal_change(p: Principal) -> Any:
    return update_row("principals", {"id": p.id}, status=p.status.value, owner_id=p.owner_id)


def _active_grant(conn: Connection, principal_id: str, role: str, scope: Scope) -> Any:
    """The principal's unrevoked grant of ``role`` on ``scope``, or None."""
    same_name = grants.c.scope_name == scope.name if scope.name else grants.c.scope_name.is_(None)
    return conn.execute(
        select(grants).where(
            grants.c.principal_id == principal_id,
            grants.c.role == role,
            grants.c.scope_kind == scope.kind.value,
            grants.c.revoked_at.is_(None),
            same_name,
        )
    ).first()


def _all_keys(conn: Connection, ledger: tuple[str, str]) -> list[ApiKey]:
    """Every key the catalog holds, as the signed ledger made it: whose it is and which key it was
    minted from decide what a revocation or an offboarding reaches, and a parent id cleared in the
    catalog alone must not let a minted key escape its parent's revocation."""
    present = set(conn.execute(select(api_keys.c.id)).scalars())
    signed = signed_identity(conn, *ledger).tables["api_keys"].values()
    return [auth.key_from_row(SimpleNamespace(**row)) for row in signed if row["id"] in present]


def with_descendants(revoked: list[ApiKey], keys: list[ApiKey], now: Any) -> list[ApiKey]:
    """``revoked`` plus every live key minted through any of them, transitively, revoked at ``now``:
    revoking a key revokes the keys minted through it, effective on their very next request."""
    out = list(revoked)
    seen = {k.id for k in revoked}
    for root in revoked:
        for child in descendants(root.id, keys):
            if child.id not in seen and child.revoked_at is None:
                seen.add(child.id)
                out.append(revoke(child, now))
    return out


def _key_row(conn: Connection, ref: str) -> Any:
    key_id = rows.key_id_of(ref)
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise NotFound(f"no API key {ref!r}", hint="list them with `dataward key list`")
    return row


class IdentityService(Service):
    """Use cases of access control: principals, keys, grants, policies, access review."""

    def __init__(self, context: WardContext, datasets: DatasetService) -> None:
        super().__init__(context)
        self.datasets = datasets

    key_policy: KeyPolicy = DEFAULT_KEY_POLICY

    # --- principals -----------------------------------------------------------------------

    def create_principal(
        self, name: str, *, kind: str = "human", owner: str | None = None, description: str = ""
    ) -> dict[str, Any]:
        """Register a human, or a service principal (pipeline, bot, CI job) with its accountable owner."""
        rows.check_name("principal", name)
        if kind not in PRINCIPAL_KINDS:
            raise InputError(f"unknown principal kind {kind!r}", hint="human or service")
        with self.use_case(Action.PRINCIPAL_CREATE, Scope.ward()) as uc:
            rows.check_unique_name("principal", name, uc.conn.execute(select(principals.c.name)).scalars())
            owner_p = None
            if owner is not None:
                owner_p = auth.principal_from_row(self._signed_principal(uc, owner, "make a service owned by"))
                check_new_owner(owner_p)
            pid = new_id("p")
            p = Principal(pid, name, kind, owner_p.id if owner_p else None, "active", uc.now)  # validates
            uc.emit(
                "principal.created",
                {"principal": pid},
                {"name": name, "kind": kind, "owner": p.owner_id},
                [
                    insert_row(
                        "principals",
                        id=pid,
                        name=name,
                        kind=kind,
                        owner_id=p.owner_id,
                        status="active",
                        created_at=format_time(uc.now),
                        created_by=uc.caller.principal_id,
                        description=description,
                    )
                ],
            )
            return principal_info(p, owner_p.name if owner_p else None)

    def principals(self) -> list[dict[str, Any]]:
        """Every principal with its kind, owner and status."""
        with self.use_case(Action.LEDGER_READ, Scope.ward()) as uc:
            all_rows = uc.conn.execute(select(principals).order_by(principals.c.name)).all()
            names = {r.id: r.name for r in all_rows}
            return [principal_info(auth.principal_from_row(r), names.get(r.owner_id)) for r in all_rows]

    def disable_principal(self, name: str, *, transfer_to: str | None = None, reason: str = "") -> dict[str, Any]:
        """Offboard a human: disable them, revoke their keys, and suspend the service principals they
        own (revoking those keys too) unless ``transfer_to`` (an active human) takes them over."""
        with self.use_case(Action.PRINCIPAL_DISABLE, Scope.ward()) as uc:
            target = auth.principal_from_row(self._signed_principal(uc, name, "disable", removing=True))
            if target.id == uc.caller.principal_id:
                raise InputError("you cannot disable yourself", hint="ask another admin")
            if not target.is_active:
                # Already out (disabled, or suspended, e.g. with its owner): a second disable changes
                # nothing, so it records nothing; the answer says so.
                return _already_inactive(target)
            everyone = [auth.principal_from_row(r) for r in uc.conn.execute(select(principals))]
            keys = _all_keys(uc.conn, self.context.ledger)
            new_owner = (
                auth.principal_from_row(self._signed_principal(uc, transfer_to, "hand service principals to"))
                if transfer_to
                else None
            )
            if target.kind.value == "service":
                changes = [update_row("principals", {"id": target.id}, status="suspended")]
                dying = [revoke(k, uc.now) for k in keys if k.principal_id == target.id and k.revoked_at is None]
                dying = with_descendants(dying, keys, uc.now)
                changes += [auth.key_update(k) for k in dying]
                uc.emit(
                    "principal.suspended",
                    {"principal": target.id},
                    {"reason": reason, "revoked_keys": [k.id for k in dying]},
                    changes,
                )
                return {"principal": target.name, "status": "suspended", "revoked_keys": [k.prefix for k in dying]}
            plan = offboard(target, everyone, keys, new_owner, now=uc.now)
            for bot in plan.transferred:
                self._check_hand_over(uc, Action.PRINCIPAL_DISABLE, bot)
            changes = [_principal_change(p) for p in plan.changed_principals]
            revoked = list(plan.revoked_keys)
            # Keys the leaver minted for bots that change hands die too: the leaver may hold copies.
            moved = {p.id for p in plan.transferred}
            minted = {r.id for r in uc.conn.execute(select(api_keys.c.id).where(api_keys.c.issued_by == target.id))}
            revoked += [
                revoke(k, uc.now) for k in keys if k.principal_id in moved and k.id in minted and k.revoked_at is None
            ]
            revoked = with_descendants(revoked, keys, uc.now)
            changes += [auth.key_update(k) for k in revoked]
            uc.emit(
                "principal.disabled",
                {"principal": target.id},
                {"reason": reason, **plan.to_dict(), "revoked_keys": [k.id for k in revoked]},
                changes,
            )
            return {
                "principal": target.name,
                "status": "disabled",
                # Datasets keep their recorded owner: say which ones now need another human to answer for them.
                "owned_datasets": _left_without_owner(uc.conn, target, everyone),
                "suspended": [p.name for p in plan.suspended],
                "transferred": [p.name for p in plan.transferred],
                "transfer_to": new_owner.name if new_owner else None,
                "revoked_keys": [k.prefix for k in revoked],
            }

    def transfer_principal(self, service: str, new_owner: str) -> dict[str, Any]:
        """Hand a service principal to another active human, who becomes accountable for it. The keys the
        previous owner issued for it are revoked (with every key minted through them): the previous
        owner may hold copies, and would otherwise act as a bot someone else now answers for."""
        with self.use_case(Action.PRINCIPAL_TRANSFER, Scope.ward()) as uc:
            svc = auth.principal_from_row(self._signed_principal(uc, service, "transfer"))
            owner = auth.principal_from_row(self._signed_principal(uc, new_owner, "transfer a service principal to"))
            moved = transfer_ownership(svc, owner)
            self._check_hand_over(uc, Action.PRINCIPAL_TRANSFER, svc)
            keys = _all_keys(uc.conn, self.context.ledger)
            issued = set(
                uc.conn.execute(
                    select(api_keys.c.id).where(api_keys.c.principal_id == svc.id, api_keys.c.issued_by == svc.owner_id)
                ).scalars()
            )
            dying = [revoke(k, uc.now) for k in keys if k.id in issued and k.revoked_at is None]
            dying = with_descendants(dying, keys, uc.now)
            uc.emit(
                "principal.transferred",
                {"principal": svc.id},
                {"from": svc.owner_id, "to": owner.id, "revoked_keys": [k.id for k in dying]},
                [_principal_change(moved), *(auth.key_update(k) for k in dying)],
            )
            return {**principal_info(moved, owner.name), "revoked_keys": [k.prefix for k in dying]}

    def _check_hand_over(self, uc: UseCase, action: Action, bot: Principal) -> None:
        """Refuse (recorded) handing ``bot`` to a new owner with a narrowed key that could not grant what it
        holds (``authorize_hand_over``)."""
        authorize_hand_over(
            uc.caller.principal, uc.caller.key, action, bot, auth.load_grants(uc.conn, bot.id)
        ).raise_if_denied()

    def enable_principal(self, name: str, *, reason: str = "") -> dict[str, Any]:
        """Let a disabled human or a suspended service principal act again (admin only).

        A service principal is enabled only while its owner is active. No key comes back: the keys it
        held were revoked when it was stopped, and any still unrevoked (issued while it was stopped,
        before such issuing was refused) are revoked now, so that only keys issued after this event
        work. Its grants were never taken away and apply again; the answer lists them, and a human's
        service principals that are still suspended, which each need their own enabling."""
        with self.use_case(Action.PRINCIPAL_ENABLE, Scope.ward()) as uc:
            target = auth.principal_from_row(self._signed_principal(uc, name, "enable"))
            owner = self._owner_of(uc, target)
            enabled = reinstate(target, owner)
            keys = _all_keys(uc.conn, self.context.ledger)
            stale = [revoke(k, uc.now) for k in keys if k.principal_id == target.id and k.revoked_at is None]
            stale = with_descendants(stale, keys, uc.now)
            uc.emit(
                "principal.enabled",
                {"principal": target.id},
                {
                    "reason": reason,
                    "was": target.status.value,
                    "owner": target.owner_id,
                    "revoked_keys": [k.id for k in stale],
                },
                [_principal_change(enabled), *(auth.key_update(k) for k in stale)],
            )
            held = auth.load_grants(uc.conn, target.id)
            waiting = uc.conn.execute(
                select(principals.c.name).where(
                    principals.c.owner_id == target.id, principals.c.status == PrincipalStatus.SUSPENDED.value
                )
            ).scalars()
            return {
                **principal_info(enabled, owner.name if owner else None),
                "was": target.status.value,
                "reason": reason,
                "grants": [{"role": g.role.value, "scope": str(g.scope)} for g in held],
                "revoked_keys": [k.prefix for k in stale],
                "still_suspended": sorted(waiting),
            }

    def _owner_of(self, uc: UseCase, principal: Principal) -> Principal | None:
        """A service principal's owner as the signed ledger has it (None for a human): who answers for
        it decides whether it may act, be enabled, or be given a key or a role."""
        if principal.kind is not PrincipalKind.SERVICE or principal.owner_id is None:
            return None
        return auth.principal_from_row(self._signed_principal(uc, principal.owner_id, "check the owner of"))

    def _check_can_receive(self, uc: UseCase, principal: Principal, what: str) -> None:
        """Refuse (``Conflict``) giving ``what`` to a principal that is not active, or whose owner is not."""
        check_can_receive(principal, self._owner_of(uc, principal), what)

    # --- keys -----------------------------------------------------------------------------

    def _key_policy_for(self, conn: Connection, scopes: list[str] | None) -> KeyPolicy:
        """The ward's key rules, tightened by the policy of every dataset the key is scoped to.

        ``allow_self_issued_keys`` is the ward's, unless the key is scoped to datasets only: then every
        one of them must allow it (a dataset policy's explicit setting, else the ward's).
        """
        policy = self.key_policy
        names = _dataset_scopes(scopes)
        for name in names:
            policy = policy.tightened_by(dataset_policy(rows.dataset_row(conn, name)).key_policy(self.key_policy))
        return replace(policy, allow_self_issued_keys=self._self_issue_allowed(conn, scopes))

    def _self_issue_allowed(self, conn: Connection, scopes: list[str] | None) -> bool:
        """May a service principal mint a key with ``scopes`` for itself? (An unknown dataset: no.)"""
        names = _dataset_scopes(scopes)
        only_datasets = bool(names) and all(entry.startswith("dataset:") for entry in _resource_scopes(scopes))
        if not only_datasets:
            return self.key_policy.allow_self_issued_keys
        for name in names:
            row = conn.execute(select(datasets).where(datasets.c.name == name)).first()
            if row is None or not dataset_policy(row).key_policy(self.key_policy).allow_self_issued_keys:
                return False
        return True

    def issue_key(
        self,
        principal: str | None = None,
        *,
        ttl_days: int | None = None,
        scopes: list[str] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Issue an API key (shown once) for ``principal`` (default: the caller).

        A key issued for oneself or one's own service principal is minted with the caller's key: it is
        that key's child, never wider than it, never outliving it (an explicit ``ttl_days`` that would
        is refused; without one the lifetime is cut to fit) and revoked with it. A key an admin issues
        for anyone else with an unrestricted key rests on the admin grant and has no parent; with a
        narrowed key it is that key's child too.
        """
        if ttl_days is not None and ttl_days < 1:
            # Not "between 1 and 36500": the upper end a user meets is the key policy's maximum.
            raise InputError(
                f"a key lives at least 1 day (ttl_days {ttl_days!r})",
                hint="omit the lifetime for the key policy's default; the policy's max_ttl_days is the most",
            )
        if ttl_days is not None:
            within_range(ttl_days, "ttl_days", 1, MAX_DAYS)
        with self.use_case_for_key(Action.KEY_ISSUE, principal, new_scopes=scopes) as (uc, target, decision):
            self._check_can_receive(uc, target, "a key")
            target_grants = auth.load_grants(uc.conn, target.id)
            validate_key_scopes(target, target_grants, scopes)
            ttl = timedelta(days=ttl_days) if ttl_days is not None else None
            policy = self._key_policy_for(uc.conn, scopes)
            parent = _minting_key(uc, decision)
            plaintext, record = generate_key(
                target.id, now=uc.now, ttl=ttl, policy=policy, scopes=scopes, parent=parent
            )
            if uc.conn.execute(select(api_keys.c.id).where(api_keys.c.id == record.id)).first():
                raise Conflict("key id collision; issue the key again")
            uc.emit(
                "key.issued",
                {"principal": target.id, "key": record.id},
                {"key": record.to_dict()},
                [auth.key_insert(record, description, issued_by=uc.caller.principal_id)],
            )
            return {**record.to_dict(), "principal": target.name, "key": plaintext}

    def rotate_key(self, key: str, *, overlap_hours: float = 24.0) -> dict[str, Any]:
        """Issue a key's successor; the old key, and every key minted through it, keeps working for the
        overlap window, then never again. The successor expires when the old key would have, at the
        latest: rotation renews the secret, not the lifetime (issue a new key for a longer one)."""
        key = without_secret(key)  # a whole key names its key; its secret goes no further
        within_range(overlap_hours, "overlap_hours", 0, MAX_DAYS * 24)
        with self.db.reading() as conn:
            row = _key_row(conn, key)
        scopes = json.loads(row.scopes) if row.scopes else None
        with self.use_case_for_key(Action.KEY_ISSUE, row.principal_id, new_scopes=scopes) as (uc, target, decision):
            self._check_can_receive(uc, target, "a key")
            old = auth.key_from_row(_key_row(uc.conn, key))
            # The successor expires when the old key does at the latest (and within the policy's maximum
            # from now): rotating replaces the secret, never extends the life. Issuing gives a longer one.
            policy = self._key_policy_for(uc.conn, scopes)
            lifetime = timedelta(days=policy.max_ttl_days)
            # It takes the old key's place in the lineage, bounded by the same parent.
            parent = auth.key_from_row(_key_row(uc.conn, old.parent_id)) if old.parent_id else None
            plaintext, new, old_updated = rotate(
                old,
                uc.now,
                timedelta(hours=overlap_hours),
                policy=policy,
                ttl=lifetime,
                parent=parent,
                minted_with=_minting_key(uc, decision),
                lookup=partial(auth.stored_key, uc.conn),
            )
            # The keys minted through the old key end with it, not when it would have expired.
            cut = ended_with(key_end(old_updated), descendants(old.id, _all_keys(uc.conn, self.context.ledger)))
            uc.emit(
                "key.rotated",
                {"principal": target.id, "key": old.id, "successor": new.id},
                {
                    "overlap_until": format_time(old_updated.overlap_until),
                    "key": new.to_dict(),
                    "ended_with_it": [k.id for k in cut],
                },
                [
                    auth.key_insert(new, f"rotated from {old.prefix}", issued_by=uc.caller.principal_id),
                    auth.key_update(old_updated),
                    *(auth.key_update(k) for k in cut),
                ],
            )
            return {
                **new.to_dict(),
                "principal": target.name,
                "key": plaintext,
                # Both spellings, as the new key's own ``id`` and ``prefix``.
                "rotated_from": old.prefix,
                "rotated_from_id": old.id,
                "old_key_works_until": format_time(old_updated.overlap_until),
            }

    def revoke_key(self, key: str, *, reason: str = "") -> dict[str, Any]:
        """Revoke a key and every key minted through it, transitively: all are refused from the very next
        request."""
        key = without_secret(key)  # a whole key names its key; its secret goes no further
        with self.db.reading() as conn:
            row = _key_row(conn, key)
        with self.use_case_for_key(Action.KEY_REVOKE, row.principal_id) as (uc, target, _):
            revoked = revoke(auth.key_from_row(_key_row(uc.conn, key)), uc.now)
            # Every key minted through it dies with it, transitively, on its very next request.
            keys = _all_keys(uc.conn, self.context.ledger)
            family = with_descendants([revoked], keys, uc.now)[1:]
            uc.emit(
                "key.revoked",
                {"principal": target.id, "key": revoked.id},
                {"reason": reason, "with_it": [k.id for k in family]},
                [auth.key_update(k) for k in (revoked, *family)],
            )
            names = {r.id: r.name for r in uc.conn.execute(select(principals.c.id, principals.c.name))}
            return {
                **revoked.to_dict(),
                "principal": target.name,
                "revoked_with_it": [{"key": k.prefix, "principal": names.get(k.principal_id)} for k in family],
            }

    def keys(self, principal: str | None = None) -> list[dict[str, Any]]:
        """API keys (never their secrets), of one principal or all, with their state."""
        with self.use_case(Action.LEDGER_READ, Scope.ward()) as uc:
            query = select(api_keys, principals.c.name).join(principals, principals.c.id == api_keys.c.principal_id)
            if principal is not None:
                query = query.where(api_keys.c.principal_id == rows.principal_row(uc.conn, principal).id)
            out = []
            for r in uc.conn.execute(query.order_by(api_keys.c.created_at)):
                record = auth.key_from_row(r)
                refusal = record.refusal(uc.now)
                out.append(
                    {
                        **record.to_dict(),
                        "principal": r.name,
                        "state": refusal[0] if refusal else "active",
                        "description": r.description,
                    }
                )
            return out

    # --- grants ---------------------------------------------------------------------------

    def grant(self, principal: str, role: str, scope: str = "ward") -> dict[str, Any]:
        """Give ``principal`` a role on the ward, ``dataset:NAME`` or ``model:NAME``."""
        target_scope = Scope.parse(scope)
        with self.use_case(Action.GRANT_CREATE, target_scope) as uc:
            decision = authorize_grant(uc.caller.principal, uc.caller.key, uc.caller.grants, role, target_scope, uc.now)
            decision.raise_if_denied()
            target = self._signed_principal(uc, principal, "grant a role to")
            self._check_can_receive(uc, auth.principal_from_row(target), "a role")
            if target_scope.kind is ScopeKind.DATASET:
                rows.dataset_row(uc.conn, target_scope.name or "")
            role_value = Role(role).value
            existing = _active_grant(uc.conn, target.id, role_value, target_scope)
            if existing:
                raise Conflict(f"{target.name!r} already has {role_value} on {target_scope}")
            gid = new_id("g")
            uc.emit(
                "grant.created",
                {"principal": target.id, "grant": gid},
                {"role": role_value, "scope": str(target_scope)},
                [
                    insert_row(
                        "grants",
                        id=gid,
                        principal_id=target.id,
                        role=role_value,
                        scope_kind=target_scope.kind.value,
                        scope_name=target_scope.name,
                        granted_by=uc.caller.principal_id,
                        granted_at=format_time(uc.now),
                    )
                ],
            )
            return {"id": gid, "principal": target.name, "role": role_value, "scope": str(target_scope)}

    def revoke_grant(self, principal: str, role: str, scope: str = "ward") -> dict[str, Any]:
        """Take a role away from ``principal`` on ``scope``."""
        target_scope = Scope.parse(scope)
        with self.use_case(Action.GRANT_REVOKE, target_scope) as uc:
            authorize_grant(
                uc.caller.principal, uc.caller.key, uc.caller.grants, role, target_scope, uc.now, revoke=True
            ).raise_if_denied()
            target = self._signed_principal(uc, principal, "revoke a role of", removing=True)
            row = _active_grant(uc.conn, target.id, Role(role).value, target_scope)
            if row is None:
                raise NotFound(f"{target.name!r} has no {role} grant on {target_scope}")
            self._check_someone_left_in_charge(uc, target, row, target_scope)
            uc.emit(
                "grant.revoked",
                {"principal": target.id, "grant": row.id},
                # LISTED: on the ward's list of removals, which verify holds it to.
                {"role": row.role, "scope": str(target_scope), LISTED: True},
                [
                    update_row(
                        "grants", {"id": row.id}, revoked_at=format_time(uc.now), revoked_by=uc.caller.principal_id
                    )
                ],
            )
            return {
                "id": row.id,
                "principal": target.name,
                "role": row.role,
                "scope": str(target_scope),
                "revoked": True,
            }

    def _check_someone_left_in_charge(self, uc: UseCase, target: Any, grant_row: Any, scope: Scope) -> None:
        """Refuse revoking the ward's last admin grant held by an active human (``Conflict``: nobody could
        administer the ward again, nor grant admin back), and a dataset's last owner grant held by an
        active human unless the caller acts as an admin or as an owner of the whole ward, who can grant
        owner on it again (``AccessDenied``: co-owners revoking each other left a dataset nobody answers
        for, and ``access review`` said nothing). Service principals are not counted among those left in
        charge: a bot answers to its human, not for a dataset or the ward, so an owner granting owner to
        a bot and revoking their own grant left a dataset only a bot owned, with no review row. A grant
        of a principal that is not an active human leaves nobody less in charge: its revocation is never
        refused."""
        role = Role(grant_row.role)
        if target.status != PrincipalStatus.ACTIVE.value or target.kind != PrincipalKind.HUMAN.value:
            return
        if role is Role.OWNER and scope.kind is ScopeKind.DATASET:
            ds = uc.conn.execute(select(datasets.c.role).where(datasets.c.name == scope.name)).first()
            # A clean validation set goes with its dataset, whose owners write it: no owner grant of its own.
            if ds is None or ds.role != "dataset" or acts_as_admin(uc, scope, Action.GRANT_REVOKE):
                return
            if acts_as_ward_owner(uc):
                return
        elif role is not Role.ADMIN:
            return
        people = {r.id: auth.principal_from_row(r) for r in uc.conn.execute(select(principals))}
        others = [g for g in auth.load_grants(uc.conn) if g.role is role and g.scope == scope and g.id != grant_row.id]
        left = [people[g.principal_id] for g in others if g.principal_id in people and people[g.principal_id].is_active]
        if any(p.kind is PrincipalKind.HUMAN for p in left):
            return
        bots = sorted({p.name for p in left})
        only_bots = (
            f" (only service principal(s) {', '.join(bots)} would hold it: a bot is not counted)" if bots else ""
        )
        if role is Role.ADMIN:
            raise Conflict(
                f"the admin grant of {target.name!r} is the last one an active human holds{only_bots}: revoking it "
                "would leave a ward nobody can administer (nor make anyone an admin again)",
                hint="grant admin to another active human first (dataward grant add HUMAN admin), then revoke this one",
            )
        raise AccessDenied(
            f"the owner grant of {target.name!r} on {scope} is the last one an active human holds{only_bots}: "
            f"revoking it would leave dataset {scope.name} with no human answering for it, and only an admin or an "
            "owner of the whole ward may",
            hint=f"grant owner on it to another active human first (dataward grant add HUMAN owner --scope {scope}), "
            "or ask an admin or an owner of the whole ward",
        )

    def grants(self, principal: str | None = None) -> list[dict[str, Any]]:
        """Active grants, of one principal or all."""
        with self.use_case(Action.LEDGER_READ, Scope.ward()) as uc:
            query = select(grants, principals.c.name).join(principals, principals.c.id == grants.c.principal_id)
            query = query.where(grants.c.revoked_at.is_(None))
            if principal is not None:
                query = query.where(grants.c.principal_id == rows.principal_row(uc.conn, principal).id)
            return [
                {
                    "id": r.id,
                    "principal": r.name,
                    "role": r.role,
                    "scope": r.scope_kind if r.scope_name is None else f"{r.scope_kind}:{r.scope_name}",
                    "granted_by": rows.principal_name(uc.conn, r.granted_by),
                    "granted_at": r.granted_at,
                }
                for r in uc.conn.execute(query.order_by(grants.c.granted_at))
            ]

    # --- dataset policy -------------------------------------------------------------------

    def set_policy(self, dataset: str, policy_yaml: str) -> dict[str, Any]:
        """Replace a dataset's policy (YAML); the change is a versioned ledger event.

        A policy weaker than the one it replaces in any setting (fewer detectors, lower gate thresholds,
        a wider validation tolerance, fewer approvals, a first import judged against itself, looser key
        rules...) needs an admin, and each weakening is recorded in an event of its own
        (``policy.gate_weakened`` for the gate and the first import, ``policy.weakened`` for the rest).
        """
        from dataward.gates.policy import GatePolicy

        # Refused before the text is parsed: parsing, hashing and checking a policy is work no key that
        # may not set it should get done (a made-up key gets its 401 first).
        self.admit(Action.POLICY_SET, Scope.dataset(dataset), authorize=True)
        policy = DatasetPolicy.from_yaml(policy_yaml)
        # The ledger keeps the policy as read (YAML escapes undone): no key may hide in it either.
        check_free_json(policy=policy.to_dict())
        GatePolicy.from_dict(dict(policy.gate))  # refuse a gate section the gate cannot run
        with self.use_case(Action.POLICY_SET, Scope.dataset(dataset)) as uc:
            ds = rows.dataset_row(uc.conn, dataset)
            # What counts as weaker is decided from the row: the policy it replaces and the dataset's kind (a
            # detector that never runs on it is no loss). Edited in the catalog alone (an instruction schema
            # on a labelled dataset, or the weak policy itself), it let an owner switch every detector off
            # with no admin and no ``policy.gate_weakened``: the row must be the one the ledger signed.
            SignedCheck(self, uc.conn, doing="set the policy of").row("datasets", ds, f"dataset {dataset!r}")
            weakened = policy_weakenings(dataset_policy(ds), policy, schema=rows.dataset_schema(ds))
            if weakened and not acts_as_admin(uc, Scope.dataset(dataset)):
                # An owner must not be able to switch off the controls that guard against the owner.
                raise PolicyViolation(
                    f"only an admin may set this policy on {dataset}: it is weaker than the current one "
                    f"({'; '.join(str(w) for w in weakened)})",
                    hint="ask a ward admin to set it, or keep those settings at least as strict as now "
                    f"(dataward policy show {dataset})",
                    weakened=[w.to_dict() for w in weakened],
                )
            digest = policy.hash()
            uc.emit(
                "policy.set",
                {"dataset": ds.id},
                {"policy": policy.to_dict(), "hash": digest, "previous": ds.policy_hash},
                [update_row("datasets", {"id": ds.id}, policy=policy.to_yaml(), policy_hash=digest)],
            )
            gate_weakened = [w for w in weakened if is_gate_setting(w.field)]
            other_weakened = [w for w in weakened if not is_gate_setting(w.field)]
            for kind, found in (("policy.gate_weakened", gate_weakened), ("policy.weakened", other_weakened)):
                if found:
                    uc.emit(
                        kind,
                        {"dataset": ds.id},
                        {"hash": digest, "previous": ds.policy_hash, "weakened": [w.to_dict() for w in found]},
                    )
            return {
                "dataset": dataset,
                "hash": digest,
                "policy": policy.to_dict(),
                "weakened": [w.to_dict() for w in weakened],
            }

    def policy(self, dataset: str) -> dict[str, Any]:
        """A dataset's policy with the defaults filled in, and whether one was set."""
        with self.use_case(Action.DATASET_READ, self.datasets.read_scope(dataset)) as uc:
            ds = rows.dataset_row(uc.conn, dataset)
            policy = dataset_policy(ds)
            return {
                "dataset": dataset,
                "hash": policy.hash(),
                "explicit": ds.policy is not None,
                "policy": policy.to_dict(),
            }

    # --- review of access -----------------------------------------------------------------

    def access_review(self, *, unused_days: int | None = None, recent_days: int = 30) -> list[dict[str, Any]]:
        """What an auditor wants: stale, old and expiring keys, orphaned bots, who can write to
        training datasets, recent grants, every block override (who, when, why). Each row names the
        principal, owner, dataset and the fix."""
        if unused_days is not None:
            within_range(unused_days, "unused_days", 0, MAX_DAYS)
        within_range(recent_days, "recent_days", 0, MAX_DAYS)
        with self.use_case(Action.ACCESS_REVIEW, Scope.ward()) as uc:
            everyone = [auth.principal_from_row(r) for r in uc.conn.execute(select(principals))]
            keys = [auth.key_from_row(r) for r in uc.conn.execute(select(api_keys))]
            in_training = [
                r.name
                for r in uc.conn.execute(
                    select(datasets.c.name)
                    .join(versions, versions.c.dataset_id == datasets.c.id)
                    .where(versions.c.stage == "training")
                    .distinct()
                )
            ]
            findings = access_review(
                everyone,
                keys,
                auth.load_grants(uc.conn),
                in_training,
                self.key_policy,
                uc.now,
                unused_days=unused_days,
                recent_days=recent_days,
                overrides=block_overrides(uc.conn),
                weak_gates=_weak_gates(uc.conn, set(in_training)),
                enablings=_enablings(uc.conn, uc.now - timedelta(days=recent_days)),
                quarantined=_quarantined_work(uc.conn),
                datasets=_owned_datasets(uc.conn, set(in_training)),
                validation_changes=_validation_changes(uc.conn, format_time(uc.now - timedelta(days=recent_days))),
            )
            from dataward.access.review import Severity

            # Most severe first, whichever part of the ward a row comes from: a tainted released model
            # (high) was printed below every info row of the principals' review.
            rows = [f.to_dict() for f in findings] + _affected_model_rows(
                uc.conn, self.store, (self.signer.public_key_b64, self.ward_id)
            )
            return sorted(rows, key=lambda row: Severity(row["severity"]).rank)

    def _signed_principal(self, uc: UseCase, ref: str, doing: str, *, removing: bool = False) -> Any:
        """The principal row named or identified by ``ref``, refused (``IntegrityViolation``) when it is
        not what the signed ledger made it: which id a name means, and a bot's owner (who may manage
        its keys), decide whom a grant, a key or an offboarding reaches. Two names swapped between rows
        in the catalog alone would otherwise send an admin's grant to the other principal, signed.

        ``removing`` (a revocation, a disabling: what contains an incident) is never refused for such
        an edit: the principal is then found, and taken, as the signed ledger has it, so that nobody
        escapes a revocation by swapping names or owners in the catalog."""
        if removing:
            known = signed_identity(uc.conn, *self.context.ledger).tables["principals"].values()
            found = [r for r in known if r["id"] == ref] or [r for r in known if r["name"] == ref]
            if found:
                return SimpleNamespace(**found[0])
        row = rows.principal_row(uc.conn, ref)
        checked_identity_people(uc.conn, self.context.ledger, [row], [], doing=doing)
        return row

    @contextmanager
    def use_case_for_key(
        self, action: Action, target: str | None, *, new_scopes: list[str] | None = None
    ) -> Iterator[tuple[UseCase, Principal, Decision]]:
        """A use case decided by ``authorize_key_action`` against the key's principal: everyone manages
        their own keys and their own bots' keys; anyone else's need admin; a service principal mints
        keys for itself only when the key policy allows it. Refusals are recorded."""
        with self.use_case(action, Scope.ward(), check=False) as uc:
            target_p = auth.principal_from_row(
                self._signed_principal(
                    uc, target or uc.caller.principal_id, "manage the keys of", removing=action is Action.KEY_REVOKE
                )
            )
            self_issue = target_p.id == uc.caller.principal_id and self._self_issue_allowed(uc.conn, new_scopes)
            decision = authorize_key_action(
                uc.caller.principal,
                uc.caller.key,
                uc.caller.grants,
                action,
                target_p,
                uc.now,
                new_scopes=new_scopes,
                allow_self_issue=self_issue,
            )
            decision.raise_if_denied()
            yield uc, target_p, decision


def _enablings(conn: Connection, since: Any) -> list[Enabling]:
    """The principals enabled again since ``since``, newest first, from their ``principal.enabled`` events."""
    found = []
    for event in ledger_store.read_events(conn, types=["principal.enabled"], newest_first=True):
        at = parse_time(event.time)
        if at < since:
            break
        found.append(
            Enabling(
                principal_id=event.subject["principal"],
                by=event.actor["principal"],
                at=at,
                was=event.payload.get("was", ""),
                reason=event.payload.get("reason", ""),
            )
        )
    return found


def _affected_model_rows(conn: Any, store: Any, ledger: tuple[str, str]) -> list[dict[str, Any]]:
    """A row per released model whose training data was quarantined or rejected since its release."""
    from dataward.access.review import FindingKind, ReviewFinding, Severity
    from dataward.service.models import affected_models

    return [
        ReviewFinding(
            FindingKind.MODEL_AFFECTED,
            Severity.HIGH,
            principal="",
            owner=None,
            dataset=", ".join(a.split("@", 1)[0] for a in m["affected"]),
            detail=f"released model {m['model']} was trained on data since held out of training: "
            + "; ".join(m["affected"]),
            action=f"withdraw it (dataward model withdraw {m['model']} --reason '...'), train it again on a "
            f"version without them and release that (dataward trace model:{m['model']})",
        ).to_dict()
        for m in affected_models(conn, store, ledger)
    ]


def _minting_key(uc: UseCase, decision: Decision) -> ApiKey | None:
    """The acting key when it mints: on the own-keys rule (no grant was needed), and whenever it is
    narrowed, for anyone (the key it issues for someone else then never outlives it and dies with it: a
    leaked narrow key leaves nothing behind once revoked). None for an unrestricted key acting on the
    admin grant."""
    key = uc.caller.key
    return key if decision.grant is None or (key is not None and key.scopes) else None


def _resource_scopes(scopes: list[str] | None) -> list[str]:
    return [e for e in scopes or [] if ":" in e or e == ScopeKind.WARD.value]


def _dataset_scopes(scopes: list[str] | None) -> list[str]:
    return [e.partition(":")[2] for e in _resource_scopes(scopes) if e.startswith("dataset:") and e.partition(":")[2]]


def is_gate_setting(path: str) -> bool:
    """Whether a policy path belongs to how the gate judges contributions (its section, the first import)."""
    return path == "first_import" or path.startswith("gate.")


def policy_weakenings(before: DatasetPolicy, after: DatasetPolicy, *, schema: Schema | None = None) -> list[Weakening]:
    """Every setting of ``after`` weaker than in ``before``, the gate section included; given the dataset's
    ``schema``, a detector counts only if it can run on the dataset's kind (``GatePolicy.weakenings_from``)."""
    from dataward.gates.policy import GatePolicy

    try:
        old_gate = GatePolicy.from_dict(dict(before.gate))
    except InputError:
        # A stored gate section that no longer runs (a detector uninstalled): compare with the defaults.
        old_gate = GatePolicy()
    return (
        GatePolicy.from_dict(dict(after.gate)).weakenings_from(old_gate, schema=schema)
        + _seed_pinned(before, after)
        + after.weakenings_from(before)
    )


def _seed_pinned(before: DatasetPolicy, after: DatasetPolicy) -> list[Weakening]:
    """Pinning the gate's seed is weaker than leaving it to the ward: unset, each gate run derives its
    seed from a secret of the ward (``service.gate_seed``); pinned, whoever reads the policy knows which
    records of a contribution the detectors sample. Another pinned value, or unpinning, is not weaker."""
    old, new = before.gate.get("seed"), after.gate.get("seed")
    if old is not None or new is None:
        return []
    return [
        Weakening(
            "gate.seed",
            None,
            new,
            "pinned: which records of a contribution the gate samples becomes predictable to whoever can read "
            "the policy (unset, each run derives its seed from a secret of the ward)",
        )
    ]


def gate_weaker_than_default(policy: DatasetPolicy, *, schema: Schema | None = None) -> list[Weakening]:
    """How a dataset's gate (and first import) is weaker than the ward's defaults (for the access review)."""
    return [w for w in policy_weakenings(DatasetPolicy(), policy, schema=schema) if is_gate_setting(w.field)]


def _weak_gates(conn: Connection, in_training: set[str]) -> list[WeakGate]:
    """Datasets whose gate is weaker than the ward's defaults, with who set their policy and when."""
    setters: dict[str, tuple[str, str]] = {}
    for event in ledger_store.read_events(conn, types=["policy.set"], newest_first=False):
        setters[str(event.subject.get("dataset"))] = (event.actor["principal"], event.time)
    names = {r.id: r.name for r in conn.execute(select(principals.c.id, principals.c.name))}
    found = []
    for ds in conn.execute(select(datasets).where(datasets.c.role == "dataset").order_by(datasets.c.name)):
        try:
            weakened = gate_weaker_than_default(dataset_policy(ds), schema=rows.dataset_schema(ds))
        except InputError as exc:
            # A stored gate section that no longer runs (a detector uninstalled) is worth a row too.
            weakened = [Weakening("gate", None, None, f"the gate section cannot run: {exc.message}")]
        if not weakened:
            continue
        who, when = setters.get(ds.id, (None, None))
        found.append(
            WeakGate(
                ds.name,
                tuple(weakened),
                set_by=names.get(who, who) if who else None,
                set_at=parse_time(when) if when else None,
                in_training=ds.name in in_training,
            )
        )
    return found


def acts_as_admin(uc: UseCase, scope: Scope, action: Action = Action.POLICY_SET) -> bool:
    """Whether the caller acts as an admin here (for ``action``, an admin-only action on ``scope``): an
    admin grant, through a key not narrowed away from it."""
    decision = authorize(
        uc.caller.principal,
        uc.caller.key,
        [g for g in uc.caller.grants if g.role is Role.ADMIN],
        action,
        scope,
        uc.now,
    )
    if not decision.allowed:
        return False
    narrowed = uc.caller.key.key_scopes if uc.caller.key is not None and uc.caller.key.scopes is not None else None
    # A key limited to roles or actions acts as an admin only when it names the admin role itself.
    return narrowed is None or not (narrowed.roles or narrowed.actions) or Role.ADMIN in narrowed.roles


def acts_as_ward_owner(uc: UseCase) -> bool:
    """Whether the caller acts as an owner of the whole ward: an active ``owner`` grant on the ward,
    through a key not narrowed away from it (one limited to roles or actions names the owner role)."""
    if not any(g.role is Role.OWNER and g.scope_kind is ScopeKind.WARD for g in uc.caller.grants):
        return False
    narrowed = uc.caller.key.key_scopes if uc.caller.key is not None and uc.caller.key.scopes is not None else None
    return narrowed is None or not (narrowed.roles or narrowed.actions) or Role.OWNER in narrowed.roles


def dataset_policy(ds: Any) -> DatasetPolicy:
    """A dataset's policy; the safe defaults when none was set."""
    return DatasetPolicy.from_yaml(ds.policy, stored=True) if ds.policy else DatasetPolicy()


def _already_inactive(principal: Principal) -> dict[str, Any]:
    """``disable_principal``'s answer for a principal that is not active: nothing changed."""
    return {
        "principal": principal.name,
        "status": principal.status.value,
        "already": True,
        "suspended": [],
        "transferred": [],
        "transfer_to": None,
        "revoked_keys": [],
        "message": f"{principal.name} is already {principal.status.value}; nothing changed",
    }


def _owned_datasets(conn: Connection, in_training: set[str] | None = None) -> list[OwnedDataset]:
    """Every dataset (not a clean validation set: it goes with its dataset) with its recorded owner."""
    query = select(datasets.c.name, datasets.c.owner_id).where(datasets.c.role == "dataset")
    return [OwnedDataset(r.name, r.owner_id, r.name in (in_training or set())) for r in conn.execute(query)]


def _validation_changes(conn: Connection, since: str) -> list[ValidationChange]:
    """The versions of clean validation sets made since ``since`` (a stored time), each with who merged
    it, the principals whose contributions it brought in, and its size beside its parent's."""
    query = (
        select(versions, datasets.c.name.label("set_name"), datasets.c.validation_for)
        .join(datasets, datasets.c.id == versions.c.dataset_id)
        .where(datasets.c.role == "validation", versions.c.created_at >= since)
        .order_by(versions.c.created_at)
    )
    made = list(conn.execute(query))
    parents = {
        r.id: r
        for r in rows_in(conn, select(versions), versions.c.id, sorted({v.parent_id for v in made if v.parent_id}))
    }
    new_of: dict[str, set[str]] = {}
    for v in made:
        parent = parents.get(v.parent_id)
        new_of[v.id] = set(json.loads(v.contributions)) - set(json.loads(parent.contributions) if parent else [])
    # One lookup for every version's new contributions, not one per version.
    wanted = sorted(set().union(*new_of.values()))
    submitted_by = {
        r.id: r.submitted_by
        for r in rows_in(conn, select(contributions.c.id, contributions.c.submitted_by), contributions.c.id, wanted)
    }
    changes = []
    for v in made:
        parent = parents.get(v.parent_id)
        new = new_of[v.id]
        changes.append(
            ValidationChange(
                validation_set=v.set_name,
                guards=v.validation_for,
                version=v.number,
                made_by=v.created_by,
                at=parse_time(v.created_at),
                records=v.record_count,
                previous_records=parent.record_count if parent is not None else None,
                submitters=tuple(sorted({submitted_by[c] for c in new if c in submitted_by})),
                previous_version=parent.number if parent is not None else None,
                merged=bool(new) or parent is None,
            )
        )
    return changes


def _left_without_owner(conn: Connection, target: Any, everyone: list[Any]) -> list[dict[str, Any]]:
    """The datasets ``target`` owns, each with the other active humans who hold ``owner`` on it (or the
    ward): what disabling ``target`` leaves for someone else to answer for."""
    people = {p.id: p for p in everyone}
    held = auth.load_grants(conn)
    return [
        {"dataset": d.name, "co_owners": co_owners(d.name, target.id, people, held), "fix": owner_fix(d.name)}
        for d in owned_by(target.id, _owned_datasets(conn))
    ]


def _quarantined_work(conn: Connection) -> list[QuarantinedWork]:
    """Every submitter's quarantined contributions (``DATASET#N``), for the access review: those whose
    catalog row says so and those the ward's list of removals holds quarantined whatever the row says (a
    catalog restored from before the quarantine), as the merge reads them. A contribution the restored
    catalog does not hold at all names no submitter, and so no principal to review."""
    query = select(contributions.c.submitted_by, contributions.c.number, datasets.c.name).join(
        datasets, datasets.c.id == contributions.c.dataset_id
    )
    # The list only grows: its quarantines are looked up in batches (``rows_in``), then put in order.
    found = rows_in(
        conn,
        query,
        contributions.c.id,
        listed_removals(conn).quarantined,
        otherwise=contributions.c.status == "quarantined",
    )
    by_principal: dict[str, list[str]] = {}
    for r in sorted(found, key=lambda r: (r.name, r.number)):
        by_principal.setdefault(r.submitted_by, []).append(f"{r.name}#{r.number}")
    return [QuarantinedWork(pid, tuple(refs)) for pid, refs in sorted(by_principal.items())]
