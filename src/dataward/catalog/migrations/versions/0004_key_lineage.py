"""key lineage and bounded recording of authentication refusals

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keys issued before lineage existed have no parent: they are left as they were.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("parent_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("minted_with", sa.Text(), nullable=True))
    op.create_index("ix_api_keys_parent_id", "api_keys", ["parent_id"])
    op.create_index("ix_api_keys_minted_with", "api_keys", ["minted_with"])
    op.create_table(
        "auth_refusal_counts",
        sa.Column("minute", sa.Text(), nullable=False),
        sa.Column("claimed_key", sa.Text(), nullable=False),
        sa.Column("recorded", sa.Integer(), nullable=False),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "claimed_key"),
    )


def downgrade() -> None:
    op.drop_table("auth_refusal_counts")
    op.drop_index("ix_api_keys_minted_with", table_name="api_keys")
    op.drop_index("ix_api_keys_parent_id", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("minted_with")
        batch.drop_column("parent_id")
