"""Schema migrations: new databases match the tables, old ones upgrade keeping their data."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from skyhop_core.state import clusters as cl
from skyhop_core.state import open_store
from skyhop_core.state import tokens as tk
from skyhop_core.state.db import create_engine, metadata
from skyhop_core.state.migrate import current_revision, head_revision, upgrade


def test_the_migrations_build_exactly_the_tables_of_db_py(tmp_path: Path) -> None:
    engine = create_engine(tmp_path)
    upgrade(engine, head_revision())  # every migration, through Alembic
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"the migrations and state/db.py disagree: {diff}"


def test_a_new_database_is_at_head_and_matches_the_tables(tmp_path: Path) -> None:
    store = open_store(tmp_path)  # created from db.py's tables, stamped HEAD
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    assert diff == [] and version == [(head_revision(),)]


def test_an_old_database_upgrades_in_place_keeping_its_data(tmp_path: Path) -> None:
    engine = create_engine(tmp_path)
    upgrade(engine, "0001")
    assert "api_tokens" not in sa.inspect(engine).get_table_names()
    with engine.begin() as conn:
        cl.create(conn, name="old", backend="local", user_name="u", user_hash="h",
                  resources={"infra": "local"}, resources_str="1x(local)", num_nodes=1,
                  last_use="launch old")
        conn.execute(sa.text(
            "INSERT INTO requests (request_id, name, user_name, user_hash, status, "
            "schedule_type, created_at, body) VALUES ('r1', 'status', 'u', 'h', "
            f"'SUCCEEDED', 'short', {time.time()}, '{{}}')"
        ))
    engine.dispose()
    store = open_store(tmp_path)
    assert current_revision(store.engine) == head_revision()
    assert store.run_sync(cl.get, "old").backend == "local"
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM requests")).scalar() == 1
    token, _ = store.run_sync(tk.create, "alice")
    assert token.startswith("skyhop_")


def test_a_database_from_before_migrations_is_stamped_and_upgraded(tmp_path: Path) -> None:
    engine = create_engine(tmp_path)
    upgrade(engine, "0001")  # the first schema, then forget it was ever versioned
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
    engine.dispose()
    store = open_store(tmp_path)
    assert current_revision(store.engine) == head_revision()
    assert "api_tokens" in sa.inspect(store.engine).get_table_names()


def test_tokens_from_before_roles_become_users(tmp_path: Path) -> None:
    engine = create_engine(tmp_path)
    upgrade(engine, "0003")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO api_tokens (token_id, name, user_hash, token_hash, created_at) "
            f"VALUES ('0123456789ab', 'olduser', 'h0', 'x', {time.time()})"
        ))
        conn.execute(sa.text(
            "INSERT INTO requests (request_id, name, user_name, user_hash, status, "
            f"schedule_type, created_at, body) VALUES ('r1', 'status', 'olduser', 'h0', "
            f"'PENDING', 'short', {time.time()}, '{{}}')"
        ))
    engine.dispose()
    store = open_store(tmp_path)
    assert current_revision(store.engine) == head_revision()
    assert [(t.name, t.role) for t in store.run_sync(tk.list_tokens)] == [("olduser", "user")]
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT user_role FROM requests")).scalar() == "user"
    _, admin = store.run_sync(tk.create, "boss", "admin")
    assert admin.role == "admin"
    assert {t.name: t.role for t in store.run_sync(tk.list_tokens)}["boss"] == "admin"


def test_head_constant_names_the_newest_migration():
    from skyhop_core.state.migrate import HEAD

    assert head_revision() == HEAD, "bump migrate.HEAD with every new migration"


def test_opening_a_current_database_does_not_run_alembic(tmp_path):
    import subprocess
    import sys

    open_store(tmp_path).close()  # creates and migrates
    code = (
        "import sys; from pathlib import Path; from skyhop_core.state import open_store; "
        f"s = open_store(Path({str(tmp_path)!r})); "
        "print('alembic' in sys.modules); s.close()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
