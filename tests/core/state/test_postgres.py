"""The state store on a real PostgreSQL server: migrations, records, prefix resolution."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from skyhop_core.exceptions import AmbiguousRequestIdError, RequestNotFoundError
from skyhop_core.models.records import ClusterHandle, NodeInfo
from skyhop_core.models.status import ClusterStatus, RequestStatus
from skyhop_core.state import Store, open_store
from skyhop_core.state import clusters as cl
from skyhop_core.state import requests as rq
from skyhop_core.state import tokens as tk
from skyhop_core.state.db import create_engine, metadata
from skyhop_core.state.migrate import current_revision, upgrade

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("SKYHOP_DB_URL", pg_url)
    opened = open_store(tmp_path)
    yield opened
    opened.engine.dispose()


def _new_cluster(conn: sa.Connection, name: str) -> None:
    cl.create(conn, name=name, backend="local", user_name="u", user_hash="h",
              resources={"infra": "local", "cpus": "2+"}, resources_str="1x(local)",
              num_nodes=2, last_use=f"launch {name}")  # fmt: skip


def _new_request(
    conn: sa.Connection, request_id: str, cluster: str | None = None, running: bool = False
) -> None:
    rq.insert(conn, request_id=request_id, name="status", user_name="u", user_hash="h",
              cluster_name=cluster, schedule_type="short",
              body={"all_users": True, "nested": {"a": [1, 2]}}, running=running)  # fmt: skip


def test_everything_lands_in_postgres_and_nothing_under_the_path(
    store: Store, tmp_path: Path
) -> None:
    assert store.engine.dialect.name == "postgresql"
    assert store.engine.pool._pre_ping  # type: ignore[attr-defined]
    assert not list(tmp_path.iterdir()), "SQLite files were written despite SKYHOP_DB_URL"


def test_a_new_database_is_at_head_and_matches_the_tables(store: Store) -> None:
    assert current_revision(store.engine) == "0004"
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"the migrations and state/db.py disagree on PostgreSQL: {diff}"
    # Opening again (a restart, or a second replica) is a no-op.
    upgrade(store.engine)
    assert current_revision(store.engine) == "0004"


def test_an_old_database_upgrades_keeping_its_data(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYHOP_DB_URL", pg_url)
    engine = create_engine(tmp_path)
    upgrade(engine, "0001")
    assert "api_tokens" not in sa.inspect(engine).get_table_names()
    with engine.begin() as conn:
        _new_cluster(conn, "old")
        # The 0001 shape, as that release wrote it (no owner column yet).
        conn.execute(sa.text(
            "INSERT INTO requests (request_id, name, user_name, user_hash, status, "
            "schedule_type, created_at, body) VALUES ('r-old', 'status', 'u', 'h', "
            "'PENDING', 'short', 0, '{}')"
        ))
    engine.dispose()
    store = open_store(tmp_path)
    try:
        assert current_revision(store.engine) == "0004"
        old = store.run_sync(cl.get, "old")
        assert old is not None and old.status is ClusterStatus.INIT
        assert store.run_sync(rq.resolve_prefix, "r-o") == "r-old"
        token, record = store.run_sync(tk.create, "alice")
        assert store.run_sync(tk.authenticate, token) == record
    finally:
        store.engine.dispose()


def test_cluster_records_round_trip(store: Store) -> None:
    store.run_sync(_new_cluster, "c1")
    record = store.run_sync(cl.get, "c1")
    assert record is not None
    assert (record.status, record.to_down, record.metadata) == (ClusterStatus.INIT, False, {})
    assert store.run_sync(cl.launch_spec, "c1") == ({"infra": "local", "cpus": "2+"}, 2)
    node = NodeInfo(0, "127.0.0.1", "c1-0", 4.0, 8.0, "/r", "/h", gpus={"A100": 2})
    handle = ClusterHandle("c1", "local", (node,), ports={8080: "127.0.0.1:1234"})
    store.run_sync(lambda c: cl.update(c, "c1", handle=handle, status=ClusterStatus.UP))
    store.run_sync(lambda c: cl.set_autostop(c, "c1", 10, True))
    record = store.run_sync(cl.get, "c1")
    assert record is not None
    assert record.handle == handle and record.status is ClusterStatus.UP
    minutes, to_down, set_at = store.run_sync(cl.autostop_fields, "c1") or (0, False, None)
    assert (minutes, to_down) == (10, True) and set_at is not None
    store.run_sync(lambda c: cl.set_autostop(c, "c1", -1, False))
    assert store.run_sync(cl.autostop_fields, "c1") == (-1, False, None)
    assert [r.name for r in store.run_sync(cl.list_all)] == ["c1"]
    store.run_sync(cl.delete, "c1")
    assert store.run_sync(cl.get, "c1") is None


def test_request_records_round_trip_and_recover(store: Store) -> None:
    store.run_sync(lambda c: _new_request(c, "req-done", running=True))
    store.run_sync(lambda c: _new_request(c, "req-running", cluster="c", running=True))
    store.run_sync(lambda c: _new_request(c, "req-pending", cluster="c"))
    result = {"job_id": 3, "nested": [{"x": None}]}
    store.run_sync(lambda c: rq.finish(c, "req-done", RequestStatus.SUCCEEDED, result=result))
    row = store.run_sync(rq.get_row, "req-done")
    assert row.result == result and row.error is None
    assert row.body == {"all_users": True, "nested": {"a": [1, 2]}}
    assert sorted(store.run_sync(lambda c: rq.unfinished_ids(c, cluster_name="c"))) == [
        "req-pending", "req-running",
    ]  # fmt: skip
    error = {"type": "ServerRestartedError", "message": "gone"}
    # Requests from before leases have no owner: taking over "no owner" fails the running
    # one and claims the pending one.
    assert store.run_sync(rq.take_over, None, "me", error) == ["req-pending"]
    records = {
        r.request_id: r
        for r in store.run_sync(lambda c: rq.list_records(c, include_finished=True, user_hash="h"))
    }
    assert records["req-running"].status is RequestStatus.FAILED
    assert records["req-running"].error == "ServerRestartedError: gone"
    assert records["req-done"].status is RequestStatus.SUCCEEDED
    assert not store.run_sync(rq.set_running, "req-pending", "someone-else")
    assert store.run_sync(rq.set_running, "req-pending", "me")
    assert not store.run_sync(rq.set_running, "req-pending", "me")
    assert sorted(store.run_sync(rq.expired_ids, time.time() + 1)) == ["req-done", "req-running"]
    store.run_sync(rq.delete, ["req-done"])
    assert store.run_sync(rq.get_row, "req-done") is None


def test_prefix_resolution_treats_wildcards_literally(store: Store) -> None:
    for request_id in ("ab%cd-1", "ab_cd-2", "abxcd-3", "a\\b-4"):
        store.run_sync(lambda c, i=request_id: _new_request(c, i))
    assert store.run_sync(rq.resolve_prefix, "ab%") == "ab%cd-1"
    assert store.run_sync(rq.resolve_prefix, "ab_") == "ab_cd-2"
    assert store.run_sync(rq.resolve_prefix, "abx") == "abxcd-3"
    assert store.run_sync(rq.resolve_prefix, "a\\") == "a\\b-4"
    assert store.run_sync(rq.resolve_prefix, "abxcd-3") == "abxcd-3"
    with pytest.raises(AmbiguousRequestIdError):
        store.run_sync(rq.resolve_prefix, "ab")
    with pytest.raises(RequestNotFoundError):
        store.run_sync(rq.resolve_prefix, "%")
    with pytest.raises(RequestNotFoundError):
        store.run_sync(rq.resolve_prefix, "_b")


def test_tokens_round_trip(store: Store) -> None:
    token, record = store.run_sync(tk.create, "bob")
    assert store.run_sync(tk.authenticate, token) == record
    assert store.run_sync(tk.authenticate, token + "x") is None
    assert [t.name for t in store.run_sync(tk.list_tokens)] == ["bob"]
    assert store.run_sync(tk.revoke, "bob") == 1
    assert store.run_sync(tk.authenticate, token) is None
    again, fresh = store.run_sync(tk.create, "bob")
    assert fresh.user_hash == record.user_hash  # rotating keeps the identity
    assert len(store.run_sync(lambda c: tk.list_tokens(c, include_revoked=True))) == 2
