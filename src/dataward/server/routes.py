"""The ``/api/v1`` routes: one per use case, each a thin adapter from HTTP to ``WardAPI``.

Routes declared with ``def`` run on the server's thread pool (the service is synchronous). Every
route gets its ward through ``state.caller(request)``: no route reaches the service otherwise.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from dataward.domain.errors import AccessDenied, ClockBehind, DatawardError, InputError, IntegrityViolation
from dataward.domain.limits import InputLimits, check_free_text
from dataward.ledger.checkpoint import Checkpoint
from dataward.ledger.signing import parse_public_key
from dataward.server.app import DocumentResponse, text_only_body
from dataward.server.arrow_stream import MEDIA_TYPE as ARROW_STREAM
from dataward.server.arrow_stream import arrow_stream
from dataward.server.documents import (
    AccessReviewRow,
    ContributionDoc,
    DatasetDoc,
    DiffDoc,
    GateReportDoc,
    GrantDoc,
    KeyDoc,
    LedgerEventDoc,
    LedgerHeadDoc,
    PolicyDoc,
    PrincipalDoc,
    PublicKeyDoc,
    ReviewItemDoc,
    TraceDoc,
    VersionDoc,
    WitnessDoc,
)
from dataward.server.models import (
    MAX_DAYS,
    MAX_LIMIT,
    ContributionCreate,
    DatasetCreate,
    Document,
    Documents,
    GateRun,
    GrantBody,
    JobInfo,
    KeyIssue,
    KeyRotate,
    MergeBody,
    PolicyBody,
    PrincipalCreate,
    PrincipalDisable,
    PrincipalEnable,
    PrincipalTransfer,
    PromoteBody,
    QuarantineBy,
    Reason,
    RelabelBody,
    RequiredReason,
    ReviewDecision,
    SelftestBody,
    UploadInfo,
    VerifyBody,
    WhoAmI,
    WitnessBody,
)
from dataward.server.security import bearer_key
from dataward.service.checkpoints import check_witness_location, refuse_witness_outside
from dataward.service.config import WardConfig

if TYPE_CHECKING:
    from dataward.api import WardAPI
    from dataward.server.app import ServerState
    from dataward.server.jobs import Job


def doc(value: Any, status: int = 200) -> DocumentResponse:
    """A use case's document as the answer."""
    return DocumentResponse(value, status_code=status)


def job_answer(job: Job) -> DocumentResponse:
    """202 with the job and where to poll it."""
    return DocumentResponse(job.public(), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


def _replace(value: Any, paths: dict[str, str]) -> Any:
    """``value`` with the server's temporary paths replaced by the names the client knows them by,
    so that messages and documents read as they would in an embedded ward."""
    if not paths:
        return value
    if isinstance(value, str):
        for server_path, client_name in paths.items():
            value = value.replace(server_path, client_name)
        return value
    if isinstance(value, dict):
        return {k: _replace(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, paths) for v in value]
    return value


def _renamed_errors(paths: dict[str, str]) -> Any:
    """A context manager rewriting server paths in a ``DatawardError`` raised inside it."""
    from contextlib import contextmanager

    @contextmanager
    def guard() -> Any:
        try:
            yield
        except DatawardError as exc:
            exc.message = _replace(exc.message, paths)
            exc.hint = _replace(exc.hint, paths) if exc.hint else exc.hint
            exc.details = _replace(exc.details, paths)
            exc.args = (exc.message,)
            raise

    return guard()


def build_router(state: ServerState) -> APIRouter:
    """Every ``/api/v1`` route, bound to one server's state."""
    # Checked before any body is validated, so that nothing of an endpoint answers without a key.
    r = APIRouter(dependencies=[Depends(state.precheck_dependency), Depends(text_only_body)])

    def ward(request: Request) -> WardAPI:
        return state.caller(request)

    def principal_id(w: WardAPI) -> str:
        # An authenticating use case (it also refuses a revoked key here, before any work starts).
        return str(w.whoami()["principal_id"])

    def as_job(
        request: Request, kind: str, work: Callable[[WardAPI], Any], *, visible: Callable[[WardAPI], Any]
    ) -> DocumentResponse:
        """202 with a job running ``work`` as the request's key: the caller is authenticated now (a
        revoked key gets no job), and only the caller may read the job. ``visible`` reads what the job
        is about (its dataset, its contribution) first, so that one the caller may not see is refused
        now, as the other endpoints refuse it (404, as for one that does not exist), not queued to fail
        later in one of the caller's job slots."""
        w = ward(request)
        owner = principal_id(w)
        visible(w)
        return job_answer(state.submit_job(request, kind, owner, lambda _progress: (work(w), {})))

    # --- who -------------------------------------------------------------------------------------
    @r.get("/whoami", response_model=WhoAmI, tags=["identity"])
    def whoami(request: Request) -> DocumentResponse:
        """The acting principal, the key in use and its grants."""
        return doc(ward(request).whoami())

    # --- principals, keys, grants ------------------------------------------------------------------
    @r.get("/principals", response_model=list[PrincipalDoc], tags=["identity"])
    def principals(request: Request) -> DocumentResponse:
        """Every principal with its kind, owner and status."""
        return doc(ward(request).principals())

    @r.post("/principals", response_model=PrincipalDoc, status_code=201, tags=["identity"])
    def create_principal(request: Request, body: PrincipalCreate) -> DocumentResponse:
        """Register a human or a service principal."""
        info = ward(request).create_principal(body.name, kind=body.kind, owner=body.owner, description=body.description)
        return doc(info, 201)

    @r.post("/principals/{name}/disable", response_model=Document, tags=["identity"])
    def disable_principal(request: Request, name: str, body: PrincipalDisable) -> DocumentResponse:
        """Offboard a human; their bots are suspended unless transferred."""
        return doc(ward(request).disable_principal(name, transfer_to=body.transfer_to, reason=body.reason))

    @r.post("/principals/{name}/transfer", response_model=PrincipalDoc, tags=["identity"])
    def transfer_principal(request: Request, name: str, body: PrincipalTransfer) -> DocumentResponse:
        """Hand a service principal to another human."""
        return doc(ward(request).transfer_principal(name, body.to))

    @r.post("/principals/{name}/enable", response_model=Document, tags=["identity"])
    def enable_principal(request: Request, name: str, body: PrincipalEnable) -> DocumentResponse:
        """Let a disabled human or a suspended service principal act again (admin only)."""
        return doc(ward(request).enable_principal(name, reason=body.reason))

    @r.get("/keys", response_model=list[KeyDoc], tags=["keys"])
    def keys(request: Request, principal: str | None = None) -> DocumentResponse:
        """API keys (never their secrets) with their state."""
        return doc(ward(request).keys(principal))

    @r.post("/keys", response_model=KeyDoc, status_code=201, tags=["keys"])
    def issue_key(request: Request, body: KeyIssue) -> DocumentResponse:
        """Issue a key; its plaintext is in this answer and nowhere else, ever."""
        info = ward(request).issue_key(
            body.principal, ttl_days=body.ttl_days, scopes=body.scopes, description=body.description
        )
        return doc(info, 201)

    @r.post("/keys/{key}/rotate", response_model=KeyDoc, tags=["keys"])
    def rotate_key(request: Request, key: str, body: KeyRotate) -> DocumentResponse:
        """Issue a key's successor; the old key works for the overlap window."""
        return doc(ward(request).rotate_key(key, overlap_hours=body.overlap_hours))

    @r.post("/keys/{key}/revoke", response_model=KeyDoc, tags=["keys"])
    def revoke_key(request: Request, key: str, body: Reason) -> DocumentResponse:
        """Revoke a key and every key minted through it, from the very next request."""
        return doc(ward(request).revoke_key(key, reason=body.reason))

    @r.get("/grants", response_model=list[GrantDoc], tags=["identity"])
    def grants(request: Request, principal: str | None = None) -> DocumentResponse:
        """Active grants."""
        return doc(ward(request).grants(principal))

    @r.post("/grants", response_model=GrantDoc, status_code=201, tags=["identity"])
    def grant(request: Request, body: GrantBody) -> DocumentResponse:
        """Give a role on the ward or on `dataset:NAME`."""
        return doc(ward(request).grant(body.principal, body.role, body.scope), 201)

    @r.post("/grants/revoke", response_model=GrantDoc, tags=["identity"])
    def revoke_grant(request: Request, body: GrantBody) -> DocumentResponse:
        """Take a role away."""
        return doc(ward(request).revoke_grant(body.principal, body.role, body.scope))

    @r.get("/access-review", response_model=list[AccessReviewRow], tags=["identity"])
    def access_review(
        request: Request,
        unused_days: int | None = Query(None, ge=0, le=MAX_DAYS),
        recent_days: int = Query(30, ge=0, le=MAX_DAYS),
    ) -> DocumentResponse:
        """Stale and expiring keys, orphaned bots, who can write to training data, overrides."""
        return doc(ward(request).access_review(unused_days=unused_days, recent_days=recent_days))

    # --- datasets ----------------------------------------------------------------------------------
    @r.get("/datasets", response_model=list[DatasetDoc], tags=["datasets"])
    def datasets(request: Request) -> DocumentResponse:
        """The datasets the caller may read, with their latest and training versions."""
        return doc(ward(request).datasets())

    @r.post("/datasets", response_model=DatasetDoc, status_code=201, tags=["datasets"])
    def create_dataset(request: Request, body: DatasetCreate) -> DocumentResponse:
        """Create a dataset with its schema, or a clean validation set of another dataset."""
        info = ward(request).create_dataset(
            body.name,
            body.schema_,
            description=body.description,
            owner=body.owner,
            validation_for=body.validation_for,
        )
        return doc(info, 201)

    @r.get("/datasets/{name}", response_model=DatasetDoc, tags=["datasets"])
    def dataset(request: Request, name: str) -> DocumentResponse:
        """One dataset with its effective policy."""
        w = ward(request)
        return doc({**w.dataset_info(name), "policy": w.policy(name)})

    @r.get("/datasets/{name}/policy", response_model=PolicyDoc, tags=["datasets"])
    def policy(request: Request, name: str) -> DocumentResponse:
        """A dataset's policy with defaults filled in."""
        return doc(ward(request).policy(name))

    @r.put("/datasets/{name}/policy", response_model=PolicyDoc, tags=["datasets"])
    def set_policy(request: Request, name: str, body: PolicyBody) -> DocumentResponse:
        """Replace a dataset's policy (YAML)."""
        return doc(ward(request).set_policy(name, body.policy_yaml))

    @r.get("/datasets/{name}/versions", response_model=list[VersionDoc], tags=["versions"])
    def versions(request: Request, name: str) -> DocumentResponse:
        """A dataset's versions and stages."""
        return doc(ward(request).versions(name))

    @r.get(
        "/datasets/{name}/records",
        response_class=Response,
        tags=["versions"],
        responses={200: {"content": {"application/vnd.apache.parquet": {}}, "description": "The records."}},
    )
    def records(request: Request, name: str, version: str | None = None) -> Response:
        """A version's canonical records as Parquet (default: the latest version); the version's
        document is in the `X-Dataward-Document` header. Needs `dataset.export`, as `export` does."""
        import pyarrow.parquet as pq

        info, table = ward(request).read_version(name, version)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return Response(
            buffer.getvalue(),
            media_type="application/vnd.apache.parquet",
            headers={"X-Dataward-Document": json.dumps(info, default=str, ensure_ascii=True)},
        )

    @r.get(
        "/datasets/{name}/load",
        response_class=Response,
        tags=["versions"],
        responses={200: {"content": {"application/vnd.apache.parquet": {}}, "description": "The records."}},
    )
    def load(request: Request, name: str, version: str | None = None, stage: str = "training") -> Response:
        """A version's records for training, as Parquet (the guarded loader): refused when the version
        is not in `stage` (`any`: every stage) or holds quarantined or rejected records. The version's
        document is in the `X-Dataward-Document` header. Needs `dataset.export`."""
        import pyarrow.parquet as pq

        info, table = ward(request).load_version(name, version, stage=None if stage == "any" else stage)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return Response(
            buffer.getvalue(),
            media_type="application/vnd.apache.parquet",
            headers={"X-Dataward-Document": json.dumps(info, default=str, ensure_ascii=True)},
        )

    @r.get(
        "/datasets/{name}/stream",
        response_class=StreamingResponse,
        tags=["versions"],
        responses={200: {"content": {ARROW_STREAM: {}}, "description": "The records, batch by batch."}},
    )
    def stream(
        request: Request,
        name: str,
        version: str | None = None,
        stage: str = "training",
        batch_rows: int = Query(10_000, ge=1, le=1_000_000),
    ) -> StreamingResponse:
        """A version's records for training as an Arrow IPC stream, each batch sent as it is loaded and
        checked (the guarded loader, streamed): the server never holds the whole version. Refused as
        `load` is; a record failing its hash later ends the stream with an error (see
        `dataward.server.arrow_stream`). The version's document is in `X-Dataward-Document`."""
        info, batches = ward(request).stream_version(
            name, version, stage=None if stage == "any" else stage, batch_rows=batch_rows
        )
        return StreamingResponse(
            arrow_stream(batches),
            media_type=ARROW_STREAM,
            headers={"X-Dataward-Document": json.dumps(info, default=str, ensure_ascii=True)},
        )

    @r.get("/datasets/{name}/contributions", response_model=list[ContributionDoc], tags=["contributions"])
    def contributions(request: Request, name: str, status: str | None = None) -> DocumentResponse:
        """A dataset's contributions with their gate verdicts."""
        return doc(ward(request).contributions(name, status=status))

    # --- uploads and contributions ----------------------------------------------------------------
    @r.post(
        "/uploads",
        response_model=UploadInfo,
        status_code=201,
        tags=["contributions"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def upload(request: Request, filename: str = Query(..., max_length=4096)) -> DocumentResponse:
        """Stream a file (the body, as is) to the server: hashed while it arrives, size-limited; an
        interrupted or refused upload leaves nothing. Name it in one contribution within the hour.
        Only a key that may contribute, record a training run or gate a model somewhere may upload,
        and each principal holds a limited number and size of pending uploads (429 `quota_exceeded`)."""
        w = await run_in_threadpool(ward, request)
        owner = await run_in_threadpool(principal_id, w)
        await run_in_threadpool(state.ward.as_key(bearer_key(request)).check_may_send_files)
        done = await state.uploads.receive(request.stream(), owner=owner, filename=filename, key=state.key_id(request))
        return doc({"upload": done.id, "filename": done.filename, "size": done.size, "hash": done.hash}, 201)

    @r.post("/datasets/{name}/contributions", response_model=JobInfo, status_code=202, tags=["contributions"])
    def submit_contribution(request: Request, name: str, body: ContributionCreate) -> DocumentResponse:
        """Submit a contribution from uploads (records added, ids removed) and run its gate, as a job."""
        w = ward(request)
        owner = principal_id(w)
        key = state.key_id(request)
        claimed = [u for u in (body.upload, body.removes_upload) if u]
        try:
            data = state.uploads.claim(body.upload, owner, key) if body.upload else None
            removes_file = state.uploads.claim(body.removes_upload, owner, key) if body.removes_upload else None
            if removes_file is not None and body.removes is not None:
                raise InputError("give removed ids as a list or as an upload, not both")
            limits = _tightened_limits(state, body.limits)
        except DatawardError:
            # A refused submission consumes its uploads too: nothing of it stays on the server.
            for upload_id in claimed:
                if state.uploads.owned_by(upload_id, owner, key):
                    state.uploads.discard(upload_id)
            raise
        paths = {str(u.path): u.filename for u in (data, removes_file) if u is not None}

        def run(progress: Any) -> tuple[Any, dict[str, str]]:
            with _renamed_errors(paths):
                info = w.contribute(
                    name,
                    data.path if data else None,
                    source=body.source,
                    fetched_at=body.fetched_at,
                    licence=body.licence,
                    removes=removes_file.path if removes_file else body.removes,
                    message=body.message,
                    format=body.format,
                    gate=body.gate,
                    progress=lambda text: progress(_replace(text, paths)),
                    limits=limits,
                )
            return _replace(info, paths), {}

        def cleanup() -> None:
            for u in (data, removes_file):
                if u is not None:
                    state.uploads.discard(u.id)

        return job_answer(state.submit_job(request, "contribute", owner, run, cleanup=cleanup))

    @r.get("/contributions/{ref}", response_model=ContributionDoc, tags=["contributions"])
    def contribution(request: Request, ref: str) -> DocumentResponse:
        """One contribution (`c_...` or `DATASET#N`, URL-encoded) with its source."""
        return doc(ward(request).contribution(ref))

    @r.post("/contributions/{ref}/withdraw", response_model=Document, tags=["contributions"])
    def withdraw(request: Request, ref: str, body: Reason) -> DocumentResponse:
        """Withdraw your own contribution before it is merged."""
        return doc(ward(request).withdraw(ref, reason=body.reason))

    @r.post("/contributions/{ref}/approve", response_model=Document, tags=["contributions"])
    def approve(request: Request, ref: str, body: RequiredReason) -> DocumentResponse:
        """Approve a contribution (never your own, nor your bot's), bound to its content hash."""
        return doc(ward(request).approve(ref, reason=body.reason))

    @r.post("/contributions/{ref}/reject", response_model=Document, tags=["contributions"])
    def reject(request: Request, ref: str, body: RequiredReason) -> DocumentResponse:
        """Reject a contribution: it can never be merged."""
        return doc(ward(request).reject(ref, reason=body.reason))

    @r.post("/contributions/{ref}/merge", response_model=VersionDoc, tags=["contributions"])
    def merge(request: Request, ref: str, body: MergeBody) -> DocumentResponse:
        """Merge a contribution into a new immutable version."""
        return doc(ward(request).merge(ref, message=body.message))

    @r.post("/contributions/{ref}/override", response_model=Document, tags=["gates"])
    def override_block(request: Request, ref: str, body: RequiredReason) -> DocumentResponse:
        """Request, or confirm as a second owner or admin, lifting a gate's block."""
        return doc(ward(request).override_block(ref, reason=body.reason))

    @r.post("/contributions/{ref}/quarantine", response_model=Document, tags=["audit"])
    def quarantine(request: Request, ref: str, body: RequiredReason) -> DocumentResponse:
        """Hold a whole contribution out of every future version."""
        return doc(ward(request).quarantine_contribution(ref, reason=body.reason))

    @r.post("/quarantine", response_model=Document, tags=["audit"])
    def quarantine_by(request: Request, body: QuarantineBy) -> DocumentResponse:
        """Quarantine every contribution a key, a principal or a source touched (an incident)."""
        return doc(ward(request).quarantine_by(body.ref, reason=body.reason))

    @r.post("/datasets/{name}/relabel", response_model=JobInfo, status_code=202, tags=["provenance"])
    def relabel(request: Request, name: str, body: RelabelBody) -> DocumentResponse:
        """Change records' labels: a gated contribution recorded as a `relabel` transformation, as a job."""
        return as_job(
            request,
            "relabel",
            lambda w: w.relabel(name, body.changes, reason=body.reason, version=body.version, gate=body.gate),
            visible=lambda w: w.dataset_info(name),
        )

    @r.get("/datasets/{name}/transformations", response_model=Documents, tags=["provenance"])
    def transformations(request: Request, name: str) -> DocumentResponse:
        """The transformations recorded into a dataset."""
        return doc(ward(request).transformations(name))

    @r.get("/versions/{ref}/attestation", response_model=Documents, tags=["provenance"])
    def attest(request: Request, ref: str) -> DocumentResponse:
        """In-toto attestation envelopes (DSSE) about a version, signed with the ward key."""
        return doc(ward(request).attest(ref))

    @r.get("/versions/{ref}/card", response_model=Document, tags=["provenance"])
    def card(request: Request, ref: str) -> DocumentResponse:
        """A dataset card of a version: `{version, croissant (JSON-LD), markdown}`."""
        return doc(ward(request).card(ref))

    @r.post("/contributions/{ref}/gate", response_model=JobInfo, status_code=202, tags=["gates"])
    def run_gate(request: Request, ref: str, body: GateRun) -> DocumentResponse:
        """Run the dataset's gate on a contribution, as a job that reports each step as its progress."""
        w = ward(request)
        owner = principal_id(w)
        w.contribution(ref)  # one of a dataset the caller may not see is not found now, not once the job runs
        return job_answer(
            state.submit_job(request, "gate", owner, lambda progress: (w.run_gate(ref, progress=progress), {}))
        )

    @r.get("/contributions/{ref}/gate", response_model=GateReportDoc, tags=["gates"])
    def gate_report(request: Request, ref: str) -> DocumentResponse:
        """The latest stored gate report of a contribution."""
        return doc(ward(request).gate_report(ref))

    @r.post("/datasets/{name}/selftest", response_model=JobInfo, status_code=202, tags=["gates"])
    def selftest(request: Request, name: str, body: SelftestBody) -> DocumentResponse:
        """Plant known poisons and measure what this dataset's gate catches, as a job."""
        return as_job(
            request,
            "selftest",
            lambda w: w.selftest(name, body.contribution, seed=body.seed),
            visible=lambda w: (w.dataset_info(name), body.contribution and w.contribution(body.contribution)),
        )

    # --- review ------------------------------------------------------------------------------------
    @r.get("/review", response_model=list[ReviewItemDoc], tags=["review"])
    def review_list(
        request: Request, dataset: str | None = None, status: str = "pending", contribution: str | None = None
    ) -> DocumentResponse:
        """Quarantined records, most suspicious first."""
        return doc(ward(request).review_list(dataset, status=status, contribution=contribution))

    @r.get("/review/{item}", response_model=Document, tags=["review"])
    def review_show(request: Request, item: str) -> DocumentResponse:
        """One quarantined record with the gate's evidence."""
        return doc(ward(request).review_show(item))

    @r.post("/review/decide", response_model=list[ReviewItemDoc], tags=["review"])
    def review_decide(request: Request, body: ReviewDecision) -> DocumentResponse:
        """Accept or reject quarantined records, and every pending one of `contribution` with them."""
        return doc(
            ward(request).review_decide(body.items, body.decision, reason=body.reason, contribution=body.contribution)
        )

    # --- versions ----------------------------------------------------------------------------------
    @r.get("/diff", response_model=DiffDoc, tags=["versions"])
    def diff(request: Request, a: str, b: str) -> DocumentResponse:
        """Records added and removed between two versions."""
        return doc(ward(request).diff(a, b))

    @r.post("/versions/{ref}/promote", response_model=VersionDoc, tags=["versions"])
    def promote(request: Request, ref: str, body: PromoteBody) -> DocumentResponse:
        """Promote a version (`DATASET@vN`) to training, or retire it."""
        return doc(ward(request).promote(ref, stage=body.stage, reason=body.reason, accept_shrink=body.accept_shrink))

    @r.get(
        "/versions/{ref}/export",
        response_class=FileResponse,
        tags=["versions"],
        responses={200: {"content": {"application/octet-stream": {}}, "description": "The records file."}},
    )
    def export(request: Request, ref: str, format: str = "parquet") -> FileResponse:
        """A version's records as a file (parquet, jsonl or csv); the export's document is in the
        `X-Dataward-Document` header (JSON)."""
        w = ward(request)
        scratch = state.scratch()
        try:
            target = scratch / f"export.{format if format.isalnum() else 'out'}"
            info = w.export(ref, target, format=format)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        info = {k: v for k, v in info.items() if k != "path"}
        return FileResponse(
            target,
            media_type="application/octet-stream",
            headers={"X-Dataward-Document": json.dumps(info, default=str, ensure_ascii=True)},
            background=BackgroundTask(shutil.rmtree, scratch, ignore_errors=True),
        )

    # --- audit -------------------------------------------------------------------------------------
    @r.get("/trace/{ref}", response_model=TraceDoc, tags=["audit"])
    def trace(request: Request, ref: str) -> DocumentResponse:
        """Trace a record, contribution, key id (`dw_xxxxxxxx`) or version."""
        return doc(ward(request).trace(ref))

    @r.get("/ledger", response_model=list[LedgerEventDoc], tags=["audit"])
    def ledger(
        request: Request,
        limit: int | None = Query(None, ge=0, le=MAX_LIMIT),
        type: list[str] | None = Query(None),
        newest_first: bool = True,
    ) -> DocumentResponse:
        """Ledger events (`type`: prefixes, repeatable)."""
        return doc(ward(request).ledger(limit=limit, types=type, newest_first=newest_first))

    @r.get("/ledger/head", response_model=LedgerHeadDoc, tags=["audit"])
    def ledger_head(request: Request) -> DocumentResponse:
        """The newest event's number and hash."""
        return doc(ward(request).ledger_head())

    @r.get("/ledger/export", response_model=Document, tags=["audit"])
    def ledger_export(request: Request) -> DocumentResponse:
        """The whole chain, for a verifier in any language."""
        return doc(ward(request).ledger_export())

    @r.get("/public-key", response_model=PublicKeyDoc, tags=["audit"])
    def public_key(request: Request) -> DocumentResponse:
        """The ward's Ed25519 public key (pin it for verify)."""
        return doc(ward(request).public_key())

    @r.post("/verify", response_model=JobInfo, status_code=202, tags=["audit"])
    def verify(request: Request, body: VerifyBody) -> DocumentResponse:
        """Re-check ledger, objects and catalog against checkpoints and a pinned key, as a job."""
        w = ward(request)
        # Authenticated as verify is: a ledger that went backwards is what verify must diagnose.
        owner = state.verifier(request)
        given = [Checkpoint.from_dict(c.document, source=c.source) for c in body.checkpoints]
        # Refused now, as a bad checkpoint is, rather than as a failed job.
        pinned = parse_public_key(body.public_key, source="public_key") if body.public_key is not None else None

        def run(_progress: Any) -> tuple[Any, dict[str, str]]:
            return w.verify(checkpoints=given, public_key=pinned, all_signatures=body.all_signatures).to_dict(), {}

        return job_answer(state.submit_job(request, "verify", owner, run))

    @r.post("/checkpoints", response_model=Document, status_code=201, tags=["audit"])
    def checkpoint(request: Request) -> DocumentResponse:
        """Sign a checkpoint of the ledger head. `kept` is the file name it is kept under in the ward
        (as `GET /checkpoints` lists it), not its path on the server."""
        made = ward(request).checkpoint()
        # An embedded ward says where on its operator's disk the file is; a caller of the server learns
        # nothing of the server's layout.
        return doc({**made, "kept": Path(made["kept"]).name}, 201)

    @r.get("/checkpoints", response_model=Documents, tags=["audit"])
    def checkpoints(request: Request) -> DocumentResponse:
        """Checkpoints kept by the ward."""
        return doc(ward(request).checkpoints())

    @r.get("/witness", response_model=WitnessDoc, tags=["audit"])
    def witness(request: Request) -> DocumentResponse:
        """Where checkpoints are witnessed."""
        return doc(ward(request).witness())

    @r.put("/witness", response_model=WitnessDoc, tags=["audit"])
    def set_witness(request: Request, body: WitnessBody) -> DocumentResponse:
        """Set, or turn off, the witness location (on the server's side): with the operator's
        ``DATAWARD_WITNESS_ALLOW``, only one of the folders or buckets it names (403 otherwise)."""
        w = ward(request)
        if body.location is not None and state.settings.witness_allow:
            # The caller first: where the ward's folder is and what the list holds are an admin's to learn
            # from the answers, not anyone's with a key (or without one).
            state.ward.as_key(bearer_key(request)).check_may_set_witness()
            check_free_text(witness=body.location)
            stored = check_witness_location(body.location, state.ward.folder)
            refuse_witness_outside(stored, state.settings.witness_allow)
        return doc(w.set_witness(body.location))

    # --- jobs --------------------------------------------------------------------------------------
    @r.get("/jobs/{job_id}", response_model=JobInfo, tags=["jobs"])
    def job(request: Request, job_id: str) -> DocumentResponse:
        """A job's status, progress, and result or error. Only the key that started it may read it."""
        w = ward(request)
        try:
            return doc(state.jobs.get(job_id, principal_id(w), state.key_id(request)).public())
        except (IntegrityViolation, ClockBehind):
            # The ledger went backwards or does not verify, or the clock reads behind it: every use case
            # is refused but verify. Its starter may still read a verify job (and nothing else) to see the
            # diagnosis.
            job = state.jobs.get(job_id, state.verifier(request), state.key_id(request))
            if job.kind != "verify":
                raise
            return doc(job.public())

    return r


def _tightened_limits(state: ServerState, requested: dict[str, str] | None) -> InputLimits | None:
    """A client's input limits, refused when any is above the ward's: raising what a server accepts
    is its operator's decision (``input_limits`` in ward.json), never a caller's."""
    if requested is None:
        return None
    base = WardConfig.load(Path(state.ward.folder)).limits()
    limits = InputLimits.coerce(requested, base=base)
    raised = [name for name in InputLimits.names() if getattr(limits, name) > getattr(base, name)]
    if raised:
        raise AccessDenied(
            f"a served ward does not raise its input limits for a request ({raised[0]})",
            hint="ask the server's operator to raise input_limits in ward.json; lower limits are accepted",
        )
    return limits
