"""Managed jobs: one row per job, holding all of its controller's state.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "managed_jobs",
        sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("user_hash", sa.String(64), nullable=False),
        # The task-YAML mapping without secret values (those are in a 0600 file).
        sa.Column("task", sa.JSON, nullable=False),
        sa.Column("resources_str", sa.Text, nullable=False, default=""),
        sa.Column("priority", sa.Integer, nullable=False, default=0),
        sa.Column("status", sa.String(24), nullable=False),
        # WAITING (to launch), LAUNCHING (holds a launch slot), ALIVE, ALIVE_WAITING (a
        # running job that waits for a launch slot to recover), DONE.
        sa.Column("schedule_state", sa.String(16), nullable=False),
        sa.Column("cluster_name", sa.String(128), nullable=False),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("max_restarts_on_errors", sa.Integer, nullable=False, default=0),
        sa.Column("recover_on_exit_codes", sa.JSON, nullable=False, default=list),
        sa.Column("recovery_count", sa.Integer, nullable=False, default=0),
        sa.Column("restart_count", sa.Integer, nullable=False, default=0),
        sa.Column("launch_attempts", sa.Integer, nullable=False, default=0),
        sa.Column("agent_job_id", sa.Integer, nullable=True),
        sa.Column("region", sa.String(128), nullable=True),
        sa.Column("infra", sa.String(255), nullable=True),
        sa.Column("output_offset", sa.Integer, nullable=False, default=0),
        sa.Column("submitted_at", sa.Float, nullable=False),
        sa.Column("start_at", sa.Float, nullable=True),
        sa.Column("end_at", sa.Float, nullable=True),
        sa.Column("recovering_since", sa.Float, nullable=True),
        sa.Column("recovering_seconds", sa.Float, nullable=False, default=0.0),
        sa.Column("failure_reason", sa.Text, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
    )
    for column in ("user_hash", "status", "schedule_state", "owner"):
        op.create_index(f"ix_managed_jobs_{column}", "managed_jobs", [column])


def downgrade() -> None:
    op.drop_table("managed_jobs")
