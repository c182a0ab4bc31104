"""The answers of the HTTP API, typed for the OpenAPI document.

They are the service's JSON documents (the CLI's ``--json`` output, docs/cli.md): the keys named
here are always present; a document may carry more (``extra="allow"``), for example keys added by a
later version. The server sends the service's document as it is: these models describe, and never
filter, what a client receives.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Doc(BaseModel):
    """A service document: the keys below, and possibly more."""

    model_config = ConfigDict(extra="allow")


class DatasetDoc(Doc):
    id: str
    name: str
    owner: str | None
    role: str = Field(description="dataset or validation")
    validation_for: str | None
    description: str
    schema_: dict[str, Any] = Field(alias="schema")
    policy_hash: str | None
    created_at: str
    latest: int | None = Field(None, description="Latest version number (listings).")
    training: int | None = Field(None, description="Training version number (listings).")


class ContributionDoc(Doc):
    id: str
    ref: str = Field(description="DATASET#N")
    dataset: str
    number: int
    submitted_by: str
    key: str | None
    source: str
    source_uri: str | None = None
    content_hash: str
    added: int
    removed: int
    status: str
    gate_verdict: str | None
    base_version: str | None
    created_at: str
    message: str
    gate: dict[str, Any] | None = Field(None, description="The gate report, when the gate ran with the submission.")
    same_content_as: list[dict[str, Any]] | None = Field(
        None, description="A submission's earlier contributions with the same content hash, oldest first."
    )


class VersionDoc(Doc):
    id: str
    dataset: str
    number: int
    ref: str = Field(description="DATASET@vN")
    parent: str | None
    records: int
    stage: str = Field(description="candidate, training or retired")
    contributions: list[Any]
    created_at: str
    created_by: str | None


class PrincipalDoc(Doc):
    id: str
    name: str
    kind: str = Field(description="human or service")
    owner_id: str | None
    owner: str | None
    status: str
    created_at: str


class KeyDoc(Doc):
    id: str
    prefix: str
    principal: str | None = None
    principal_id: str
    scopes: list[str] | None
    created_at: str
    expires_at: str
    key: str | None = Field(None, description="The plaintext key: only in the answer that issued it.")


class GrantDoc(Doc):
    id: str
    principal: str
    role: str
    scope: str


class PolicyDoc(Doc):
    dataset: str
    hash: str
    explicit: bool | None = None
    policy: dict[str, Any]


class AccessReviewRow(Doc):
    kind: str
    severity: str
    principal: str | None
    dataset: str | None
    detail: str
    action: str


class ReviewItemDoc(Doc):
    id: str
    record_id: str
    status: str = Field(description="pending, accepted or rejected")
    contribution: str | None = Field(None, description="In listings: the contribution's reference.")


class LedgerEventDoc(Doc):
    seq: int
    prev: str
    time: str
    actor: dict[str, Any]
    actor_name: str | None = None
    type: str
    subject: dict[str, Any]
    payload: dict[str, Any]
    hash: str
    sig: str


class LedgerHeadDoc(Doc):
    seq: int
    hash: str | None
    ward: str


class PublicKeyDoc(Doc):
    ward: str
    public_key: str = Field(description="Base64 raw Ed25519 public key.")
    fingerprint: str
    pem: str


class GateReportDoc(Doc):
    verdict: str = Field(description="pass, review or block")
    reasons: list[Any]
    mode: str | None = None
    gate_run: str | None = None
    contribution: str | None = None


class TraceDoc(Doc):
    subject: dict[str, Any]
    contributions: list[dict[str, Any]]
    versions: list[dict[str, Any]]


class DiffDoc(Doc):
    from_: dict[str, Any] = Field(alias="from")
    to: dict[str, Any]
    added: list[str]
    removed: list[str]
    unchanged: int
    contributions: list[str]
    rollbacks: list[dict[str, Any]] = Field(
        [], description="Rollback versions between the two, each with the quarantine that made it."
    )


class WitnessDoc(Doc):
    ward: str
    witness: str | None
