"""record index in blocks: one row per chunk and id prefix (about 256 ids each), not one per record

Revision ID: 0008
Revises: 0007

The per-record ``records`` rows of an existing ward are converted into ``record_blocks`` (same
chunks, same rows), then dropped. Downgrade converts back.
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BLOCK_TARGET = 256
_MAX_BITS = 24
_FETCH = 50_000


def _create_blocks() -> None:
    op.create_table(
        "record_blocks",
        sa.Column("bits", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("prefix", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("chunk", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ids", sa.LargeBinary(), nullable=False),
        sa.Column("rows", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["chunk"], ["chunks.id"]),
        sa.PrimaryKeyConstraint("bits", "prefix", "chunk"),
    )
    op.create_index("ix_record_blocks_chunk", "record_blocks", ["chunk"])


def upgrade() -> None:
    _create_blocks()
    conn = op.get_bind()
    blocks = sa.table(
        "record_blocks", sa.column("bits"), sa.column("prefix"), sa.column("chunk"), sa.column("ids"), sa.column("rows")
    )
    # Written here rather than through dataward.catalog.record_index so that this step stays what it
    # was when it shipped, whatever that module becomes. One chunk's entries at a time.
    result = conn.execute(sa.text("SELECT chunk, row, id FROM records ORDER BY chunk, row"))
    current: int | None = None
    members: list[tuple[bytes, int]] = []

    def flush() -> None:
        # A chunk's ids split on their first `bits` bits, `bits` chosen for about 256 ids a block.
        if current is None or not members:
            return
        bits = min(_MAX_BITS, ((len(members) - 1) // _BLOCK_TARGET).bit_length())
        groups: dict[int, list[tuple[bytes, int]]] = defaultdict(list)
        for digest, row in sorted(members, key=lambda m: m[1]):
            groups[int.from_bytes(digest[:8], "big") >> (64 - bits) if bits else 0].append((digest, row))
        conn.execute(
            blocks.insert(),
            [
                {
                    "bits": bits,
                    "prefix": prefix,
                    "chunk": current,
                    "ids": b"".join(digest for digest, _ in group),
                    "rows": b"".join(row.to_bytes(4, "little") for _, row in group),
                }
                for prefix, group in sorted(groups.items())
            ],
        )
        members.clear()

    while batch := result.fetchmany(_FETCH):
        for chunk, row, rid in batch:
            if chunk != current:
                flush()
                current = chunk
            members.append((bytes.fromhex(rid), int(row)))
    flush()
    op.drop_table("records")


def downgrade() -> None:
    op.create_table(
        "records",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["chunk"], ["chunks.id"]),
        sa.PrimaryKeyConstraint("id"),
        sqlite_with_rowid=False,
    )
    conn = op.get_bind()
    records = sa.table("records", sa.column("id"), sa.column("chunk"), sa.column("row"))
    for chunk, ids, rows in conn.execute(sa.text("SELECT chunk, ids, rows FROM record_blocks")).fetchall():
        ids, rows = bytes(ids), bytes(rows)
        entries = [
            {
                "id": ids[i * 32 : (i + 1) * 32].hex(),
                "chunk": chunk,
                "row": int.from_bytes(rows[i * 4 : i * 4 + 4], "little"),
            }
            for i in range(len(rows) // 4)
        ]
        if entries:
            conn.execute(records.insert(), entries)
    op.drop_index("ix_record_blocks_chunk", table_name="record_blocks")
    op.drop_table("record_blocks")
