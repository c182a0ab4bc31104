"""``Ward``: the embedded ward, composed of small services over one shared context.

Each use case is a method of one service (``IdentityService``, ``ContributionService``,
``GateService``, ``ReviewService``, ``VersionService``, ``AuditService`` and the others below); every
service acts through the one ``WardContext`` of the ward (catalog database, object store, signing key,
clock, acting principal). A service that calls another is handed it where ``Services`` builds it.
``Ward`` is the facade the CLI, the server and ``dataward.open`` use through ``dataward.api.WardAPI``:
one method per use case, each delegating to its service.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, make_url
from sqlalchemy.exc import OperationalError

from dataward.access import DEFAULT_KEY_POLICY, KeyPolicy, generate_key
from dataward.catalog import ledger_store
from dataward.catalog.database import CatalogDatabase
from dataward.catalog.projection import insert_row
from dataward.catalog.tables import ward_meta
from dataward.domain.errors import Conflict, InputError
from dataward.domain.limits import InputLimits, check_free_document, check_free_json, check_free_text
from dataward.domain.names import check_name
from dataward.domain.schema import Schema
from dataward.ledger.events import Actor, Event, format_time, utc_now
from dataward.ledger.signing import WardSigner
from dataward.service import auth
from dataward.service.batch_rows import DEFAULT_BATCH_ROWS
from dataward.service.config import CREDENTIALS_FILE, SIGNING_KEY_FILE, WardConfig, locate_ward
from dataward.service.core import Clock, OverContext, WardContext, new_id
from dataward.service.ledger_mark import LedgerMark
from dataward.service.remembered import ReadCache
from dataward.service.removal_list import RemovalList
from dataward.store import ObjectStore, open_store

if TYPE_CHECKING:
    import pyarrow as pa

    from dataward.ledger.checkpoint import Checkpoint
    from dataward.service.approvals import ApprovalService
    from dataward.service.attestations import AttestationService
    from dataward.service.audit import AuditService, VerifyReport
    from dataward.service.cards import CardService
    from dataward.service.checkpoints import CheckpointService
    from dataward.service.containment import ContainmentService
    from dataward.service.contributions import ContributionService
    from dataward.service.datasets import DatasetHandle, DatasetService
    from dataward.service.gating import GateService, ReviewService
    from dataward.service.identity import IdentityService
    from dataward.service.incident import IncidentService
    from dataward.service.lineage_events import LineageService
    from dataward.service.loading import LoadService
    from dataward.service.models import ModelService
    from dataward.service.overrides import OverrideService
    from dataward.service.releases import ReleaseService
    from dataward.service.session import SessionService
    from dataward.service.tracing import TraceService
    from dataward.service.transformations import Transformation, TransformationService
    from dataward.service.versions import VersionService
    from dataward.service.withdrawals import WithdrawalService


class Services:
    """The services a ward is composed of, over one shared ``WardContext``. Each is handed the
    services it calls here, where the ward is composed, and nowhere else. A service is built when it is
    first used: a served ward composes one per request, and a request uses one or two of them. Its
    module is imported then too: a command that reads the ledger does not import the gates, the release
    gate and their numerical libraries."""

    def __init__(self, context: WardContext) -> None:
        self.context = context
        context.after_commit.append(self.after_commit)

    def after_commit(self, events: list[Event]) -> None:
        """After each committed use case: a checkpoint when it promoted something, then its lineage
        events (the checkpoint is the more important of the two and does not wait on a transport)."""
        self.checkpoints.checkpoint_after(events)
        self.lineage.send(events)

    @cached_property
    def session(self) -> SessionService:
        """Whoami."""
        from dataward.service.session import SessionService

        return SessionService(self.context)

    @cached_property
    def identity(self) -> IdentityService:
        """Principals, keys, grants, policies, access review."""
        from dataward.service.identity import IdentityService

        return IdentityService(self.context, self.datasets)

    @cached_property
    def datasets(self) -> DatasetService:
        """Datasets, reading versions, the scope a read is authorized on."""
        from dataward.service.datasets import DatasetService

        return DatasetService(self.context)

    @cached_property
    def loading(self) -> LoadService:
        """The guarded loader's reads."""
        from dataward.service.loading import LoadService

        return LoadService(self.context, self.datasets)

    @cached_property
    def contributions(self) -> ContributionService:
        """Submit (which runs the gate), withdraw, list, show."""
        from dataward.service.contributions import ContributionService

        return ContributionService(self.context, self.datasets, self.gates)

    @cached_property
    def approvals(self) -> ApprovalService:
        """Approve and reject contributions, approve versions."""
        from dataward.service.approvals import ApprovalService

        return ApprovalService(self.context)

    @cached_property
    def versions(self) -> VersionService:
        """Merge, list, diff, export, promote."""
        from dataward.service.versions import VersionService

        return VersionService(self.context, self.datasets)

    @cached_property
    def gates(self) -> GateService:
        """Run a contribution's gate, its report, the self-test."""
        from dataward.service.gating import GateService

        return GateService(self.context)

    @cached_property
    def overrides(self) -> OverrideService:
        """Override a gate's block."""
        from dataward.service.overrides import OverrideService

        return OverrideService(self.context)

    @cached_property
    def review(self) -> ReviewService:
        """The review queue."""
        from dataward.service.gating import ReviewService

        return ReviewService(self.context)

    @cached_property
    def tracing(self) -> TraceService:
        """Trace."""
        from dataward.service.tracing import TraceService

        return TraceService(self.context)

    @cached_property
    def containment(self) -> ContainmentService:
        """Quarantine a contribution."""
        from dataward.service.containment import ContainmentService

        return ContainmentService(self.context, self.incidents)

    @cached_property
    def incidents(self) -> IncidentService:
        """Quarantine by cause (a key, a principal, a source)."""
        from dataward.service.incident import IncidentService

        return IncidentService(self.context)

    @cached_property
    def transformations(self) -> TransformationService:
        """Transformations and relabelling."""
        from dataward.service.transformations import TransformationService

        return TransformationService(self.context, self.datasets, self.contributions)

    @cached_property
    def attestations(self) -> AttestationService:
        """Signed in-toto attestations."""
        from dataward.service.attestations import AttestationService

        return AttestationService(self.context, self.datasets, self.tracing)

    @cached_property
    def cards(self) -> CardService:
        """Dataset cards."""
        from dataward.service.cards import CardService

        return CardService(self.context, self.datasets, self.attestations)

    @cached_property
    def audit(self) -> AuditService:
        """The ledger and verify."""
        from dataward.service.audit import AuditService

        return AuditService(self.context)

    @cached_property
    def checkpoints(self) -> CheckpointService:
        """Checkpoints, the witness, the public key."""
        from dataward.service.checkpoints import CheckpointService

        return CheckpointService(self.context)

    @cached_property
    def lineage(self) -> LineageService:
        """OpenLineage events."""
        from dataward.service.lineage_events import LineageService

        return LineageService(self.context)

    @cached_property
    def models(self) -> ModelService:
        """Training runs and model versions."""
        from dataward.service.models import ModelService

        return ModelService(self.context, self.datasets)

    @cached_property
    def releases(self) -> ReleaseService:
        """The release gate, model approvals, the release."""
        from dataward.service.releases import ReleaseService

        return ReleaseService(self.context)

    @cached_property
    def withdrawals(self) -> WithdrawalService:
        """Withdrawing released model versions."""
        from dataward.service.withdrawals import WithdrawalService

        return WithdrawalService(self.context)


class Ward(OverContext):
    """One deployment: a catalog database, an object store and a signing key, acting as one principal.

    The embedded implementation of ``dataward.api.WardAPI``; ``dataward.client.HTTPWard`` is the other.
    Each use case is a method of one of the ward's ``services``, which this class delegates to.
    """

    def __init__(
        self,
        folder: Path,
        db: CatalogDatabase,
        store: ObjectStore,
        signer: WardSigner,
        *,
        credential: str | None,
        clock: Clock = utc_now,
        ward_id: str = "",
        callers: auth.CallerCache | None = None,
        reads: ReadCache | None = None,
        mark: LedgerMark | None = None,
        removals: RemovalList | None = None,
    ) -> None:
        self.context = WardContext(
            folder,
            db,
            store,
            signer,
            credential=credential,
            clock=clock,
            ward_id=ward_id,
            callers=callers,
            reads=reads,
            mark=mark,
            removals=removals,
        )
        self.services = Services(self.context)

    # --- the shared context (folder, db, store, signer, ward_id, now, use_case: see OverContext) ---
    @property
    def credential(self) -> str | None:
        """The API key this ward acts with."""
        return self.context.credential

    @property
    def clock(self) -> Clock:
        """What tells the time of every use case."""
        return self.context.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.context.clock = clock

    @property
    def callers(self) -> auth.CallerCache | None:
        """Keys verified by recent requests (see ``remember_callers``)."""
        return self.context.callers

    @callers.setter
    def callers(self, callers: auth.CallerCache | None) -> None:
        self.context.callers = callers

    @property
    def key_policy(self) -> KeyPolicy:
        """The ward's default key policy (lifetimes, rotation), tightened by dataset policies."""
        return self.services.identity.key_policy

    def checkpoint_after(self, events: list[Event]) -> None:
        """What runs once a use case's events are committed (see ``WardContext.checkpoint_after``)."""
        self.context.checkpoint_after(events)

    def dataset(self, name: str) -> DatasetHandle:
        """A handle on one dataset for the Python API."""
        from dataward.service.datasets import DatasetHandle

        return DatasetHandle(self, name)

    # --- who is calling -----------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        """The acting principal, the key in use (never its secret) and the principal's grants."""
        return self.services.session.whoami()

    def take_witnessed_removals(self) -> int:
        """Count the witness's copies of the list of access removals as in force in this process (a
        server does it at start; ``CheckpointService.take_witnessed_removals``)."""
        return self.services.checkpoints.take_witnessed_removals()

    def state_warnings(self) -> list[str]:
        """What is missing from the ward's (state) folder to anchor its ledger: no kept checkpoint
        (``service/checkpoints.py``, ``state_warnings``); said on ``serve`` and by ``verify``."""
        return self.services.checkpoints.state_warnings()

    def verifier_id(self) -> str:
        """The caller's principal id, as ``verify`` authenticates it (``SessionService.verifier_id``)."""
        return self.services.session.verifier_id()

    def accountable_id(self) -> str:
        """The id of the human who answers for the caller (``SessionService.accountable_id``)."""
        return self.services.session.accountable_id()

    def check_may_send_files(self) -> None:
        """Refuse a caller that may do nothing anywhere that takes a file (``SessionService.check_may_send_files``)."""
        self.services.session.check_may_send_files()

    # --- principals, keys, grants, policies ---------------------------------------------
    def create_principal(
        self, name: str, *, kind: str = "human", owner: str | None = None, description: str = ""
    ) -> dict[str, Any]:
        """Register a human, or a service principal (pipeline, bot, CI job) with its accountable owner."""
        check_free_text(description=description)
        return self.services.identity.create_principal(name, kind=kind, owner=owner, description=description)

    def principals(self) -> list[dict[str, Any]]:
        """Every principal with its kind, owner and status."""
        return self.services.identity.principals()

    def disable_principal(self, name: str, *, transfer_to: str | None = None, reason: str = "") -> dict[str, Any]:
        """Offboard a human: disable them, revoke their keys, and suspend the service principals they
        own (revoking those keys too) unless ``transfer_to`` (an active human) takes them over."""
        check_free_text(reason=reason)
        return self.services.identity.disable_principal(name, transfer_to=transfer_to, reason=reason)

    def transfer_principal(self, service: str, new_owner: str) -> dict[str, Any]:
        """Hand a service principal to another active human, who becomes accountable for it."""
        return self.services.identity.transfer_principal(service, new_owner)

    def enable_principal(self, name: str, *, reason: str = "") -> dict[str, Any]:
        """Let a disabled human, or a suspended service principal whose owner is active, act again
        (admin only); none of its old keys works again."""
        check_free_text(reason=reason)
        return self.services.identity.enable_principal(name, reason=reason)

    def issue_key(
        self,
        principal: str | None = None,
        *,
        ttl_days: int | None = None,
        scopes: list[str] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Issue an API key (shown once) for ``principal`` (default: the caller)."""
        check_free_text(description=description)
        return self.services.identity.issue_key(principal, ttl_days=ttl_days, scopes=scopes, description=description)

    def rotate_key(self, key: str, *, overlap_hours: float = 24.0) -> dict[str, Any]:
        """Issue a key's successor; the old key keeps working for the overlap window, then never again."""
        return self.services.identity.rotate_key(key, overlap_hours=overlap_hours)

    def revoke_key(self, key: str, *, reason: str = "") -> dict[str, Any]:
        """Revoke a key and every key minted through it, transitively: all are refused from the very next
        request."""
        check_free_text(reason=reason)
        return self.services.identity.revoke_key(key, reason=reason)

    def keys(self, principal: str | None = None) -> list[dict[str, Any]]:
        """API keys (never their secrets), of one principal or all, with their state."""
        return self.services.identity.keys(principal)

    def grant(self, principal: str, role: str, scope: str = "ward") -> dict[str, Any]:
        """Give ``principal`` a role on the ward, ``dataset:NAME`` or ``model:NAME``."""
        return self.services.identity.grant(principal, role, scope)

    def revoke_grant(self, principal: str, role: str, scope: str = "ward") -> dict[str, Any]:
        """Take a role away from ``principal`` on ``scope``."""
        return self.services.identity.revoke_grant(principal, role, scope)

    def grants(self, principal: str | None = None) -> list[dict[str, Any]]:
        """Active grants, of one principal or all."""
        return self.services.identity.grants(principal)

    def set_policy(self, dataset: str, policy_yaml: str) -> dict[str, Any]:
        """Replace a dataset's policy (YAML); the change is a versioned ledger event."""
        check_free_document(policy=policy_yaml)
        return self.services.identity.set_policy(dataset, policy_yaml)

    def policy(self, dataset: str) -> dict[str, Any]:
        """A dataset's policy with the defaults filled in, and whether one was set."""
        return self.services.identity.policy(dataset)

    def access_review(self, *, unused_days: int | None = None, recent_days: int = 30) -> list[dict[str, Any]]:
        """What an auditor wants: stale, old and expiring keys, orphaned bots, who can write to
        training datasets, recent grants, every block override (who, when, why). Each row names the
        principal, owner, dataset and the fix."""
        return self.services.identity.access_review(unused_days=unused_days, recent_days=recent_days)

    # --- datasets -----------------------------------------------------------------------
    def create_dataset(
        self,
        name: str,
        schema: Schema | dict[str, Any],
        *,
        description: str = "",
        owner: str | None = None,
        validation_for: str | None = None,
    ) -> dict[str, Any]:
        """Create a dataset (or, with ``validation_for``, the clean validation set of one)."""
        check_free_text(description=description)
        return self.services.datasets.create_dataset(
            name, schema, description=description, owner=owner, validation_for=validation_for
        )

    def datasets(self) -> list[dict[str, Any]]:
        """The datasets the caller may read, with their latest and training versions."""
        return self.services.datasets.datasets()

    def dataset_info(self, name: str) -> dict[str, Any]:
        """One dataset with its schema, latest and training versions (needs ``dataset.read`` on it)."""
        return self.services.datasets.dataset_info(name)

    def read_version(self, dataset: str, ref: str | None = None) -> tuple[dict[str, Any], pa.Table]:
        """Info and canonical records of ``dataset@ref`` (default: latest); needs ``dataset.export``."""
        return self.services.datasets.read_version(dataset, ref)

    # --- the guarded loader -------------------------------------------------------------
    def load_version(
        self, dataset: str, ref: str | None = None, *, stage: str | None = "training"
    ) -> tuple[dict[str, Any], pa.Table]:
        """A version's document and records for training (needs ``dataset.export``): refused when it is
        not in ``stage`` (``None``: any) or holds quarantined or rejected records."""
        return self.services.loading.load_version(dataset, ref, stage=stage)

    def stream_version(
        self,
        dataset: str,
        ref: str | None = None,
        *,
        stage: str | None = "training",
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> tuple[dict[str, Any], Iterator[pa.RecordBatch]]:
        """As :meth:`load_version`, the records as Arrow record batches of at most ``batch_rows`` rows,
        loaded (and re-hashed) one batch at a time."""
        return self.services.loading.stream_version(dataset, ref, stage=stage, batch_rows=batch_rows)

    # --- contributions ------------------------------------------------------------------
    def contribute(
        self,
        dataset: str,
        data: str | Path | Any | None = None,
        *,
        source: str,
        fetched_at: datetime | None = None,
        licence: str | None = None,
        removes: str | Path | list[str] | None = None,
        message: str = "",
        format: str | None = None,
        gate: bool = True,
        progress: Callable[[str], None] | None = None,
        limits: InputLimits | Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Submit a contribution: records added from ``data`` (a file, folder, DataFrame or Arrow
        table) and/or record ids removed (``removes``: a file of ids or a list), from ``source``. A
        ``transformation:`` source is the ward's own, for a recorded step's output: refused here."""
        check_free_text(source=source, licence=licence, message=message)
        return self.services.contributions.contribute(
            dataset,
            data,
            source=source,
            fetched_at=fetched_at,
            licence=licence,
            removes=removes,
            message=message,
            format=format,
            gate=gate,
            progress=progress,
            limits=limits,
        )

    def withdraw(self, contribution: str, *, reason: str = "") -> dict[str, Any]:
        """Withdraw a contribution that is not merged yet. Contributors withdraw their own (or their
        bots'); owners and admins any on their dataset. It can never be merged afterwards."""
        check_free_text(reason=reason)
        return self.services.contributions.withdraw(contribution, reason=reason)

    def contributions(self, dataset: str, *, status: str | None = None) -> list[dict[str, Any]]:
        """A dataset's contributions, oldest first, optionally of one status."""
        return self.services.contributions.contributions(dataset, status=status)

    def contribution(self, ref: str) -> dict[str, Any]:
        """One contribution with its source's details."""
        return self.services.contributions.contribution(ref)

    # --- approvals ----------------------------------------------------------------------
    def approve(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Approve a contribution, bound to its current content hash. Nobody approves their own
        contribution or one submitted by a service principal they own. A merged contribution can still
        be approved: its approvals count when a version holding it is promoted. ``DATASET@VERSION``
        approves a whole version instead (see :meth:`approve_version`)."""
        check_free_text(reason=reason)
        return self.services.approvals.approve(contribution, reason=reason)

    def approve_version(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Approve ``DATASET@VERSION`` as a whole, bound to its manifest digest."""
        check_free_text(reason=reason)
        return self.services.approvals.approve_version(ref, reason=reason)

    def reject(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Reject a contribution: it can never be merged."""
        check_free_text(reason=reason)
        return self.services.approvals.reject(contribution, reason=reason)

    # --- versions -----------------------------------------------------------------------
    def merge(self, contribution_ref: str, *, message: str = "") -> dict[str, Any]:
        """Merge a contribution into a new version: the latest version, minus removed records, plus
        added ones, never including records held in quarantine or rejected in review."""
        check_free_text(message=message)
        return self.services.versions.merge(contribution_ref, message=message)

    def versions(self, dataset: str) -> list[dict[str, Any]]:
        """Every version of ``dataset``, oldest first."""
        return self.services.versions.versions(dataset)

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """Records added and removed going from ``DATASET@A`` to ``DATASET@B`` (``b`` may omit the dataset)."""
        return self.services.versions.diff(a, b)

    def export(self, ref: str, path: str | Path, *, format: str = "parquet") -> dict[str, Any]:
        """Write ``DATASET@VERSION`` to a file (atomically)."""
        return self.services.versions.export(ref, path, format=format)

    def promote(
        self, ref: str, *, stage: str = "training", reason: str = "", accept_shrink: bool = False
    ) -> dict[str, Any]:
        """Move ``DATASET@VERSION`` to ``training`` (the previous training version is retired) or ``retired``.
        A version with no record, or leaving out most of the training version's records, needs
        ``accept_shrink`` and a reason."""
        check_free_text(reason=reason)
        return self.services.versions.promote(ref, stage=stage, reason=reason, accept_shrink=accept_shrink)

    # --- gates --------------------------------------------------------------------------
    def run_gate(self, contribution_ref: str, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Run the dataset's gate on a contribution against the trusted baseline; ``progress`` is told
        which step is running."""
        return self.services.gates.run_gate(contribution_ref, progress=progress)

    def gate_report(self, contribution_ref: str) -> dict[str, Any]:
        """The latest stored gate report of a contribution."""
        return self.services.gates.gate_report(contribution_ref)

    def selftest(self, dataset: str, contribution_ref: str | None = None, *, seed: int = 0) -> dict[str, Any]:
        """Plant known poisons into a copy of a clean contribution (default: a seeded random slice of
        the training version) and report the recall this dataset's gate achieves. Stores nothing but
        the event."""
        return self.services.gates.selftest(dataset, contribution_ref, seed=seed)

    # --- gate overrides -----------------------------------------------------------------
    def override_block(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Request, or confirm, lifting the gate's block of ``contribution``."""
        check_free_text(reason=reason)
        return self.services.overrides.override_block(contribution, reason=reason)

    # --- the review queue ---------------------------------------------------------------
    def review_list(
        self, dataset: str | None = None, *, status: str = "pending", contribution: str | None = None
    ) -> list[dict[str, Any]]:
        """Quarantined records awaiting (or past) review, most suspicious first; optionally of one
        dataset or one contribution."""
        return self.services.review.review_list(dataset, status=status, contribution=contribution)

    def review_show(self, item: str) -> dict[str, Any]:
        """One quarantined record with its content and the gate's evidence about it."""
        return self.services.review.review_show(item)

    def review_decide(
        self, items: list[str], decision: str, *, reason: str, contribution: str | None = None
    ) -> list[dict[str, Any]]:
        """Accept (let into the next merge) or reject (never enters a version) quarantined records."""
        check_free_text(reason=reason)
        return self.services.review.review_decide(items, decision, reason=reason, contribution=contribution)

    # --- trace --------------------------------------------------------------------------
    def trace(self, ref: str) -> dict[str, Any]:
        """Trace a record id, a contribution (``c_…`` or ``DATASET#N``), a key (``dw_…``), a version
        (``DATASET@vN``), a principal (``principal:NAME``) or a source (``source:URI``): where it came
        from, who brought it in with which key, which gates and approvals it passed, and every version
        that contains it. A record is followed backward through the transformations that made it to
        the records and contributions it came from (``derived_from``, ``origins``) and forward to the
        records made from it (``derived``)."""
        return self.services.tracing.trace(ref)

    # --- containment --------------------------------------------------------------------
    def quarantine_contribution(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Hold a whole contribution out of every future version."""
        check_free_text(reason=reason)
        return self.services.containment.quarantine_contribution(contribution, reason=reason)

    # --- incidents ----------------------------------------------------------------------
    def quarantine_by(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Quarantine every contribution ``ref`` touched: ``dw_KEY`` (submitted with the key or with any
        key minted through it: what a leaked key could have done), ``principal:NAME`` (submitted by the
        principal) or ``source:URI`` (declared that source). Contributions already quarantined are
        left as they are. Records that transformations made from what they added (a relabelling, a
        dedup's copy into another dataset) are held out too, wherever they went."""
        check_free_text(reason=reason)
        return self.services.incidents.quarantine_by(ref, reason=reason)

    # --- transformations ----------------------------------------------------------------
    def record_transformation(
        self,
        name: str,
        *,
        inputs: str | Sequence[str],
        data: str | Path | Any | None = None,
        output: str | None = None,
        parents: Sequence[Any] | None = None,
        notes: Sequence[Any] | None = None,
        removes: Sequence[str] | None = None,
        params: Mapping[str, Any] | None = None,
        code: Mapping[str, Any] | None = None,
        replace: bool | None = None,
        kind: str = "transform",
        message: str = "",
        gate: bool = True,
        format: str | None = None,
        limits: InputLimits | Mapping[str, Any] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Record one transformation step and submit its output as a contribution to ``output``
        (default: the dataset of the first input)."""
        check_free_text(message=message)
        check_free_json(params=params, code=code)
        return self.services.transformations.record_transformation(
            name,
            inputs=inputs,
            data=data,
            output=output,
            parents=parents,
            notes=notes,
            removes=removes,
            params=params,
            code=code,
            replace=replace,
            kind=kind,
            message=message,
            gate=gate,
            format=format,
            limits=limits,
            progress=progress,
        )

    def relabel(
        self,
        dataset: str,
        changes: Mapping[str, Any],
        *,
        reason: str,
        version: str | None = None,
        gate: bool = True,
    ) -> dict[str, Any]:
        """Relabel records of ``dataset@version`` (default: latest): ``changes`` maps a record id to its
        new label, or to ``(label, why)``. Recorded as a ``relabel`` transformation whose lineage says,
        per record, who changed which label from what to what and why; the relabelled records replace
        the old ones through an ordinary, gated contribution."""
        check_free_text(reason=reason)
        # A change's own "why" is kept with the step's lineage for good, as the reason is, and held to its rule.
        for change in changes.values():
            if isinstance(change, tuple | list) and len(change) > 1 and isinstance(change[1], str):
                check_free_text(why=change[1])
        return self.services.transformations.relabel(dataset, changes, reason=reason, version=version, gate=gate)

    def transformations(self, dataset: str) -> list[dict[str, Any]]:
        """The transformations recorded into ``dataset``, oldest first."""
        return self.services.transformations.transformations(dataset)

    def lineage(self, transformation_row: Any) -> list[dict[str, Any]]:
        """The record lineage of a transformation row (empty when it recorded none)."""
        return self.services.transformations.lineage(transformation_row)

    def transform(
        self,
        name: str,
        *,
        inputs: str | Sequence[str],
        output: str | None = None,
        params: Mapping[str, Any] | None = None,
        code: Mapping[str, Any] | None = None,
        script: str | Path | None = None,
        replace: bool | None = None,
        gate: bool = True,
        message: str = "",
    ) -> Transformation:
        """A context manager recording one step::"""
        check_free_text(message=message)
        check_free_json(params=params, code=code)
        return self.services.transformations.transform(
            name,
            inputs=inputs,
            output=output,
            params=params,
            code=code,
            script=script,
            replace=replace,
            gate=gate,
            message=message,
        )

    # --- attestations and cards ---------------------------------------------------------
    def attest(self, ref: str) -> list[dict[str, Any]]:
        """DSSE envelopes (signed by the ward key) of two in-toto statements about ``DATASET@VERSION``'s
        manifest: SLSA provenance v1 and the dataward predicate (see docs/provenance.md). Needs
        ``trace`` on the dataset; the issue is recorded as an ``attestation.issued`` event."""
        return self.services.attestations.attest(ref)

    def card(self, ref: str) -> dict[str, Any]:
        """The card of ``DATASET@VERSION``: ``{"croissant": JSON-LD dict, "markdown": text, "version": ...}``.
        Needs ``trace`` on the dataset (it names principals, keys and gate findings)."""
        return self.services.cards.card(ref)

    # --- the ledger and its verification ------------------------------------------------
    def ledger(
        self, *, limit: int | None = None, types: list[str] | None = None, newest_first: bool = True
    ) -> list[dict[str, Any]]:
        """Ledger events (newest first by default), optionally filtered by type prefix."""
        return self.services.audit.ledger(limit=limit, types=types, newest_first=newest_first)

    def ledger_head(self) -> dict[str, Any]:
        """The newest event's sequence number and hash (``checkpoint`` signs one that ``verify`` checks)."""
        return self.services.audit.ledger_head()

    def ledger_export(self) -> dict[str, Any]:
        """The whole chain in sequence order, with the ward id and public key: what a verifier in any
        language re-checks (docs/ledger-format.md)."""
        return self.services.audit.ledger_export()

    def verify(
        self,
        *,
        checkpoints: Sequence[Checkpoint] = (),
        public_key: str | None = None,
        all_signatures: bool = False,
    ) -> VerifyReport:
        """Re-check the chain (every event's link and hash), its signatures, every object's hash, and
        that the catalog is exactly what the ledger says it should be; and that the ledger extends
        every checkpoint: those given, those kept in the ward, and the witness copies. Reports every
        discrepancy."""
        return self.services.audit.verify(checkpoints=checkpoints, public_key=public_key, all_signatures=all_signatures)

    def reindex(self, *, rebuild: bool = False) -> dict[str, int]:
        """Index, for ``trace``, the id lists of contributions and versions recorded before the holder
        index existed (``dataward reindex``); safe to run again. ``rebuild`` rebuilds the whole index
        from the lists (after ``verify`` found it altered)."""
        return self.services.audit.reindex(rebuild=rebuild)

    # --- checkpoints --------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        """Sign a checkpoint of the ledger as it is now (kept in the ward and sent to the witness)."""
        return self.services.checkpoints.checkpoint()

    def checkpoints(self) -> list[dict[str, Any]]:
        """The checkpoints kept in the ward folder, oldest first."""
        return self.services.checkpoints.checkpoints()

    def public_key(self) -> dict[str, Any]:
        """The ward's Ed25519 public key, to pin outside the ward for ``verify --public-key``."""
        return self.services.checkpoints.public_key()

    def witness(self) -> dict[str, Any]:
        """Where witness copies of checkpoints go (``None``: nowhere)."""
        return self.services.checkpoints.witness()

    def check_may_set_witness(self) -> None:
        """Refuse a caller that may not set the witness (``CheckpointService.check_may_set_witness``)."""
        self.services.checkpoints.check_may_set_witness()

    def set_witness(self, location: str | None) -> dict[str, Any]:
        """Send a witness copy of every future checkpoint to ``location`` (a folder or fsspec URL
        outside the ward); ``None`` stops it. Admins only; recorded as ``ward.witness_set``."""
        check_free_text(witness=location)
        return self.services.checkpoints.set_witness(location)

    # --- training runs and models -------------------------------------------------------
    def start_training_run(
        self, model: str, *, params: dict[str, Any] | None = None, code: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start a training run of ``model``: its code identity (``provenance.code.code_identity``) and
        parameters are recorded now; the datasets it reads and its artifact as it goes and at its end."""
        check_free_json(params=params, code=code)
        return self.services.models.start_training_run(model, params=params, code=code)

    def record_training_read(self, run_id: str, dataset: str, version: str) -> dict[str, Any]:
        """Record that run ``run_id`` read ``dataset@version`` through the guarded loader. The version is
        checked as the loader checks it (any stage), and the caller must be allowed to read it."""
        return self.services.models.record_training_read(run_id, dataset, version)

    def fail_training_run(self, run_id: str, *, reason: str) -> dict[str, Any]:
        """Record that a run ended without a model."""
        check_free_text(reason=reason)
        return self.services.models.fail_training_run(run_id, reason=reason)

    def finish_training_run(
        self,
        run_id: str,
        artifact: str | Path,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """End run ``run_id`` with its artifact (a file or a folder): hashed into model-signing's manifest,
        scanned, stored, signed, and registered as the model's next version. Refused when the run read
        no dataset through the loader, or when the release policy refuses pickle-based files and the
        artifact holds one (nothing is stored then)."""
        check_free_json(params=params, metrics=metrics)
        return self.services.models.finish_training_run(run_id, artifact, params=params, metrics=metrics)

    def models(self, model: str | None = None) -> list[dict[str, Any]]:
        """Model versions (of one model, or every model the caller may read), newest first, each with
        ``affected`` listing training data quarantined or rejected since."""
        return self.services.models.models(model)

    def model(self, ref: str) -> dict[str, Any]:
        """One model version with its run, datasets, scan, latest release gate and approvals."""
        return self.services.models.model(ref)

    def model_files(self, ref: str, folder: str | Path, *, accept_affected: bool = False) -> dict[str, Any]:
        """Write a model version's files into ``folder`` (checked against the signed manifest). Refused
        for a withdrawn version, and for an affected released one unless ``accept_affected`` (the
        answer then carries a ``warning``)."""
        return self.services.models.model_files(ref, folder, accept_affected=accept_affected)

    # --- the release gate ---------------------------------------------------------------
    def probe_inputs(self, ref: str, path: str | Path) -> dict[str, Any]:
        """Write the release gate's probe set of a model version to a Parquet file: a ``probe_id`` and the
        raw record for every clean validation row and every triggered and control copy. A model run
        elsewhere predicts each row; ``model_gate(..., predictions=FILE)`` reads them back. Records leave
        the ward: needs ``dataset.export`` on the dataset the model was trained on."""
        return self.services.releases.probe_inputs(ref, path)

    def model_gate(
        self,
        ref: str,
        *,
        predict: Callable[[pa.Table], Sequence[Any]] | Any | None = None,
        predictions: str | Path | None = None,
        trusted: Sequence[str] = (),
        seed: int = 0,
    ) -> dict[str, Any]:
        """Run the release gate on ``MODEL@VERSION``. Predictions come from ``predictions`` (a file for the
        probe set, see ``probe_inputs``), ``predict`` (a callable on raw records, or an estimator with
        ``predict``), or else the stored artifact (one ``.onnx`` or ``.skops`` file; a skops file naming
        types outside skops' trusted set needs them in ``trusted``). Pickle-based files are never loaded."""
        return self.services.releases.model_gate(
            ref, predict=predict, predictions=predictions, trusted=trusted, seed=seed
        )

    def model_gate_report(self, ref: str) -> dict[str, Any]:
        """The latest stored release gate report of a model version."""
        return self.services.releases.model_gate_report(ref)

    def approve_model(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Approve a model version for release, bound to its digest. Never by the principal that trained
        it, a service principal of theirs, or (for a model a bot trained) the bot's human."""
        check_free_text(reason=reason)
        return self.services.releases.approve_model(ref, reason=reason)

    def release_model(self, ref: str, *, reason: str = "") -> dict[str, Any]:
        """Release ``MODEL@VERSION``: needs the ``promoter`` role (or owner), a release gate on its digest
        with the verdict the policy needs, the policy's approvals (never the trainer's side), and training
        data that is still clean. Writes a signed in-toto attestation; the previous release is retired."""
        check_free_text(reason=reason)
        return self.services.releases.release_model(ref, reason=reason)

    def withdraw_model(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Withdraw a released model version (promoter or owner, as a release; a reason is required):
        a signed ``model.withdrawn`` event; its files and attestation are never served again."""
        check_free_text(reason=reason)
        return self.services.withdrawals.withdraw_model(ref, reason=reason)

    def model_attestation(self, ref: str) -> list[dict[str, Any]]:
        """The DSSE envelopes about a model version: model-signing's manifest, and its release attestation
        once released. Both name the model and its SHA-256 digest as subject. Refused for a withdrawn
        version."""
        return self.services.releases.model_attestation(ref)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, *, key: str | None = None, clock: Clock = utc_now
    ) -> Ward:
        """Open the ward at ``path`` (default: ``$DATAWARD_WARD`` or ``./.dataward``).

        The acting principal is the one whose API key is ``key``, else ``$DATAWARD_KEY``, else the
        ward's local credentials file (written by ``init`` for the first admin).
        """
        folder = locate_ward(path)
        config = WardConfig.load(folder)
        credential = key or os.environ.get("DATAWARD_KEY") or _read_credentials(folder)
        db = CatalogDatabase(config.resolved_catalog_url(folder))
        db.migrate_if_behind()
        store = open_store(config.resolved_store(folder))
        signer = WardSigner.load(folder / SIGNING_KEY_FILE)
        return cls(folder, db, store, signer, credential=credential, clock=clock, ward_id=config.ward_id)

    def close(self) -> None:
        """Finish the catalog checkpoint under way, if any, and close the pooled connections. Nothing
        is lost without it (every commit is durable); it leaves the catalog compact. The ward can
        still be used: connections open again on demand. Wards from ``as_key`` share the catalog."""
        self.db.dispose()

    def __enter__(self) -> Ward:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def as_key(self, key: str) -> Ward:
        """The same ward, acting as the principal of ``key`` (sharing its remembered callers and reads,
        and the newest ledger head it knows of)."""
        return type(self)(
            self.folder,
            self.db,
            self.store,
            self.signer,
            credential=key,
            clock=self.clock,
            ward_id=self.ward_id,
            callers=self.callers,
            reads=self.context.reads,
            mark=self.context.mark,
            removals=self.context.removals,
        )

    def remember_callers(self, *, ttl_s: float = 30.0, max_entries: int = 4096) -> Ward:
        """Remember verified keys between requests (what a server does; see ``auth.CallerCache``):
        a busy key costs one small read per request instead of a lookup of its key, principal and
        grants, and a revocation still takes effect on the very next request. Returns ``self``."""
        self.callers = auth.CallerCache(ttl_s=ttl_s, max_entries=max_entries)
        return self

    def remember_reads(self, *, ttl_s: float = 30.0, max_entries: int = 1024) -> Ward:
        """Remember the results of hot catalog reads between requests, under the ledger head they were
        read at (what a server does; see ``dataward.service.remembered``): any write, by any process,
        makes the next request read the catalog again. Takes effect where keys are remembered too
        (``remember_callers``). Returns ``self``."""
        self.context.reads = ReadCache(ttl_s=ttl_s, max_entries=max_entries)
        return self

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str],
        *,
        admin: str = "admin",
        catalog_url: str | None = None,
        store_url: str | None = None,
        clock: Clock = utc_now,
    ) -> tuple[Ward, str]:
        """Create a ward folder: catalog, object store, signing key, the first admin and its API key.

        Returns the ward (acting as the admin) and the admin's key, which is shown only this once
        (a copy is kept in the folder's owner-only ``credentials`` file for local use).
        """
        folder = Path(path)
        # The first admin is a principal like any other: its name follows the same rules.
        check_name("principal", admin)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{folder} is a file, not a folder", hint="choose a new or empty folder")
        if (folder / "ward.json").exists():
            raise Conflict(f"{folder} is already a ward")
        if folder.exists() and any(folder.iterdir()):
            raise InputError(f"{folder} exists and is not empty", hint="choose a new or empty folder")
        created_folder = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        # The folder holds the signing key, the admin's credentials, the catalog and the kept checkpoints:
        # its owner's alone, whatever the umask (the files inside need not each be locked down then).
        os.chmod(folder, 0o700)
        try:
            return cls._create(folder, admin, catalog_url, store_url, clock)
        except BaseException:
            # A half-made ward is worse than none: remove what this call created.
            if created_folder:
                shutil.rmtree(folder, ignore_errors=True)
            raise

    @classmethod
    def _create(
        cls, folder: Path, admin: str, catalog_url: str | None, store_url: str | None, clock: Clock
    ) -> tuple[Ward, str]:
        now = clock()
        signer = WardSigner.generate()
        signer.save(folder / SIGNING_KEY_FILE)
        config = WardConfig(
            ward_id=new_id("w"),
            catalog_url=catalog_url or "sqlite:///./catalog.sqlite",
            store_url=store_url or "objects",
            created_at=format_time(now),
        )
        db = CatalogDatabase(config.resolved_catalog_url(folder))
        try:
            db.create_newest_schema()
        except OperationalError as exc:
            # The database cannot be reached or opened (a wrong host, port, name or role): say so, not
            # with the driver's traceback. The URL is shown without its password.
            shown = make_url(db.url).render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
            raise InputError(
                f"cannot create the catalog at {shown}: {reason}",
                hint="check --catalog and that the database is reachable (a password belongs in PGPASSWORD "
                "or ~/.pgpass, not the command line)",
            ) from None
        store = open_store(config.resolved_store(folder))
        admin_id = new_id("p")
        plaintext, key = generate_key(admin_id, now=now, policy=DEFAULT_KEY_POLICY)
        stamp = format_time(now)
        actor = Actor(admin_id, None)
        with db.transaction() as conn:
            conn.execute(
                insert(ward_meta),
                [
                    {"key": "ward_id", "value": config.ward_id},
                    {"key": "public_key", "value": signer.public_key_b64},
                    {"key": "created_at", "value": stamp},
                ],
            )
            ledger_store.append(
                conn,
                signer,
                actor=actor,
                type="ward.created",
                subject={"ward": config.ward_id},
                payload={"public_key": signer.public_key_b64, "catalog": db.dialect, "store": store.url},
                now=now,
            )
            ledger_store.append(
                conn,
                signer,
                actor=actor,
                type="principal.created",
                subject={"principal": admin_id},
                payload={"name": admin, "kind": "human"},
                changes=[
                    insert_row(
                        "principals",
                        id=admin_id,
                        name=admin,
                        kind="human",
                        owner_id=None,
                        status="active",
                        created_at=stamp,
                        created_by=admin_id,
                        description="first administrator",
                    )
                ],
                now=now,
            )
            ledger_store.append(
                conn,
                signer,
                actor=actor,
                type="grant.created",
                subject={"principal": admin_id},
                payload={"role": "admin", "scope": "ward"},
                changes=[
                    insert_row(
                        "grants",
                        id=new_id("g"),
                        principal_id=admin_id,
                        role="admin",
                        scope_kind="ward",
                        scope_name=None,
                        granted_by=admin_id,
                        granted_at=stamp,
                    )
                ],
                now=now,
            )
            ledger_store.append(
                conn,
                signer,
                actor=actor,
                type="key.issued",
                subject={"principal": admin_id, "key": key.id},
                payload={"key": key.to_dict()},
                changes=[auth.key_insert(key, "first admin key", issued_by=admin_id)],
                now=now,
            )
        _write_credentials(folder, plaintext)
        config.save(folder)
        ward = cls(folder, db, store, signer, credential=plaintext, clock=clock, ward_id=config.ward_id)
        return ward, plaintext


def _read_credentials(folder: Path) -> str | None:
    path = folder / CREDENTIALS_FILE
    try:
        return path.read_text("utf-8").strip() or None
    except OSError:
        return None


def _write_credentials(folder: Path, key: str) -> None:
    fd = os.open(folder / CREDENTIALS_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
