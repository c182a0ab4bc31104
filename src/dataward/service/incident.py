"""Containment by cause: quarantine everything a leaked key, a principal or a source touched, with one
rollback version per affected dataset.

The long work (every id list it touched, the forward taint through transformations, the rollback
manifests) runs in a read transaction, without the catalog's write lock; the short write then checks
that nothing it read has changed (the contributions and their statuses, the datasets' versions, the
transformations) and records the events, or the whole use case runs again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, select

from dataward.access import authorize, descendants, roles_allowing
from dataward.access.containment import (
    grants_of,
    key_next_steps,
    live_keys,
    principal_next_steps,
    principal_next_steps_seen,
)
from dataward.access.removals import LISTED
from dataward.access.roles import Action, Scope, ScopeKind
from dataward.access.sides import vouches
from dataward.catalog.batched import rows_in
from dataward.catalog.projection import RowChange, insert_row, update_row
from dataward.catalog.tables import (
    api_keys,
    contributions,
    datasets,
    model_versions,
    principals,
    sources,
    transformations,
    versions,
)
from dataward.domain.errors import AccessDenied, InputError, IntegrityViolation, NotFound
from dataward.domain.idarrays import ids_to_binary
from dataward.ledger.events import format_time
from dataward.service import auth, rows
from dataward.service.approval_standing import read_standing
from dataward.service.concealment import sees_dataset
from dataward.service.core import ConcealedDenial, Service, Stale, UseCase, close_pending_reviews, retry_stale
from dataward.service.datasets import version_info
from dataward.service.derived import Taint, clean_vouched, taint_of
from dataward.service.guard import (
    SignedCheck,
    checked_for_signing,
    checked_manifest,
    may,
    origins,
    signed_chunks,
    signed_rows,
)
from dataward.service.key_grants import grant_next_steps, grants_made_with
from dataward.service.manifests import write_manifest
from dataward.service.quarantine_holds import Holder, close_held_items
from dataward.service.recordstore import chunks_holding, read_id_digests, read_ids, version_identity
from dataward.service.visibility import authorize_on_dataset, may_anywhere


@dataclass
class _Plan:
    """What containment does to one dataset, worked out without the write lock."""

    ds_id: str
    ds_name: str
    found: list[Any]
    fresh: list[Any]
    affected: list[Any]
    carried_by: list[str]
    rollback: dict[str, Any] | None = None
    """``{id, number, parent, manifest, members, kept, facts}`` of the rollback version, if one is made."""
    facts: dict[str, Any] = field(default_factory=dict)
    chunks: dict[str, list[str]] = field(default_factory=dict)
    """Contribution id of ``fresh`` -> the chunks holding the records it added (``record_chunks``)."""


class IncidentService(Service):
    """Use case ``quarantine_by``: contain an incident by its cause, not contribution by contribution."""

    def quarantine_by(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Quarantine every contribution ``ref`` touched: ``dw_KEY`` (submitted with the key or with any
        key minted through it: what a leaked key could have done), ``principal:NAME`` (submitted by the
        principal) or ``source:URI`` (declared that source). Contributions already quarantined are
        left as they are. Records that transformations made from what they added (a relabelling, a
        dedup's copy into another dataset) are held out too, wherever they went.

        All or nothing: the caller needs ``quarantine`` on every affected dataset, else nothing changes.
        Each affected dataset whose latest version holds any of it gets exactly one rollback version:
        the latest without the records only they brought in (and those made from them), with the
        records they removed restored. Promote it to replace the training version."""
        if not reason.strip():
            raise InputError("quarantining needs a reason", hint="pass --reason '...'")
        return retry_stale(lambda: self._quarantine_by(ref, reason))

    def _quarantine_by(self, ref: str, reason: str) -> dict[str, Any]:
        detail = {"ref": ref}
        with self.use_case(Action.QUARANTINE, Scope.ward(), check=False, detail=detail, write=False) as uc:
            conn = uc.conn
            # Refused before anything about ``ref`` is looked up: the same answer whatever it names.
            check_may_quarantine_somewhere(uc)
            approved = self._approved(conn, ref)
            subject, found = self._touched_seen(uc, ref, approved)
            names = {r.id: r.name for r in conn.execute(select(datasets.c.id, datasets.c.name))}
            by_dataset: dict[str, list[Any]] = defaultdict(list)
            for c in found:
                by_dataset[c.dataset_id].append(c)
            # Forward through transformations: records made from what it touched are held out too,
            # in whichever dataset the step wrote them to. The steps (and the contributions carrying
            # them) are checked against the signed ledger: one edited or deleted in the catalog alone
            # would leave a derived dataset out of the containment.
            check = SignedCheck(self, conn, doing="quarantine")
            taint = taint_of(self.store, conn, found, check=check, what=ref)
            for c in check.by_id("contributions", taint.carriers()).values():
                by_dataset.setdefault(c.dataset_id, [])
            order = sorted(by_dataset, key=lambda d: names[d])
            # What a key approved is part of what it did: those datasets are authorized with the rest.
            reached = sorted(
                {names[d] for d in order} | {names[a["dataset_id"]] for a in approved if a["dataset_id"] in names}
            )
            # A model release's approval names a model, never a dataset: hidden from a caller who may not
            # read that model (nor the whole ward's ledger), as an approval in a hidden dataset is.
            models = [a for a in approved if a["on"] == "model"]
            shown = approved if _reads_ward(uc) else [a for a in approved if _sees_approval(uc, a)]
            if (
                (reached or models)
                and not _reads_ward(uc)
                and not any(sees_dataset(uc.caller, Scope.dataset(n), uc.now) for n in reached)
                and not any(a in shown for a in models)
            ):
                # It touched only datasets hidden from the caller: answered as a cause that touched
                # nothing (and recorded as the refusal it is).
                raise ConcealedDenial(
                    f"{uc.caller.principal_name!r} may not quarantine in any dataset {ref} touched",
                    touched_nothing_seen(ref),
                )
            # Authorize every dataset before working: a partial containment would leave the caller
            # believing the incident is contained.
            authorize_quarantine(uc, reached)
            plans = [self.plan(conn, d, names[d], by_dataset[d], taint) for d in order]
            basis = quarantine_basis(conn, found)
        with self.use_case(Action.QUARANTINE, Scope.ward(), check=False, detail=detail) as uc:
            authorize_quarantine(uc, reached)
            _, again = self._touched_seen(uc, ref, approved)
            if quarantine_basis(uc.conn, again) != basis:
                raise Stale(
                    f"the ward changed while the containment of {ref} was worked out (a contribution, a version "
                    "or a transformation)",
                    hint="run the quarantine again",
                )
            results = [self.record(uc, plan, ref, reason) for plan in plans]
            steps = _next_steps(uc, subject)
            if subject["kind"] == "key" and _reads_ward(uc):
                # What the key handed out outlives its revocation; only a reader of the whole ward's
                # ledger is told whom (grant list is theirs already).
                steps += grant_next_steps(
                    grants_made_with(uc.conn, self.context.ledger, [rows.key_id_of(k) for k in subject["keys"]])
                )
        out = {"subject": subject, "reason": reason, "datasets": results, "next_steps": steps}
        if ref.startswith("dw_"):
            out["approvals"] = [{k: v for k, v in a.items() if k != "dataset_id"} for a in shown]
        return out

    def _touched_seen(self, uc: UseCase, ref: str, approved: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
        """``_touched``, but to a caller who may not list principals and keys (``ledger.read`` on the
        ward) a principal or key that does not exist answers as one that touched nothing, in the same
        words: ``principal:NAME`` or ``dw_ID`` must not tell whether NAME or ID exists."""
        try:
            return self._touched(uc.conn, ref, approved=bool(approved))
        except NotFound:
            if _reads_ward(uc):
                raise
            raise touched_nothing_seen(ref) from None

    def _approved(self, conn: Connection, ref: str) -> list[dict[str, Any]]:
        """For a key (``dw_…``): every approval given with it or with a key minted through it, as the
        signed ledger records them, each saying whether it still counts (it stops counting once the key
        is revoked: ``dataward.access.standing``). Empty for any other cause."""
        if not ref.startswith("dw_"):
            return []
        key_id = rows.key_id_of(ref)
        everyone = [auth.key_from_row(r) for r in conn.execute(select(api_keys))]
        keys = [key_id, *(k.id for k in descendants(key_id, everyone))]
        standing = read_standing(conn, self.signer.public_key_b64)
        who = {r.id: r.name for r in conn.execute(select(principals.c.id, principals.c.name))}
        ds_names = {r.id: r.name for r in conn.execute(select(datasets.c.id, datasets.c.name))}
        out = []
        for act in standing.approvals_with(keys, models=True):
            # A model release's approval names the model (``act.dataset`` holds its name), data approvals
            # their dataset.
            table = {"version": versions, "model": model_versions}.get(act.on, contributions)
            row = conn.execute(select(table.c.number).where(table.c.id == act.target)).first()
            mark = "#" if act.on == "contribution" else "@v"
            owner = act.dataset if act.on == "model" else ds_names.get(act.dataset, act.dataset)
            void = standing.void_of(act)
            out.append(
                {
                    "approved": f"{owner}{mark}{row.number if row else '?'}",
                    "on": act.on,
                    "dataset_id": act.dataset,
                    "by": who.get(act.approver_id, act.approver_id),
                    "key": f"dw_{act.key_id}",
                    "time": act.time,
                    "counts": void is None,
                    "why": void
                    or f"still counts until the key is revoked (dataward key revoke dw_{act.key_id} --reason ...)",
                }
            )
        return out

    def _touched(self, conn: Connection, ref: str, *, approved: bool = False) -> tuple[dict[str, Any], list[Any]]:
        """The cause described, and every contribution it touched, oldest first. A cause that touched no
        contribution is ``NotFound``, unless it is a key that ``approved`` something (listed instead)."""
        query = select(contributions)
        signed = signed_rows(self, conn, "contributions")
        touched: set[str]
        if ref.startswith("dw_"):
            key_id = rows.key_id_of(ref)
            if conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first() is None:
                raise NotFound(f"no API key {ref!r}")
            everyone = [auth.key_from_row(r) for r in conn.execute(select(api_keys))]
            keys = [key_id, *(k.id for k in descendants(key_id, everyone))]
            query = query.where(contributions.c.key_id.in_(keys))
            touched = {r["id"] for r in signed if r.get("key_id") in keys}
            subject: dict[str, Any] = {"kind": "key", "key": f"dw_{key_id}", "keys": [f"dw_{k}" for k in keys]}
        elif ref.startswith("principal:"):
            who = rows.principal_row(conn, ref.removeprefix("principal:"))
            query = query.where(contributions.c.submitted_by == who.id)
            touched = {r["id"] for r in signed if r.get("submitted_by") == who.id}
            subject = {"kind": "principal", "principal": who.name}
        elif ref.startswith("source:"):
            uri = ref.removeprefix("source:")
            ids = [r.id for r in conn.execute(select(sources.c.id).where(sources.c.uri == uri))]
            query = query.where(contributions.c.source_id.in_(ids))
            named = {r["id"] for r in signed_rows(self, conn, "sources") if r.get("uri") == uri}
            touched = {r["id"] for r in signed if r.get("source_id") in named}
            subject = {"kind": "source", "uri": uri}
        else:
            raise InputError(f"cannot tell what {ref!r} is", hint="give a key (dw_…), principal:NAME or source:URI")
        found = conn.execute(query.order_by(contributions.c.created_at)).all()
        # Found by what the signed ledger says too: a row edited behind its back (naming another key,
        # submitter or source) would otherwise be left out of the containment, and merged later.
        differ = sorted(touched ^ {c.id for c in found})
        if differ:
            raise IntegrityViolation(
                f"refusing to contain {ref}: the catalog disagrees with the signed ledger about which "
                f"contributions it touched ({', '.join(differ)})",
                hint="run `dataward verify` to see everything that was altered; restore the catalog from a backup",
            )
        if not found and not approved:
            what = (
                "touched no contribution and approved nothing" if ref.startswith("dw_") else "touched no contribution"
            )
            raise NotFound(
                f"{ref} {what}",
                hint=f"what else it did (keys issued, grants made, which outlive its revocation): dataward trace {ref}"
                if ref.startswith("dw_")
                else None,
            )
        return subject, found

    def plan(self, conn: Connection, ds_id: str, ds_name: str, found: list[Any], taint: Taint) -> _Plan:
        """What quarantining ``found`` (and what ``taint`` reached) does to dataset ``ds_name``, worked
        out without the write lock; ``record`` records it."""
        fresh = [c for c in found if c.status != "quarantined"]
        fresh_ids = {c.id for c in fresh}
        all_versions = conn.execute(
            select(versions).where(versions.c.dataset_id == ds_id).order_by(versions.c.number)
        ).all()
        carriers = taint.carriers()
        touching = {c.id for c in found} | carriers
        latest = all_versions[-1] if all_versions else None
        listed = set(json.loads(latest.contributions)) if latest is not None else set()
        plan = _Plan(
            ds_id=ds_id,
            ds_name=ds_name,
            found=found,
            fresh=fresh,
            affected=[v for v in all_versions if touching & set(json.loads(v.contributions))],
            carried_by=sorted(carriers & listed),
        )
        # Where the records each quarantined contribution added are stored, for the ward's list of
        # removals: a catalog restored from before the contribution does not index them, and their near
        # copies are found by their content. A record's place never changes once stored (first writer
        # wins), so it is worked out here, without the write lock.
        plan.chunks = {
            c.id: chunks_holding(conn, read_id_digests(self.store, c.added_object)) for c in fresh if c.added_object
        }
        in_latest = [c for c in fresh if c.id in listed]
        if latest is None or not (in_latest or plan.carried_by):
            return plan
        # The rollback is signed from these rows and objects: each must be what the ledger made it, or a
        # manifest or an id list swapped behind its back would be laundered into the clean version.
        ds = conn.execute(select(datasets).where(datasets.c.id == ds_id)).one()
        latest_manifest = checked_manifest(self, conn, ds, latest)
        current = set(latest_manifest.hex_ids().to_pylist())
        held = rows_in(conn, select(contributions), contributions.c.id, listed | fresh_ids)
        checked_for_signing(self, conn, ds, *held, doing="quarantine")
        kept = [cid for cid in json.loads(latest.contributions) if cid not in fresh_ids]
        vouched = clean_vouched(self.store, conn, _vouching(self, conn, kept, found), taint)
        restored: set[str] = set()
        for c in in_latest:
            restored.update(read_ids(self.store, c.removed_object))
        # What it brought in itself, and every record a transformation made from that, unless an
        # ordinary contribution still in the version vouches for the same content.
        held_out = (taint.records & current) - vouched
        derived_out = held_out & set(taint.derived)
        restored -= taint.records
        members = sorted((current - held_out) | restored)
        if not (held_out or restored or in_latest):
            return plan
        number = latest.number + 1
        plan.rollback = {
            "id": version_identity(ds_id, number, latest.id, members),
            "number": number,
            "parent": latest.id,
            "manifest": write_manifest(
                conn,
                self.store,
                ids_to_binary(pa.array(members, pa.string()))[0],
                latest_manifest,
                recorded=lambda: signed_chunks(self, conn),
            ),
            "records": len(members),
            "kept": kept,
        }
        plan.facts = {
            "rollback_version": plan.rollback["id"],
            "manifest": plan.rollback["manifest"],
            "records_removed": len(held_out),
            "derived_records_removed": len(derived_out),
            "records_restored": len(restored),
            "rolled_back": [c.id for c in in_latest],
        }
        return plan

    def record(self, uc: UseCase, plan: _Plan, ref: str, reason: str) -> dict[str, Any]:
        """Record a ``plan`` in the write transaction of ``uc``: quarantine, rollback version, events."""
        conn, ds_id, ds_name = uc.conn, plan.ds_id, plan.ds_name
        out: dict[str, Any] = {
            "dataset": ds_name,
            "contributions": [f"{ds_name}#{c.number}" for c in plan.found],
            "quarantined": [f"{ds_name}#{c.number}" for c in plan.fresh],
            "already_quarantined": [f"{ds_name}#{c.number}" for c in plan.found if c.status == "quarantined"],
            "affected_versions": [version_info(v, ds_name) for v in plan.affected],
            "rollback_version": None,
        }
        rollback: list[RowChange] = []
        if plan.rollback is not None:
            r = plan.rollback
            rollback.append(
                insert_row(
                    "versions",
                    id=r["id"],
                    dataset_id=ds_id,
                    number=r["number"],
                    parent_id=r["parent"],
                    manifest_object=r["manifest"],
                    record_count=r["records"],
                    contributions=json.dumps(r["kept"]),
                    stage="candidate",
                    created_at=format_time(uc.now),
                    created_by=uc.caller.principal_id,
                )
            )
        for i, c in enumerate(plan.fresh):
            changes = [update_row("contributions", {"id": c.id}, status="quarantined")]
            changes += close_pending_reviews(uc, c.id, f"contribution quarantined: {reason}")
            # Other contributions' pending items on the same records: no decision on them can change a
            # merge any more (``quarantine_holds``), so they are closed by this event, naming it.
            holder = Holder(c.id, ds_id, f"{ds_name}#{c.number}")
            added = read_ids(self.store, c.added_object)
            changes += close_held_items(uc, holder, added, why=reason, skip={f.id for f in plan.fresh})
            payload: dict[str, Any] = {
                "reason": reason,
                "incident": ref,
                "previous_status": c.status,
                "affected_versions": [v.id for v in plan.affected if c.id in json.loads(v.contributions)],
                LISTED: True,  # on the ward's list of removals, which verify holds it to
                # The list keeps it too: a catalog restored from before the contribution has no row of
                # it, and the same records contributed again must still be held back.
                "added_object": c.added_object,
                # And where those records are stored: their near copies are found by their content.
                **({"record_chunks": plan.chunks[c.id]} if plan.chunks.get(c.id) else {}),
            }
            if i == len(plan.fresh) - 1 and rollback:
                # One rollback version for the whole incident, made with the last of its quarantines.
                changes += rollback
                payload.update(plan.facts)
            uc.emit("contribution.quarantined", {"dataset": ds_id, "contribution": c.id}, payload, changes)
        if rollback and not plan.fresh:
            # Only records made from the suspect ones by a transformation are here: the rollback is
            # an event of its own, naming the steps that carried them.
            uc.emit(
                "records.contained",
                {"dataset": ds_id, "version": plan.facts["rollback_version"]},
                {
                    "reason": reason,
                    "incident": ref,
                    "carried_by": plan.carried_by,
                    "affected_versions": [v.id for v in plan.affected],
                    **plan.facts,
                },
                rollback,
            )
        # Models trained on a version that held any of it: now marked affected if released.
        from dataward.service.tracing import models_trained_on

        # From the signed ledger's rows (read after this quarantine's events): a model version edited
        # out of its training data in the catalog is still named in the blast radius.
        check = SignedCheck(self, conn, doing="quarantine")
        out["models"] = models_trained_on(conn, self.store, {v.id for v in plan.affected}, check, refuse=False)
        if plan.rollback is not None:
            row = conn.execute(select(versions).where(versions.c.id == plan.rollback["id"])).one()
            out["rollback_version"] = {
                **version_info(row, ds_name),
                "records_removed": plan.facts["records_removed"],
                "derived_records_removed": plan.facts["derived_records_removed"],
                "records_restored": plan.facts["records_restored"],
            }
        return out


def _reads_ward(uc: UseCase) -> bool:
    """Whether the caller may read the whole ward's ledger (and so every grant: ``grant list``)."""
    caller = uc.caller
    return authorize(caller.principal, caller.key, caller.grants, Action.LEDGER_READ, Scope.ward(), uc.now).allowed


def _sees_approval(uc: UseCase, approval: dict[str, Any]) -> bool:
    """Whether the caller may know of ``approval`` (``_approved``): a model release's when it may read the
    model, a data approval's always (its dataset is authorized with the rest: ``authorize_quarantine``)."""
    if approval["on"] != "model":
        return True
    return may(uc, Action.MODEL_READ, Scope.model(approval["dataset_id"]))


def check_may_quarantine_somewhere(uc: UseCase) -> None:
    """Refuse a caller who may quarantine in no dataset at all, whatever it asked to contain: the
    refusal says nothing of the cause (whether it exists, where it acted)."""
    caller = uc.caller
    # A grant on the whole ward is the right on every dataset, even before there is any: asked of any
    # one dataset with the caller's grants on the ward alone.
    on_ward = [g for g in caller.grants if g.scope.kind is ScopeKind.WARD]
    every = authorize(caller.principal, caller.key, on_ward, Action.QUARANTINE, Scope.dataset("any"), uc.now)
    if not (every.allowed or may_anywhere(uc, Action.QUARANTINE)):
        roles = ", ".join(sorted(r.value for r in roles_allowing(Action.QUARANTINE)))
        raise AccessDenied(
            f"{caller.principal_name!r} may not quarantine on any dataset",
            hint=f"ask an owner of the dataset for one of the roles: {roles}, or ask an admin to contain it",
        )


def touched_nothing_seen(ref: str) -> NotFound:
    """What a caller who may not list principals and keys is told of a cause that touched nothing it can
    see: one that touched nothing, one that touched only datasets hidden from it, and a principal or a
    key that does not exist all answer with these words."""
    what = "touched no contribution and approved nothing" if ref.startswith("dw_") else "touched no contribution"
    return NotFound(
        f"{ref} {what} in a dataset you can see",
        hint="a principal, key or source that does not exist, or that acted only in datasets you have no role on, "
        "answers the same; ask an admin to contain it if you suspect more",
    )


def authorize_quarantine(uc: UseCase, names: list[str]) -> None:
    """Refuse unless the caller may quarantine in every one of the datasets ``names``. A refusal names
    a dataset only when the caller may see it (``service/concealment.py``); it names none otherwise."""
    caller = uc.caller
    hidden = False
    for name in names:
        # Held to each dataset's key rules too: the use case is opened on the ward.
        decision = authorize_on_dataset(uc, Action.QUARANTINE, name)
        if decision.allowed:
            continue
        if sees_dataset(caller, Scope.dataset(name), uc.now):
            decision.raise_if_denied()
        hidden = True
    if hidden:
        raise AccessDenied(
            f"{caller.principal_name!r} may not quarantine in every dataset this touched: a containment is "
            "all or nothing, and needs the quarantine right on each",
            hint=f"ask for one of the roles {', '.join(sorted(r.value for r in roles_allowing(Action.QUARANTINE)))} "
            "on each, or ask an admin to contain it",
        )


def quarantine_basis(conn: Connection, found: list[Any]) -> tuple[Any, ...]:
    """What a containment's plan was worked out from: the contributions and their statuses, every
    version, and every transformation."""
    return (
        tuple((c.id, c.status) for c in found),
        tuple(sorted(conn.execute(select(versions.c.id)).scalars())),
        tuple(sorted(conn.execute(select(transformations.c.id)).scalars())),
    )


def _vouching(ward: Any, conn: Connection, kept: list[str], found: list[Any]) -> list[str]:
    """The contributions of ``kept`` (ids, staying in the rollback version) that may vouch for records
    the quarantined ``found`` added: those that ``sides.vouches`` for every one of them (there first in
    the dataset, or another side from another source), as reads decide (``guard.barred_records``). A
    later copy by the bot's own owner or another of her bots would otherwise keep the records in a
    rollback version that reads then refuse. Coarse on purpose: one such suspect excludes the
    contribution for all records, which can only hold out more, never serve a barred record."""
    rows_kept = rows_in(conn, select(contributions), contributions.c.id, kept)
    origin = origins(ward, conn, [*rows_kept, *found])
    return [c.id for c in rows_kept if all(vouches(origin[c.id], origin[q.id]) for q in found)]


__all__ = [
    "IncidentService",
    "authorize_quarantine",
    "check_may_quarantine_somewhere",
    "quarantine_basis",
    "touched_nothing_seen",
]


def _next_steps(uc: UseCase, subject: dict[str, Any]) -> list[str]:
    """What still lets the quarantined cause act, with the commands that stop it (nothing is revoked
    here: ``dataward.access.containment``). A source has no credentials of its own: none. Only a reader
    of the whole ward's ledger (who may list every key and grant) is told the principal's keys and all
    its grants; anyone else, only its grants on datasets they can see, and no key (``principal_next_steps_seen``)."""
    conn, now = uc.conn, uc.now
    if subject["kind"] == "principal":
        who = auth.principal_from_row(rows.principal_row(conn, subject["principal"]))
        grants = grants_of(auth.load_grants(conn), who.id)
        if not _reads_ward(uc):
            seen = [
                g
                for g in grants
                if g.scope.kind is ScopeKind.DATASET and g.scope.name and sees_dataset(uc.caller, g.scope, now)
            ]
            return principal_next_steps_seen(who, seen)
        keys = [auth.key_from_row(r) for r in conn.execute(select(api_keys).where(api_keys.c.principal_id == who.id))]
        return principal_next_steps(who, live_keys(keys, who.id, now), grants)
    if subject["kind"] == "key":
        # Names only the key the caller gave (``key_next_steps``), never another one.
        key = conn.execute(select(api_keys).where(api_keys.c.id == rows.key_id_of(subject["key"]))).first()
        return key_next_steps(subject["key"], key is not None and auth.key_from_row(key).refusal(now) is None)
    return []
