"""``WardAPI``: the one interface to a ward, whether embedded (a folder) or served over HTTP.

The CLI, the Python API and the tests depend only on this protocol. Two implementations exist:
``dataward.service.Ward`` (in-process, against a folder) and ``dataward.client.HTTPWard`` (against
``dataward serve``). Both return the same JSON-shaped documents and raise the same
``dataward.domain.errors`` exceptions, so a caller cannot tell, and need not care, which it holds.

Arguments that name local files (a contribution's data, the ids it removes, an HTML report or an
export to write) always name files on the caller's side: the HTTP client uploads and downloads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from dataward.ledger.checkpoint import Checkpoint
    from dataward.service.audit import VerifyReport
    from dataward.service.datasets import DatasetHandle

Progress = Callable[[str], None]


@runtime_checkable
class WardAPI(Protocol):
    """Every use case the CLI offers, one method each. Documents are plain JSON-able dicts/lists."""

    @property
    def ward_id(self) -> str:
        """The ward's id (read-only: both implementations take it from the ward itself)."""
        ...

    def close(self) -> None:
        """Release what the ward holds open (a folder's catalog connections, after the checkpoint
        under way; a served ward's HTTP connections). Both also work as context managers."""
        ...

    # --- who is calling ---------------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        """The acting principal, the key in use and its grants."""
        ...

    # --- principals, keys, grants, policies ---------------------------------------------------
    def create_principal(
        self, name: str, *, kind: str = "human", owner: str | None = None, description: str = ""
    ) -> dict[str, Any]:
        """Register a human or a service principal (a service names its accountable human owner)."""
        ...

    def principals(self) -> list[dict[str, Any]]:
        """Every principal with its kind, owner and status."""
        ...

    def disable_principal(self, name: str, *, transfer_to: str | None = None, reason: str = "") -> dict[str, Any]:
        """Offboard a human (their bots are suspended unless transferred)."""
        ...

    def transfer_principal(self, service: str, new_owner: str) -> dict[str, Any]:
        """Hand a service principal to another human."""
        ...

    def enable_principal(self, name: str, *, reason: str = "") -> dict[str, Any]:
        """Let a disabled human or a suspended service principal (its owner active) act again; admin only,
        and no old key works again."""
        ...

    def issue_key(
        self,
        principal: str | None = None,
        *,
        ttl_days: int | None = None,
        scopes: list[str] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Issue an API key (its plaintext is in the answer, once)."""
        ...

    def rotate_key(self, key: str, *, overlap_hours: float = 24.0) -> dict[str, Any]:
        """Issue a key's successor; the old key works for the overlap window."""
        ...

    def revoke_key(self, key: str, *, reason: str = "") -> dict[str, Any]:
        """Revoke a key and every key minted through it."""
        ...

    def keys(self, principal: str | None = None) -> list[dict[str, Any]]:
        """API keys (never their secrets) with their state."""
        ...

    def grant(self, principal: str, role: str, scope: str = "ward") -> dict[str, Any]:
        """Give a role on the ward or on ``dataset:NAME``."""
        ...

    def revoke_grant(self, principal: str, role: str, scope: str = "ward") -> dict[str, Any]:
        """Take a role away."""
        ...

    def grants(self, principal: str | None = None) -> list[dict[str, Any]]:
        """Active grants."""
        ...

    def set_policy(self, dataset: str, policy_yaml: str) -> dict[str, Any]:
        """Replace a dataset's policy (YAML text)."""
        ...

    def policy(self, dataset: str) -> dict[str, Any]:
        """A dataset's effective policy."""
        ...

    def access_review(self, *, unused_days: int | None = None, recent_days: int = 30) -> list[dict[str, Any]]:
        """What an auditor should look at, each row with its fix."""
        ...

    # --- datasets and contributions -------------------------------------------------------------
    def create_dataset(
        self,
        name: str,
        schema: Any,
        *,
        description: str = "",
        owner: str | None = None,
        validation_for: str | None = None,
    ) -> dict[str, Any]:
        """Create a dataset (``schema``: a ``Schema`` or its dict) or a clean validation set."""
        ...

    def datasets(self) -> list[dict[str, Any]]:
        """The datasets the caller may read (``dataset.read``, or the whole ward's ``ledger.read``), with
        their latest and training versions."""
        ...

    def dataset_info(self, name: str) -> dict[str, Any]:
        """One dataset as ``datasets`` lists it (its schema among the rest); needs ``dataset.read`` on it."""
        ...

    def dataset(self, name: str) -> DatasetHandle:
        """A handle on one dataset for the Python API (``.version("training").to_pandas()``)."""
        ...

    def read_version(self, dataset: str, ref: str | None = None) -> tuple[dict[str, Any], pa.Table]:
        """A version's document and its canonical records (needs ``dataset.export``)."""
        ...

    def load_version(
        self, dataset: str, ref: str | None = None, *, stage: str | None = "training"
    ) -> tuple[dict[str, Any], pa.Table]:
        """A version's document and records for training (the guarded loader, ``dataward.load``): refused
        when the version is not in ``stage`` (``None``: any) or holds quarantined or rejected records."""
        ...

    def stream_version(
        self, dataset: str, ref: str | None = None, *, stage: str | None = "training", batch_rows: int = 10_000
    ) -> tuple[dict[str, Any], Iterator[pa.RecordBatch]]:
        """As ``load_version``, the records as Arrow record batches (``dataward.stream``)."""
        ...

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
        progress: Progress | None = None,
        limits: Any = None,
    ) -> dict[str, Any]:
        """Submit a contribution (records from a local file added, ids removed) and gate it.

        ``limits`` (an ``InputLimits`` or names to sizes) adjusts the input limits for this import; a
        served ward accepts only limits at or below its own."""
        ...

    def contribution(self, ref: str) -> dict[str, Any]:
        """One contribution with its source's details."""
        ...

    def contributions(self, dataset: str, *, status: str | None = None) -> list[dict[str, Any]]:
        """A dataset's contributions with their gate verdicts."""
        ...

    def withdraw(self, contribution: str, *, reason: str = "") -> dict[str, Any]:
        """Withdraw your own contribution before it is merged."""
        ...

    def approve(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Approve a contribution, merged or not, or a whole version ``DATASET@vN`` (never your own work or
        your bot's)."""
        ...

    def reject(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Reject a contribution."""
        ...

    def merge(self, contribution_ref: str, *, message: str = "") -> dict[str, Any]:
        """Merge a contribution into a new immutable version."""
        ...

    # --- versions -------------------------------------------------------------------------------
    def versions(self, dataset: str) -> list[dict[str, Any]]:
        """A dataset's versions and stages."""
        ...

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """Records added and removed between two versions."""
        ...

    def export(self, ref: str, path: str | Path, *, format: str = "parquet") -> dict[str, Any]:
        """Write a version's records to a local file."""
        ...

    def promote(
        self, ref: str, *, stage: str = "training", reason: str = "", accept_shrink: bool = False
    ) -> dict[str, Any]:
        """Promote a version to training, or retire it; ``accept_shrink`` for a version with no record or
        leaving out most of the training version's records."""
        ...

    # --- gates and review -----------------------------------------------------------------------
    def run_gate(self, contribution_ref: str, *, progress: Progress | None = None) -> dict[str, Any]:
        """Run the dataset's gate on a contribution (its readable report: ``gate_report``, drawn by the
        CLI's ``--html`` and the console). ``progress`` is told which step is running."""
        ...

    def gate_report(self, contribution_ref: str) -> dict[str, Any]:
        """The latest stored gate report of a contribution."""
        ...

    def override_block(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Request or confirm lifting a gate's block (two owners or admins)."""
        ...

    def selftest(self, dataset: str, contribution_ref: str | None = None, *, seed: int = 0) -> dict[str, Any]:
        """Plant known poisons and report what this dataset's gate catches."""
        ...

    def review_list(
        self, dataset: str | None = None, *, status: str = "pending", contribution: str | None = None
    ) -> list[dict[str, Any]]:
        """Quarantined records waiting for (or given) a decision."""
        ...

    def review_show(self, item: str) -> dict[str, Any]:
        """One quarantined record with the gate's evidence."""
        ...

    def review_decide(
        self, items: list[str], decision: str, *, reason: str, contribution: str | None = None
    ) -> list[dict[str, Any]]:
        """Accept or reject quarantined records (and every pending one of ``contribution``, in one go)."""
        ...

    # --- audit: trace, containment, ledger, verify, checkpoints ----------------------------------
    def trace(self, ref: str) -> dict[str, Any]:
        """Where a record, contribution, key or version came from and where it went."""
        ...

    def quarantine_contribution(self, contribution: str, *, reason: str) -> dict[str, Any]:
        """Hold a whole contribution out of every future version."""
        ...

    def quarantine_by(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Quarantine everything a key (``dw_...``), ``principal:NAME`` or ``source:URI`` touched."""
        ...

    def relabel(
        self, dataset: str, changes: Mapping[str, Any], *, reason: str, version: str | None = None, gate: bool = True
    ) -> dict[str, Any]:
        """Change records' labels as a gated contribution recorded as a ``relabel`` transformation."""
        ...

    def transformations(self, dataset: str) -> list[dict[str, Any]]:
        """The transformations recorded into a dataset."""
        ...

    def attest(self, ref: str) -> list[dict[str, Any]]:
        """In-toto attestation envelopes (DSSE, signed with the ward key) about a version."""
        ...

    def card(self, ref: str) -> dict[str, Any]:
        """A dataset card of a version: ``{version, croissant, markdown}`` (Croissant JSON-LD, Markdown)."""
        ...

    def ledger(
        self, *, limit: int | None = None, types: list[str] | None = None, newest_first: bool = True
    ) -> list[dict[str, Any]]:
        """Ledger events."""
        ...

    def ledger_head(self) -> dict[str, Any]:
        """The newest event's number and hash."""
        ...

    def ledger_export(self) -> dict[str, Any]:
        """The whole chain, for a verifier in any language."""
        ...

    def public_key(self) -> dict[str, Any]:
        """The ward's Ed25519 public key."""
        ...

    def verify(
        self, *, checkpoints: Sequence[Checkpoint] = (), public_key: str | None = None, all_signatures: bool = False
    ) -> VerifyReport:
        """Re-check ledger, objects and catalog, anchored to checkpoints and a pinned key; with
        ``all_signatures``, every event's own signature too (by default a spaced subset that covers
        the chain)."""
        ...

    def checkpoint(self) -> dict[str, Any]:
        """Sign a checkpoint of the ledger head."""
        ...

    def checkpoints(self) -> list[dict[str, Any]]:
        """Checkpoints kept by the ward."""
        ...

    def witness(self) -> dict[str, Any]:
        """Where checkpoints are witnessed."""
        ...

    def set_witness(self, location: str | None) -> dict[str, Any]:
        """Set (or, with ``None``, turn off) the witness location."""
        ...

    # --- training runs and the model registry ---------------------------------------------------
    def start_training_run(
        self, model: str, *, params: dict[str, Any] | None = None, code: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start a training run of ``model``: its code identity and parameters are recorded now."""
        ...

    def record_training_read(self, run_id: str, dataset: str, version: str) -> dict[str, Any]:
        """Record that a run read ``dataset@version`` through the guarded loader."""
        ...

    def fail_training_run(self, run_id: str, *, reason: str) -> dict[str, Any]:
        """Record that a run ended without a model."""
        ...

    def finish_training_run(
        self,
        run_id: str,
        artifact: str | Path,
        *,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """End a run with its artifact (a file or a folder): hashed, scanned, signed, registered."""
        ...

    def models(self, model: str | None = None) -> list[dict[str, Any]]:
        """Model versions the caller may read, newest first."""
        ...

    def model(self, ref: str) -> dict[str, Any]:
        """One model version with its run, datasets, scan, release gate and approvals."""
        ...

    def model_files(self, ref: str, folder: str | Path, *, accept_affected: bool = False) -> dict[str, Any]:
        """Write a model version's files, checked against its signed manifest, into ``folder``: refused
        for a withdrawn version, and for an affected released one unless ``accept_affected``."""
        ...

    def probe_inputs(self, ref: str, path: str | Path) -> dict[str, Any]:
        """Write the release gate's probe set of a model version to a Parquet file."""
        ...

    def model_gate(
        self,
        ref: str,
        *,
        predict: Callable[[pa.Table], Sequence[Any]] | Any | None = None,
        predictions: str | Path | None = None,
        trusted: Sequence[str] = (),
        seed: int = 0,
    ) -> dict[str, Any]:
        """Run the release gate on ``MODEL@VERSION``."""
        ...

    def model_gate_report(self, ref: str) -> dict[str, Any]:
        """The latest stored release gate report of a model version."""
        ...

    def approve_model(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Approve a model version for release (never by the side that trained it)."""
        ...

    def release_model(self, ref: str, *, reason: str = "") -> dict[str, Any]:
        """Release a model version: promoter, passing gate, approvals; a signed attestation."""
        ...

    def withdraw_model(self, ref: str, *, reason: str) -> dict[str, Any]:
        """Withdraw a released model version (as its releaser may; a reason is required)."""
        ...

    def model_attestation(self, ref: str) -> list[dict[str, Any]]:
        """A model version's DSSE envelopes (model-signing manifest, release attestation)."""
        ...


__all__ = ["Progress", "WardAPI"]
