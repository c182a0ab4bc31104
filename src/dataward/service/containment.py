"""Containment: quarantine a contribution as a unit, rolling its records out of the dataset."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dataward.access.roles import Action, Scope
from dataward.catalog.tables import datasets
from dataward.domain.errors import Conflict, InputError
from dataward.service import rows
from dataward.service.core import Service, Stale, WardContext, retry_stale
from dataward.service.derived import taint_of
from dataward.service.guard import SignedCheck
from dataward.service.incident import IncidentService, authorize_quarantine, quarantine_basis
from dataward.service.visibility import named_contribution


class ContainmentService(Service):
    """Use cases of incident containment."""

    def __init__(self, context: WardContext, incidents: IncidentService) -> None:
        super().__init__(context)
        self.incidents = incidents

    def quarantine_contribution(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Hold a whole contribution out of every future version.

        Not yet merged: it can never be merged. Already merged: a new candidate version is made from
        the latest one without the records only this contribution brought in (and those transformations
        made from them), and with the records it removed restored; the versions that held it are listed
        (the blast radius) so that a clean version can be promoted in place of the training one. A
        dataset that a transformation copied or derived its records into gets its own rollback version
        (``records.contained``), as with ``quarantine_by``.
        """
        if not reason.strip():
            raise InputError("quarantining a contribution needs a reason", hint="pass --reason '...'")
        with self.db.reading() as conn:
            c = named_contribution(conn, contribution)
            ds_name = conn.execute(select(datasets.c.name).where(datasets.c.id == c.dataset_id)).scalar_one()
        return retry_stale(lambda: self._quarantine_one(c.id, ds_name, reason))

    def _quarantine_one(self, contribution_id: str, ds_name: str, reason: str) -> dict[str, Any]:
        # Worked out in a read transaction, without the write lock, then recorded only if nothing it
        # read changed (see dataward.service.incident).
        with self.use_case(Action.QUARANTINE, Scope.dataset(ds_name), write=False) as uc:
            c = rows.contribution_row(uc.conn, contribution_id)
            ref = f"{ds_name}#{c.number}"
            if c.status == "quarantined":
                raise Conflict(f"{ref} is already quarantined")
            # The steps its records went through, and the contributions carrying what they made, are
            # checked against the signed ledger (see ``derived.step_rows``): a step edited or deleted in
            # the catalog alone would leave a derived dataset out of the rollback.
            check = SignedCheck(self, uc.conn, doing="quarantine")
            taint = taint_of(self.store, uc.conn, [c], check=check, what=ref)
            names = {r.id: r.name for r in uc.conn.execute(select(datasets.c.id, datasets.c.name))}
            carriers = check.by_id("contributions", taint.carriers()).values()
            others = sorted({o.dataset_id for o in carriers} - {c.dataset_id}, key=lambda d: names[d])
            authorize_quarantine(uc, [names[d] for d in others])
            plans = [self.incidents.plan(uc.conn, c.dataset_id, ds_name, [c], taint)]
            plans += [self.incidents.plan(uc.conn, d, names[d], [], taint) for d in others]
            basis = quarantine_basis(uc.conn, [c])
        with self.use_case(Action.QUARANTINE, Scope.dataset(ds_name)) as uc:
            authorize_quarantine(uc, [names[d] for d in others])
            if quarantine_basis(uc.conn, [rows.contribution_row(uc.conn, contribution_id)]) != basis:
                raise Stale(f"{ds_name} changed while the quarantine of {ref} was worked out", hint="run it again")
            # Its records are held out as a unit: their individual reviews are closed with it.
            own, *rest = [self.incidents.record(uc, plan, ref, reason) for plan in plans]
        return {
            "contribution": ref,
            "previous_status": c.status,
            "affected_versions": own["affected_versions"],
            "rollback_version": own["rollback_version"],
            "models": own["models"],
            "derived_datasets": rest,
        }


__all__ = ["ContainmentService"]
