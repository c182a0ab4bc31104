"""``Ward``: the service. One method per use case; the CLI and the HTTP server both call it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from dataward.access import DEFAULT_KEY_POLICY, generate_key
from dataward.access.roles import Action, Scope
from dataward.catalog import ledger_store
from dataward.catalog.database import CatalogDatabase
from dataward.catalog.projection import insert_row
from dataward.catalog.tables import ward_meta
from dataward.domain.errors import Conflict, InputError
from dataward.domain.schema import Schema
from dataward.ledger.events import Actor, format_time, utc_now
from dataward.ledger.signing import WardSigner
from dataward.service import auth
from dataward.service.approvals import ApprovalCases
from dataward.service.attestations import AttestationCases
from dataward.service.audit import AuditCases
from dataward.service.cards import CardCases
from dataward.service.checkpoints import CheckpointCases
from dataward.service.config import CREDENTIALS_FILE, SIGNING_KEY_FILE, WardConfig, locate_ward
from dataward.service.containment import ContainmentCases
from dataward.service.contributions import ContributionCases
from dataward.service.core import Clock, WardContext, new_id
from dataward.service.datasets import DatasetHandle, DatasetService
from dataward.service.gating import GateCases
from dataward.service.identity import IdentityCases
from dataward.service.incident import IncidentCases
from dataward.service.lineage_events import LineageCases
from dataward.service.loading import LoadCases
from dataward.service.models import ModelCases
from dataward.service.overrides import OverrideCases
from dataward.service.releases import ReleaseCases
from dataward.service.session import SessionCases
from dataward.service.tracing import TraceCases
from dataward.service.transformations import TransformationCases
from dataward.service.versions import VersionCases
from dataward.store import ObjectStore, open_store

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Services:
    """The services a ward is composed of, over one shared ``WardContext``. Each is handed the
    services it calls here, where the ward is composed, and nowhere else."""

    datasets: DatasetService

    @classmethod
    def compose(cls, context: WardContext) -> Services:
        """Build every service over ``context``, each wired to the ones it calls."""
        datasets = DatasetService(context)
        return cls(datasets=datasets)


class Ward(
    ReleaseCases,
    ModelCases,
    LoadCases,
    LineageCases,
    SessionCases,
    IncidentCases,
    CardCases,
    AttestationCases,
    TransformationCases,
    ContainmentCases,
    TraceCases,
    ApprovalCases,
    OverrideCases,
    IdentityCases,
    GateCases,
    AuditCases,
    CheckpointCases,
    VersionCases,
    ContributionCases,
):
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
    ) -> None:
        super().__init__(
            folder, db, store, signer, credential=credential, clock=clock, ward_id=ward_id, callers=callers
        )
        self.services = Services.compose(self)

    # --- datasets -------------------------------------------------------------------------------
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
        return self.services.datasets.create_dataset(
            name, schema, description=description, owner=owner, validation_for=validation_for
        )

    def datasets(self) -> list[dict[str, Any]]:
        """Every dataset with its latest version and training version."""
        return self.services.datasets.datasets()

    def dataset(self, name: str) -> DatasetHandle:
        """A handle on one dataset for the Python API."""
        return DatasetHandle(self, name)

    def read_version(self, dataset: str, ref: str | None = None) -> tuple[dict[str, Any], pa.Table]:
        """Info and canonical records of ``dataset@ref`` (default: latest); needs ``dataset.export``."""
        return self.services.datasets.read_version(dataset, ref)

    def _read_scope(self, name: str) -> Scope:
        return self.services.datasets.read_scope(name)

    def _validation_scope(self, name: str) -> tuple[Action, Scope]:
        return self.services.datasets.validation_scope(name)

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

    def as_key(self, key: str) -> Ward:
        """The same ward, acting as the principal of ``key`` (sharing its remembered callers)."""
        return type(self)(
            self.folder,
            self.db,
            self.store,
            self.signer,
            credential=key,
            clock=self.clock,
            ward_id=self.ward_id,
            callers=self.callers,
        )

    def remember_callers(self, *, ttl_s: float = 30.0, max_entries: int = 4096) -> Ward:
        """Remember verified keys between requests (what a server does; see ``auth.CallerCache``):
        a busy key costs one small read per request instead of a lookup of its key, principal and
        grants, and a revocation still takes effect on the very next request. Returns ``self``."""
        self.callers = auth.CallerCache(ttl_s=ttl_s, max_entries=max_entries)
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
        if (folder / "ward.json").exists():
            raise Conflict(f"{folder} is already a ward")
        if folder.exists() and any(folder.iterdir()):
            raise InputError(f"{folder} exists and is not empty", hint="choose a new or empty folder")
        created_folder = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
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
        db.migrate()
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
