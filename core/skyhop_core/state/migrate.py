"""Bring a database to the current schema with Alembic, keeping its data.

:func:`upgrade` runs at every server start (and before the CLI's token commands). When
the database is already at :data:`HEAD` it only reads ``alembic_version`` (Alembic, and
the migration scripts, are not even imported: a fifth of the server's start-up). A
database made before migrations existed (tables but no ``alembic_version``) is stamped
with the revision its tables match, then upgraded like any other.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The newest revision in ``migrations/versions`` (a test checks it against Alembic's
#: view: bump it with every new migration).
HEAD = "0012"


def _config(conn: sa.Connection):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (the newest by default).

    To the newest: a database already there is left alone, and an empty one gets the
    tables of ``state/db.py`` stamped :data:`HEAD` (tests check that the migrations build
    exactly those tables), which is what running every migration would give, in a tenth
    of the time. Anything else goes through Alembic.
    """
    if revision == "head":
        if _stored_revision(engine) == HEAD:
            return
        if _create_if_empty(engine):
            return
    from alembic import command

    with engine.begin() as conn:
        cfg = _config(conn)
        tables = set(sa.inspect(conn).get_table_names())
        if "alembic_version" not in tables and "clusters" in tables:
            stamp = "0003" if "servers" in tables else "0002" if "api_tokens" in tables else "0001"
            command.stamp(cfg, stamp)
        command.upgrade(cfg, revision)


def _create_if_empty(engine: sa.Engine) -> bool:
    """Create the current tables, stamped HEAD, in a database without tables."""
    from skyhop_core.state.db import metadata

    with engine.begin() as conn:
        if sa.inspect(conn).get_table_names():
            return False
        metadata.create_all(conn)
        version = sa.Table(
            "alembic_version",
            sa.MetaData(),
            sa.Column("version_num", sa.String(32), primary_key=True),
        )
        version.create(conn)
        conn.execute(version.insert().values(version_num=HEAD))
    return True


def _stored_revision(engine: sa.Engine) -> str | None:
    """The revision in ``alembic_version`` (None: no such table, or no single row)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    except sa.exc.DBAPIError:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def head_revision() -> str:
    """The newest revision the migrations define."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return str(ScriptDirectory.from_config(cfg).get_current_head())


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
