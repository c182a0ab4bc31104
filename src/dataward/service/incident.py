"""Containment by cause: quarantine everything a leaked key, a principal or a source touched, with one
rollback version per affected dataset."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select

from dataward.access import authorize, descendants
from dataward.access.roles import Action, Scope
from dataward.catalog.projection import RowChange, insert_row, update_row
from dataward.catalog.tables import api_keys, contributions, datasets, sources, versions
from dataward.domain.errors import InputError, NotFound
from dataward.ledger.events import format_time
from dataward.service import auth, rows
from dataward.service.core import UseCase, WardCore, close_pending_reviews
from dataward.service.datasets import version_info
from dataward.service.derived import Taint, clean_vouched, taint_of
from dataward.service.recordstore import ids_table, manifest_ids, read_ids, table_to_parquet, version_identity


class IncidentCases(WardCore):
    """Use case ``quarantine_by``: contain an incident by its cause, not contribution by contribution."""

    def quarantine_by(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Quarantine every contribution ``ref`` touched: ``dw_KEY`` (submitted with the key or with any
        key minted through it: what a leaked key could have done), ``principal:NAME`` (submitted by the
        principal) or ``source:URI`` (declared that source). Contributions already quarantined are
        left as they are.

        All or nothing: the caller needs ``quarantine`` on every affected dataset, else nothing changes.
        Each affected dataset whose latest version holds any of them gets exactly one rollback version:
        the latest without the records only they brought in, with the records they removed restored.
        Promote it to replace the training version."""
        if not reason.strip():
            raise InputError("quarantining needs a reason", hint="pass --reason '...'")
        with self.use_case(Action.QUARANTINE, Scope.ward(), check=False, detail={"ref": ref}) as uc:
            conn = uc.conn
            subject, found = self._touched(conn, ref)
            names = {r.id: r.name for r in conn.execute(select(datasets.c.id, datasets.c.name))}
            by_dataset: dict[str, list[Any]] = defaultdict(list)
            for c in found:
                by_dataset[c.dataset_id].append(c)
            # Forward through transformations: records made from what it touched are held out too,
            # in whichever dataset the step wrote them to.
            taint = taint_of(self.store, conn, found)
            carriers = taint.carriers()
            if carriers:
                for c in conn.execute(select(contributions).where(contributions.c.id.in_(sorted(carriers)))):
                    by_dataset.setdefault(c.dataset_id, [])
            # Authorize every dataset before changing anything: a partial containment would leave
            # the caller believing the incident is contained.
            for ds_id in sorted(by_dataset, key=lambda d: names[d]):
                authorize(
                    uc.caller.principal,
                    uc.caller.key,
                    uc.caller.grants,
                    Action.QUARANTINE,
                    Scope.dataset(names[ds_id]),
                    uc.now,
                ).raise_if_denied()
            results = [
                self._contain(uc, ds_id, names[ds_id], cs, ref, reason, taint)
                for ds_id, cs in sorted(by_dataset.items(), key=lambda kv: names[kv[0]])
            ]
        return {"subject": subject, "reason": reason, "datasets": results}

    def _touched(self, conn: Connection, ref: str) -> tuple[dict[str, Any], list[Any]]:
        """The cause described, and every contribution it touched, oldest first."""
        query = select(contributions)
        if ref.startswith("dw_"):
            key_id = rows.key_id_of(ref)
            if conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first() is None:
                raise NotFound(f"no API key {ref!r}")
            everyone = [auth.key_from_row(r) for r in conn.execute(select(api_keys))]
            keys = [key_id, *(k.id for k in descendants(key_id, everyone))]
            query = query.where(contributions.c.key_id.in_(keys))
            subject: dict[str, Any] = {"kind": "key", "key": f"dw_{key_id}", "keys": [f"dw_{k}" for k in keys]}
        elif ref.startswith("principal:"):
            who = rows.principal_row(conn, ref.removeprefix("principal:"))
            query = query.where(contributions.c.submitted_by == who.id)
            subject = {"kind": "principal", "principal": who.name}
        elif ref.startswith("source:"):
            uri = ref.removeprefix("source:")
            ids = [r.id for r in conn.execute(select(sources.c.id).where(sources.c.uri == uri))]
            query = query.where(contributions.c.source_id.in_(ids))
            subject = {"kind": "source", "uri": uri}
        else:
            raise InputError(f"cannot tell what {ref!r} is", hint="give a key (dw_…), principal:NAME or source:URI")
        found = conn.execute(query.order_by(contributions.c.created_at)).all()
        if not found:
            raise NotFound(f"{ref} touched no contribution")
        return subject, found

    def _contain(
        self, uc: UseCase, ds_id: str, ds_name: str, found: list[Any], ref: str, reason: str, taint: Taint
    ) -> dict[str, Any]:
        conn = uc.conn
        fresh = [c for c in found if c.status != "quarantined"]
        fresh_ids = {c.id for c in fresh}
        all_versions = conn.execute(
            select(versions).where(versions.c.dataset_id == ds_id).order_by(versions.c.number)
        ).all()
        carriers = taint.carriers()
        touching = {c.id for c in found} | carriers
        affected = [v for v in all_versions if touching & set(json.loads(v.contributions))]
        out: dict[str, Any] = {
            "dataset": ds_name,
            "contributions": [f"{ds_name}#{c.number}" for c in found],
            "quarantined": [f"{ds_name}#{c.number}" for c in fresh],
            "already_quarantined": [f"{ds_name}#{c.number}" for c in found if c.status == "quarantined"],
            "affected_versions": [version_info(v, ds_name) for v in affected],
            "rollback_version": None,
        }
        latest = all_versions[-1] if all_versions else None
        rollback: list[RowChange] = []
        rollback_facts: dict[str, Any] = {}
        in_latest = [c for c in fresh if latest is not None and c.id in json.loads(latest.contributions)]
        carried = latest is not None and bool(carriers & set(json.loads(latest.contributions)))
        if latest is not None and (in_latest or carried):
            kept = [cid for cid in json.loads(latest.contributions) if cid not in fresh_ids]
            vouched = clean_vouched(self.store, conn, kept, taint)
            restored: set[str] = set()
            for c in in_latest:
                restored.update(read_ids(self.store, c.removed_object))
            current = set(manifest_ids(self.store, latest.manifest_object))
            # What it brought in itself, and every record a transformation made from that, unless
            # an ordinary contribution still in the version vouches for the same content.
            held_out = (taint.records & current) - vouched
            derived_out = held_out & set(taint.derived)
            restored -= taint.records
            members = sorted((current - held_out) | restored)
            if held_out or restored or in_latest:
                number = latest.number + 1
                vid = version_identity(ds_id, number, latest.id, members)
                manifest = self.store.put(table_to_parquet(ids_table(members)))
                rollback.append(
                    insert_row(
                        "versions",
                        id=vid,
                        dataset_id=ds_id,
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
                rollback_facts = {
                    "rollback_version": vid,
                    "manifest": manifest,
                    "records_removed": len(held_out),
                    "derived_records_removed": len(derived_out),
                    "records_restored": len(restored),
                    "rolled_back": [c.id for c in in_latest],
                }
        for i, c in enumerate(fresh):
            changes = [update_row("contributions", {"id": c.id}, status="quarantined")]
            changes += close_pending_reviews(uc, c.id, f"contribution quarantined: {reason}")
            payload: dict[str, Any] = {
                "reason": reason,
                "incident": ref,
                "previous_status": c.status,
                "affected_versions": [v.id for v in affected if c.id in json.loads(v.contributions)],
            }
            if i == len(fresh) - 1 and rollback:
                # One rollback version for the whole incident, made with the last of its quarantines.
                changes += rollback
                payload.update(rollback_facts)
            uc.emit("contribution.quarantined", {"dataset": ds_id, "contribution": c.id}, payload, changes)
        if rollback and not fresh:
            # Only records made from the suspect ones by a transformation are here: the rollback is
            # an event of its own, naming the steps that carried them.
            uc.emit(
                "records.contained",
                {"dataset": ds_id, "version": rollback_facts["rollback_version"]},
                {
                    "reason": reason,
                    "incident": ref,
                    "carried_by": sorted(carriers & set(json.loads(latest.contributions))) if latest else [],
                    "affected_versions": [v.id for v in affected],
                    **rollback_facts,
                },
                rollback,
            )
        if rollback_facts:
            row = conn.execute(select(versions).where(versions.c.id == rollback_facts["rollback_version"])).one()
            out["rollback_version"] = {
                **version_info(row, ds_name),
                "records_removed": rollback_facts["records_removed"],
                "derived_records_removed": rollback_facts["derived_records_removed"],
                "records_restored": rollback_facts["records_restored"],
            }
        return out


__all__ = ["IncidentCases"]
