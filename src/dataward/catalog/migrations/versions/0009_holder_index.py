"""holder index: which contributions', versions' and transformations' id lists hold a record, for trace

Revision ID: 0009
Revises: 0008

The tables start empty: lists recorded before this step are not indexed, and ``trace`` reads those
lists themselves, as it did before, until ``dataward reindex`` indexes them. Downgrade drops the tables.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "holder_lists",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.Column("base", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("object", "base", name="uq_holder_lists_object_base"),
    )
    op.create_table(
        "holder_segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "holder_blocks",
        sa.Column("bits", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("prefix", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("segment", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ids", sa.LargeBinary(), nullable=False),
        sa.Column("tags", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["segment"], ["holder_segments.id"]),
        sa.PrimaryKeyConstraint("bits", "prefix", "segment"),
    )
    op.create_index("ix_holder_blocks_segment", "holder_blocks", ["segment"])


def downgrade() -> None:
    op.drop_index("ix_holder_blocks_segment", table_name="holder_blocks")
    op.drop_table("holder_blocks")
    op.drop_table("holder_segments")
    op.drop_table("holder_lists")
