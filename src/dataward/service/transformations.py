"""Transformations as first-class events: a step that made records from other records.

A transformation (dedup, filter, augmentation, relabelling, translation...) names its code identity,
its parameters and the exact input versions it read, and, for 1:1 and n:1 steps, which input records
each output record came from. Its output is an ordinary contribution to the output dataset: it is
gated, reviewed, approved and merged like any other, and the ``transformation.recorded`` event is
appended in the same transaction as that contribution's ``contribution.submitted``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import select

from dataward.access.roles import Action
from dataward.catalog.projection import insert_row
from dataward.catalog.tables import transformations
from dataward.domain.errors import InputError
from dataward.domain.limits import InputLimits
from dataward.domain.records import canonical_table
from dataward.domain.schema import RECORD_ID
from dataward.io import read_table
from dataward.io.columns import refuse_hidden_labels
from dataward.ledger.events import format_time
from dataward.provenance.code import check_code_identity, code_identity
from dataward.service import rows
from dataward.service.config import WardConfig
from dataward.service.core import Service, UseCase, WardContext, new_id
from dataward.service.guard import SignedCheck
from dataward.service.recordstore import manifest_ids, parquet_to_table, table_to_parquet

if TYPE_CHECKING:
    from dataward.service.contributions import ContributionService
    from dataward.service.datasets import DatasetService

_STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_RECORD = re.compile(r"^[0-9a-f]{64}$")
SOURCE_SCHEME = "transformation:"
"""The source URI of a transformation's output contribution is ``transformation:NAME``."""


@dataclass(frozen=True)
class InputVersion:
    """One version a transformation read, resolved and authorized."""

    ref: str
    dataset: str
    dataset_id: str
    version: str
    manifest: str

    def to_dict(self) -> dict[str, str]:
        return {
            "ref": self.ref,
            "dataset": self.dataset,
            "dataset_id": self.dataset_id,
            "version": self.version,
            "manifest": self.manifest,
        }


def lineage_table(out_ids: Sequence[str], parents: Sequence[Sequence[str]], notes: Sequence[Any]) -> pa.Table:
    """One row per (output record, parent record) pair, with the step's note on that output record."""
    rec, par, note = [], [], []
    for oid, ps, n in zip(out_ids, parents, notes, strict=True):
        text = json.dumps(n, sort_keys=True) if n is not None else None
        for p in ps:
            rec.append(oid)
            par.append(p)
            note.append(text)
    return pa.table(
        {
            RECORD_ID: pa.array(rec, pa.string()),
            "parent_id": pa.array(par, pa.string()),
            "note": pa.array(note, pa.string()),
        }
    )


def read_lineage(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of a lineage object as ``{record_id, parent_id, note}`` (note decoded)."""
    out = []
    for r in table.to_pylist():
        out.append(
            {
                "record_id": r[RECORD_ID],
                "parent_id": r["parent_id"],
                "note": json.loads(r["note"]) if r["note"] else None,
            }
        )
    return out


def transformation_info(row: Any, dataset_name: str, contribution_ref: str, by: str | None) -> dict[str, Any]:
    """The JSON view of a transformation row."""
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "dataset": dataset_name,
        "contribution": contribution_ref,
        "code": json.loads(row.code),
        "params": json.loads(row.params),
        "inputs": json.loads(row.inputs),
        "lineage_object": row.lineage_object,
        "lineage_pairs": row.lineage_count,
        "by": by,
        "key": f"dw_{row.key_id}" if row.key_id else None,
        "created_at": row.created_at,
    }


def _parent_lists(parents: Sequence[Any], count: int) -> list[list[str]]:
    """Normalize ``parents`` (per output row: one record id or a list of them) and check its shape."""
    if len(parents) != count:
        raise InputError(
            f"parents name {len(parents)} output record(s), the output has {count}",
            hint="give one entry (a record id or a list of them) per output record, in order",
        )
    out = []
    for i, p in enumerate(parents, start=1):
        ids = [p] if isinstance(p, str) else list(p)
        if not ids:
            raise InputError(f"output record {i} names no parent record", hint="every output record comes from one")
        for pid in ids:
            if not isinstance(pid, str) or not _RECORD.match(pid):
                raise InputError(f"output record {i}: {pid!r} is not a record id (64 hex)")
        out.append(sorted(set(ids)))
    return out


def _rows_of(data: Any) -> list[Mapping[str, Any]]:
    """Records given through the Python API: an Arrow table, a pandas DataFrame or a list of mappings."""
    if isinstance(data, pa.Table):
        return data.to_pylist()
    if hasattr(data, "to_dict"):
        return data.to_dict(orient="records")  # type: ignore[no-any-return]
    return list(data)


def _label_change(rid: str, change: Any, reason: str) -> tuple[Any, str]:
    """A relabelling's new label for record ``rid`` and why: ``change`` is the label (why: the
    relabelling's ``reason``) or a pair ``(label, why)``, ``why`` a text. Anything else is refused
    (``InputError``): a list of another length read past its end, or took its second item as the why."""
    if not isinstance(change, tuple | list):
        return change, reason
    if len(change) != 2 or not isinstance(change[1], str):
        raise InputError(
            f"the change of record {rid} must be a label, or a label and why (two items, the second a text)",
            hint="give {RECORD_ID: LABEL} or {RECORD_ID: [LABEL, WHY]}",
        )
    return change[0], change[1]


class TransformationService(Service):
    """Use cases of transformations: record one, relabel records, list and show them."""

    def __init__(self, context: WardContext, datasets: DatasetService, contributions: ContributionService) -> None:
        super().__init__(context)
        self.datasets = datasets
        self.contributions = contributions

    def _resolve_inputs(self, inputs: str | Sequence[str]) -> list[InputVersion]:
        """Resolve and authorize the input versions: reading their records needs ``dataset.export``
        on each (refused as ``access.denied`` like any refusal); an unknown one is ``NotFound``."""
        refs = [inputs] if isinstance(inputs, str) else list(inputs)
        if not refs:
            raise InputError("a transformation reads at least one input version", hint="e.g. inputs='reviews@v3'")
        out = []
        for ref in refs:
            name, version = rows.split_ref(ref)
            scope = self.datasets.read_scope(name)
            with self.use_case(Action.DATASET_EXPORT, scope, detail={"transformation_input": ref}) as uc:
                ds = rows.dataset_row(uc.conn, name)
                ver = rows.version_row(uc.conn, ds.id, name, version)
                out.append(InputVersion(f"{name}@v{ver.number}", name, ds.id, ver.id, ver.manifest_object))
        return out

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
        (default: the dataset of the first input).

        ``data`` is the step's output records (a file, DataFrame, Arrow table or list of mappings);
        ``parents`` gives, per output record in order, the input record id(s) it came from (every one
        must be in an input version); ``notes`` an optional per-record note (a relabelling's ``{label:
        {from, to}, why}``). With ``replace`` (the default when ``output`` is one of the inputs'
        datasets) the output stands for the whole input version: input records left out of it are
        removed; otherwise only ``removes`` (ids in an input version) are. ``code`` is the step's code
        identity (default: the calling script's git commit and dirty flag, or its file hash).

        Returns the output contribution (as ``contribute`` does, gate report included) plus
        ``transformation``. Raises ``NotFound`` for an unknown input, ``AccessDenied`` for one the
        caller may not read, ``InputError`` for parents or removals outside the inputs."""
        if not _STEP_NAME.match(name or ""):
            raise InputError(f"{name!r} is not a valid transformation name", hint="letters, digits, _ . : -")
        identity = check_code_identity(dict(code) if code is not None else code_identity())
        try:
            step_params = json.loads(json.dumps(dict(params or {}), sort_keys=True, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InputError(f"transformation parameters must be JSON values: {exc}") from exc
        resolved = self._resolve_inputs(inputs)
        target = output or resolved[0].dataset
        input_ids: set[str] = set()
        for inp in resolved:
            input_ids.update(manifest_ids(self.store, inp.manifest))
        with self.db.reading() as conn:
            out_ds = rows.dataset_row(conn, target)
            schema = rows.dataset_schema(out_ds)
            latest = rows.latest_version(conn, out_ds.id)
        if isinstance(data, str | Path):
            bounds = InputLimits.coerce(limits, base=WardConfig.load(self.folder).limits())
            table = read_table(Path(data), schema, format=format, limits=bounds).table
        elif data is not None:
            table = canonical_table(schema, _rows_of(data))
            refuse_hidden_labels(schema, table)  # a relabelling's new labels too, as a file's are
        else:
            table = schema.arrow_schema().empty_table()
        out_ids = table.column(RECORD_ID).to_pylist()
        parent_lists = _parent_lists(parents, len(out_ids)) if parents is not None else None
        if parent_lists is not None:
            outside = sorted({p for ps in parent_lists for p in ps} - input_ids)
            if outside:
                raise InputError(
                    f"{len(outside)} parent record(s) are not in the input version(s), e.g. {outside[0]}",
                    hint="parents must be records of " + ", ".join(i.ref for i in resolved),
                )
        note_list = list(notes) if notes is not None else [None] * len(out_ids)
        if len(note_list) != len(out_ids):
            raise InputError(f"notes name {len(note_list)} output record(s), the output has {len(out_ids)}")
        latest_ids = set(manifest_ids(self.store, latest.manifest_object)) if latest else set()
        removed = set(removes or ())
        outside = sorted(removed - input_ids)
        if outside:
            raise InputError(f"{len(outside)} record(s) to remove are not in the input version(s), e.g. {outside[0]}")
        same = [i for i in resolved if i.dataset_id == out_ds.id]
        if replace is None:
            replace = bool(same)
        if replace:
            # The output stands for the input version(s) of this dataset: whatever of them it left out
            # goes; records merged after the input version are not the step's business and stay.
            kept = set(out_ids)
            for inp in same:
                removed.update(r for r in manifest_ids(self.store, inp.manifest) if r not in kept)
        removed &= latest_ids
        fresh = [i for i, rid in enumerate(out_ids) if rid not in latest_ids]
        adds = table.take(pa.array(fresh, pa.int64())).drop_columns([RECORD_ID]) if fresh else None
        if adds is None and not removed:
            raise InputError(
                f"the transformation changes nothing in {target!r}: its output is already the latest version",
                hint="nothing to record",
            )
        lineage_object = None
        pairs = 0
        if parent_lists is not None and out_ids:
            lineage = lineage_table(out_ids, parent_lists, note_list)
            pairs = lineage.num_rows
            lineage_object = self.store.put(table_to_parquet(lineage))
        tid = new_id("t")
        facts = {
            "name": name,
            "kind": kind,
            "code": identity,
            "params": step_params,
            "inputs": [i.to_dict() for i in resolved],
            "lineage_object": lineage_object,
            "lineage_pairs": pairs,
            "outputs": len(out_ids),
        }

        def record(uc: UseCase, contribution_id: str) -> None:
            now = format_time(uc.now)
            uc.emit(
                "transformation.recorded",
                {"dataset": out_ds.id, "contribution": contribution_id, "transformation": tid},
                facts,
                [
                    insert_row(
                        "transformations",
                        id=tid,
                        dataset_id=out_ds.id,
                        contribution_id=contribution_id,
                        name=name,
                        kind=kind,
                        code=json.dumps(identity, sort_keys=True),
                        params=json.dumps(step_params, sort_keys=True),
                        inputs=json.dumps(facts["inputs"], sort_keys=True),
                        lineage_object=lineage_object,
                        lineage_count=pairs,
                        created_by=uc.caller.principal_id,
                        key_id=uc.caller.key_id,
                        created_at=now,
                    )
                ],
            )

        info = self.contributions.contribute(
            target,
            adds,
            source=SOURCE_SCHEME + name,
            removes=sorted(removed) if removed else None,
            message=message or f"{kind} {name} of " + ", ".join(i.ref for i in resolved),
            gate=gate,
            progress=progress,
            on_submitted=record,
        )
        with self.db.reading() as conn:
            row = conn.execute(select(transformations).where(transformations.c.id == tid)).one()
            info["transformation"] = transformation_info(
                row, target, info["ref"], rows.principal_name(conn, row.created_by)
            )
        return info

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
        if not reason:
            raise InputError("a relabelling needs a reason", hint="pass --reason")
        if not changes:
            raise InputError("a relabelling changes at least one label")
        info, table = self.datasets.read_version(dataset, version)  # authorized before anything is said
        with self.db.reading() as conn:
            schema = rows.dataset_schema(rows.dataset_row(conn, dataset))
        if schema.is_llm:
            # Its label slot holds the kind's name: relabelling it was refused as a malformed 'kind' column.
            raise InputError(
                f"{dataset!r} holds {schema.kind.value} data: its records have no label to change",
                hint="change its records with a transformation (`dataward transform`)",
            )
        label = schema.label
        by_id = {r[RECORD_ID]: r for r in table.to_pylist()}
        out, parents, notes = [], [], []
        for rid, change in changes.items():
            if rid not in by_id:
                raise InputError(
                    f"record {rid} is not in {info['ref']}", hint=f"see `dataward export {info['ref']} -o records.csv`"
                )
            new, why = _label_change(rid, change, reason)
            old_row = by_id[rid]
            if old_row[label] == new:
                raise InputError(f"record {rid} already has label {new!r}")
            row = {k: v for k, v in old_row.items() if k != RECORD_ID}
            row[label] = new
            out.append(row)
            parents.append([rid])
            notes.append({"label": {"column": label, "from": old_row[label], "to": new}, "why": why})
        return self.record_transformation(
            "relabel",
            kind="relabel",
            inputs=[info["ref"]],
            output=dataset,
            data=out,
            parents=parents,
            notes=notes,
            removes=list(changes),
            replace=False,
            params={"reason": reason, "records": len(changes)},
            code={"kind": "unknown"},
            message=f"relabel {len(changes)} record(s): {reason}",
            gate=gate,
        )

    def transformations(self, dataset: str) -> list[dict[str, Any]]:
        """The transformations recorded into ``dataset``, oldest first.

        Every row shown (the step, its output contribution, who recorded it) is checked against the
        signed ledger, and a step the ledger recorded into the dataset that the catalog lacks is refused
        (``IntegrityViolation``), as ``trace`` refuses them: a step's code identity or parameters edited
        in the catalog alone must not be listed as what ran."""
        with self.use_case(Action.DATASET_READ, self.datasets.read_scope(dataset)) as uc:
            ds = rows.dataset_row(uc.conn, dataset)
            check = SignedCheck(self, uc.conn, doing="list")
            what = f"the transformations of {dataset!r}"
            check.row("datasets", ds, f"dataset {dataset!r}")
            listed = uc.conn.execute(
                select(transformations.c.id).where(transformations.c.dataset_id == ds.id)
            ).scalars()
            found = check.matching(
                "transformations", listed, check.ids_where("transformations", "dataset_id", {ds.id}), what
            )
            found.sort(key=lambda t: (t.created_at, t.id))
            made = check.by_id("contributions", [t.contribution_id for t in found], what)
            check.people([t.created_by for t in found])
            return [
                transformation_info(
                    t,
                    dataset,
                    f"{dataset}#{made[t.contribution_id].number}",
                    rows.principal_name(uc.conn, t.created_by),
                )
                for t in found
            ]

    def lineage(self, transformation_row: Any) -> list[dict[str, Any]]:
        """The record lineage of a transformation row (empty when it recorded none)."""
        if not transformation_row.lineage_object:
            return []
        return read_lineage(parquet_to_table(self.store.get(transformation_row.lineage_object)))

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
        """A context manager recording one step::

            with ward.transform("dedup", inputs="reviews@v3", params={"key": "text"}) as t:
                table = t.read()
                t.write(kept, parents=[[...ids merged into each kept record...], ...])
            t.result  # the output contribution, gated, plus its transformation

        Inputs are resolved and authorized on entry (an unknown or unreadable one is refused before
        the step runs); the step is recorded on a clean exit only. The code identity is taken from
        ``script`` (default: the file of the code calling ``transform``)."""
        identity = dict(code) if code is not None else code_identity(script) if script else code_identity()
        return Transformation(self, name, inputs, output, dict(params or {}), identity, replace, gate, message)


@dataclass
class Transformation:
    """One step in progress (see ``Ward.transform``)."""

    ward: TransformationService
    name: str
    inputs: str | Sequence[str]
    output: str | None
    params: dict[str, Any]
    code: dict[str, Any]
    replace: bool | None
    gate: bool
    message: str
    resolved: list[InputVersion] = field(default_factory=list)
    records: list[Mapping[str, Any]] = field(default_factory=list)
    parents: list[Any] | None = None
    notes: list[Any] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None

    def __enter__(self) -> Transformation:
        self.resolved = self.ward._resolve_inputs(self.inputs)
        return self

    def read(self, ref: str | None = None) -> pa.Table:
        """The records of an input version (default: the first), with their ``record_id``."""
        inp = self.resolved[0] if ref is None else next((i for i in self.resolved if ref in (i.ref, i.dataset)), None)
        if inp is None:
            raise InputError(f"{ref!r} is not an input of this transformation")
        _, table = self.ward.datasets.read_version(inp.dataset, inp.version)
        return table

    def write(self, data: Any, *, parents: Sequence[Any] | None = None, notes: Sequence[Any] | None = None) -> None:
        """Add output records; ``parents`` gives, per record in order, the input record id(s) it came
        from. Either every write names parents or none does."""
        batch = [{k: v for k, v in r.items() if k != RECORD_ID} for r in _rows_of(data)]
        if parents is not None and len(parents) != len(batch):
            raise InputError(f"parents name {len(parents)} record(s), the batch has {len(batch)}")
        if (parents is None) != (self.parents is None) and self.records:
            raise InputError("either every write of a transformation names parents or none does")
        if parents is not None:
            self.parents = [*(self.parents or []), *parents]
        self.records.extend(batch)
        self.notes.extend(notes if notes is not None else [None] * len(batch))

    def remove(self, ids: Sequence[str]) -> None:
        """Remove input records from the output dataset (for a step that does not replace its input)."""
        self.removes.extend(ids)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            return  # a failed step records nothing
        self.result = self.ward.record_transformation(
            self.name,
            inputs=[i.ref for i in self.resolved],
            data=self.records,
            output=self.output,
            parents=self.parents,
            notes=self.notes,
            removes=self.removes or None,
            params=self.params,
            code=self.code,
            replace=self.replace,
            gate=self.gate,
            message=self.message,
        )


__all__ = [
    "SOURCE_SCHEME",
    "InputVersion",
    "Transformation",
    "TransformationService",
    "lineage_table",
    "read_lineage",
    "transformation_info",
]
