"""Use cases on versions: merge a contribution into a new immutable version, list, diff, export, promote."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, Row, select

from dataward.access.roles import Action, Scope
from dataward.catalog.batched import rows_in
from dataward.catalog.projection import insert_row, update_row
from dataward.catalog.tables import contributions, quarantine, versions
from dataward.domain.conversation import with_message_lists
from dataward.domain.errors import Conflict, InputError, PolicyViolation
from dataward.domain.idarrays import ids_to_binary, member_of, sorted_distinct
from dataward.domain.normalized import text_columns
from dataward.domain.shrink import Shrink
from dataward.io.writers import stage_table
from dataward.ledger.events import format_time
from dataward.service import rows
from dataward.service.approvals import check_merge_allowed, check_promotion_allowed
from dataward.service.core import Service, Stale, WardContext, retry_stale
from dataward.service.datasets import version_info
from dataward.service.guard import (
    barred_records,
    barred_summary,
    checked_for_signing,
    checked_manifest,
    checked_version_ids,
    checked_version_listing,
    export_target,
    guarded_read,
    listed_only_quarantines,
    manifest_members,
    own_paths,
    signed_chunks,
    signed_training,
)
from dataward.service.held_back import HeldBasis, held_basis
from dataward.service.manifests import write_manifest
from dataward.service.near_copies import Quarantined, near_copies, quarantined_normalized, records_normalized, schema_of
from dataward.service.recordstore import digests_hash, identity_of_records, no_ids, read_id_digests
from dataward.service.rollbacks import rollbacks_between
from dataward.service.same_records import training_with_same_records
from dataward.service.visibility import named_contribution

if TYPE_CHECKING:
    from dataward.service.datasets import DatasetService

MERGEABLE = ("submitted", "gated", "approved")
EXPORT_FORMATS = ("parquet", "jsonl", "csv")


def _version_rows(conn: Connection, dataset: str) -> list[Row[Any]]:
    """The version rows of ``dataset``, oldest first (``NotFound`` for no such dataset)."""
    ds = rows.dataset_row(conn, dataset)
    return list(conn.execute(select(versions).where(versions.c.dataset_id == ds.id).order_by(versions.c.number)))


class VersionService(Service):
    """Use cases on versions: merge, list, diff, export, promote."""

    def __init__(self, context: WardContext, datasets: DatasetService) -> None:
        super().__init__(context)
        self.datasets = datasets

    def merge(self, contribution_ref: str, *, message: str = "") -> dict[str, Any]:
        """Merge a contribution into a new version: the latest version, minus removed records, plus
        added ones, never including records held in quarantine or rejected in review."""
        with self.db.reading() as conn:
            c = named_contribution(conn, contribution_ref)
            ds_name = conn.execute(select(rows.datasets.c.name).where(rows.datasets.c.id == c.dataset_id)).scalar()
        action, scope = self.datasets.validation_scope(ds_name)
        merge_action = Action.CONTRIBUTION_MERGE if action is Action.CONTRIBUTION_SUBMIT else action
        return retry_stale(lambda: self._merge(c.id, ds_name, merge_action, scope, message))

    def _merge(self, contribution_id: str, ds_name: str, action: Action, scope: Scope, message: str) -> dict[str, Any]:
        # The object work (the parent's manifest, the id lists, the new manifest) is done in a read
        # transaction, without the write lock; the short write then checks that the latest version and
        # what is held back are still what the manifest was built from, or the merge runs again.
        with self.use_case(action, scope, write=False) as uc:
            c = rows.contribution_row(uc.conn, contribution_id)
            ds = rows.dataset_row(uc.conn, ds_name)
            if c.status not in MERGEABLE:
                raise Conflict(f"contribution {ds_name}#{c.number} is {c.status} and cannot be merged")
            parent = rows.latest_version(uc.conn, ds.id)
            # What the merge signs is built from these rows: each must be what the ledger made it.
            checked_for_signing(self, uc.conn, ds, c, doing="merge")
            parent_manifest = checked_manifest(self, uc.conn, ds, parent) if parent else None
            current = parent_manifest.ids if parent_manifest is not None else no_ids()
            basis = held_basis(self, uc.conn, ds.id, c.id)
            own_quarantined = _quarantined_lists(uc.conn, self.store, ds.id)
            number = rows.next_number(uc.conn, versions, ds.id)
            near = self._near_copies(uc.conn, ds, basis, c.added_object)
        # Column-wise, as digests: a million-record merge without a Python string per record.
        held = sorted_distinct(self._held_digests(basis))
        removed = read_id_digests(self.store, c.removed_object)
        added = read_id_digests(self.store, c.added_object)
        near_held = near.mask if near.mask is not None else np.zeros(len(added), dtype=bool)
        added_held = member_of(added, held) | near_held
        members = sorted_distinct(np.concatenate((current[~member_of(current, removed)], added[~added_held])))
        # What the merge reports as held back: this dataset's records only. The ward-wide quarantine
        # still holds back every quarantined record wherever it appears (``held`` above), but another
        # dataset's quarantined records are not this dataset's to count.
        held_here = len(self._held_in_dataset(basis, ds.id, own_quarantined, added, added_held))
        # Whether the new version would hold its parent's very records (nothing removed, nothing new).
        removes = bool(len(removed)) and bool(member_of(current, removed).any())
        same_records = not removes and len(members) == len(sorted_distinct(current))
        # Nothing of the contribution would reach it: said (``warning``), naming why each record stays out.
        nothing_reaches = same_records and len(added) > 0 and bool(added_held.all())
        quarantined_added = self._quarantined_of(basis, added, near.mask) if nothing_reaches else None
        parent_id = parent.id if parent else None
        vid = identity_of_records(ds.id, number, parent_id, digests_hash(members))
        with self.db.reading() as conn:
            # The contribution's new records are in its own chunk: found there without index lookups.
            own_chunk = [c.chunk_object] if c.chunk_object else []
            manifest = write_manifest(
                conn, self.store, members, parent_manifest, own_chunk, lambda: signed_chunks(self, conn)
            )
        with self.use_case(action, scope) as uc:
            c = rows.contribution_row(uc.conn, c.id)
            ds = rows.dataset_row(uc.conn, ds_name)
            checked_for_signing(self, uc.conn, ds, c, doing="merge")
            if c.status not in MERGEABLE:
                raise Conflict(f"contribution {ds_name}#{c.number} is {c.status} and cannot be merged")
            if ds.role == "dataset":
                check_merge_allowed(self, uc, ds, c)
            latest = rows.latest_version(uc.conn, ds.id)
            if (latest.id if latest else None) != parent_id or held_basis(self, uc.conn, ds.id, c.id) != basis:
                raise Stale(
                    f"{ds_name} changed while {ds_name}#{c.number} was being merged (a new version, or a review "
                    "decision)",
                    hint="merge it again",
                )
            merged = (json.loads(parent.contributions) if parent else []) + [c.id]
            now = format_time(uc.now)
            uc.emit(
                "contribution.merged",
                {"dataset": ds.id, "contribution": c.id, "version": vid},
                {
                    "number": number,
                    "parent": parent_id,
                    "manifest": manifest,
                    "records": len(members),
                    "held_back": held_here,
                    "message": message,
                },
                [
                    insert_row(
                        "versions",
                        id=vid,
                        dataset_id=ds.id,
                        number=number,
                        parent_id=parent_id,
                        manifest_object=manifest,
                        record_count=len(members),
                        contributions=json.dumps(merged),
                        stage="candidate",
                        created_at=now,
                        created_by=uc.caller.principal_id,
                    ),
                    update_row("contributions", {"id": c.id}, status="merged"),
                ],
            )
            info = version_info(uc.conn.execute(select(versions).where(versions.c.id == vid)).one(), ds_name)
            info["held_back"] = held_here  # every record of the dataset held back (the event's figure)
            # What the user merging asks about: how many of this contribution's records stayed out.
            info["held_back_of_contribution"] = int(added_held.sum())
            info["held_back_by"] = _side_reasons(basis, ds.id, added) + near.reasons(member_of(added, held))
            # Allowed (a contribution holding records already in the version is one more holder of them),
            # but said: the new version is not new data.
            info["same_records_as"] = f"{ds_name}@v{parent.number}" if same_records and parent else None
            if quarantined_added is not None:
                info["warning"] = _adds_nothing(
                    f"{ds_name}#{c.number}", info["ref"], parent, added_held, quarantined_added
                )
            return info

    def _near_copies(self, conn: Connection, ds: Row[Any], basis: HeldBasis, added_object: str | None) -> _NearHeld:
        """Which of the merged contribution's added records are near copies of a quarantined record
        (``service.near_copies``): nothing is read when the ward holds no quarantine or the dataset has
        no text column, nor the contribution's records when no quarantined record is of its encoding."""
        schema = rows.dataset_schema(ds)
        if not basis.quarantined_in or added_object is None or not text_columns(schema):
            return _NearHeld(None, ())
        found = []
        for digest, dataset_id in basis.quarantined_in:
            quarantined = Quarantined(digest, schema_of(conn, dataset_id))
            normalized = quarantined_normalized(conn, self, quarantined, schema, of_all=len(basis.quarantined_in))
            if len(normalized):
                found.append((digest, dataset_id, normalized))
        if not found:
            return _NearHeld(None, ())
        added = read_id_digests(self.store, added_object)
        ours = records_normalized(conn, self, added, schema)
        if ours is None:
            return _NearHeld(None, ())
        normalized_ours, stored = ours
        mask = np.zeros(len(added), dtype=bool)
        per: list[tuple[str | None, bool, np.ndarray]] = []
        for digest, dataset_id, normalized in found:
            close = np.zeros(len(added), dtype=bool)
            close[stored] = near_copies(normalized_ours, normalized)
            if close.any():
                mask |= close
                same = dataset_id == ds.id
                per.append((_contribution_named(conn, ds, digest) if same else None, same, close))
        return _NearHeld(mask, tuple(per))

    def _quarantined_of(self, basis: HeldBasis, added: np.ndarray, near: np.ndarray | None) -> np.ndarray:
        """Which of the ``added`` records (digests) a quarantined contribution of the ward added, exactly
        or (``near``, the near-copy mask) as a near copy."""
        lists = [read_id_digests(self.store, digest) for digest in basis.quarantined]
        found = np.zeros(len(added), dtype=bool) if near is None else near.copy()
        if lists:
            found |= member_of(added, sorted_distinct(np.concatenate(lists)))
        return found

    def _held_digests(self, basis: HeldBasis) -> np.ndarray:
        """Records a merge must leave out (see ``held_back.held_basis``), as digests (repeats possible): the ids
        the review queue holds back, and every record of a quarantined contribution."""
        queued, valid = ids_to_binary(pa.array(sorted(basis.held), pa.string()))
        parts = [np.compress(valid, queued, axis=0)]  # a value that is no id can hold back nothing
        parts += [read_id_digests(self.store, digest) for digest in basis.quarantined]
        return np.concatenate(parts)

    def _held_in_dataset(
        self,
        basis: HeldBasis,
        dataset_id: str,
        own_quarantined: tuple[str, ...],
        added: np.ndarray,
        added_held: np.ndarray,
    ) -> np.ndarray:
        """The distinct records of this dataset a merge holds back, as digests: the merged
        contribution's held records, records of the dataset rejected in review, and records of the
        dataset's own quarantined contributions (``own_quarantined``, their id lists). Records held
        because a contribution of another dataset on the same side flagged them are that dataset's to
        count, unless the merged contribution brought them (counted with its own)."""
        elsewhere = {r for hold in basis.side if hold.dataset_id != dataset_id for r in hold.records}
        queued, valid = ids_to_binary(pa.array(sorted(basis.held - elsewhere), pa.string()))
        parts = [np.compress(valid, queued, axis=0), added[added_held]]
        parts += [read_id_digests(self.store, digest) for digest in own_quarantined]
        return sorted_distinct(np.concatenate(parts))

    def versions(self, dataset: str) -> list[dict[str, Any]]:
        """Every version of ``dataset``, oldest first."""
        with self.use_case(Action.DATASET_READ, self.datasets.read_scope(dataset)) as uc:
            found = uc.remembered(("versions", dataset), lambda conn: tuple(_version_rows(conn, dataset)))
            checked_version_listing(self, uc.conn, dataset, found)
            return [version_info(r, dataset) for r in found]

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """Records added and removed going from ``DATASET@A`` to ``DATASET@B`` (``b`` may omit the dataset)."""
        name_a, ref_a = rows.split_ref(a)
        name_b, ref_b = rows.split_ref(b) if "@" in b else (name_a, b)
        if name_b != name_a:
            # Record ids are content hashes: listing another dataset's ids discloses its content.
            with self.use_case(Action.DATASET_READ, self.datasets.read_scope(name_b)):
                pass
        with self.use_case(Action.DATASET_READ, self.datasets.read_scope(name_a)) as uc:
            ds_a, ds_b = rows.dataset_row(uc.conn, name_a), rows.dataset_row(uc.conn, name_b)
            va = rows.version_row(uc.conn, ds_a.id, name_a, ref_a)
            vb = rows.version_row(uc.conn, ds_b.id, name_b, ref_b)
            # What a diff lists is read like any other read: each version checked against the signed ledger.
            ids_a = set(checked_version_ids(self, uc.conn, ds_a, va))
            ids_b = set(checked_version_ids(self, uc.conn, ds_b, vb))
            added, removed = sorted(ids_b - ids_a), sorted(ids_a - ids_b)
            contribs_a, contribs_b = json.loads(va.contributions), json.loads(vb.contributions)
            new_contribs = [c for c in contribs_b if c not in contribs_a]
            refs = []
            for cid in new_contribs:
                row = uc.conn.execute(select(contributions).where(contributions.c.id == cid)).first()
                if row is not None:
                    refs.append(f"{name_b}#{row.number}")
            # Records that left through a quarantine say so: the rollback versions on the way from A to B.
            rollbacks = rollbacks_between(uc.conn, ds_a.id, va.number, vb.number) if ds_a.id == ds_b.id else []
            return {
                "from": version_info(va, name_a),
                "to": version_info(vb, name_b),
                "added": added,
                "removed": removed,
                "unchanged": len(ids_a & ids_b),
                "contributions": refs,
                "rollbacks": rollbacks,
            }

    def export(self, ref: str, path: str | Path, *, format: str = "parquet") -> dict[str, Any]:
        """Write ``DATASET@VERSION`` to a file (atomically)."""
        if format not in EXPORT_FORMATS:
            raise InputError(f"unknown export format {format!r}", hint=f"use one of: {', '.join(EXPORT_FORMATS)}")
        name, version = rows.split_ref(ref)
        return retry_stale(lambda: self._export(name, version, path, format))

    def _export(self, name: str, version: str | None, path: str | Path, format: str) -> dict[str, Any]:
        # A reading use case: the version is read and the file written with no lock held. The file is
        # staged under a temporary name and moved into place inside the short write that records
        # `version.exported`, after checking the version still is what was read: an export is
        # recorded exactly when its file lands, and a refused or failed one leaves nothing behind.
        staged: Path | None = None
        try:
            with self.use_case(Action.DATASET_EXPORT, self.datasets.read_scope(name), write=False) as uc:
                target = export_target(path, self._own_paths())
                ver, table = guarded_read(self, uc.conn, name, version)
                if format != "csv":  # a CSV cell holds text: the conversation stays JSON there
                    table = with_message_lists(table, rows.dataset_schema(rows.dataset_row(uc.conn, name)))
                staged = stage_table(table, target, format)
                uc.expect(_version_unchanged(ver, f"{name}@v{ver.number}"))
                uc.emit(
                    "version.exported",
                    {"dataset": ver.dataset_id, "version": ver.id},
                    {"format": format, "records": table.num_rows, "path": str(target)},
                )
                uc.on_commit(partial(os.replace, staged, target))
        finally:
            if staged is not None:
                # Moved into place on commit; still here when anything before the rename failed.
                staged.unlink(missing_ok=True)
        return {"version": version_info(ver, name), "path": str(path), "format": format, "records": table.num_rows}

    def _promotable(
        self, conn: Connection, name: str, version: str | None, stage: str, reason: str
    ) -> tuple[Any, Any, list[Any]]:
        """The dataset and version rows of a promotion to ``stage``, and the other versions at stage
        ``training`` as the signed ledger says (``guard.signed_training``: never the catalog's column alone,
        which an edit hides the current one from), refused when the move is not allowed.

        A ledger holding two training versions of one dataset (every gate of it refused) is mended here:
        promoting either of them again retires the others, and retiring one of them is allowed while
        another stays at training."""
        ds = rows.dataset_row(conn, name)
        if ds.role != "dataset":
            raise InputError(f"{name!r} is a validation set; validation sets are not promoted")
        ver = rows.version_row(conn, ds.id, name, version)
        doing = "promote" if stage == "training" else "retire"
        others = [v for v in signed_training(self, conn, ds, doing=doing) if v.id != ver.id]
        if ver.stage == stage and not (stage == "training" and others):
            raise Conflict(f"{name}@v{ver.number} is already {stage}")
        if stage == "retired" and ver.stage == "training" and others and not reason.strip():
            # Mending a ledger led into two training versions chooses which one the gates trust from now
            # on: that choice is signed with the reason an operator gave, never silently.
            raise InputError(
                f"retiring {name}@v{ver.number}, one of {len(others) + 1} training versions, needs a reason",
                hint=f"dataward promote {name}@v{ver.number} --stage retired --reason '...'",
            )
        if stage == "retired" and ver.stage == "training" and not others:
            # Retiring the trusted baseline without a replacement would let the next gate run
            # fall back to judging contributions against themselves.
            raise PolicyViolation(
                f"{name}@v{ver.number} is the training version and cannot be retired on its own",
                hint="promote its replacement to training; the current one is retired with it",
            )
        if stage == "training" and ver.stage == "retired":
            raise Conflict(f"{name}@v{ver.number} is retired and cannot return to training")
        return ds, ver, others

    def _own_paths(self) -> list[Path]:
        """The ward's own files: its folder, and its object store and SQLite catalog when outside it."""
        return own_paths(self.folder, self.store, self.db)

    def promote(
        self, ref: str, *, stage: str = "training", reason: str = "", accept_shrink: bool = False
    ) -> dict[str, Any]:
        """Move ``DATASET@VERSION`` to ``training`` (the previous training version is retired) or ``retired``.

        A version with no record, or one leaving out most of the training version's records, is refused
        (``domain.shrink``) unless ``accept_shrink`` says it is meant, with a ``reason``."""
        if stage not in ("training", "retired"):
            raise InputError(f"cannot promote to stage {stage!r}", hint="use training or retired")
        name, version = rows.split_ref(ref)
        action = Action.VERSION_PROMOTE if stage == "training" else Action.VERSION_RETIRE
        return retry_stale(lambda: self._promote(name, version, stage, reason, action, accept_shrink))

    def _promote(
        self, name: str, version: str | None, stage: str, reason: str, action: Action, accept_shrink: bool = False
    ) -> dict[str, Any]:
        checked: tuple[str, tuple[Any, ...]] | None = None
        same = None  # the training version this one would retire, when it holds the very same records
        shrink: Shrink | None = None  # what it does to the data training reads, when the promoter accepted it
        if stage == "training":
            # The slow checks read objects (the manifest re-hashed against the version id and the signed
            # ledger; the id lists of quarantined contributions): they run in a read transaction, and the
            # short write below makes sure nothing they depended on changed meanwhile.
            with self.use_case(action, Scope.dataset(name), write=False) as uc:
                ds, ver, training = self._promotable(uc.conn, name, version, stage, reason)
                ids = manifest_members(checked_manifest(self, uc.conn, ds, ver))
                shrink = self._shrink_accepted(uc.conn, ds, ver, training, reason, accept_shrink)
                # The policy, and the gate verdicts and content hashes it is checked against, as signed.
                held = [rows.contribution_row(uc.conn, cid) for cid in json.loads(ver.contributions)]
                checked_for_signing(self, uc.conn, ds, *held, doing="promote", version=ver)
                barred = barred_records(uc.conn, self.store, ds, ver, ids, (self.signer.public_key_b64, self.ward_id))
                if barred:
                    raise PolicyViolation(
                        f"{name}@v{ver.number} holds records that must never reach training: {barred_summary(barred)}",
                        hint="promote a version without them (the rollback version `dataward quarantine` made), "
                        "or remove them with a contribution that removes records",
                    )
                checked = (ver.id, _promotion_basis(uc.conn, ds, ver))
                same = training_with_same_records(self, uc.conn, ds, ver)
        with self.use_case(action, Scope.dataset(name)) as uc:
            # The very version checked above, even when `latest` now names another one.
            ds, ver, others = self._promotable(uc.conn, name, version if checked is None else checked[0], stage, reason)
            if checked is not None:
                check_promotion_allowed(self, uc, ds, ver)
                if _promotion_basis(uc.conn, ds, ver) != checked[1]:
                    raise Stale(
                        f"{name}@v{ver.number} or what review decided about its records changed while its "
                        "promotion was checked",
                        hint="promote it again",
                    )
            changes = []
            # Every other version at stage training, as the signed ledger says, is retired with the promotion:
            # one (usually), or more when a ledger led into two is mended. Retiring is of this version alone.
            retiring = sorted(others, key=lambda v: v.number, reverse=True) if stage == "training" else []
            changes += [update_row("versions", {"id": v.id}, stage="retired") for v in retiring]
            previous = retiring[0] if retiring else None
            changes.append(update_row("versions", {"id": ver.id}, stage=stage))
            payload = {
                "stage": stage,
                "from": ver.stage,
                "retired": previous.id if previous else None,
                "reason": reason,
            }
            if len(retiring) > 1:
                payload["also_retired"] = [v.id for v in retiring[1:]]
            if shrink is not None:
                payload["accepted_shrink"] = shrink.to_dict()
            uc.emit(
                "version.promoted" if stage == "training" else "version.retired",
                {"dataset": ds.id, "version": ver.id},
                payload,
                changes,
            )
            info = version_info(uc.conn.execute(select(versions).where(versions.c.id == ver.id)).one(), name)
            info["retired"] = ", ".join(f"{name}@v{v.number}" for v in retiring) or None
            # Allowed, but said: a promotion that changes no record is not the release of new data.
            info["same_records_as"] = (
                f"{name}@v{previous.number}"
                if same is not None and previous is not None and same.id == previous.id
                else None
            )
            if shrink is not None:
                info["accepted_shrink"] = shrink.to_dict()
            return info

    def _shrink_accepted(
        self, conn: Connection, ds: Any, ver: Any, training: list[Any], reason: str, accept: bool
    ) -> Shrink | None:
        """Refuse (``PolicyViolation``, recorded as every refusal is) promoting ``ver`` when it holds no
        record or leaves out most of the records of the training version it retires (``training``, as the
        signed ledger names it; the newest when a ledger led into two), unless ``accept``, with a reason.
        Returns the shrink the promoter accepted, for the promotion event, or None when there is none."""
        current = max(training, key=lambda v: v.number, default=None)
        kept = training_records = 0
        if current is not None:
            theirs = checked_manifest(self, conn, ds, current)
            theirs_ids = np.compress(theirs.valid, theirs.ids, axis=0)
            training_records = len(sorted_distinct(theirs_ids))
            if ver.record_count:
                mine = checked_manifest(self, conn, ds, ver)
                kept = int(member_of(sorted_distinct(theirs_ids), np.compress(mine.valid, mine.ids, axis=0)).sum())
        shrink = Shrink(
            f"{ds.name}@v{ver.number}",
            int(ver.record_count),
            f"{ds.name}@v{current.number}" if current is not None else None,
            training_records,
            kept,
        )
        problem = shrink.problem()
        if problem is None:
            return None
        if not accept:
            raise PolicyViolation(
                f"refusing to promote {shrink.version}: {problem}",
                hint="promote a version that keeps the data; if this is meant (a rollback that takes most of it "
                f"out, say), say so: dataward promote {shrink.version} --accept-shrink --reason '...'",
                **shrink.to_dict(),
            )
        if not reason.strip():
            raise InputError(
                f"promoting {shrink.version} with --accept-shrink needs a reason: {problem}",
                hint=f"dataward promote {shrink.version} --accept-shrink --reason '...'",
            )
        return shrink


def _promotion_basis(conn: Connection, ds: Any, ver: Any) -> tuple[Any, ...]:
    """What a promotion's checks depend on (see ``barred_records``): the version's stage, the status of
    the contributions it holds and of their review items, and which review items of the dataset were
    rejected, and which contributions of the ward are quarantined, as the catalog or the ward's list of
    removals holds them (a line a restore brings back between the checks and the write, the catalog
    unchanged). New submissions elsewhere in the dataset change none."""
    from dataward.service.removal_list import listed_quarantines

    stage = conn.execute(select(versions.c.stage).where(versions.c.id == ver.id)).scalar()
    listed = json.loads(ver.contributions)
    statuses = sorted(rows_in(conn, select(contributions.c.id, contributions.c.status), contributions.c.id, listed))
    in_dataset = select(contributions.c.id).where(contributions.c.dataset_id == ds.id)
    rejected_here = (quarantine.c.status == "rejected") & quarantine.c.contribution_id.in_(in_dataset)
    items = sorted(
        rows_in(
            conn,
            select(quarantine.c.id, quarantine.c.status),
            quarantine.c.contribution_id,
            listed,
            otherwise=rejected_here,
        )
    )
    # A contribution quarantined in any dataset bars its records here too (``barred_records``).
    anywhere = conn.execute(
        select(contributions.c.id).where(contributions.c.status == "quarantined").order_by(contributions.c.id)
    ).scalars()
    on_list = tuple(sorted(listed_quarantines(conn)))
    return stage, tuple(map(tuple, statuses)), tuple(map(tuple, items)), tuple(anywhere), on_list


def _version_unchanged(read: Any, shown: str) -> Callable[[Connection], None]:
    """A check that the version row is still as ``read`` (not retired or re-staged meanwhile)."""

    def check(conn: Connection) -> None:
        now = conn.execute(select(versions).where(versions.c.id == read.id)).first()
        if now is None or (now.stage, now.manifest_object, now.record_count) != (
            read.stage,
            read.manifest_object,
            read.record_count,
        ):
            raise Stale(f"{shown} changed while it was being exported", hint="export it again")

    return check


def _quarantined_lists(conn: Connection, store: Any, dataset_id: str) -> tuple[str, ...]:
    """The id lists of the dataset's own quarantined contributions, as the catalog or the ward's list of
    removals holds them: also those of the dataset the catalog does not hold at all (restored from before
    them), by the id list and dataset the list kept, as ``contribute``'s ``held_back`` counts them."""
    from dataward.service.removal_list import listed_removals

    removals = listed_removals(conn)
    query = select(contributions.c.added_object).where(contributions.c.dataset_id == dataset_id)
    quarantined = contributions.c.status == "quarantined"
    found = [
        r.added_object for r in rows_in(conn, query, contributions.c.id, removals.quarantined, otherwise=quarantined)
    ]
    in_dataset = removals.quarantined_in
    unheld = listed_only_quarantines(conn, store, removals)
    only = {q.added_object for q in unheld if in_dataset.get(q.id) == dataset_id}
    return tuple(sorted({d for d in found if d} | only))


@dataclasses.dataclass(frozen=True)
class _NearHeld:
    """The merged contribution's added records that are near copies of quarantined ones: ``mask`` (in
    the order of its id list; ``None`` for none), and per quarantined contribution that has some, its
    name (when of the same dataset), whether it is, and which."""

    mask: np.ndarray | None
    per: tuple[tuple[str | None, bool, np.ndarray], ...]

    def reasons(self, exact: np.ndarray) -> list[dict[str, Any]]:
        """``held_back_by`` entries of the near copies not held back already as exact copies (``exact``)."""
        out = []
        for name, same, close in self.per:
            n = int((close & ~exact).sum())
            if n:
                out.append(
                    {
                        "why": "quarantined",
                        "contribution": name,
                        "same_dataset": same,
                        "records": n,
                        "match": "normalized",
                    }
                )
        return out


def _adds_nothing(ref: str, version: str, parent: Any, added_held: np.ndarray, quarantined: np.ndarray) -> str:
    """The warning of a merge none of whose records reached the version (``version``): every record it
    adds is held back (``added_held``; ``quarantined``, those a quarantined contribution added, exactly
    or as near copies) and it removes none, so the version holds its parent's records again (or, for a
    first merge, none). The merge is not refused: it closes the contribution (merged, its records held
    back, as the ledger records), as merging records already in the version is allowed; but whoever
    merged it must not take its records to be in, nor the version for new data."""
    dataset = version.partition("@")[0]
    in_quarantine, in_review = int(quarantined.sum()), int((added_held & ~quarantined).sum())
    why = []
    if in_quarantine:
        why.append(f"{in_quarantine} added by a quarantined contribution")
    if in_review:
        why.append(f"{in_review} rejected in review, or flagged and awaiting it in a contribution of the same side")
    after = f"the same records as {dataset}@v{parent.number}" if parent is not None else "no record"
    text = (
        f"{ref} added nothing: every one of the {len(added_held)} records it adds is held back "
        f"({'; '.join(why)}) and it removes none, so {version} holds {after}."
    )
    if in_quarantine:
        text += (
            " A quarantine is never lifted: no contribution sent after it brings its records back, whoever "
            "sends them (an independent contribution, another side and another source, vouches only for a copy "
            "it merged before the quarantine; docs/provenance.md)."
        )
    return text


def _contribution_named(conn: Connection, ds: Row[Any], added_object: str) -> str | None:
    """``DATASET#N`` of the quarantined contribution of ``ds`` whose id list is ``added_object``."""
    number = conn.execute(
        select(contributions.c.number)
        .where(contributions.c.dataset_id == ds.id, contributions.c.added_object == added_object)
        .order_by(contributions.c.number)
    ).scalar()
    return f"{ds.name}#{number}" if number is not None else None


def _side_reasons(basis: HeldBasis, dataset_id: str, added: np.ndarray) -> list[dict[str, Any]]:
    """Why a merge left out some of the contribution's records because another contribution of its
    side flagged them (still pending review, or rejected): one entry per such contribution, naming it
    when it is of the same dataset (another dataset's is not the merger's to name)."""
    reasons = []
    for hold in basis.side:
        ids, valid = ids_to_binary(pa.array(sorted(hold.records), pa.string()))
        n = int(member_of(added, sorted_distinct(np.compress(valid, ids, axis=0))).sum())
        if n:
            same = hold.dataset_id == dataset_id
            reasons.append(
                {
                    "why": f"{hold.status} in a contribution of the same side",
                    "contribution": hold.contribution if same else None,
                    "same_dataset": same,
                    "records": n,
                }
            )
    return reasons
