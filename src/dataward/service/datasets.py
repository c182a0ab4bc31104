"""Use cases on datasets: create, list, and the Python handles ``ward.dataset(name).version(ref)``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from dataward.access import authorize_grant, check_can_receive
from dataward.access.authorize import PrincipalKind
from dataward.access.roles import Action, Role, Scope
from dataward.catalog.projection import insert_row
from dataward.catalog.tables import datasets, versions
from dataward.domain.errors import Conflict, InputError
from dataward.domain.schema import Schema
from dataward.ledger.events import format_time
from dataward.service import auth, rows
from dataward.service.concealment import remember_named
from dataward.service.core import Service, UseCase, new_id
from dataward.service.guard import (
    checked_identity_people,
    checked_signed_rows,
    checked_version_listing,
    guarded_read,
    may,
)
from dataward.service.validation_schema import check_validation_schema

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from dataward.api import WardAPI


def dataset_info(row: Any, owner_name: str | None = None) -> dict[str, Any]:
    """The JSON view of a dataset row (see docs/cli.md)."""
    return {
        "id": row.id,
        "name": row.name,
        "owner": owner_name or row.owner_id,
        "role": row.role,
        "validation_for": row.validation_for,
        "description": row.description or "",
        "schema": json.loads(row.schema),
        "policy_hash": row.policy_hash,
        "created_at": row.created_at,
    }


def version_info(row: Any, dataset_name: str) -> dict[str, Any]:
    """The JSON view of a version row (see docs/cli.md)."""
    return {
        "id": row.id,
        "dataset": dataset_name,
        "number": row.number,
        "ref": f"{dataset_name}@v{row.number}",
        "parent": row.parent_id,
        "records": row.record_count,
        "stage": row.stage,
        "contributions": json.loads(row.contributions),
        "created_at": row.created_at,
        "created_by": row.created_by,
    }


def dataset_read_scope(row: Any) -> Scope:
    """The scope reads of dataset ``row`` are authorized on (a validation set: the dataset it guards)."""
    return Scope.dataset(row.validation_for if row.role == "validation" else row.name)


def _listing(ward: Any, conn: Any, row: Any) -> dict[str, Any]:
    """A dataset row's JSON view with its latest and training version numbers (``datasets``), once the
    dataset row and its version rows agree with the signed ledger (see ``guard.checked_version_listing``):
    a stage moved in the catalog alone is refused, not listed."""
    found = conn.execute(select(versions).where(versions.c.dataset_id == row.id).order_by(versions.c.number)).all()
    checked_version_listing(ward, conn, row.name, found, dataset=row)
    info = dataset_info(row, rows.principal_name(conn, row.owner_id))
    info["latest"] = found[-1].number if found else None
    training = [v.number for v in found if v.stage == "training"]
    info["training"] = training[0] if training else None
    return info


class DatasetService(Service):
    """Use cases on datasets and reading versions; the scope a read of a dataset is authorized on."""

    def create_dataset(
        self,
        name: str,
        schema: Schema | dict[str, Any],
        *,
        description: str = "",
        owner: str | None = None,
        validation_for: str | None = None,
    ) -> dict[str, Any]:
        """Create a dataset (or, with ``validation_for``, the clean validation set of one).

        The owner (default: the caller) gets the ``owner`` role on it. A validation set is owned by its
        dataset's owner and only that owner may write it.
        """
        rows.check_name("dataset", name)
        if not isinstance(schema, Schema):
            self.admit(Action.DATASET_CREATE, authorize=True)  # a schema is read for whoever may create one
            schema = Schema.from_dict(schema)
        with self.use_case(Action.DATASET_CREATE, Scope.ward()) as uc:
            rows.check_unique_name("dataset", name, uc.conn.execute(select(datasets.c.name)).scalars())
            role = "dataset"
            if validation_for is not None:
                parent = rows.dataset_row(uc.conn, validation_for)
                if parent.role != "dataset":
                    raise InputError(f"{validation_for!r} is itself a validation set")
                # The gate reads the validation set's records with the dataset's schema.
                check_validation_schema(validation_for, rows.dataset_schema(parent), schema)
                if uc.conn.execute(select(datasets.c.id).where(datasets.c.validation_for == validation_for)).first():
                    raise Conflict(f"{validation_for!r} already has a clean validation set")
                # Its owner becomes the validation set's, the one principal who may write to it.
                checked_signed_rows(self, uc.conn, "datasets", [parent], doing="make a validation set for")
                owner_id = parent.owner_id
                role = "validation"
            else:
                owner_id = uc.caller.principal_id
                if owner:
                    owner_id = self._owner_to_grant(uc, name, owner)
            ds_id = new_id("d")
            now = format_time(uc.now)
            changes = [
                insert_row(
                    "datasets",
                    id=ds_id,
                    name=name,
                    owner_id=owner_id,
                    schema=json.dumps(schema.to_dict(), sort_keys=True),
                    description=description,
                    role=role,
                    validation_for=validation_for,
                    policy=None,
                    policy_hash=None,
                    created_at=now,
                    created_by=uc.caller.principal_id,
                )
            ]
            if validation_for is None:
                changes.append(
                    insert_row(
                        "grants",
                        id=new_id("g"),
                        principal_id=owner_id,
                        role=Role.OWNER.value,
                        scope_kind="dataset",
                        scope_name=name,
                        granted_by=uc.caller.principal_id,
                        granted_at=now,
                    )
                )
            uc.emit(
                "dataset.created",
                {"dataset": ds_id},
                {"name": name, "schema": schema.to_dict(), "validation_for": validation_for},
                changes,
            )
            return dataset_info(uc.conn.execute(select(datasets).where(datasets.c.id == ds_id)).one())

    def _owner_to_grant(self, uc: UseCase, name: str, owner: str) -> str:
        """The id of principal ``owner``, to be given ``owner`` on the new dataset ``name``: a grant to
        someone else, held to the rules of ``grant add`` (``authorize_grant``: a key narrowed to
        ``dataset.create`` hands out no owner grant, a power the key never had; ``check_can_receive``: no
        grant to a disabled human or a suspended bot, where it would take effect unseen once enabled)."""
        if owner in (uc.caller.principal_id, uc.caller.principal_name):
            return uc.caller.principal_id  # the creator owns it, as without ``owner``
        authorize_grant(
            uc.caller.principal, uc.caller.key, uc.caller.grants, Role.OWNER, Scope.dataset(name), uc.now
        ).raise_if_denied()
        # The owner grant goes to the id the name means in the signed ledger, or nowhere; so does the
        # bot owner whose status decides whether a service principal may receive it.
        found = rows.principal_row(uc.conn, owner)
        people = [found]
        if found.kind == PrincipalKind.SERVICE.value and found.owner_id is not None:
            people.append(rows.principal_row(uc.conn, found.owner_id))
        checked_identity_people(uc.conn, self.context.ledger, people, [], doing="make a dataset owned by")
        bot_owner = auth.principal_from_row(people[1]) if len(people) > 1 else None
        check_can_receive(auth.principal_from_row(found), bot_owner, f"the owner grant of dataset {name!r}")
        return str(found.id)

    def datasets(self) -> list[dict[str, Any]]:
        """The datasets the caller may read, with their latest and training versions.

        A dataset is listed when the caller may ``dataset.read`` it (a clean validation set: the
        dataset it guards) or may read the whole ward's ledger, which names every dataset anyway. A
        caller whose grants reach no dataset gets an empty list, as ``models`` does."""
        # Authorization is per row: a grant on one dataset must show that dataset, not refuse the list.
        with self.use_case(Action.DATASET_READ, Scope.ward(), check=False) as uc:
            whole_ward = may(uc, Action.LEDGER_READ, Scope.ward())
            out = []
            for row in uc.conn.execute(select(datasets).order_by(datasets.c.name)):
                if whole_ward or may(uc, Action.DATASET_READ, dataset_read_scope(row)):
                    out.append(_listing(self, uc.conn, row))
            return out

    def dataset_info(self, name: str) -> dict[str, Any]:
        """One dataset (its schema, owner, latest and training versions); needs ``dataset.read`` on it."""
        with self.use_case(Action.DATASET_READ, self.read_scope(name)) as uc:
            return _listing(self, uc.conn, rows.dataset_row(uc.conn, name))

    def validation_scope(self, name: str) -> tuple[Action, Scope]:
        """Writes to a clean validation set need ``validation.write`` on the dataset it guards."""
        with self.db.reading() as conn:
            ds = rows.dataset_row(conn, name)
        if ds.role == "validation":
            remember_named(name, Scope.dataset(ds.validation_for))
            return Action.VALIDATION_WRITE, Scope.dataset(ds.validation_for)
        return Action.CONTRIBUTION_SUBMIT, Scope.dataset(name)

    def read_version(self, dataset: str, ref: str | None = None) -> tuple[dict[str, Any], pa.Table]:
        """Info and canonical records of ``dataset@ref`` (default: latest); needs ``dataset.export``."""
        # Records leave the ward here as they do through `export`: one permission governs both, and what
        # is served is checked against the signed ledger first (see service/guard.py).
        with self.use_case(Action.DATASET_EXPORT, self.read_scope(dataset)) as uc:
            ver, table = guarded_read(self, uc.conn, dataset, ref)
            return version_info(ver, dataset), table

    def read_scope(self, name: str) -> Scope:
        """What a read of dataset ``name`` is authorized on: the dataset, or for a clean validation
        set the dataset it guards."""
        # A dataset's role (and the dataset a validation set serves) is fixed when it is created, so
        # the scope is read once per process and not in a transaction of its own on every read. A name
        # not found is not remembered: it is looked up (and refused) every time.
        key = ("dataset_scope", name)
        scope = self.db.settled.get(key)
        if scope is None:
            with self.db.reading() as conn:
                ds = rows.dataset_row(conn, name)
            scope = Scope.dataset(ds.validation_for if ds.role == "validation" else name)
            self.db.settled[key] = scope
        # A refusal of a caller who may not see the dataset names it as the caller did (not_found).
        remember_named(name, scope)
        return scope


class DatasetHandle:
    """``ward.dataset(name)``: versions and contributions of one dataset."""

    def __init__(self, ward: WardAPI, name: str) -> None:
        self._ward = ward
        self.name = name

    def version(self, ref: str | None = None) -> VersionHandle:
        """A handle on ``ref`` (``latest``, ``training``, ``vN`` or an id prefix)."""
        return VersionHandle(self._ward, self.name, ref)

    def versions(self) -> list[dict[str, Any]]:
        """Every version of the dataset, oldest first."""
        return self._ward.versions(self.name)

    def contribute(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        """Submit a contribution to this dataset (see ``Ward.contribute``)."""
        return self._ward.contribute(self.name, path, **kwargs)

    def __repr__(self) -> str:
        return f"<dataset {self.name}>"


class VersionHandle:
    """``ward.dataset(name).version(ref)``: one immutable version, loaded on demand."""

    def __init__(self, ward: WardAPI, dataset: str, ref: str | None) -> None:
        self._ward = ward
        self.dataset = dataset
        self.ref = ref
        self._loaded: tuple[dict[str, Any], pa.Table] | None = None

    def _load(self) -> tuple[dict[str, Any], pa.Table]:
        if self._loaded is None:
            self._loaded = self._ward.read_version(self.dataset, self.ref)
        return self._loaded

    @property
    def info(self) -> dict[str, Any]:
        """The version's JSON view (number, stage, records, contributions)."""
        return self._load()[0]

    def to_arrow(self) -> pa.Table:
        """The version's records as a canonical Arrow table (``record_id`` first)."""
        return self._load()[1]

    def to_pandas(self) -> pd.DataFrame:
        """The version's records as a pandas DataFrame (``record_id`` first)."""
        return self.to_arrow().to_pandas()

    def __repr__(self) -> str:
        return f"<version {self.dataset}@{self.ref or 'latest'}>"
