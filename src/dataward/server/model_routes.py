"""The ``/api/v1`` routes of training runs and the model registry: one per use case, each a thin adapter
from HTTP to ``WardAPI`` (``dataward.service.models`` and ``dataward.service.releases``).

Files travel as uploads (``POST /uploads``) and downloads: a model artifact is one file, or a folder
sent as a tar archive and unpacked on the server within limits (plain files and folders only, no
sparse members, no paths out of the folder, at most the upload limit in all:
``dataward.io.archives``); a model's files come back as a tar archive, and the release gate's probe
set as Parquet. What the service writes to the server's scratch space is named in answers and errors
by the name the client gave it.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from dataward.domain.errors import DatawardError, InputError
from dataward.io.archives import ArchiveLimits, extract_tar
from dataward.server.app import text_only_body
from dataward.server.models import Document, Documents, JobInfo
from dataward.server.routes import _renamed_errors, _replace, doc, job_answer

if TYPE_CHECKING:
    from dataward.api import WardAPI
    from dataward.server.app import ServerState
    from dataward.server.uploads import Upload

TAR_MEDIA_TYPE = "application/x-tar"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainingStart(_Body):
    model: str = Field(..., max_length=200, description="The model's name.")
    params: dict[str, Any] = Field(default_factory=dict)
    code: dict[str, Any] | None = Field(None, description="The code identity (git commit or script hash).")


class TrainingRead(_Body):
    dataset: str = Field(..., max_length=200)
    version: str = Field(..., max_length=200, description="vN, training, or a version id.")


class TrainingFail(_Body):
    reason: str = Field("failed", max_length=2000)


class TrainingFinish(_Body):
    upload: str = Field(..., description="The upload holding the artifact (a file, or a folder as a tar).")
    name: str = Field(..., max_length=255, description="The artifact's file or folder name.")
    kind: Literal["file", "folder"] = "file"
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)


class ModelGateRun(_Body):
    predictions_upload: str | None = Field(None, description="An upload of probe_id,prediction rows.")
    predictions_name: str | None = Field(None, max_length=4096, description="The predictions file's name.")
    trusted: list[str] = Field(
        default_factory=list,
        description="Types a .skops file may rebuild; only those the operator allowed (serve --trust-skops-type).",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="The probes' random seed.")


class ModelReason(_Body):
    reason: str = Field("", max_length=2000)


def _artifact_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise InputError(f"artifact name {name!r} is not a plain file or folder name")
    return name


def unpack_artifact(upload: Upload, name: str, kind: str, into: Path, *, max_bytes: int) -> Path:
    """The artifact of ``upload`` under ``into``, named ``name``: the file itself, or the folder its tar
    archive holds. A folder unpacks to at most ``max_bytes`` (the server's upload limit), in plain files
    and folders only: sparse members, links, devices, paths that would land outside it, oversized
    members and too many members are refused before anything is written (:mod:`dataward.io.archives`)."""
    target = into / _artifact_name(name)
    if kind == "file":
        shutil.copyfile(upload.path, target)
        return target
    target.mkdir()
    extract_tar(upload.path, target, ArchiveLimits.within(max_bytes), what=f"the artifact folder {name!r}")
    return target


def pack_folder(folder: Path, archive: Path) -> None:
    """``folder``'s files (not the folder itself) into an uncompressed tar at ``archive``."""
    with tarfile.open(archive, mode="w:") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)


def build_model_router(state: ServerState) -> APIRouter:
    r = APIRouter(dependencies=[Depends(state.precheck_dependency), Depends(text_only_body)])

    def ward(request: Request) -> WardAPI:
        return state.caller(request)

    def owner_of(w: WardAPI) -> str:
        return str(w.whoami()["principal_id"])

    def claimed(request: Request, upload_id: str, owner: str) -> Upload:
        key = state.key_id(request)  # an upload is named with the key that sent it
        try:
            return state.uploads.claim(upload_id, owner, key)
        except DatawardError:
            if state.uploads.owned_by(upload_id, owner, key):
                state.uploads.discard(upload_id)
            raise

    # --- training runs -----------------------------------------------------------------------------
    @r.post("/training-runs", response_model=Document, status_code=201, tags=["models"])
    def start_training_run(request: Request, body: TrainingStart) -> Any:
        """Start a training run of a model: its code identity and parameters are recorded now."""
        return doc(ward(request).start_training_run(body.model, params=body.params, code=body.code), 201)

    @r.post("/training-runs/{ref}/reads", response_model=Document, tags=["models"])
    def record_training_read(request: Request, ref: str, body: TrainingRead) -> Any:
        """Record that the run read a dataset version through the guarded loader."""
        return doc(ward(request).record_training_read(ref, body.dataset, body.version))

    @r.post("/training-runs/{ref}/fail", response_model=Document, tags=["models"])
    def fail_training_run(request: Request, ref: str, body: TrainingFail) -> Any:
        """Record that a run ended without a model."""
        return doc(ward(request).fail_training_run(ref, reason=body.reason))

    @r.post("/training-runs/{ref}/finish", response_model=JobInfo, status_code=202, tags=["models"])
    def finish_training_run(request: Request, ref: str, body: TrainingFinish) -> Any:
        """End a run with its artifact (an upload): hashed, scanned, stored, signed and registered as the
        model's next version, as a job."""
        w = ward(request)
        owner = owner_of(w)
        upload = claimed(request, body.upload, owner)
        scratch = state.scratch()

        def work(_progress: Any) -> tuple[Any, dict[str, str]]:
            artifact = unpack_artifact(upload, body.name, body.kind, scratch, max_bytes=state.settings.max_upload_bytes)
            paths = {str(artifact): body.name}
            with _renamed_errors(paths):
                info = w.finish_training_run(ref, artifact, params=body.params, metrics=body.metrics)
            return _replace(info, paths), {}

        def cleanup() -> None:
            state.uploads.discard(upload.id)
            shutil.rmtree(scratch, ignore_errors=True)

        return job_answer(state.submit_job(request, "train", owner, work, cleanup=cleanup))

    # --- the registry ------------------------------------------------------------------------------
    @r.get("/models", response_model=Documents, tags=["models"])
    def models(request: Request, model: str | None = None) -> Any:
        """Model versions the caller may read, newest first, with whether their training data was held out."""
        return doc(ward(request).models(model))

    @r.get("/models/{ref}", response_model=Document, tags=["models"])
    def model(request: Request, ref: str) -> Any:
        """One model version: run, code, parameters, datasets, scan, release gate, approvals."""
        return doc(ward(request).model(ref))

    @r.get(
        "/models/{ref}/files",
        response_class=FileResponse,
        tags=["models"],
        responses={200: {"content": {TAR_MEDIA_TYPE: {}}, "description": "The files, as a tar archive."}},
    )
    def model_files(request: Request, ref: str, accept_affected: bool = False) -> FileResponse:
        """A model version's files (checked against its signed manifest) as a tar archive; the answer's
        document is in the `X-Dataward-Document` header. A withdrawn version is refused, and an affected
        released one unless `accept_affected=true` (the document then carries a `warning`)."""
        scratch = state.scratch()
        try:
            info = ward(request).model_files(ref, scratch / "files", accept_affected=accept_affected)
            pack_folder(scratch / "files", scratch / "files.tar")
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        info.pop("folder", None)
        return FileResponse(
            scratch / "files.tar",
            media_type=TAR_MEDIA_TYPE,
            headers={"X-Dataward-Document": json.dumps(info, default=str, ensure_ascii=True)},
            background=BackgroundTask(shutil.rmtree, scratch, ignore_errors=True),
        )

    @r.get(
        "/models/{ref}/probe-inputs",
        response_class=FileResponse,
        tags=["models"],
        responses={200: {"content": {"application/vnd.apache.parquet": {}}, "description": "The probe set."}},
    )
    def probe_inputs(request: Request, ref: str) -> FileResponse:
        """The release gate's probe set as Parquet (records leave the ward: needs `dataset.export`)."""
        scratch = state.scratch()
        try:
            info = ward(request).probe_inputs(ref, scratch / "probes.parquet")
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        info.pop("path", None)
        return FileResponse(
            scratch / "probes.parquet",
            media_type="application/vnd.apache.parquet",
            headers={"X-Dataward-Document": json.dumps(info, default=str, ensure_ascii=True)},
            background=BackgroundTask(shutil.rmtree, scratch, ignore_errors=True),
        )

    @r.post("/models/{ref}/gate", response_model=JobInfo, status_code=202, tags=["models"])
    def model_gate(request: Request, ref: str, body: ModelGateRun) -> Any:
        """Run the release gate on a model version, as a job: predictions from an upload for the probe set,
        or the stored artifact (.onnx or .skops)."""
        w = ward(request)
        owner = owner_of(w)
        # Trusting a type lets a trainer's .skops file run it in this process, beside the signing key:
        # only the operator may allow that, never a request.
        refused = sorted(set(body.trusted) - set(state.settings.skops_trusted))
        if refused:
            raise InputError(
                f"this server does not let a .skops file rebuild {', '.join(refused)}",
                hint="the server's operator names the types it trusts (dataward serve --trust-skops-type TYPE); "
                "or run the model elsewhere and send its predictions (dataward model probe-inputs)",
            )
        upload = claimed(request, body.predictions_upload, owner) if body.predictions_upload else None
        paths = {str(upload.path): body.predictions_name or "predictions"} if upload else {}

        def work(_progress: Any) -> tuple[Any, dict[str, str]]:
            with _renamed_errors(paths):
                report = w.model_gate(
                    ref, predictions=upload.path if upload else None, trusted=body.trusted, seed=body.seed
                )
            return _replace(report, paths), {}

        def cleanup() -> None:
            if upload is not None:
                state.uploads.discard(upload.id)

        return job_answer(state.submit_job(request, "model-gate", owner, work, cleanup=cleanup))

    @r.get("/models/{ref}/gate", response_model=Document, tags=["models"])
    def model_gate_report(request: Request, ref: str) -> Any:
        """The latest stored release gate report of a model version."""
        return doc(ward(request).model_gate_report(ref))

    @r.post("/models/{ref}/approve", response_model=Document, tags=["models"])
    def approve_model(request: Request, ref: str, body: ModelReason) -> Any:
        """Approve a model version for release (never by the side that trained it)."""
        return doc(ward(request).approve_model(ref, reason=body.reason))

    @r.post("/models/{ref}/release", response_model=Document, tags=["models"])
    def release_model(request: Request, ref: str, body: ModelReason) -> Any:
        """Release a model version (promoter): gate, approvals and clean data; a signed attestation."""
        return doc(ward(request).release_model(ref, reason=body.reason))

    @r.post("/models/{ref}/withdraw", response_model=Document, tags=["models"])
    def withdraw_model(request: Request, ref: str, body: ModelReason) -> Any:
        """Withdraw a released model version (promoter or owner; a reason is required): never served again."""
        return doc(ward(request).withdraw_model(ref, reason=body.reason))

    @r.get("/models/{ref}/attestation", response_model=Documents, tags=["models"])
    def model_attestation(request: Request, ref: str) -> Any:
        """A model version's DSSE envelopes: the model-signing manifest and the release attestation."""
        return doc(ward(request).model_attestation(ref))

    return r
