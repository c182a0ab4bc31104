"""Use cases of approval: approve or reject a contribution, and the policy checks on merge and promotion."""

from __future__ import annotations

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
    roles_on,
)
from dataward.access.roles import Action, Scope
from dataward.catalog.projection import insert_row, update_row
from dataward.catalog.tables import approvals, contributions, datasets, principals, quarantine
from dataward.domain.errors import Conflict, InputError, PolicyViolation
from dataward.ledger.events import format_time, parse_time
from dataward.service import auth, rows
from dataward.service.core import UseCase, WardCore, close_pending_reviews, new_id
from dataward.service.identity import dataset_policy

DECIDABLE = ("submitted", "gated")


def _approvals_of(conn: Connection, contribution_id: str) -> list[Approval]:
    query = select(approvals).where(approvals.c.contribution_id == contribution_id, approvals.c.decision == "approve")
    return [
        Approval(
            r.principal_id,
            r.content_hash,
            json.loads(r.reason)["role"],
            json.loads(r.reason)["text"],
            parse_time(r.created_at),
        )
        for r in conn.execute(query)
    ]


def submitter_owner(c: Any) -> str | None:
    """The accountable owner of the submitting principal as recorded at submission time, so that
    handing a bot to someone else never re-opens separation of duties on its past contributions."""
    return c.submitter_owner


def _principals(conn: Connection) -> dict[str, Any]:
    return {r.id: auth.principal_from_row(r) for r in conn.execute(select(principals))}


def _approval_status(conn: Connection, policy: DatasetPolicy, c: Any) -> ApprovalStatus:
    """How the contribution's approvals count against the policy, for its current content hash."""
    return approvals_status(
        policy,
        c.content_hash,
        _approvals_of(conn, c.id),
        submitter_id=c.submitted_by,
        submitter_owner_id=submitter_owner(c),
        principals=_principals(conn),
    )


class ApprovalCases(WardCore):
    """Use cases of approval: approve and reject contributions."""

    def _decide_contribution(self, ref: str, decision: str, reason: str) -> dict[str, Any]:
        if not reason.strip():
            noun = "an approval" if decision == "approve" else "a rejection"
            raise InputError(f"{noun} needs a reason", hint="pass --reason '...'")
        with self.db.reading() as conn:
            c = rows.contribution_row(conn, ref)
            ds_name = conn.execute(select(datasets.c.name).where(datasets.c.id == c.dataset_id)).scalar_one()
        action = Action.CONTRIBUTION_APPROVE if decision == "approve" else Action.CONTRIBUTION_REJECT
        with self.use_case(action, Scope.dataset(ds_name), detail={"contribution": c.id}) as uc:
            c = rows.contribution_row(uc.conn, c.id)
            ds = rows.dataset_row(uc.conn, ds_name)
            if c.status not in DECIDABLE:
                raise Conflict(f"contribution {ds_name}#{c.number} is {c.status} and can no longer be {decision}d")
            policy = dataset_policy(ds)
            held = roles_on(uc.caller.principal_id, uc.caller.grants, Scope.dataset(ds_name))
            check = check_approval(policy, uc.caller.principal, c.submitted_by, submitter_owner(c), held)
            if decision == "approve":
                check.raise_if_denied(PolicyViolation)
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
            status = _approval_status(uc.conn, policy, c)
            return {
                "contribution": f"{ds_name}#{c.number}",
                "decision": decision,
                "by": uc.caller.principal_name,
                "approvals": status.summary(),
                "satisfied": status.satisfied,
            }

    def approve(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Approve a contribution, bound to its current content hash. Nobody approves their own
        contribution or one submitted by a service principal they own."""
        return self._decide_contribution(contribution, "approve", reason)

    def reject(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Reject a contribution: it can never be merged."""
        return self._decide_contribution(contribution, "reject", reason)


def check_merge_allowed(uc: UseCase, ds: Any, c: Any) -> None:
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
    pending = uc.conn.execute(
        select(quarantine.c.id).where(quarantine.c.contribution_id == c.id, quarantine.c.status == "pending")
    ).all()
    if pending:
        raise Conflict(
            f"{len(pending)} record(s) of {ds.name}#{c.number} await review",
            hint=f"decide them first: dataward review list {ds.name}",
        )
    status = _approval_status(uc.conn, policy, c)
    if not status.satisfied:
        problems.append(f"it has {status.summary()}")
    if problems:
        raise PolicyViolation(
            f"{ds.name}#{c.number} cannot be merged: " + "; ".join(problems),
            hint=f"gate it (dataward gate run {ds.name}#{c.number}) and have another approver approve it",
        )


def check_promotion_allowed(uc: UseCase, ds: Any, version: Any) -> None:
    """The training stage only changes by a promotion that meets the policy: promoter role, an
    accepted gate verdict and valid approvals on every contribution the version holds."""
    policy = dataset_policy(ds)
    facts = []
    for cid in json.loads(version.contributions):
        c = uc.conn.execute(select(contributions).where(contributions.c.id == cid)).one()
        facts.append(
            ContributionFacts(
                f"{ds.name}#{c.number}",
                c.content_hash,
                c.submitted_by,
                submitter_owner(c),
                tuple(_approvals_of(uc.conn, c.id)),
                c.gate_verdict,
            )
        )
    decision = can_promote(
        policy,
        PromotionFacts(
            ds.name,
            f"v{version.number}",
            uc.caller.principal,
            roles_on(uc.caller.principal_id, uc.caller.grants, Scope.dataset(ds.name)),
            tuple(facts),
            _principals(uc.conn),
        ),
    )
    decision.raise_if_denied(PolicyViolation)
