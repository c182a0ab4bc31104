"""Authorize first, then answer: lookups by id that do not tell a caller what exists.

A command given an id (a review item, a contribution) resolves it only to learn which dataset to
authorize against. A caller who may do the action on no dataset at all gets one refusal, the same
whether or not the id exists. A caller who may do it on some other dataset gets ``not_found`` for an
id in a dataset they cannot see, exactly as for an id that does not exist; the refusal is still
recorded as ``access.denied``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from dataward.access import authorize, roles_allowing
from dataward.access.authorize import Decision
from dataward.access.roles import Action, Scope
from dataward.catalog.tables import datasets
from dataward.domain.errors import AccessDenied, InputError, NotFound
from dataward.service import rows
from dataward.service.concealment import missing_contribution, remember_missing
from dataward.service.core import READ_ACTIONS, ConcealedDenial, UseCase
from dataward.service.dataset_keys import check_key_fits_dataset


def may_anywhere(uc: UseCase, action: Action) -> bool:
    """True when the caller may do ``action`` on at least one dataset."""
    names = [r.name for r in uc.conn.execute(select(datasets.c.name))]
    caller = uc.caller
    return any(
        authorize(caller.principal, caller.key, caller.grants, action, Scope.dataset(n), uc.now).allowed for n in names
    )


def authorize_on_dataset(uc: UseCase, action: Action, dataset: str) -> Decision:
    """The decision on ``action`` on ``dataset`` for a use case opened on the ward that acts on a dataset
    it found (a review item's, a contribution's, one a containment reaches). The grants decide, as
    ``authorize``; an allowed write is also held to the dataset's key rules (``check_key_fits_dataset``,
    raising ``AccessDenied``), as it is in a use case opened on the dataset. The rules used to bind only
    the scope a use case opened with: deciding review items or containing an incident on the ward let
    a key living longer than ``keys.max_ttl_days`` write to the dataset. Every per-dataset decision of
    such a use case goes through here, so none can leave the rule out."""
    caller = uc.caller
    scope = Scope.dataset(dataset)
    decision = authorize(caller.principal, caller.key, caller.grants, action, scope, uc.now)
    if decision.allowed and action not in READ_ACTIONS:
        check_key_fits_dataset(uc.conn, caller, scope)
    return decision


def authorize_found(uc: UseCase, action: Action, dataset: str | None, missing: NotFound) -> None:
    """Authorize ``action`` on ``dataset``, the dataset of what the caller named (None when it names
    nothing), before saying whether it exists. Raises ``missing`` or a refusal; returns when allowed."""
    caller = uc.caller
    decision = None
    if dataset is not None:
        decision = authorize_on_dataset(uc, action, dataset)
        if decision.allowed:
            return
    if not may_anywhere(uc, action):
        roles = ", ".join(sorted(r.value for r in roles_allowing(action)))
        raise AccessDenied(
            f"{caller.principal_name!r} may not {action.value} on any dataset",
            hint=f"ask an owner of the dataset for one of the roles: {roles}",
        )
    if decision is None:
        raise missing
    raise ConcealedDenial(decision.reason, missing)


def find_contribution(conn: Connection, ref: str) -> Any:
    """A contribution by id or ``DATASET#N``, or None (a malformed reference names nothing either)."""
    try:
        return rows.contribution_row(conn, ref)
    except NotFound:
        return None
    except InputError as exc:
        if "candidates" in exc.details:  # an id prefix several ids start with: said, not hidden as missing
            raise
        return None


def named_contribution(conn: Connection, ref: str) -> Any:
    """The contribution ``ref`` (``c_…`` or ``DATASET#N``) names, read before the use case that acts on
    it is authorized: ``no contribution 'ref'`` when there is none (whether or not its dataset exists),
    and the same answer noted for a refusal on a dataset the caller may not see
    (``service/concealment.py``), so that ``X#1`` and ``X#9`` read alike to it."""
    c = find_contribution(conn, ref)
    if c is None:
        raise missing_contribution(ref)
    ds = conn.execute(select(datasets).where(datasets.c.id == c.dataset_id)).one()
    # A use case on it is authorized on its dataset, or (a clean validation set's) on the one it guards.
    scopes = frozenset({Scope.dataset(ds.name), Scope.dataset(ds.validation_for or ds.name)})
    remember_missing(scopes, missing_contribution(ref))
    return c


def dataset_name(conn: Connection, dataset_id: str) -> str:
    return str(conn.execute(select(datasets.c.name).where(datasets.c.id == dataset_id)).scalar_one())
