"""Who may still approve a version: the names a refusal or an unfinished approval points to.

A version made by a quarantine (the rollback) is made by whoever ran the quarantine; under separation of
duties they may not approve it, nor may the submitters of its contributions (and their bots or humans).
That is kept: a rollback only removes records, but what it removes is what its maker chose to
quarantine, and removals are judged too (docs/access.md, "Approving a rollback version"). What was
missing was the name of someone who *can* approve.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from dataward.access.authorize import Grant, Principal, roles_on
from dataward.access.policy import (
    ContributionFacts,
    DatasetPolicy,
    check_contribution_approval,
    check_version_approval,
)
from dataward.access.roles import Scope


def version_approvers(
    policy: DatasetPolicy,
    principals: Iterable[Principal],
    grants: Iterable[Grant],
    scope: Scope,
    contributions: list[ContributionFacts],
    *,
    made_by: str | None,
    made_by_owner: str | None,
    exclude: Iterable[str] = (),
    made_by_current_owner: str | None = None,
    made_by_earlier: Collection[str] = (),
) -> list[str]:
    """Names of the active principals who may approve the version (``check_version_approval``) on
    ``scope``, sorted; those in ``exclude`` (ids: the caller, approvers already counted) left out."""
    grants = list(grants)
    left_out = set(exclude)
    names = []
    for p in principals:
        if p.id in left_out or not p.is_active:
            continue
        held = roles_on(p.id, grants, scope)
        decision = check_version_approval(
            policy,
            p,
            contributions,
            held,
            made_by=made_by,
            made_by_owner=made_by_owner,
            made_by_current_owner=made_by_current_owner,
            made_by_earlier=made_by_earlier,
        )
        if decision.allowed:
            names.append(p.name)
    return sorted(names)


def approvable_one_by_one(
    policy: DatasetPolicy,
    approver: Principal,
    grants: Iterable[Grant],
    scope: Scope,
    contributions: list[ContributionFacts],
) -> list[str]:
    """The contributions of a version ``approver`` may approve one by one (``check_approval``)."""
    held = roles_on(approver.id, list(grants), scope)
    return [c.contribution_id for c in contributions if check_contribution_approval(policy, approver, c, held).allowed]


def contribution_approvers(
    policy: DatasetPolicy,
    principals: Iterable[Principal],
    grants: Iterable[Grant],
    scope: Scope,
    contribution: ContributionFacts,
    *,
    exclude: Iterable[str] = (),
) -> list[str]:
    """Names of the active principals who may approve ``contribution`` itself (``check_approval``),
    sorted; those in ``exclude`` (ids: approvers already counted) left out."""
    grants = list(grants)
    left_out = set(exclude)
    c = contribution
    return sorted(
        p.name
        for p in principals
        if p.id not in left_out
        and p.is_active
        and check_contribution_approval(policy, p, c, roles_on(p.id, grants, scope)).allowed
    )


def who_text(names: list[str]) -> str:
    """``names`` as a sentence: ``'bob'``, ``'bob' or 'carol'``; or a note that nobody can."""
    if not names:
        return "nobody with an approving role on the dataset (grant one: dataward grant add NAME approver --scope ...)"
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


__all__ = ["approvable_one_by_one", "contribution_approvers", "version_approvers", "who_text"]
