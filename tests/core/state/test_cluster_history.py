"""A torn-down cluster keeps its cost in the history (cost-report), per user; one that
never came UP (a failed launch) leaves nothing there."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from skyhop_core.models.status import ClusterStatus
from skyhop_core.state import clusters as cl
from skyhop_core.state import open_store


def make(conn, name: str, user: str, price: float | None, up_since: float | None) -> None:  # type: ignore[no-untyped-def]
    cl.create(conn, name=name, backend="regional", user_name=user, user_hash=user,
              resources={}, resources_str="1x reg-1", num_nodes=2, last_use="launch")  # fmt: skip
    meta = {} if up_since is None else {"up_since": up_since, "uptime_s": 60.0}
    if price is not None:
        meta["price_per_hour"] = price
    cl.update(conn, name, status=ClusterStatus.UP if up_since else ClusterStatus.INIT, metadata=meta)


def test_deleted_clusters_keep_their_cost_per_user(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    now = time.time()
    try:
        def fill(conn) -> None:  # type: ignore[no-untyped-def]
            make(conn, "trained", "alice", 3.6, now - 100)  # 60 s before, 100 s now: 160 s
            make(conn, "never-up", "alice", 3.6, None)
            make(conn, "bobs", "bob", 1.0, now - 10)
            cl.delete(conn, "trained", now=now)
            cl.delete(conn, "never-up", now=now)
            cl.delete(conn, "bobs", now=now - 5 * 86400)
            cl.delete(conn, "not-there", now=now)  # nothing to forget: nothing recorded

        store.run_sync(fill)
        assert store.run_sync(cl.list_all) == []
        (row,) = store.run_sync(cl.history, now - 86400, "alice")
        assert (row["name"], row["num_nodes"], row["resources_str"]) == ("trained", 2, "1x reg-1")
        assert row["uptime_s"] == pytest.approx(160.0)
        assert row["cost"] == pytest.approx(3.6 * 160 / 3600)
        assert row["terminated_at"] == pytest.approx(now)
        # Another user's is not in yours; older than the window is left out.
        assert store.run_sync(cl.history, now - 86400, "bob") == []
        everyone = store.run_sync(cl.history, now - 6 * 86400, None)
        assert [r["name"] for r in everyone] == ["trained", "bobs"]  # newest first
    finally:
        store.close()
