"""The access review: the rows an auditor wants, each naming who, what, and what to do about it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from dataward.access.authorize import ApiKey, Grant, Principal, PrincipalKind, authorize, require_aware
from dataward.access.containment import QuarantinedWork, grants_of, live_keys, quarantined_but_active
from dataward.access.keys import KeyPolicy
from dataward.access.overrides import BlockOverride
from dataward.access.ownership import OwnedDataset, co_owners, owner_fix, owner_grant_holders
from dataward.access.roles import WRITE_ACTIONS, Action, Scope, ScopeKind
from dataward.domain.weakening import Weakening
from dataward.ledger.events import format_time


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class FindingKind(StrEnum):
    KEY_EXPIRED = "key_expired"
    KEY_NEAR_EXPIRY = "key_near_expiry"
    KEY_ROTATION_DUE = "key_rotation_due"
    KEY_UNUSED = "key_unused"
    KEY_IN_OVERLAP = "key_in_overlap"
    SERVICE_OWNER_INACTIVE = "service_owner_inactive"
    TRAINING_WRITE_ACCESS = "training_write_access"
    RECENT_GRANT = "recent_grant"
    BLOCK_OVERRIDDEN = "block_overridden"
    BLOCK_OVERRIDE_PENDING = "block_override_pending"
    KEY_LINEAGE = "key_lineage"
    KEY_SELF_ISSUED = "key_self_issued"
    GATE_WEAKER_THAN_DEFAULT = "gate_weaker_than_default"
    MODEL_AFFECTED = "model_affected"
    PRINCIPAL_ENABLED = "principal_enabled"
    QUARANTINED_BUT_ACTIVE = "quarantined_but_active"
    DATASET_OWNER_INACTIVE = "dataset_owner_inactive"
    DATASET_WITHOUT_OWNER = "dataset_without_owner"
    VALIDATION_CHANGED = "validation_changed"


@dataclass(frozen=True)
class ReviewFinding:
    """One row of the access review."""

    kind: FindingKind
    severity: Severity
    principal: str
    owner: str | None
    dataset: str | None
    detail: str
    action: str
    key: str | None = None
    principal_id: str | None = None
    contribution: str | None = None
    at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "contribution": self.contribution,
            "at": self.at,
            "kind": self.kind.value,
            "severity": self.severity.value,
            "principal": self.principal,
            "principal_id": self.principal_id,
            "owner": self.owner,
            "dataset": self.dataset,
            "key": self.key,
            "detail": self.detail,
            "action": self.action,
        }


@dataclass(frozen=True)
class WeakGate:
    """A dataset whose gate is weaker than the ward's defaults: how, and who set the policy when."""

    dataset: str
    weakened: tuple[Weakening, ...]
    set_by: str | None = None
    set_at: datetime | None = None
    in_training: bool = False


@dataclass(frozen=True)
class Enabling:
    """A principal let act again after it was disabled or suspended (a ``principal.enabled`` event)."""

    principal_id: str
    by: str
    at: datetime
    was: str
    reason: str = ""


@dataclass(frozen=True)
class ValidationChange:
    """A new version of a clean validation set. The gates of the dataset it guards judge every later
    contribution by it, and no second principal approves it: its owner's word is the trust it carries."""

    validation_set: str
    guards: str
    version: int
    made_by: str
    """The id of the principal who merged it."""
    at: datetime
    records: int
    previous_records: int | None = None
    """None for the set's first version."""
    submitters: tuple[str, ...] = ()
    """Ids of the principals whose contributions it merged."""
    previous_version: int | None = None
    """The number of the version it was made from (None for the set's first version)."""
    merged: bool = True
    """False for a version that merged no contribution: a quarantine's or a containment's rollback."""


def _date(value: datetime) -> str:
    return value.date().isoformat()


def _days(delta: timedelta) -> int:
    return delta.days


# Short verbs for the write actions, so a row reads "can submit, merge, promote".
_VERBS = {
    Action.CONTRIBUTION_SUBMIT: "submit",
    Action.CONTRIBUTION_APPROVE: "approve",
    Action.CONTRIBUTION_MERGE: "merge",
    Action.GATE_OVERRIDE: "override blocks",
    Action.VERSION_PROMOTE: "promote",
    Action.VERSION_RETIRE: "retire versions",
    Action.POLICY_SET: "change the policy",
    Action.VALIDATION_WRITE: "write the validation set",
}


def access_review(
    principals: Iterable[Principal],
    keys: Iterable[ApiKey],
    grants: Iterable[Grant],
    datasets_in_training: Iterable[str],
    key_policy: KeyPolicy,
    now: datetime,
    *,
    unused_days: int | None = None,
    recent_days: int = 30,
    overrides: Iterable[BlockOverride] = (),
    weak_gates: Iterable[WeakGate] = (),
    enablings: Iterable[Enabling] = (),
    quarantined: Iterable[QuarantinedWork] = (),
    datasets: Iterable[OwnedDataset] = (),
    validation_changes: Iterable[ValidationChange] = (),
) -> list[ReviewFinding]:
    """Review keys, owners and grants as of ``now``, and every block override; most severe rows first.

    Every usable key minted with another key is listed with its lineage (``key_lineage``); a service
    principal's key minted by the principal itself is ``key_self_issued``. Every dataset whose gate is
    weaker than the ward's defaults (``weak_gates``) is ``gate_weaker_than_default``. Every principal
    enabled again within ``recent_days`` (``enablings``) is ``principal_enabled``, with the grants that
    apply to it again. Every active principal with quarantined contributions (``quarantined``) that still
    holds a usable key or a grant is ``quarantined_but_active`` (medium): a quarantine takes away what it
    brought in, not what let it. Every dataset whose recorded owner is disabled (or gone) is
    ``dataset_owner_inactive``: high when no other active human holds ``owner`` on it or on the ward
    (nobody but an admin can then curate its clean validation set or set its policy), low when one does.
    Every dataset whose recorded owner is active but on which no active human holds an ``owner`` grant
    any more (every owner grant revoked, or only a service principal's left) is ``dataset_without_owner``:
    high when it is in training, medium otherwise.
    Every new version of a clean validation set made within ``recent_days`` (``validation_changes``) is
    ``validation_changed`` (low): the gates trust it, and one principal wrote it.

    ``unused_days`` defaults to the key policy's ``stale_after_days``. A key replaced by a rotation
    still works until its overlap window ends (up to 7 days): it is ``key_in_overlap`` (low) until then.
    Revoked keys, rotated keys past their overlap, and keys of principals that are not active are left
    out: none of them can be used.
    """
    require_aware(now, "now")
    unused_days = key_policy.stale_after_days if unused_days is None else unused_days
    principals = list(principals)
    grants = list(grants)
    by_id = {p.id: p for p in principals}

    def owner_name(p: Principal) -> str | None:
        if p.owner_id is None:
            return None
        owner = by_id.get(p.owner_id)
        return owner.name if owner is not None else p.owner_id

    findings: list[ReviewFinding] = []
    keys = list(keys)
    findings += _key_findings(keys, by_id, owner_name, key_policy, now, unused_days)
    findings += _lineage_findings(keys, by_id, owner_name, now)
    findings += _owner_findings(principals, by_id)
    findings += _training_findings(principals, grants, datasets_in_training, owner_name, now)
    findings += _recent_grant_findings(grants, by_id, owner_name, now, recent_days)
    findings += _enabling_findings(enablings, grants, by_id, owner_name, now, recent_days)
    findings += _override_findings(overrides)
    findings += _quarantine_findings(quarantined, by_id, keys, grants, owner_name, now)
    findings += _weak_gate_findings(weak_gates)
    datasets = list(datasets)
    findings += _dataset_owner_findings(datasets, by_id, grants)
    findings += _ownerless_dataset_findings(datasets, by_id, grants)
    findings += _validation_findings(validation_changes, by_id, owner_name, now, recent_days)
    findings.sort(key=lambda f: (f.severity.rank, f.kind.value, f.principal, f.dataset or "", f.key or ""))
    return findings


def _key_findings(keys, by_id, owner_name, policy: KeyPolicy, now: datetime, unused_days: int):
    for key in keys:
        principal = by_id.get(key.principal_id)
        if principal is None or not principal.is_active:
            continue
        if key.revoked_at is not None:
            continue
        common = {
            "principal": principal.name,
            "principal_id": principal.id,
            "owner": owner_name(principal),
            "dataset": None,
            "key": key.display,
        }
        if key.successor_id is not None:
            # Replaced, but the old secret works until its overlap ends: whoever holds a copy can still act.
            if key.refusal(now) is None:
                yield _overlap_finding(key, common)
            continue
        if key.expires_at <= now:
            yield ReviewFinding(
                FindingKind.KEY_EXPIRED,
                Severity.MEDIUM,
                detail=f"key {key.display} expired on {_date(key.expires_at)}",
                action=f"revoke key {key.display} and issue a new one if {principal.name} still needs it",
                **common,
            )
            continue
        if key.expires_at - now <= timedelta(days=policy.near_expiry_days):
            yield ReviewFinding(
                FindingKind.KEY_NEAR_EXPIRY,
                Severity.MEDIUM,
                detail=f"key {key.display} expires on {_date(key.expires_at)}, in {_days(key.expires_at - now)} day(s)",
                action=f"issue {principal.name} a new key before {_date(key.expires_at)} if still needed "
                "(dataward key issue; rotating keeps the expiry)",
                **common,
            )
        age = now - key.created_at
        if age >= timedelta(days=policy.rotation_age_days):
            yield ReviewFinding(
                FindingKind.KEY_ROTATION_DUE,
                Severity.MEDIUM,
                detail=f"key {key.display} is {_days(age)} days old; the policy rotates keys at "
                f"{policy.rotation_age_days} days",
                action=f"rotate key {key.display} (dataward key rotate)",
                **common,
            )
        last = key.last_used_at
        idle = now - (last if last is not None else key.created_at)
        if idle >= timedelta(days=unused_days):
            used = f"last used on {_date(last)}" if last is not None else "never used"
            yield ReviewFinding(
                FindingKind.KEY_UNUSED,
                Severity.LOW,
                detail=f"key {key.display} {used}; created on {_date(key.created_at)}",
                action=f"revoke key {key.display} if it is no longer needed (dataward key revoke)",
                **common,
            )


def _overlap_finding(key: ApiKey, common: dict[str, Any]) -> ReviewFinding:
    until = key.overlap_until or key.expires_at
    rotated = f" on {_date(key.rotated_at)}" if key.rotated_at is not None else ""
    return ReviewFinding(
        FindingKind.KEY_IN_OVERLAP,
        Severity.LOW,
        detail=f"key {key.display} was rotated{rotated} and is still usable until {format_time(until)}, when its "
        "overlap window ends",
        action=f"nothing if its successor replaced it everywhere; to end it sooner, dataward key revoke {key.prefix} "
        "(a successor it made itself is revoked with it)",
        **common,
    )


def _lineage_findings(keys: list[ApiKey], by_id, owner_name, now: datetime):
    by_key = {k.id: k for k in keys}
    for key in keys:
        principal = by_id.get(key.principal_id)
        if key.parent_id is None and key.minted_with is None:
            continue
        if principal is None or not principal.is_active or key.refusal(now) is not None:
            continue
        links = [("minted from", key.parent_id)] if key.parent_id is not None else []
        if key.minted_with is not None and key.minted_with != key.parent_id:
            links.append(("made with", key.minted_with))
        described = []
        for label, link in links:
            source = by_key.get(link)
            whose = by_id.get(source.principal_id) if source is not None else None
            described.append(f"{label} dw_{link}… of {whose.name if whose is not None else 'an unknown principal'}")
        makers = {by_key[link].principal_id for _, link in links if link in by_key}
        self_issued = principal.kind is PrincipalKind.SERVICE and makers == {principal.id}
        root = links[0][1]
        yield ReviewFinding(
            FindingKind.KEY_SELF_ISSUED if self_issued else FindingKind.KEY_LINEAGE,
            Severity.LOW if self_issued else Severity.INFO,
            principal=principal.name,
            principal_id=principal.id,
            owner=owner_name(principal),
            dataset=None,
            key=key.display,
            detail=f"key {key.display} was {' and '.join(described)}; it expires on {_date(key.expires_at)} "
            "at the latest and is revoked with it"
            + (" (the service principal minted it for itself)" if self_issued else ""),
            action=f"revoking dw_{root}… revokes it and every key minted through it (dataward trace dw_{root}…)",
        )


def _owner_findings(principals: list[Principal], by_id: dict[str, Principal]):
    for p in principals:
        if p.kind is not PrincipalKind.SERVICE or not p.is_active:
            continue
        owner = by_id.get(p.owner_id or "")
        if owner is None:
            detail = f"service principal {p.name} names owner {p.owner_id}, who does not exist"
            owner_label = p.owner_id
        elif not owner.is_active:
            detail = f"service principal {p.name} is owned by {owner.name}, who is {owner.status.value}"
            owner_label = owner.name
        else:
            continue
        yield ReviewFinding(
            FindingKind.SERVICE_OWNER_INACTIVE,
            Severity.HIGH,
            principal=p.name,
            principal_id=p.id,
            owner=owner_label,
            dataset=None,
            detail=detail,
            action=f"transfer ownership of {p.name} to an active human "
            f"(dataward principal transfer {p.name} --to HUMAN), or suspend it",
        )


def _dataset_owner_findings(datasets: Iterable[OwnedDataset], by_id: dict[str, Principal], grants: list[Grant]):
    for d in datasets:
        owner = by_id.get(d.owner_id)
        if owner is not None and owner.is_active:
            continue
        label = owner.name if owner is not None else d.owner_id
        state = owner.status.value if owner is not None else "unknown to the ward"
        others = co_owners(d.name, d.owner_id, by_id, grants)
        training = " (in training)" if d.in_training else ""
        yield ReviewFinding(
            FindingKind.DATASET_OWNER_INACTIVE,
            Severity.LOW if others else Severity.HIGH,
            principal=label,
            principal_id=d.owner_id,
            owner=None,
            dataset=d.name,
            detail=f"dataset {d.name}{training} is owned by {label}, who is {state}; "
            + (
                f"{', '.join(others)} also hold(s) owner on it"
                if others
                else "no other active human holds owner on it: only an admin can curate its clean validation "
                "set, set its policy or be the second owner to lift a block"
            ),
            action="confirm " + ", ".join(others) + f" answer(s) for {d.name}" if others else owner_fix(d.name),
        )


def _ownerless_dataset_findings(datasets: Iterable[OwnedDataset], by_id: dict[str, Principal], grants: list[Grant]):
    # A dataset whose recorded owner is not active is ``dataset_owner_inactive`` already.
    for d in datasets:
        owner = by_id.get(d.owner_id)
        if owner is None or not owner.is_active:
            continue
        if owner_grant_holders(d.name, by_id, grants, kind=PrincipalKind.HUMAN):
            continue
        bots = owner_grant_holders(d.name, by_id, grants, kind=PrincipalKind.SERVICE)
        held = (
            f"only service principal(s) {', '.join(bots)} hold owner on it (a bot answers to its human, not for "
            f"a dataset); its recorded owner {owner.name}'s grant was revoked"
            if bots
            else f"every owner grant on it was revoked, its recorded owner {owner.name}'s too"
        )
        training = " (in training)" if d.in_training else ""
        yield ReviewFinding(
            FindingKind.DATASET_WITHOUT_OWNER,
            Severity.HIGH if d.in_training else Severity.MEDIUM,
            principal=owner.name,
            principal_id=owner.id,
            owner=None,
            dataset=d.name,
            detail=f"no active human holds owner on dataset {d.name}{training}: {held}; only an admin or an owner "
            "of the whole ward can curate its clean validation set, set its policy or grant roles on it (and "
            "either may revoke its last owner grant)",
            action=owner_fix(d.name),
        )


def _training_findings(principals, grants: list[Grant], datasets, owner_name, now: datetime):
    # Each principal's own grants only, so the review stays linear in the number of grants.
    by_principal: dict[str, list[Grant]] = {}
    for g in grants:
        by_principal.setdefault(g.principal_id, []).append(g)
    for dataset in sorted(set(datasets)):
        scope = Scope.dataset(dataset)
        for p in principals:
            mine = by_principal.get(p.id)
            if not p.is_active or not mine:
                continue
            allowed = [d for d in (authorize(p, None, mine, a, scope, now) for a in sorted(WRITE_ACTIONS)) if d.allowed]
            if not allowed:
                continue
            via = sorted({f"{d.grant.role.value} on {d.grant.scope}" for d in allowed if d.grant is not None})
            ward_wide = any(d.grant is not None and d.grant.scope_kind is ScopeKind.WARD for d in allowed)
            verbs = ", ".join(_VERBS[Action(d.action)] for d in allowed if d.action is not None)
            yield ReviewFinding(
                FindingKind.TRAINING_WRITE_ACCESS,
                Severity.MEDIUM if ward_wide else Severity.INFO,
                principal=p.name,
                principal_id=p.id,
                owner=owner_name(p),
                dataset=dataset,
                detail=f"{p.name} can {verbs} on {dataset}, which is in training (via {'; '.join(via)})",
                action=f"confirm {p.name} still needs {'; '.join(via)}; otherwise revoke it (dataward grant revoke)",
            )


def _recent_grant_findings(grants: list[Grant], by_id, owner_name, now: datetime, recent_days: int):
    since = now - timedelta(days=recent_days)
    for g in grants:
        if g.granted_at < since:
            continue
        p = by_id.get(g.principal_id)
        granter = by_id.get(g.granted_by)
        yield ReviewFinding(
            FindingKind.RECENT_GRANT,
            Severity.INFO,
            principal=p.name if p is not None else g.principal_id,
            principal_id=g.principal_id,
            owner=owner_name(p) if p is not None else None,
            dataset=g.scope_name if g.scope_kind is ScopeKind.DATASET else None,
            detail=f"{g.role.value} on {g.scope} granted by "
            f"{granter.name if granter is not None else g.granted_by} on {_date(g.granted_at)}",
            action="confirm this grant was intended; revoke it if not (dataward grant revoke)",
        )


def _validation_findings(changes: Iterable[ValidationChange], by_id, owner_name, now: datetime, recent_days: int):
    # The clean validation set is the one input of the gates that no second principal approves (it is
    # write-locked to the dataset's owners by design): each change of it is shown for a second look.
    since = now - timedelta(days=recent_days)
    for change in changes:
        if change.at < since:
            continue
        maker = by_id.get(change.made_by)
        maker_name = maker.name if maker is not None else change.made_by
        submitters = sorted({by_id[s].name if s in by_id else s for s in change.submitters})
        size = (
            f"{change.records} records, {change.previous_records} before"
            if change.previous_records is not None
            else f"{change.records} records, its first version"
        )
        diff = (
            f"dataward diff {change.validation_set}@v{change.previous_version} v{change.version}"
            if change.previous_version is not None
            else f"dataward export {change.validation_set}@v{change.version}"
        )
        # A rollback version (records held back by a quarantine or a containment) merged nothing.
        made = (
            f"merged by {maker_name}" + (f" from contributions of {', '.join(submitters)}" if submitters else "")
            if change.merged
            else f"made by {maker_name}, merging no contribution (a quarantine's or a containment's rollback)"
        )
        yield ReviewFinding(
            FindingKind.VALIDATION_CHANGED,
            Severity.LOW,
            principal=maker_name,
            principal_id=change.made_by,
            owner=owner_name(maker) if maker is not None else None,
            dataset=change.guards,
            at=format_time(change.at),
            detail=f"clean validation set {change.validation_set} of {change.guards} is at v{change.version} since "
            f"{_date(change.at)} ({size}; {made}); the gates of {change.guards} judge every later contribution "
            "by it, and nobody else approved it",
            action=f"confirm it is the curated set you expect ({diff})",
        )


def _enabling_findings(enablings: Iterable[Enabling], grants: list[Grant], by_id, owner_name, now, recent_days: int):
    # A disabled or suspended principal's grants were never taken away: enabling it hands all of them
    # back at once, which is worth a second look even when each grant was once reviewed.
    since = now - timedelta(days=recent_days)
    for e in enablings:
        if e.at < since:
            continue
        p = by_id.get(e.principal_id)
        name = p.name if p is not None else e.principal_id
        held = sorted(f"{g.role.value} on {g.scope}" for g in grants if g.principal_id == e.principal_id)
        enabler = by_id.get(e.by)
        yield ReviewFinding(
            FindingKind.PRINCIPAL_ENABLED,
            Severity.MEDIUM,
            principal=name,
            principal_id=e.principal_id,
            owner=owner_name(p) if p is not None else None,
            dataset=None,
            at=format_time(e.at),
            detail=f"{name} was {e.was} and enabled again by {enabler.name if enabler is not None else e.by} "
            f"on {_date(e.at)}"
            + (f" ({e.reason!r})" if e.reason else "")
            + f"; its grants apply again: {', '.join(held) or 'none'}",
            action=f"confirm it was intended; disable it again if not (dataward principal disable {name})",
        )


def _quarantine_findings(quarantined: Iterable[QuarantinedWork], by_id, keys, grants, owner_name, now: datetime):
    for work in quarantined:
        p = by_id.get(work.principal_id)
        if p is None:
            continue
        usable = live_keys(keys, p.id, now)
        said = quarantined_but_active(p, work, usable, grants_of(grants, p.id))
        if said is None:
            continue
        yield ReviewFinding(
            FindingKind.QUARANTINED_BUT_ACTIVE,
            Severity.MEDIUM,
            principal=p.name,
            principal_id=p.id,
            owner=owner_name(p),
            dataset=None,
            detail=said[0],
            action=said[1],
        )


def _override_findings(overrides: Iterable[BlockOverride]):
    # Every override is listed, however old: lifting a block is rare and always worth a second look.
    for o in overrides:
        if o.complete:
            yield ReviewFinding(
                FindingKind.BLOCK_OVERRIDDEN,
                Severity.MEDIUM,
                principal=o.confirmed_by or "",
                owner=None,
                dataset=o.dataset,
                contribution=o.contribution,
                at=format_time(o.confirmed_at or o.requested_at),
                detail=f"the gate's block of {o.contribution} was overridden: requested by {o.requested_by} on "
                f"{_date(o.requested_at)} ({o.requested_reason!r}), confirmed by {o.confirmed_by} on "
                f"{_date(o.confirmed_at or o.requested_at)} ({o.confirmed_reason!r})",
                action=f"confirm the reasons hold; its flagged records still need a reviewer "
                f"(dataward trace {o.contribution})",
            )
        else:
            yield ReviewFinding(
                FindingKind.BLOCK_OVERRIDE_PENDING,
                Severity.LOW,
                principal=o.requested_by,
                owner=None,
                dataset=o.dataset,
                contribution=o.contribution,
                at=format_time(o.requested_at),
                detail=f"{o.requested_by} asked on {_date(o.requested_at)} to override the gate's block of "
                f"{o.contribution} ({o.requested_reason!r}); a second owner or admin has not confirmed it",
                action=f"a second owner or admin confirms (dataward gate override {o.contribution}) or rejects "
                "the contribution",
            )


def _weak_gate_findings(weak_gates: Iterable[WeakGate]):
    # Listed however long ago the policy was set: a gate switched (partly) off stays worth a look.
    for w in weak_gates:
        if not w.weakened:
            continue
        when = f" on {_date(w.set_at)}" if w.set_at is not None else ""
        yield ReviewFinding(
            FindingKind.GATE_WEAKER_THAN_DEFAULT,
            Severity.HIGH if w.in_training else Severity.MEDIUM,
            principal=w.set_by or "",
            owner=None,
            dataset=w.dataset,
            at=None if w.set_at is None else format_time(w.set_at),
            detail=f"the gate of {w.dataset} is weaker than the ward default (policy set by "
            f"{w.set_by or 'unknown'}{when}): " + "; ".join(str(x) for x in w.weakened),
            action=f"confirm each relaxation is still intended; otherwise set a stricter policy "
            f"(dataward policy show {w.dataset}; dataward policy set {w.dataset} FILE)",
        )
