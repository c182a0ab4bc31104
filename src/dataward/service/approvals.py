"""Use cases of approval: approve or reject a contribution, and the policy checks on merge and promotion."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import Connection, select

from dataward.access import (
    Approval,
    ApprovalStatus,
    ContributionFacts,
    DatasetPolicy,
    PromotionFacts,
    approvals_status,
    can_promote,
    check_approval,
    check_version_approval,
    roles_on,
)
from dataward.access.approvers import approvable_one_by_one, contribution_approvers, version_approvers, who_text
from dataward.access.roles import Action, Scope
from dataward.access.sides import OwnerHistory
from dataward.access.standing import Standing
from dataward.catalog.batched import rows_in
from dataward.catalog.projection import insert_row, update_row
from dataward.catalog.tables import approvals, contributions, datasets, principals, quarantine, version_approvals
from dataward.domain.errors import Conflict, InputError, PolicyViolation
from dataward.ledger.events import format_time, parse_time
from dataward.service import auth, rows
from dataward.service.approval_standing import read_standing, voided_decision, with_standing
from dataward.service.bot_owners import (
    acting_earlier_owners,
    maker_earlier_owners,
    owner_then,
    read_owner_history,
    submitter_earlier_owners,
)
from dataward.service.core import Service, UseCase, close_pending_reviews, new_id
from dataward.service.guard import checked_review_rows_of, checked_signed_rows, checked_version_ids
from dataward.service.identity import dataset_policy
from dataward.service.overrides import lifted_at
from dataward.service.rows import current_owner
from dataward.service.visibility import named_contribution

DECIDABLE = ("submitted", "gated")
# A merged contribution can still be approved (never rejected: quarantine takes it back out), so that a
# policy raised from one approval to two after the merge does not strand the versions holding it.
APPROVABLE = (*DECIDABLE, "merged")


def _approvals_of(
    conn: Connection, contribution_id: str, standing: Standing | None = None, history: OwnerHistory | None = None
) -> list[Approval]:
    """The contribution's approvals; given the ledger's ``standing``, those whose approver was disabled or
    whose key was revoked since are marked void (they no longer count), and given ``history`` a bot's carry
    the owners it answered to while the key it approved with was live (``with_standing``)."""
    query = select(approvals).where(approvals.c.contribution_id == contribution_id, approvals.c.decision == "approve")
    found = [
        Approval(
            r.principal_id,
            r.content_hash,
            json.loads(r.reason)["role"],
            json.loads(r.reason)["text"],
            parse_time(r.created_at),
        )
        for r in conn.execute(query)
    ]
    return before_lifted_block(conn, contribution_id, with_standing(found, contribution_id, standing, history))


def before_lifted_block(conn: Connection, contribution_id: str, approvals: list[Approval]) -> list[Approval]:
    """``approvals`` with those given before the contribution's block was lifted marked void: they were
    given on a batch the gate had blocked or had not yet judged, not on what the override lets through."""
    lifted = lifted_at(conn, contribution_id)
    if lifted is None:
        return approvals
    return [
        dataclasses.replace(a, void=f"given before its block was lifted at {format_time(lifted)}")
        if a.void is None and a.decided_at < lifted
        else a
        for a in approvals
    ]


def _version_approvals_of(
    conn: Connection, version_id: str, standing: Standing | None = None, history: OwnerHistory | None = None
) -> list[Approval]:
    """The version's approvals as a whole, marked as :func:`_approvals_of` marks them."""
    query = select(version_approvals).where(version_approvals.c.version_id == version_id)
    found = [
        Approval(r.principal_id, r.content_hash, r.role, r.reason, parse_time(r.created_at), on="version")
        for r in conn.execute(query)
    ]
    return with_standing(found, version_id, standing, history)


def _contribution_facts(
    conn: Connection, ds: Any, version: Any, standing: Standing | None = None, history: OwnerHistory | None = None
) -> list[ContributionFacts]:
    """What promotion (and an approval of the version) needs to know of each contribution it holds; with
    ``history``, the owners each submitting bot had while its key was live are on its side too."""
    facts = []
    for cid in json.loads(version.contributions):
        c = conn.execute(select(contributions).where(contributions.c.id == cid)).one()
        facts.append(
            ContributionFacts(
                f"{ds.name}#{c.number}",
                c.content_hash,
                c.submitted_by,
                submitter_owner(c),
                tuple(_approvals_of(conn, c.id, standing, history)),
                c.gate_verdict,
                current_owner(conn, c),
                frozenset() if history is None else submitter_earlier_owners(history, c),
            )
        )
    return facts


@dataclasses.dataclass(frozen=True)
class _Maker:
    """Who made (merged) a version, and the humans who answer for it when a bot made it: its owner then,
    its owner now when it was handed on since, and its owners while the key it made the version with was
    live (``maker_earlier_owners``). Nobody of that side approves the version as a whole."""

    id: str
    owner: str | None
    current_owner: str | None
    earlier: frozenset[str]

    def approving(self) -> dict[str, Any]:
        """As ``check_version_approval`` and ``version_approvers`` take it."""
        return {
            "made_by": self.id,
            "made_by_owner": self.owner,
            "made_by_current_owner": self.current_owner,
            "made_by_earlier": self.earlier,
        }

    def counting(self) -> dict[str, Any]:
        """As ``approvals_status`` and ``PromotionFacts`` take it."""
        return {f"version_{k}": v for k, v in self.approving().items()}


def _maker(conn: Connection, public_key_b64: str, version: Any, history: OwnerHistory) -> _Maker:
    """Who made ``version`` and the humans who answer for it (:class:`_Maker`), from the signed ledger's
    hand-overs: a bot handed on since must not let the human whose side made the version approve it."""
    now = conn.execute(select(principals.c.owner_id).where(principals.c.id == version.created_by)).scalar()
    then = owner_then(history, version.created_by, "versions", version.id) or now
    earlier = maker_earlier_owners(conn, public_key_b64, history, version) - {then, now}
    return _Maker(version.created_by, then, now if now != then else None, frozenset(earlier))


def submitter_owner(c: Any) -> str | None:
    """The accountable owner of the submitting principal as recorded at submission time, so that
    handing a bot to someone else never re-opens separation of duties on its past contributions to
    the owner then (see :func:`current_owner` for the owner now)."""
    return c.submitter_owner


def _principals(conn: Connection) -> dict[str, Any]:
    return {r.id: auth.principal_from_row(r) for r in conn.execute(select(principals))}


def _approval_status(
    conn: Connection, policy: DatasetPolicy, c: Any, standing: Standing, history: OwnerHistory
) -> ApprovalStatus:
    """How the contribution's approvals count against the policy, for its current content hash, those of
    approvers disabled since or given with keys revoked since (``standing``), and those of the submitting
    bot's owners while its key was live (``history``), not counted."""
    return approvals_status(
        policy,
        c.content_hash,
        _approvals_of(conn, c.id, standing, history),
        submitter_id=c.submitted_by,
        submitter_owner_id=submitter_owner(c),
        principals=_principals(conn),
        submitter_current_owner_id=current_owner(conn, c),
        submitter_earlier_owners=submitter_earlier_owners(history, c),
    )


def _history(uc: Any) -> OwnerHistory:
    return read_owner_history(uc.conn, uc.signer.public_key_b64)


class ApprovalService(Service):
    """Use cases of approval: approve and reject contributions."""

    def _decide_contribution(self, ref: str, decision: str, reason: str) -> dict[str, Any]:
        if not reason.strip():
            noun = "an approval" if decision == "approve" else "a rejection"
            raise InputError(f"{noun} needs a reason", hint="pass --reason '...'")
        with self.db.reading() as conn:
            c = named_contribution(conn, ref)
            ds_name = conn.execute(select(datasets.c.name).where(datasets.c.id == c.dataset_id)).scalar_one()
        action = Action.CONTRIBUTION_APPROVE if decision == "approve" else Action.CONTRIBUTION_REJECT
        with self.use_case(action, Scope.dataset(ds_name), detail={"contribution": c.id}) as uc:
            c = rows.contribution_row(uc.conn, c.id)
            ds = rows.dataset_row(uc.conn, ds_name)
            if c.status not in (APPROVABLE if decision == "approve" else DECIDABLE):
                done = "approved" if decision == "approve" else "rejected"
                raise Conflict(f"contribution {ds_name}#{c.number} is {c.status} and can no longer be {done}")
            # Separation of duties is decided on the submitter the ledger recorded, not the catalog's.
            checked_signed_rows(self, uc.conn, "contributions", [c], doing=decision)
            policy = dataset_policy(ds)
            held = roles_on(uc.caller.principal_id, uc.caller.grants, Scope.dataset(ds_name))
            history = _history(uc)
            check = check_approval(
                policy,
                uc.caller.principal,
                c.submitted_by,
                submitter_owner(c),
                held,
                current_owner(uc.conn, c),
                submitter_earlier_owners(history, c),
                acting_earlier_owners(history, uc.caller),
            )
            if decision == "approve":
                check.raise_if_denied(PolicyViolation)
                if c.gate_verdict == "block":
                    # An approval is a statement about what will be merged; a blocked batch will not be, and
                    # the approver did not approve what an override may later let through.
                    raise PolicyViolation(
                        f"{ds_name}#{c.number} has gate verdict block and cannot be approved",
                        hint="a block is lifted only by two owners or admins of the dataset "
                        f"(dataward gate override {ds_name}#{c.number} --reason '...'); approve it after "
                        f"that, or reject it (dataward reject {ds_name}#{c.number} --reason '...')",
                    )
            role = policy.approvals.eligible_role(held)
            changes = [
                insert_row(
                    "approvals",
                    id=new_id("a"),
                    contribution_id=c.id,
                    principal_id=uc.caller.principal_id,
                    decision=decision,
                    content_hash=c.content_hash,
                    reason=json.dumps({"text": reason, "role": (role.value if role else None)}),
                    created_at=format_time(uc.now),
                )
            ]
            if decision == "reject":
                changes.append(update_row("contributions", {"id": c.id}, status="rejected"))
                # A rejected contribution never merges: close its review queue with it.
                changes += close_pending_reviews(uc, c.id, f"contribution rejected: {reason}")
            uc.emit(
                "contribution.approved" if decision == "approve" else "contribution.rejected",
                {"dataset": ds.id, "contribution": c.id},
                {"content_hash": c.content_hash, "reason": reason, "role": role.value if role else None},
                changes,
            )
            status = _approval_status(uc.conn, policy, c, read_standing(uc.conn, uc.signer.public_key_b64), history)
            return {
                "contribution": f"{ds_name}#{c.number}",
                "decision": decision,
                "by": uc.caller.principal_name,
                "approvals": status.summary(),
                "satisfied": status.satisfied,
            }

    def approve(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Approve a contribution, bound to its current content hash. Nobody approves their own
        contribution or one submitted by a service principal they own. A merged contribution can still
        be approved: its approvals count when a version holding it is promoted. ``DATASET@VERSION``
        approves a whole version instead (see :meth:`approve_version`)."""
        if "@" in contribution:
            return self.approve_version(contribution, reason=reason)
        return self._decide_contribution(contribution, "approve", reason)

    def approve_version(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Approve ``DATASET@VERSION`` as a whole, bound to its manifest digest.

        At promotion the approval counts as one more approval of every contribution the version holds
        (another version, even one holding the same contributions, does not get it). Nobody approves a
        version holding their own contribution, their bot's, or their human's. Only a ``candidate``
        version can be approved, and only once it reads back as the signed ledger made it.
        """
        if not reason.strip():
            raise InputError("an approval needs a reason", hint="pass --reason '...'")
        name, version = rows.split_ref(ref)
        if version is None:
            raise InputError(f"{ref!r} names no version", hint="approve DATASET@vN, or a contribution DATASET#N")
        with self.use_case(Action.CONTRIBUTION_APPROVE, Scope.dataset(name), detail={"version": ref}) as uc:
            ds = rows.dataset_row(uc.conn, name)
            if ds.role != "dataset":
                raise InputError(f"{name!r} is a validation set; its versions are not promoted or approved")
            ver = rows.version_row(uc.conn, ds.id, name, version)
            if ver.stage != "candidate":
                raise Conflict(f"{name}@v{ver.number} is {ver.stage}; only a candidate version can be approved")
            # The digest approved must be the one the ledger made: a row edited behind its back is refused.
            checked_version_ids(self, uc.conn, ds, ver)
            policy = dataset_policy(ds)
            held = roles_on(uc.caller.principal_id, uc.caller.grants, Scope.dataset(name))
            listed = json.loads(ver.contributions)
            found = rows_in(uc.conn, select(contributions), contributions.c.id, listed)
            checked_signed_rows(self, uc.conn, "contributions", found, doing="approve")
            standing = read_standing(uc.conn, uc.signer.public_key_b64)
            history = _history(uc)
            facts = _contribution_facts(uc.conn, ds, ver, standing, history)
            maker = _maker(uc.conn, uc.signer.public_key_b64, ver, history)
            everyone = _principals(uc.conn)
            every_grant = auth.load_grants(uc.conn)
            scope = Scope.dataset(name)
            decision = check_version_approval(
                policy,
                uc.caller.principal,
                facts,
                held,
                acting_owners=acting_earlier_owners(history, uc.caller),
                **maker.approving(),
            )
            if not decision.allowed and decision.problems:
                # Separation of duties: name who may approve instead, and what the caller may approve.
                who = version_approvers(policy, everyone.values(), every_grant, scope, facts, **maker.approving())
                mine = approvable_one_by_one(policy, uc.caller.principal, every_grant, scope, facts)
                hint = f"{who_text(who)} may approve {name}@v{ver.number} (dataward approve {name}@v{ver.number})"
                if mine:
                    hint += (
                        f"; or approve its contributions one by one, as you may: "
                        f"{', '.join(f'dataward approve {c} --reason ...' for c in mine[:5])}"
                        + (f" (and {len(mine) - 5} more)" if len(mine) > 5 else "")
                    )
                raise PolicyViolation(decision.reason, hint=hint, **decision.details())
            decision.raise_if_denied(PolicyViolation)
            role = policy.approvals.eligible_role(held)
            approval_id = new_id("va")
            uc.emit(
                "version.approved",
                {"dataset": ds.id, "version": ver.id},
                {"content_hash": ver.manifest_object, "reason": reason, "role": role.value if role else None},
                [
                    insert_row(
                        "version_approvals",
                        id=approval_id,
                        version_id=ver.id,
                        dataset_id=ds.id,
                        principal_id=uc.caller.principal_id,
                        content_hash=ver.manifest_object,
                        role=role.value if role else None,
                        reason=reason,
                        created_at=format_time(uc.now),
                    )
                ],
            )
            counted = _version_approvals_of(uc.conn, ver.id, standing, history)
            statuses = [
                approvals_status(
                    policy,
                    c.content_hash,
                    c.approvals,
                    submitter_id=c.submitter_id,
                    submitter_owner_id=c.submitter_owner_id,
                    principals=_principals(uc.conn),
                    version_hash=ver.manifest_object,
                    version_approvals=counted,
                    submitter_current_owner_id=c.submitter_current_owner_id,
                    submitter_earlier_owners=c.submitter_earlier_owners,
                    **maker.counting(),
                )
                for c in facts
            ]
            short = [
                f"{c.contribution_id}: {s.summary()}" for c, s in zip(facts, statuses, strict=True) if not s.satisfied
            ]
            if short:
                # Who may still add an approval: of the version (not anyone already counted everywhere it
                # falls short), and of each contribution short of approvals, one by one.
                counted = [{a.approver_id for a in s.counted} for s in statuses if not s.satisfied]
                who = version_approvers(
                    policy,
                    everyone.values(),
                    every_grant,
                    scope,
                    facts,
                    exclude={uc.caller.principal_id, *set.intersection(*counted)},
                    **maker.approving(),
                )
                short.append(f"the version may still be approved by {who_text(who)}")
                for c, s in zip(facts, statuses, strict=True):
                    if s.satisfied:
                        continue
                    others = contribution_approvers(
                        policy, everyone.values(), every_grant, scope, c, exclude={a.approver_id for a in s.counted}
                    )
                    short.append(
                        f"{c.contribution_id} may still be approved by {who_text(others)} "
                        f"(dataward approve {c.contribution_id} --reason '...')"
                    )
            return {
                "version": f"{name}@v{ver.number}",
                "decision": "approve",
                "by": uc.caller.principal_name,
                "content_hash": ver.manifest_object,
                "approvals": "; ".join(short) if short else "every contribution has the approvals the policy asks for",
                "satisfied": not short,
            }

    def reject(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Reject a contribution: it can never be merged."""
        return self._decide_contribution(contribution, "reject", reason)


def check_merge_allowed(ward: Any, uc: UseCase, ds: Any, c: Any) -> None:
    """A merge needs a gate verdict other than block (removals are gated too), no record still
    awaiting review, and the policy's approvals bound to the current content."""
    policy = dataset_policy(ds)
    problems = []
    if c.gate_verdict is None:
        problems.append("no gate has run on it")
    if c.gate_verdict == "block":
        raise PolicyViolation(
            f"{ds.name}#{c.number} cannot be merged: its gate verdict is block",
            hint="a blocked contribution is rejected, re-submitted without its flagged records, or overridden by "
            f"two owners or admins (dataward gate override {ds.name}#{c.number} --reason '...')",
        )
    items = uc.conn.execute(select(quarantine).where(quarantine.c.contribution_id == c.id)).all()
    # Whether a decision still counts is read from its row (its status, its time): as the ledger signed it.
    # Every item the ledger holds for it too: a row deleted would hide its voided decision.
    checked_review_rows_of(ward, uc.conn, items, [c.id], doing="merge")
    # Approvals and review decisions count only while the principal and the key they were given with stand.
    standing = read_standing(uc.conn, uc.signer.public_key_b64)
    voided = [v for q in items if (v := voided_decision(uc.conn, standing, q, c.status)) is not None]
    pending = [q for q in items if q.status == "pending"]
    if pending or voided:
        why = ""
        if voided:
            named = "; ".join(sorted({f"{v['by']}'s decisions: {v['why']}" for v in voided}))
            why = f" ({len(voided)} decided, but the decision no longer counts: {named})"
        raise Conflict(
            f"{len(pending) + len(voided)} record(s) of {ds.name}#{c.number} await review{why}",
            hint=f"decide them first: dataward review list {ds.name}",
        )
    status = _approval_status(uc.conn, policy, c, standing, _history(uc))
    if not status.satisfied:
        problems.append(f"it has {status.summary()}")
    if problems:
        steps = [] if c.gate_verdict is not None else [f"gate it (dataward gate run {ds.name}#{c.number})"]
        if not status.satisfied:
            steps.append(f"have another approver approve it (dataward approve {ds.name}#{c.number} --reason '...')")
        raise PolicyViolation(
            f"{ds.name}#{c.number} cannot be merged: " + "; ".join(problems),
            hint=" and ".join(steps) or None,
        )


def check_promotion_allowed(ward: Any, uc: UseCase, ds: Any, version: Any) -> None:
    """The training stage only changes by a promotion that meets the policy: promoter role, an
    accepted gate verdict and valid approvals on every contribution the version holds (its own, and
    approvals of this version as a whole bound to its manifest digest)."""
    policy = dataset_policy(ds)
    # Approvals count only while their approver and the key they were given with stand (the ledger says).
    standing = read_standing(uc.conn, uc.signer.public_key_b64)
    history = _history(uc)
    facts = _contribution_facts(uc.conn, ds, version, standing, history)
    maker = _maker(uc.conn, uc.signer.public_key_b64, version, history)
    decision = can_promote(
        policy,
        PromotionFacts(
            ds.name,
            f"v{version.number}",
            uc.caller.principal,
            roles_on(uc.caller.principal_id, uc.caller.grants, Scope.dataset(ds.name)),
            tuple(facts),
            _principals(uc.conn),
            version_hash=version.manifest_object,
            version_approvals=tuple(_version_approvals_of(uc.conn, version.id, standing, history)),
            **maker.counting(),
        ),
    )
    decision.raise_if_denied(PolicyViolation)
    # Review decisions count only while their reviewer and key stand, as approvals do (``check_merge_allowed``).
    _refuse_voided_accepts(ward, uc.conn, ds, version, standing)


def _refuse_voided_accepts(ward: Any, conn: Connection, ds: Any, version: Any, standing: Standing) -> None:
    """Refuse (``Conflict``) promoting ``version`` while a record it took in was let in by a review decision
    that no longer counts (its reviewer disabled or its key revoked since): as an approval given with such a
    key stops the promotion, so does the accept that let a flagged record past the gate. Rejections are not
    looked at: a rejected record is not in the version."""
    query = select(quarantine, contributions.c.number, contributions.c.status.label("contribution_status")).join(
        contributions, contributions.c.id == quarantine.c.contribution_id
    )
    held = json.loads(version.contributions)
    found = rows_in(conn, query, quarantine.c.contribution_id, held)
    # Which items were accepted, and whether their decision still counts, as the ledger signed them: a status
    # or a decision time edited in the catalog alone, or a row deleted from it, would otherwise hide a voided
    # accept.
    checked_review_rows_of(ward, conn, found, held, doing="promote")
    accepted = [q for q in found if q.status == "accepted"]
    voided: dict[int, list[dict[str, Any]]] = {}
    for q in accepted:
        if (v := voided_decision(conn, standing, q, q.contribution_status)) is not None:
            voided.setdefault(q.number, []).append(v)
    if not voided:
        return
    parts = []
    for number, found in sorted(voided.items()):
        named = "; ".join(sorted({f"{v['by']}'s decisions: {v['why']}" for v in found}))
        parts.append(
            f"{len(found)} record(s) of {ds.name}#{number} were accepted by a decision that no longer counts ({named})"
        )
    raise Conflict(
        f"{ds.name}@v{version.number} cannot be promoted: " + "; ".join(parts),
        hint=f"a reviewer whose key stands decides them again: dataward review list {ds.name}",
    )
