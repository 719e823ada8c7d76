"""Services (``skyhop serve``): a row per service, per version and per replica.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("user_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("traffic_version", sa.Integer, nullable=True),
        sa.Column("failed_version", sa.Integer, nullable=True),
        sa.Column("next_replica_id", sa.Integer, nullable=False),
        sa.Column("lb_port", sa.Integer, nullable=False),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("autoscaler", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("failure_reason", sa.Text, nullable=True),
        sa.Column("down_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("purge", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
    )
    op.create_index("ix_services_user_hash", "services", ["user_hash"])
    op.create_index("ix_services_owner", "services", ["owner"])
    op.create_table(
        "service_versions",
        sa.Column("service_name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("task", sa.JSON, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("resources_str", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "service_replicas",
        sa.Column("service_name", sa.String(128), primary_key=True),
        sa.Column("replica_id", sa.Integer, primary_key=True),
        sa.Column("cluster_name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("is_spot", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("endpoint", sa.String(255), nullable=True),
        sa.Column("launched_at", sa.Float, nullable=False),
        sa.Column("starting_since", sa.Float, nullable=True),
        sa.Column("not_ready_since", sa.Float, nullable=True),
        sa.Column("first_ready_at", sa.Float, nullable=True),
        sa.Column("drain_until", sa.Float, nullable=True),
        sa.Column("terminate_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("failure_reason", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("service_replicas")
    op.drop_table("service_versions")
    op.drop_table("services")
