"""Services: how many times the owning server restarted a failed controller in a row
(it stops restarting past ``SKYHOP_SERVE_MAX_CONTROLLER_RESTARTS``).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.add_column(
            sa.Column("controller_restarts", sa.Integer, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("controller_restarts")
