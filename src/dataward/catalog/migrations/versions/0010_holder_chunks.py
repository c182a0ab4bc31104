"""holder index: a list may name a whole chunk of the record index instead of repeating its ids

Revision ID: 0010
Revises: 0009

A contribution's id list holds every record of the chunk its new records were stored in. The holder
index now records that as one ``holder_chunks`` row (list, chunk) rather than one entry per id: the
chunk's ids are already in ``record_blocks``. The table starts empty; lists indexed before keep their
entries. Downgrade empties the holder index (lists indexed through a chunk would otherwise lose their
entries): ``trace`` then reads the id lists themselves until ``dataward reindex`` indexes them again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "holder_chunks",
        sa.Column("list", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("chunk", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(["chunk"], ["chunks.id"]),
        sa.PrimaryKeyConstraint("list", "chunk"),
    )
    op.create_index("ix_holder_chunks_chunk", "holder_chunks", ["chunk"])


def downgrade() -> None:
    op.drop_index("ix_holder_chunks_chunk", table_name="holder_chunks")
    op.drop_table("holder_chunks")
    op.execute("DELETE FROM holder_blocks")
    op.execute("DELETE FROM holder_segments")
    op.execute("DELETE FROM holder_lists")
