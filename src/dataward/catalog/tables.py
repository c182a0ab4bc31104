"""The catalog schema: projections of the ledger, plus the ledger itself.

Every column is text, integer or real so that rows compare identically on SQLite and PostgreSQL and
can be rebuilt from ledger events by ``dataward verify``. Times are ISO-8601 UTC strings; JSON values
are canonical JSON strings.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

ward_meta = Table(
    "ward_meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

ledger_events = Table(
    "ledger_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("prev", Text, nullable=False),
    Column("hash", Text, nullable=False, unique=True),
    Column("time", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("actor_principal", Text, nullable=False),
    Column("actor_key", Text),
    Column("subject", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("sig", Text, nullable=False),
    # The rules the event was sealed under (docs/ledger-format.md); NULL in wards made before
    # formats existed means format 1.
    Column("format", Integer),
)
Index("ix_ledger_events_type", ledger_events.c.type)

principals = Table(
    "principals",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("owner_id", Text, ForeignKey("principals.id")),
    Column("status", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("created_by", Text),
    Column("description", Text),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("principal_id", Text, ForeignKey("principals.id"), nullable=False),
    Column("prefix", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("scopes", Text),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("revoked_at", Text),
    Column("rotated_at", Text),
    Column("successor_id", Text),
    Column("overlap_until", Text),
    Column("description", Text),
    Column("issued_by", Text),
    # Operational, not projected from the ledger: written on every authenticated request.
    Column("last_used_at", Text),
    # Lineage (see dataward.access.keys): the key this one was minted from, and the key that made it.
    Column("parent_id", Text),
    Column("minted_with", Text),
)
Index("ix_api_keys_parent_id", api_keys.c.parent_id)
Index("ix_api_keys_minted_with", api_keys.c.minted_with)

# Operational, not projected: how many authentication refusals of one claimed key id in one minute the
# ledger recorded in full, and how many it only counted (see dataward.service.refusals).
auth_refusal_counts = Table(
    "auth_refusal_counts",
    metadata,
    Column("minute", Text, primary_key=True),
    Column("claimed_key", Text, primary_key=True),
    Column("recorded", Integer, nullable=False),
    Column("suppressed", Integer, nullable=False),
)

grants = Table(
    "grants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("principal_id", Text, ForeignKey("principals.id"), nullable=False),
    Column("role", Text, nullable=False),
    Column("scope_kind", Text, nullable=False),
    Column("scope_name", Text),
    Column("granted_by", Text, nullable=False),
    Column("granted_at", Text, nullable=False),
    Column("revoked_at", Text),
    Column("revoked_by", Text),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("owner_id", Text, ForeignKey("principals.id"), nullable=False),
    Column("schema", Text, nullable=False),
    Column("description", Text),
    Column("role", Text, nullable=False),
    Column("validation_for", Text, unique=True),
    Column("policy", Text),
    Column("policy_hash", Text),
    Column("created_at", Text, nullable=False),
    Column("created_by", Text, nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("id", Text, primary_key=True),
    Column("uri", Text, nullable=False),
    Column("fetched_at", Text),
    Column("licence", Text),
    Column("raw_hash", Text, nullable=False),
    Column("format", Text),
    Column("first_seen_at", Text, nullable=False),
)

contributions = Table(
    "contributions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("dataset_id", Text, ForeignKey("datasets.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("submitted_by", Text, ForeignKey("principals.id"), nullable=False),
    # The accountable owner when the submitter is a service principal, as it was at submission:
    # separation of duties must not change when a bot later changes hands.
    Column("submitter_owner", Text),
    Column("key_id", Text),
    Column("source_id", Text, ForeignKey("sources.id")),
    Column("content_hash", Text, nullable=False),
    Column("base_version", Text),
    Column("added_count", Integer, nullable=False),
    Column("removed_count", Integer, nullable=False),
    Column("added_object", Text),
    Column("removed_object", Text),
    Column("chunk_object", Text),
    Column("status", Text, nullable=False),
    Column("gate_verdict", Text),
    Column("gate_run", Text),
    Column("created_at", Text, nullable=False),
    Column("message", Text),
    UniqueConstraint("dataset_id", "number"),
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digest", Text, nullable=False, unique=True),
)

# Where each stored record's bytes are, in blocks (see dataward.catalog.record_index): per chunk, one
# row per record-id prefix of ``bits`` bits (chosen per chunk for about 256 ids a block), holding the
# 32-byte binary ids of that prefix and their rows in the chunk (uint32, little-endian). An import of
# a million records writes 4,096 rows, not a million.
record_blocks = Table(
    "record_blocks",
    metadata,
    Column("bits", Integer, primary_key=True, autoincrement=False),
    Column("prefix", Integer, primary_key=True, autoincrement=False),
    Column("chunk", Integer, ForeignKey("chunks.id"), primary_key=True, autoincrement=False),
    Column("ids", LargeBinary, nullable=False),
    Column("rows", LargeBinary, nullable=False),
)
Index("ix_record_blocks_chunk", record_blocks.c.chunk)

# Which id lists hold a record (see dataward.catalog.holder_index): an accelerator for ``trace``,
# derived from the id-list objects and checked against them by ``verify``. ``holder_lists`` names each
# indexed list: a contribution's added ids or a version's manifest (``base`` empty), a version's
# manifest as a change from its parent's (``base`` the parent's manifest), or the records a
# transformation's lineage names (``kind`` "lineage": outputs and parents). ``holder_blocks`` holds the
# entries of size-tiered segments, per segment one row per record-id prefix of ``bits`` bits: the
# 32-byte binary ids and, per id, a uint32 tag (list id * 2, plus 1 for an id the list removed).
holder_lists = Table(
    "holder_lists",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("object", Text, nullable=False),
    Column("base", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("entries", Integer, nullable=False),
    UniqueConstraint("object", "base", name="uq_holder_lists_object_base"),
)

holder_segments = Table(
    "holder_segments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entries", Integer, nullable=False),
)

holder_blocks = Table(
    "holder_blocks",
    metadata,
    Column("bits", Integer, primary_key=True, autoincrement=False),
    Column("prefix", Integer, primary_key=True, autoincrement=False),
    Column("segment", Integer, ForeignKey("holder_segments.id"), primary_key=True, autoincrement=False),
    Column("ids", LargeBinary, nullable=False),
    Column("tags", LargeBinary, nullable=False),
)
Index("ix_holder_blocks_segment", holder_blocks.c.segment)

versions = Table(
    "versions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("dataset_id", Text, ForeignKey("datasets.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("parent_id", Text),
    Column("manifest_object", Text, nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("contributions", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    UniqueConstraint("dataset_id", "number"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Text, primary_key=True),
    Column("contribution_id", Text, ForeignKey("contributions.id"), nullable=False),
    Column("principal_id", Text, ForeignKey("principals.id"), nullable=False),
    Column("decision", Text, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

# Approvals of a version as a whole, bound to its manifest digest: they count at promotion for every
# contribution the version holds (see dataward.access.policy.approvals_status), so that a policy raised
# after a merge does not strand the versions already made.
version_approvals = Table(
    "version_approvals",
    metadata,
    Column("id", Text, primary_key=True),
    Column("version_id", Text, ForeignKey("versions.id"), nullable=False),
    Column("dataset_id", Text, ForeignKey("datasets.id"), nullable=False),
    Column("principal_id", Text, ForeignKey("principals.id"), nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("role", Text),
    Column("reason", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)
Index("ix_version_approvals_version_id", version_approvals.c.version_id)

gate_runs = Table(
    "gate_runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("contribution_id", Text, ForeignKey("contributions.id"), nullable=False),
    Column("verdict", Text, nullable=False),
    Column("config_hash", Text, nullable=False),
    Column("report_object", Text, nullable=False),
    Column("baseline_version", Text),
    Column("flagged", Integer, nullable=False),
    Column("created_at", Text, nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Text, primary_key=True),
    Column("contribution_id", Text, ForeignKey("contributions.id"), nullable=False),
    Column("record_id", Text, nullable=False),
    Column("row", Integer),
    Column("score", Float),
    Column("detectors", Text),
    Column("reason", Text),
    Column("status", Text, nullable=False),
    Column("decided_by", Text),
    Column("decided_at", Text),
    Column("decision_reason", Text),
    UniqueConstraint("contribution_id", "record_id"),
)

# A block override takes two steps by two principals: the first row of a contribution's gate run is
# the request, the second the confirmation (see dataward.access.overrides).
gate_overrides = Table(
    "gate_overrides",
    metadata,
    Column("id", Text, primary_key=True),
    Column("contribution_id", Text, ForeignKey("contributions.id"), nullable=False),
    Column("gate_run", Text, nullable=False),
    Column("principal_id", Text, ForeignKey("principals.id"), nullable=False),
    Column("step", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("dataset_version", Text, nullable=False),
    Column("artifact_hash", Text),
    Column("stage", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("created_by", Text, nullable=False),
)

# One row per recorded transformation (dedup, filter, augmentation, relabelling...): the step's code
# identity, parameters and input versions, and the contribution holding its output. Which input records
# each output record came from is in the content-addressed ``lineage_object`` (record_id, parent_id,
# note), so the catalog stays small and the lineage is checked like every other object.
transformations = Table(
    "transformations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("dataset_id", Text, ForeignKey("datasets.id"), nullable=False),
    Column("contribution_id", Text, ForeignKey("contributions.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("inputs", Text, nullable=False),
    Column("lineage_object", Text),
    Column("lineage_count", Integer, nullable=False),
    Column("created_by", Text, ForeignKey("principals.id"), nullable=False),
    Column("key_id", Text),
    Column("created_at", Text, nullable=False),
)
Index("ix_transformations_contribution_id", transformations.c.contribution_id)

# The model registry. A training run records the code identity, parameters and the dataset versions it
# read through the guarded loader; its artifact becomes a model version: files hashed into a manifest
# (OpenSSF model-signing's in-toto payload, ``manifest_object``), the files themselves content-addressed
# (``files_object``: path -> object digest), the manifest signed with the ward key (``signature_object``,
# a DSSE envelope), and the unsafe-format scan. Release gates and approvals are bound to ``digest``.
training_runs = Table(
    "training_runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("model", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("datasets", Text, nullable=False),
    Column("started_by", Text, ForeignKey("principals.id"), nullable=False),
    Column("key_id", Text),
    Column("started_at", Text, nullable=False),
    Column("ended_at", Text),
    Column("model_version_id", Text),
    # Last, where migration 0010 added it (a new catalog is made from these definitions: same order).
    Column("metrics", Text),  # JSON, set when the run finishes (NULL before migration 0010)
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("model", Text, nullable=False),
    Column("number", Integer, nullable=False),
    Column("run_id", Text, ForeignKey("training_runs.id"), nullable=False),
    Column("digest", Text, nullable=False),
    Column("manifest_object", Text, nullable=False),
    Column("files_object", Text, nullable=False),
    Column("signature_object", Text, nullable=False),
    Column("format", Text, nullable=False),
    Column("scan", Text, nullable=False),
    Column("unsafe", Integer, nullable=False),
    Column("datasets", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("created_by", Text, ForeignKey("principals.id"), nullable=False),
    Column("created_at", Text, nullable=False),
    Column("released_by", Text),
    Column("released_at", Text),
    Column("attestation_object", Text),
    UniqueConstraint("model", "number"),
)

model_gates = Table(
    "model_gates",
    metadata,
    Column("id", Text, primary_key=True),
    Column("model_version_id", Text, ForeignKey("model_versions.id"), nullable=False),
    Column("verdict", Text, nullable=False),
    Column("report_object", Text, nullable=False),
    Column("baseline_id", Text),
    Column("digest", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)
Index("ix_model_gates_model_version_id", model_gates.c.model_version_id)

model_approvals = Table(
    "model_approvals",
    metadata,
    Column("id", Text, primary_key=True),
    Column("model_version_id", Text, ForeignKey("model_versions.id"), nullable=False),
    Column("principal_id", Text, ForeignKey("principals.id"), nullable=False),
    Column("digest", Text, nullable=False),
    Column("role", Text),
    Column("reason", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)
Index("ix_model_approvals_model_version_id", model_approvals.c.model_version_id)

PROJECTED_TABLES: tuple[Table, ...] = (
    principals,
    api_keys,
    grants,
    datasets,
    sources,
    contributions,
    versions,
    approvals,
    version_approvals,
    gate_runs,
    quarantine,
    gate_overrides,
    models,
    transformations,
    training_runs,
    model_versions,
    model_gates,
    model_approvals,
)
"""Tables rebuilt from ledger events by ``verify`` (``record_blocks`` is rebuilt from contribution chunks)."""

OPERATIONAL_COLUMNS: dict[str, frozenset[str]] = {"api_keys": frozenset({"last_used_at"})}
"""Columns written outside the ledger on purpose (they change on every request); verify skips them."""
