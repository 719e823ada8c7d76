"""Requests: a partial index of those with a cancel requested by another replica, which
every replica polls for (indexed by owner alone, the poll read every request the replica
ever ran: its cost grew with the server's history).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    where = sa.column("cancel_requested").is_(True)
    op.create_index(
        "ix_requests_cancel_pending", "requests", ["owner"],
        sqlite_where=where, postgresql_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_requests_cancel_pending", table_name="requests")
