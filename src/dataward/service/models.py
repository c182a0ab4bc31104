"""Use cases of training runs and the model registry.

A training run is started by the principal that trains (``training.record`` on ``model:NAME``) with its
code identity and parameters (``training.started``); every dataset version it reads through the guarded
loader is recorded in it (``training.read``, checked as the loader checks it); at the end its artifact
is hashed into model-signing's manifest, scanned for files that run code when loaded, stored
content-addressed, signed with the ward key and registered as the model's next version
(``training.finished`` and ``model.registered``). A run that fails is recorded as such
(``training.failed``).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from dataward.access.roles import Action, Scope
from dataward.catalog.projection import insert_row, update_row
from dataward.catalog.tables import datasets, model_approvals, model_gates, model_versions, training_runs, versions
from dataward.domain.errors import Conflict, InputError, IntegrityViolation, NotFound, PolicyViolation
from dataward.domain.hashing import canonical_json
from dataward.domain.limits import signable, text_keyed
from dataward.ledger.events import format_time
from dataward.provenance.attestation import sign_statement
from dataward.provenance.code import check_code_identity
from dataward.release.artifacts import Artifact, check_files, hash_artifact, unsafe_summary
from dataward.release.policy import ReleasePolicy
from dataward.service import rows
from dataward.service.core import Service, WardContext, new_id
from dataward.service.guard import (
    SignedCheck,
    barred_records,
    barred_summary,
    checked_manifest,
    checked_signed_rows,
    export_target,
    loadable_version,
    manifest_members,
    may,
    own_paths,
)
from dataward.service.identity import dataset_policy
from dataward.service.recordstore import manifest_ids
from dataward.service.withdrawn import refuse_withdrawn, withdrawal_of

if TYPE_CHECKING:
    from dataward.service.datasets import DatasetService

MODEL_STAGES = ("candidate", "released", "retired", "withdrawn")


def model_ref(ref: str) -> tuple[str, str]:
    """``MODEL@VERSION`` -> (model, version); version ``vN``, ``latest`` (default) or ``released``."""
    if not isinstance(ref, str) or not ref.strip():
        raise InputError(f"cannot read model reference {ref!r}", hint="write MODEL@vN")
    name, _, version = ref.strip().partition("@")
    rows.check_name("model", name)
    return name, version or "latest"


def model_version_row(conn: Connection, ref: str) -> Any:
    """The model version ``MODEL@vN`` / ``@latest`` / ``@released`` names (``NotFound`` otherwise)."""
    name, version = model_ref(ref)
    query = select(model_versions).where(model_versions.c.model == name)
    if version == "latest":
        row = conn.execute(query.order_by(model_versions.c.number.desc()).limit(1)).first()
    elif version in MODEL_STAGES:
        query = query.where(model_versions.c.stage == version)
        row = conn.execute(query.order_by(model_versions.c.number.desc()).limit(1)).first()
    elif re.fullmatch(r"v*[0-9]+", version):  # ASCII digits: str.isdigit() also takes '²', which int() refuses
        row = conn.execute(query.where(rows.number_is(model_versions.c.number, int(version.lstrip("v"))))).first()
    else:
        raise InputError(f"cannot read model version {version!r}", hint="write MODEL@vN, @latest or @released")
    if row is None:
        raise NotFound(f"model {name!r} has no version {version!r}", hint="list them with `dataward model list`")
    return row


def run_row(conn: Connection, run_id: str) -> Any:
    """The catalog's row of training run ``run_id`` (``NotFound`` otherwise), unchecked: what is shown
    or signed from it is checked first (``model_info`` with a ``check``, ``ReleaseService._checked``)."""
    row = conn.execute(select(training_runs).where(training_runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no training run {run_id!r}", hint="start one with `dataward train start MODEL`")
    return row


def trained_on(conn: Connection, mv: Any) -> list[tuple[Any, Any]]:
    """(dataset row, version row) of every dataset version a model version was trained on."""
    out = []
    for d in json.loads(mv.datasets):
        ds = conn.execute(select(datasets).where(datasets.c.id == d["dataset_id"])).one()
        ver = conn.execute(select(versions).where(versions.c.id == d["version_id"])).one()
        out.append((ds, ver))
    return out


def release_policy(conn: Connection, mv: Any) -> ReleasePolicy:
    """The strictest release policy of the datasets a model version was trained on."""
    return ReleasePolicy.strictest(
        ReleasePolicy.from_dict(dataset_policy(ds).release) for ds, _ in trained_on(conn, mv)
    )


def separation_on(conn: Connection, mv: Any) -> bool:
    """Separation of duties holds for a model unless every dataset it was trained on turned it off."""
    pairs = trained_on(conn, mv)
    return not pairs or any(dataset_policy(ds).separation_of_duties for ds, _ in pairs)


def affected_by(conn: Connection, store: Any, mv: Any, ledger: tuple[str, str]) -> list[str]:
    """Why a model version's training data can no longer be trusted: a dataset version it was trained on
    now holds records that must never reach training (quarantined or rejected since).

    Decided by the signed ledger (``ledger``: the ward's public key and id), not the catalog as it
    stands: which dataset versions the model read (its row as the ledger made it), those versions' rows,
    and which contributions are quarantined (``guard.barred_records`` with the ledger). A quarantine
    undone in the catalog (``contributions.status`` set back, ``removals.jsonl`` moved aside) let a
    model trained on it be released. What cannot be read as signed is named here as a reason ("cannot
    tell ..."), so a release refuses it and the views that list models still answer, saying so."""
    check = SignedCheck(None, conn, doing="judge the training data of", ledger=ledger)
    ref = f"{mv.model}@v{mv.number}"
    signed = check.state.tables["model_versions"].get((mv.id,))
    if signed is None:
        return [f"{ref}: model_versions {mv.id} was never recorded in the signed ledger; run `dataward verify`"]
    out = []
    for d in json.loads(signed.get("datasets") or "[]"):
        what = f"{ref} (its training data {d.get('ref') or d.get('version_id')})"
        try:
            ds = check.by_id("datasets", [d["dataset_id"]], what)[d["dataset_id"]]
            ver = check.by_id("versions", [d["version_id"]], what)[d["version_id"]]
        except IntegrityViolation as exc:
            out.append(f"{d.get('ref') or d.get('version_id')}: cannot tell which of its records are barred ({exc})")
            continue
        try:
            barred = barred_records(conn, store, ds, ver, manifest_ids(store, ver.manifest_object), ledger)
        except IntegrityViolation as exc:
            # A quarantine that could bar its records cannot be read (its id list lost, or its row altered
            # behind the ward's back): the views that list models still answer, saying so, and a release
            # refuses it as affected.
            out.append(f"{ds.name}@v{ver.number}: cannot tell which of its records are barred ({exc.message})")
            continue
        if barred:
            out.append(f"{ds.name}@v{ver.number}: {barred_summary(barred)}")
    return out


def model_info(conn: Connection, mv: Any, store: Any | None = None, check: SignedCheck | None = None) -> dict[str, Any]:
    """The JSON view of a model version (see docs/models.md). With ``check``, the model version row and
    its training run's row are first compared with the signed ledger: a run's code identity or
    parameters edited in the catalog alone are refused (``IntegrityViolation``), not shown."""
    run = run_row(conn, mv.run_id)
    if check is not None:
        check.row("model_versions", mv, f"model_versions {mv.id} ({mv.model}@v{mv.number})")
        check.row("training_runs", run, f"training_runs {run.id} (the run of {mv.model}@v{mv.number})")
    gate = conn.execute(
        select(model_gates).where(model_gates.c.model_version_id == mv.id).order_by(model_gates.c.created_at.desc())
    ).first()
    info = {
        "id": mv.id,
        "model": mv.model,
        "number": mv.number,
        "ref": f"{mv.model}@v{mv.number}",
        "digest": mv.digest,
        "format": mv.format,
        "unsafe": bool(mv.unsafe),
        "scan": json.loads(mv.scan),
        "stage": mv.stage,
        "datasets": [f"{ds.name}@v{ver.number}" for ds, ver in trained_on(conn, mv)],
        "run": {
            "id": run.id,
            "code": json.loads(run.code),
            "params": json.loads(run.params),
            "metrics": json.loads(run.metrics) if run.metrics else {},
            "started_at": run.started_at,
            "ended_at": run.ended_at,
        },
        "trained_by": rows.principal_name(conn, mv.created_by),
        "created_at": mv.created_at,
        "release_gate": None if gate is None else {"verdict": gate.verdict, "id": gate.id, "at": gate.created_at},
        "released_by": rows.principal_name(conn, mv.released_by) if mv.released_by else None,
        "released_at": mv.released_at,
    }
    if store is not None:
        if check is None:
            raise TypeError("model_info: which records are barred is read from the signed ledger; pass check")
        info["affected"] = affected_by(conn, store, mv, check.ledger)
    if check is not None and mv.stage == "withdrawn":
        # Who withdrew it, when and why: from its signed event (the row says only the stage).
        info["withdrawal"] = withdrawal_of(check.ward, conn, mv.id)
    return info


def restore_files(store: Any, mv: Any, folder: Path) -> dict[str, Any]:
    """Write a model version's files into ``folder`` from the object store (each object re-hashed on
    read) and check them against the signed manifest with model-signing; the manifest statement."""
    statement = json.loads(store.get(mv.manifest_object))
    files = json.loads(store.get(mv.files_object))
    for name, digest in files.items():
        target = (folder / name).resolve()
        if folder.resolve() not in target.parents:
            raise InputError(f"model file name {name!r} leaves its folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get(digest))
    check_files(statement, folder)
    return statement


def listed_files(store: Any, mv: Any) -> list[dict[str, Any]]:
    """A model version's files as the catalog lists them (the row's ``files_object``, which the signed
    ledger vouches for): each one's name, object digest and size. A client downloading the files holds
    the server to these (``dataward.client.model_download``): no more bytes, and only these."""
    files = json.loads(store.get(mv.files_object))
    return [{"name": name, "digest": digest, "size": store.size(digest)} for name, digest in sorted(files.items())]


class ModelService(Service):
    """Training runs and model versions."""

    def __init__(self, context: WardContext, datasets: DatasetService) -> None:
        super().__init__(context)
        self.datasets = datasets

    def start_training_run(
        self, model: str, *, params: dict[str, Any] | None = None, code: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start a training run of ``model``: its code identity (``provenance.code.code_identity``) and
        parameters are recorded now; the datasets it reads and its artifact as it goes and at its end."""
        rows.check_name("model", model)
        # Authorized before the parameters are read: checking and hashing them is work for a trainer only.
        self.admit(Action.TRAINING_RECORD, Scope.model(model), authorize=True)
        code = check_code_identity(code if code is not None else {"kind": "unknown"})
        params = signable(text_keyed(params, "training parameters"), "training parameters")
        with self.use_case(Action.TRAINING_RECORD, Scope.model(model)) as uc:
            run_id = new_id("run")
            now = format_time(uc.now)
            uc.emit(
                "training.started",
                {"run": run_id, "model": model},
                {"code": code, "params": params},
                [
                    insert_row(
                        "training_runs",
                        id=run_id,
                        model=model,
                        status="running",
                        code=json.dumps(code, sort_keys=True),
                        params=json.dumps(params, sort_keys=True),
                        datasets="[]",
                        started_by=uc.caller.principal_id,
                        key_id=uc.caller.key_id,
                        started_at=now,
                        ended_at=None,
                        model_version_id=None,
                    )
                ],
            )
            return {"run": run_id, "model": model, "code": code, "params": params, "started_at": now}

    def _own_running(self, uc: Any, run_id: str) -> Any:
        run = run_row(uc.conn, run_id)
        # What the run's next event signs (its parameters, the versions it read) is taken from this row.
        checked_signed_rows(self, uc.conn, "training_runs", [run], doing="record")
        if run.started_by != uc.caller.principal_id:
            raise PolicyViolation(
                f"training run {run_id} was started by another principal", hint="each trainer records its own runs"
            )
        if run.status != "running":
            raise Conflict(f"training run {run_id} is {run.status}")
        return run

    def record_training_read(self, run_id: str, dataset: str, version: str) -> dict[str, Any]:
        """Record that run ``run_id`` read ``dataset@version`` through the guarded loader. The version is
        checked as the loader checks it (any stage), and the caller must be allowed to read it."""
        self.admit(Action.TRAINING_RECORD, detail={"run": run_id})  # before the run is looked up
        with self.db.reading() as conn:
            model = run_row(conn, run_id).model
        with self.use_case(Action.TRAINING_RECORD, Scope.model(model), detail={"run": run_id}) as uc:
            run = self._own_running(uc, run_id)
            ds_scope = self.datasets.read_scope(dataset)
            from dataward.service import auth

            auth.authorize(uc.conn, uc.caller, Action.DATASET_EXPORT, ds_scope, uc.now)
            ds, ver, _ = loadable_version(self, uc.conn, dataset, version, None)
            read = json.loads(run.datasets)
            entry = {"dataset_id": ds.id, "version_id": ver.id, "ref": f"{ds.name}@v{ver.number}"}
            if entry not in read:
                read.append(entry)
                uc.emit(
                    "training.read",
                    {"run": run_id, "dataset": ds.id, "version": ver.id},
                    {"ref": entry["ref"], "manifest": ver.manifest_object},
                    [update_row("training_runs", {"id": run_id}, datasets=json.dumps(read, sort_keys=True))],
                )
            return {"run": run_id, "read": [d["ref"] for d in read]}

    def fail_training_run(self, run_id: str, *, reason: str) -> dict[str, Any]:
        """Record that a run ended without a model."""
        self.admit(Action.TRAINING_RECORD, detail={"run": run_id})  # before the run is looked up
        with self.db.reading() as conn:
            model = run_row(conn, run_id).model
        with self.use_case(Action.TRAINING_RECORD, Scope.model(model), detail={"run": run_id}) as uc:
            self._own_running(uc, run_id)
            uc.emit(
                "training.failed",
                {"run": run_id, "model": model},
                {"reason": reason[:2000]},
                [update_row("training_runs", {"id": run_id}, status="failed", ended_at=format_time(uc.now))],
            )
            return {"run": run_id, "status": "failed", "reason": reason[:2000]}

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
        # Before the run is looked up, its parameters hashed or its artifact read.
        self.admit(Action.MODEL_REGISTER, detail={"run": run_id})
        with self.db.reading() as conn:
            model = run_row(conn, run_id).model
        extra = signable(
            {"params": text_keyed(params, "training parameters"), "metrics": text_keyed(metrics, "metrics")},
            "parameters and metrics",
        )
        art = hash_artifact(artifact, name=model)  # outside the transaction: reads and hashes files
        with self.use_case(Action.MODEL_REGISTER, Scope.model(model), detail={"run": run_id}) as uc:
            run = self._own_running(uc, run_id)
            read = json.loads(run.datasets)
            if not read:
                raise PolicyViolation(
                    f"training run {run_id} read no dataset through the guarded loader",
                    hint="load the training data with dataward.load (or `dataward train load`) inside the run",
                )
            for d in read:
                # Data read then and quarantined since may not become a model.
                ds = uc.conn.execute(select(datasets).where(datasets.c.id == d["dataset_id"])).one()
                ver = uc.conn.execute(select(versions).where(versions.c.id == d["version_id"])).one()
                barred = barred_records(
                    uc.conn,
                    self.store,
                    ds,
                    ver,
                    manifest_members(checked_manifest(self, uc.conn, ds, ver)),
                    (self.signer.public_key_b64, self.ward_id),
                )
                if barred:
                    raise PolicyViolation(
                        f"{d['ref']}, read by run {run_id}, now holds records that must never reach training: "
                        f"{barred_summary(barred)}",
                        hint="train again on a version without them",
                    )
            policy = ReleasePolicy.strictest(
                ReleasePolicy.from_dict(
                    dataset_policy(
                        uc.conn.execute(select(datasets).where(datasets.c.id == d["dataset_id"])).one()
                    ).release
                )
                for d in read
            )
            if art.unsafe and policy.unsafe_artifacts == "refuse":
                raise PolicyViolation(
                    f"the artifact of run {run_id} runs code when loaded: {unsafe_summary(art.scan)}",
                    hint="the release policy refuses pickle-based files: save the model as safetensors, ONNX or skops",
                )
            return self._register(uc, run, art, read, extra)

    def _register(
        self, uc: Any, run: Any, art: Artifact, read: list[dict[str, Any]], extra: dict[str, Any]
    ) -> dict[str, Any]:
        files = {f.name: self.store.put_file(f.path) for f in art.files}
        files_object = self.store.put(canonical_json(files))
        manifest_object = self.store.put(canonical_json(art.statement))
        envelope = sign_statement(art.statement, self.signer.crypto_key())
        signature_object = self.store.put(canonical_json(envelope))
        number = (
            uc.conn.execute(
                select(func.max(model_versions.c.number)).where(model_versions.c.model == run.model)
            ).scalar()
            or 0
        ) + 1
        mv_id = new_id("mv")
        now = format_time(uc.now)
        params = {**json.loads(run.params), **extra["params"]}
        uc.emit(
            "training.finished",
            {"run": run.id, "model": run.model, "model_version": mv_id},
            {"params": params, "metrics": extra["metrics"], "datasets": [d["ref"] for d in read]},
            [
                update_row(
                    "training_runs",
                    {"id": run.id},
                    status="finished",
                    ended_at=now,
                    model_version_id=mv_id,
                    params=json.dumps(params, sort_keys=True),
                    metrics=json.dumps(extra["metrics"], sort_keys=True),
                )
            ],
        )
        uc.emit(
            "model.registered",
            {"model": run.model, "model_version": mv_id, "run": run.id},
            {
                "digest": art.digest,
                "format": art.format,
                "unsafe": art.unsafe,
                "scan": art.scan,
                "datasets": [d["ref"] for d in read],
                "manifest": manifest_object,
                "signature": signature_object,
            },
            [
                insert_row(
                    "model_versions",
                    id=mv_id,
                    model=run.model,
                    number=number,
                    run_id=run.id,
                    digest=art.digest,
                    manifest_object=manifest_object,
                    files_object=files_object,
                    signature_object=signature_object,
                    format=art.format,
                    scan=json.dumps(art.scan, sort_keys=True),
                    unsafe=int(art.unsafe),
                    datasets=json.dumps(read, sort_keys=True),
                    stage="candidate",
                    created_by=uc.caller.principal_id,
                    created_at=now,
                    released_by=None,
                    released_at=None,
                    attestation_object=None,
                )
            ],
        )
        mv = uc.conn.execute(select(model_versions).where(model_versions.c.id == mv_id)).one()
        info = model_info(uc.conn, mv)
        if art.unsafe:
            info["warning"] = f"the artifact runs code when loaded: {unsafe_summary(art.scan)}"
        return info

    def models(self, model: str | None = None) -> list[dict[str, Any]]:
        """Model versions (of one model, or every model the caller may read), newest first, each with
        ``affected`` listing training data quarantined or rejected since."""
        with self.use_case(Action.MODEL_READ, Scope.ward(), check=False) as uc:
            query = select(model_versions).order_by(model_versions.c.model, model_versions.c.number.desc())
            if model is not None:
                query = query.where(model_versions.c.model == model)
            out = []
            check = SignedCheck(self, uc.conn, doing="list")
            for mv in uc.conn.execute(query).all():
                if may(uc, Action.MODEL_READ, Scope.model(mv.model)):
                    out.append(model_info(uc.conn, mv, self.store, check))
            return out

    def model(self, ref: str) -> dict[str, Any]:
        """One model version with its run, datasets, scan, latest release gate and approvals."""
        name, _ = model_ref(ref)
        with self.use_case(Action.MODEL_READ, Scope.model(name)) as uc:
            mv = model_version_row(uc.conn, ref)
            info = model_info(uc.conn, mv, self.store, SignedCheck(self, uc.conn, doing="show"))
            info["approvals"] = [
                {
                    "by": rows.principal_name(uc.conn, a.principal_id),
                    "role": a.role,
                    "reason": a.reason,
                    "at": a.created_at,
                }
                for a in approvals_of(uc.conn, mv.id)
            ]
            info["files"] = listed_files(self.store, mv)
            return info

    def model_files(self, ref: str, folder: str | Path, *, accept_affected: bool = False) -> dict[str, Any]:
        """Write a model version's files into ``folder`` (checked against the signed manifest). Never the
        files of a withdrawn version; those of a released version trained on data held out of training
        since (affected) only with ``accept_affected``, the answer then carrying a ``warning``."""
        name, _ = model_ref(ref)
        with self.use_case(Action.MODEL_READ, Scope.model(name)) as uc:
            mv = model_version_row(uc.conn, ref)
            label = f"{mv.model}@v{mv.number}"
            # Withdrawn is the signed ledger's word, so a row set back to released serves nothing.
            refuse_withdrawn(self, uc.conn, mv, doing="serve the files of")
            # Which files are served, and whether they are affected, is decided on the row: the ledger's.
            SignedCheck(self, uc.conn, doing="serve").row("model_versions", mv, f"model_versions {mv.id} ({label})")
            warning = self._affected_warning(uc.conn, mv, accept_affected)
            target = Path(folder)
            export_target(target / "model", own_paths(self.folder, self.store, self.db))  # never into the ward
            if target.exists() and not target.is_dir():
                # mkdir raised FileExistsError through the CLI as a traceback.
                raise InputError(f"{target} is a file; a model's files are written into a folder", hint="give a folder")
            target.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="dataward-model-") as tmp:
                restore_files(self.store, mv, Path(tmp))
                for p in Path(tmp).rglob("*"):
                    if p.is_file():
                        dest = target / p.relative_to(tmp)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        dest.write_bytes(p.read_bytes())
            info = {"model": label, "digest": mv.digest, "folder": str(target)}
            return {**info, "warning": warning} if warning else info

    def _affected_warning(self, conn: Any, mv: Any, accepted: bool) -> str | None:
        """Refuse (``PolicyViolation``) the files of a released model version whose training data now holds
        quarantined or rejected records, unless ``accepted``; then the warning to give with them."""
        affected = (
            affected_by(conn, self.store, mv, (self.signer.public_key_b64, self.ward_id))
            if mv.stage == "released"
            else []
        )
        if not affected:
            return None
        label = f"{mv.model}@v{mv.number}"
        why = f"{label} is affected: its training data holds records that must never reach training: " + "; ".join(
            affected
        )
        withdraw = f"dataward model withdraw {label} --reason '...'"
        if not accepted:
            raise PolicyViolation(
                f"refusing to serve the files of {label}: {why}",
                hint=f"withdraw it ({withdraw}) and train again; to take its files anyway, pass --accept-affected",
                model=label,
            )
        return f"{why}; withdraw it with `{withdraw}`"


def approvals_of(conn: Connection, mv_id: str) -> list[Any]:
    return conn.execute(
        select(model_approvals)
        .where(model_approvals.c.model_version_id == mv_id)
        .order_by(model_approvals.c.created_at)
    ).all()


def affected_models(
    conn: Connection, store: Any, ledger: tuple[str, str], dataset_ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Released model versions whose training data now holds quarantined or rejected records (of the
    given datasets, or any), each with why: released as the signed ledger (``ledger``: the ward's public
    key and id) says, so a row moved out of ``released`` in the catalog alone is still listed, and
    judged by it (``affected_by``)."""
    from types import SimpleNamespace

    out = []
    signed = SignedCheck(None, conn, doing="list the affected models", ledger=ledger).signed("model_versions")
    released = sorted((r for r in signed if r.get("stage") == "released"), key=lambda r: (r["created_at"], r["id"]))
    for mv in (SimpleNamespace(**r) for r in released):
        read = [d["dataset_id"] for d in json.loads(mv.datasets)]
        if dataset_ids is not None and not set(read) & set(dataset_ids):
            continue
        why = affected_by(conn, store, mv, ledger)
        if why:
            out.append({"model": f"{mv.model}@v{mv.number}", "stage": mv.stage, "affected": why})
    return out
