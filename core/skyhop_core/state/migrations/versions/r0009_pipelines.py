"""Managed-job pipelines (the tasks of a job, the current one's index) and an index on
the job's cluster name, so ``status`` can leave live managed-job clusters out cheaply.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("managed_jobs") as batch:
        batch.add_column(sa.Column("tasks", sa.JSON, nullable=True))
        batch.add_column(
            sa.Column("current_task", sa.Integer, nullable=False, server_default="0")
        )
    op.create_index("ix_managed_jobs_cluster_name", "managed_jobs", ["cluster_name"])


def downgrade() -> None:
    op.drop_index("ix_managed_jobs_cluster_name", "managed_jobs")
    with op.batch_alter_table("managed_jobs") as batch:
        batch.drop_column("current_task")
        batch.drop_column("tasks")
