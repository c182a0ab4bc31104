"""The typed request and response documents of the HTTP API (they make the OpenAPI document).

Use-case results are the service's JSON documents, described in docs/cli.md (the same keys the CLI's
``--json`` prints); they are declared here as open objects. Requests are typed and refuse unknown
fields; the values themselves (a stage, a decision, a role) are checked by the service, so that a
wrong value gets the same error over HTTP as in an embedded ward.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Numbers are bounded where the service would overflow converting them (days into dates, a limit
# into an SQL integer): such a value is a malformed request, not a server error.
MAX_DAYS = 36_500
MAX_LIMIT = 1_000_000_000

Document = dict[str, Any]
Documents = list[dict[str, Any]]


class Strict(BaseModel):
    """Unknown fields are refused: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error answer: a stable code, a message for people, the fix, and the CLI's exit code."""

    error: str = Field(description="Stable error code, e.g. unauthenticated, access_denied, not_found.")
    message: str
    hint: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    exit_code: int = Field(description="The exit code the CLI gives this error.")


class WhoAmI(BaseModel):
    """The acting principal and the key in use."""

    ward: str
    principal: str
    principal_id: str
    kind: str
    owner: str | None
    key: str
    key_expires_at: str
    key_scopes: list[str] | None
    grants: list[dict[str, str]]
    may: dict[str, bool] = Field(
        default_factory=dict, description="Ward-wide pages the key may open: access_review, ledger."
    )


class UploadInfo(BaseModel):
    """A complete upload, to be named by one contribution."""

    upload: str = Field(description="Upload id (u_...), valid for one contribution of the uploader.")
    filename: str
    size: int
    hash: str = Field(description="BLAKE3 of the bytes received (b3:...).")


class JobInfo(BaseModel):
    """A long operation's state; poll ``GET /api/v1/jobs/{id}`` until ``status`` is final."""

    id: str
    kind: Literal["contribute", "gate", "selftest", "verify", "relabel"]
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: str = Field(description="The step running now, for people.")
    steps: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    result: Any = Field(None, description="The use case's document once succeeded.")
    error: ErrorBody | None = Field(None, description="The error once failed.")
    attachments: dict[str, str] = Field(default_factory=dict, description="e.g. `html`: the gate's HTML report.")


class PrincipalCreate(Strict):
    name: str
    kind: str = Field("human", description="human or service.")
    owner: str | None = Field(None, description="The accountable human of a service principal.")
    description: str = ""


class PrincipalDisable(Strict):
    transfer_to: str | None = None
    reason: str = ""


class PrincipalTransfer(Strict):
    to: str


class PrincipalEnable(Strict):
    reason: str = ""


class KeyIssue(Strict):
    principal: str | None = Field(None, description="Default: the caller.")
    ttl_days: int | None = Field(None, ge=1, le=MAX_DAYS)
    scopes: list[str] | None = None
    description: str = ""


class KeyRotate(Strict):
    overlap_hours: float = Field(24.0, ge=0, le=MAX_DAYS * 24)


class Reason(Strict):
    reason: str = ""


class RequiredReason(Strict):
    reason: str


class GrantBody(Strict):
    principal: str
    role: str
    scope: str = "ward"


class PolicyBody(Strict):
    policy_yaml: str = Field(description="The dataset policy as YAML text.")


class DatasetCreate(Strict):
    name: str
    schema_: dict[str, Any] = Field(alias="schema", description="`{label, inputs: [{name, kind, dim?}]}`")
    description: str = ""
    owner: str | None = None
    validation_for: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ContributionCreate(Strict):
    source: str = Field(description="Where the records came from (URI, system, vendor).")
    upload: str | None = Field(None, description="Upload id of the records file.")
    removes: list[str] | None = Field(None, description="Record ids this contribution removes.")
    removes_upload: str | None = Field(None, description="Upload id of a file of record ids to remove.")
    fetched_at: datetime | None = None
    licence: str | None = None
    message: str = ""
    format: str | None = Field(None, description="csv, jsonl or parquet (default: from the file name).")
    gate: bool = True
    limits: dict[str, str] | None = Field(
        None, description="Input limits for this import (names to sizes), at or below the ward's own."
    )


class GateRun(Strict):
    """No options: the gate runs as the dataset's policy says. Its readable report is drawn from
    `GET /contributions/{ref}/gate` by the client (the CLI's `--html`) or the console."""


class SelftestBody(Strict):
    contribution: str | None = None
    seed: int = Field(0, ge=0, le=2**32 - 1)


class MergeBody(Strict):
    message: str = ""


class PromoteBody(Strict):
    stage: str = Field("training", description="training or retired.")
    reason: str = ""
    accept_shrink: bool = Field(
        False,
        description="Promote a version with no record, or one leaving out most of the training version's records "
        "(needs a reason).",
    )


class ReviewDecision(Strict):
    items: list[str] = Field(default_factory=list)
    decision: str = Field(description="accept or reject.")
    reason: str
    contribution: str | None = Field(None, description="Also every pending item of this contribution.")


class CheckpointDoc(Strict):
    document: dict[str, Any] = Field(description="A signed checkpoint as `dataward checkpoint -o` writes it.")
    source: str = Field("checkpoint", description="Where the client read it (shown in the report).")


class VerifyBody(Strict):
    checkpoints: list[CheckpointDoc] = Field(default_factory=list)
    public_key: str | None = Field(None, description="Pinned ward key (base64 raw Ed25519).")
    all_signatures: bool = Field(
        False,
        description="Check every event's own signature, not only the spaced ones that cover the chain.",
    )


class QuarantineBy(Strict):
    ref: str = Field(description="A key (dw_...), principal:NAME or source:URI.")
    reason: str


class RelabelBody(Strict):
    changes: dict[str, Any] = Field(description="Record id to its new label.")
    reason: str
    version: str | None = Field(None, description="The version whose records change (default: the latest).")
    gate: bool = True


class WitnessBody(Strict):
    location: str | None = Field(description="A folder or fsspec URL on the server's side; null turns it off.")
