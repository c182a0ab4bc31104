"""model registry: training runs, model versions, release gates, model approvals

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Wards made before the registry existed have no runs and no models: the tables start empty.
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("datasets", sa.Text(), nullable=False),
        sa.Column("started_by", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=True),
        sa.Column("started_at", sa.Text(), nullable=False),
        sa.Column("ended_at", sa.Text(), nullable=True),
        sa.Column("model_version_id", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["started_by"], ["principals.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("manifest_object", sa.Text(), nullable=False),
        sa.Column("files_object", sa.Text(), nullable=False),
        sa.Column("signature_object", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("scan", sa.Text(), nullable=False),
        sa.Column("unsafe", sa.Integer(), nullable=False),
        sa.Column("datasets", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("released_by", sa.Text(), nullable=True),
        sa.Column("released_at", sa.Text(), nullable=True),
        sa.Column("attestation_object", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["training_runs.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["principals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "number"),
    )
    op.create_table(
        "model_gates",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("model_version_id", sa.Text(), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("report_object", sa.Text(), nullable=False),
        sa.Column("baseline_id", sa.Text(), nullable=True),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_model_gates_model_version_id", "model_gates", ["model_version_id"])
    op.create_table(
        "model_approvals",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("model_version_id", sa.Text(), nullable=False),
        sa.Column("principal_id", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"]),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_model_approvals_model_version_id", "model_approvals", ["model_version_id"])


def downgrade() -> None:
    op.drop_index("ix_model_approvals_model_version_id", table_name="model_approvals")
    op.drop_table("model_approvals")
    op.drop_index("ix_model_gates_model_version_id", table_name="model_gates")
    op.drop_table("model_gates")
    op.drop_table("model_versions")
    op.drop_table("training_runs")
