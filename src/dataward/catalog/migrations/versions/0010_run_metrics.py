"""training runs keep their metrics, so a model version shows them

Revision ID: 0010
Revises: 0009

Metrics were recorded only in the signed ``training.finished`` event. Runs finished before this step
keep NULL here (their metrics are still in that event). Downgrade drops the column.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("metrics", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("metrics")
