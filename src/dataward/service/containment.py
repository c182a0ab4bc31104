"""Containment: quarantine a contribution as a unit, rolling its records out of the dataset."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from dataward.access.roles import Action, Scope
from dataward.catalog.projection import insert_row, update_row
from dataward.catalog.tables import contributions, datasets, versions
from dataward.domain.errors import Conflict, InputError
from dataward.ledger.events import format_time
from dataward.service import rows
from dataward.service.core import WardCore, close_pending_reviews
from dataward.service.datasets import version_info
from dataward.service.recordstore import ids_table, manifest_ids, read_ids, table_to_parquet, version_identity


class ContainmentCases(WardCore):
    """Use cases of incident containment."""

    def quarantine_contribution(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Hold a whole contribution out of every future version.

        Not yet merged: it can never be merged. Already merged: a new candidate version is made from
        the latest one without the records only this contribution brought in, and with the records it
        removed restored; the versions that held it are listed (the blast radius) so that a clean
        version can be promoted in place of the training one.
        """
        if not reason.strip():
            raise InputError("quarantining a contribution needs a reason", hint="pass --reason '...'")
        with self.db.reading() as conn:
            c = rows.contribution_row(conn, contribution)
            ds_name = conn.execute(select(datasets.c.name).where(datasets.c.id == c.dataset_id)).scalar_one()
        with self.use_case(Action.QUARANTINE, Scope.dataset(ds_name)) as uc:
            c = rows.contribution_row(uc.conn, c.id)
            ds = rows.dataset_row(uc.conn, ds_name)
            ref = f"{ds_name}#{c.number}"
            if c.status == "quarantined":
                raise Conflict(f"{ref} is already quarantined")
            affected = [
                v
                for v in uc.conn.execute(
                    select(versions).where(versions.c.dataset_id == ds.id).order_by(versions.c.number)
                )
                if c.id in json.loads(v.contributions)
            ]
            changes = [update_row("contributions", {"id": c.id}, status="quarantined")]
            # Its records are held out as a unit: their individual reviews are closed with it.
            changes += close_pending_reviews(uc, c.id, f"contribution quarantined: {reason}")
            payload: dict[str, Any] = {
                "reason": reason,
                "previous_status": c.status,
                "affected_versions": [v.id for v in affected],
            }
            new_version = None
            latest = rows.latest_version(uc.conn, ds.id)
            if latest is not None and c.id in json.loads(latest.contributions):
                kept = [cid for cid in json.loads(latest.contributions) if cid != c.id]
                vouched: set[str] = set()
                for cid in kept:
                    other = uc.conn.execute(select(contributions).where(contributions.c.id == cid)).one()
                    vouched.update(read_ids(self.store, other.added_object))
                only_here = set(read_ids(self.store, c.added_object)) - vouched
                restored = set(read_ids(self.store, c.removed_object))
                members = sorted((set(manifest_ids(self.store, latest.manifest_object)) - only_here) | restored)
                number = latest.number + 1
                vid = version_identity(ds.id, number, latest.id, members)
                manifest = self.store.put(table_to_parquet(ids_table(members)))
                changes.append(
                    insert_row(
                        "versions",
                        id=vid,
                        dataset_id=ds.id,
                        number=number,
                        parent_id=latest.id,
                        manifest_object=manifest,
                        record_count=len(members),
                        contributions=json.dumps(kept),
                        stage="candidate",
                        created_at=format_time(uc.now),
                        created_by=uc.caller.principal_id,
                    )
                )
                payload.update(
                    {
                        "rollback_version": vid,
                        "manifest": manifest,
                        "records_removed": len(only_here),
                        "records_restored": len(restored),
                    }
                )
                new_version = (vid, number, len(only_here), len(restored))
            uc.emit("contribution.quarantined", {"dataset": ds.id, "contribution": c.id}, payload, changes)
            result: dict[str, Any] = {
                "contribution": ref,
                "previous_status": c.status,
                "affected_versions": [version_info(v, ds_name) for v in affected],
                "rollback_version": None,
            }
            if new_version is not None:
                row = uc.conn.execute(select(versions).where(versions.c.id == new_version[0])).one()
                result["rollback_version"] = {
                    **version_info(row, ds_name),
                    "records_removed": new_version[2],
                    "records_restored": new_version[3],
                }
            return result
