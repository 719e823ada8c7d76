"""Cluster history: what each torn-down cluster cost (``skyhop cost-report``).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.create_table(
        "cluster_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("resources_str", sa.Text, nullable=False),
        sa.Column("num_nodes", sa.Integer, nullable=False),
        sa.Column("launched_at", sa.Float, nullable=True),
        sa.Column("terminated_at", sa.Float, nullable=False),
        sa.Column("uptime_s", sa.Float, nullable=False),
        sa.Column("price_per_hour", sa.Float, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("user_hash", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
    )
    op.create_index("ix_cluster_history_terminated_at", "cluster_history", ["terminated_at"])
    op.create_index("ix_cluster_history_user_hash", "cluster_history", ["user_hash"])


def downgrade() -> None:
    op.drop_index("ix_cluster_history_user_hash", "cluster_history")
    op.drop_index("ix_cluster_history_terminated_at", "cluster_history")
    op.drop_table("cluster_history")
