"""Token roles (``user``, ``admin``), and the role each request was submitted with.

Existing tokens become ``user``: nobody gains rights by upgrading. ``requests.user_role``
lets a request resumed after a restart (or by another replica) run with the role it was
submitted with.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("role", sa.String(16), nullable=False, server_default="user")
        )
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("user_role", sa.String(16), nullable=False, server_default="user")
        )
