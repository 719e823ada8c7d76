"""Storage buckets: owner, store, persistence and the cluster a temporary one goes with.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "storage_buckets",
        sa.Column("store", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("user_hash", sa.String(64), nullable=False),
        sa.Column("persistent", sa.Boolean, nullable=False),
        sa.Column("cluster_name", sa.String(128), nullable=True),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("managed", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_use", sa.Text, nullable=False),
    )
    op.create_index("ix_storage_buckets_user_hash", "storage_buckets", ["user_hash"])


def downgrade() -> None:
    op.drop_index("ix_storage_buckets_user_hash", "storage_buckets")
    op.drop_table("storage_buckets")
