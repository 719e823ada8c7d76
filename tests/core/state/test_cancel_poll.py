"""The replicas' cancel poll (``requests.cancel_requested_ids``, five times a second per
replica) reads only requests with a cancel requested, however many a replica has run."""

from __future__ import annotations

from pathlib import Path

from skyhop_core.models.status import RequestStatus
from skyhop_core.state import open_store
from skyhop_core.state import requests as rq


def _row(request_id: str, owner: str) -> dict:
    return dict(
        request_id=request_id, name="status", user_name="u", user_hash="h",
        cluster_name=None, schedule_type="short", body={}, running=True, owner=owner,
    )  # fmt: skip


def test_the_poll_finds_flagged_requests_through_its_own_index(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        def history(conn) -> None:
            for i in range(300):  # a replica's finished past
                rq.insert_finished(conn, _row(f"old{i}", "me"), RequestStatus.SUCCEEDED)
            for name, owner in (("mine", "me"), ("theirs", "other"), ("quiet", "me")):
                rq.insert(conn, **_row(name, owner))
            rq.request_cancel(conn, ["mine", "theirs", "old1"])  # old1 is finished

        store.run_sync(history)
        assert store.run_sync(rq.cancel_requested_ids, "me") == ["mine"]
        assert store.run_sync(rq.cancel_requested_ids, "other") == ["theirs"]

        def plan(conn) -> str:
            compiled = rq.cancel_requested_ids_query().compile(conn)
            sql = "EXPLAIN QUERY PLAN " + str(compiled).replace(
                "(__[POSTCOMPILE_status_1])", "('PENDING', 'RUNNING')"
            )
            return " ".join(str(r) for r in conn.exec_driver_sql(sql, ("me",)).all())

        assert "ix_requests_cancel_pending" in store.run_sync(plan)
    finally:
        store.close()
