"""The autostop loop's read: only UP clusters with autostop set (filtered in SQL)."""

from __future__ import annotations

from pathlib import Path

from skyhop_core.models.records import ClusterHandle
from skyhop_core.models.status import ClusterStatus
from skyhop_core.state import clusters as cl
from skyhop_core.state import open_store


def test_only_up_clusters_with_autostop_are_candidates(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        def make(conn, name: str, status: ClusterStatus, autostop: int | None) -> None:
            cl.create(conn, name=name, backend="local", user_name="u", user_hash="h",
                      resources={}, resources_str="", num_nodes=1, last_use="launch")
            cl.update(conn, name, status=status, handle=ClusterHandle(name, "local", ()))
            if autostop is not None:
                cl.set_autostop(conn, name, autostop, down=False)

        def setup(conn) -> None:
            make(conn, "idle-up", ClusterStatus.UP, 5)
            make(conn, "no-autostop", ClusterStatus.UP, None)
            make(conn, "cancelled", ClusterStatus.UP, 5)
            cl.set_autostop(conn, "cancelled", -1, down=False)
            make(conn, "stopped", ClusterStatus.STOPPED, 5)
            make(conn, "init", ClusterStatus.INIT, 0)

        store.run_sync(setup)
        names = [r.name for r in store.run_sync(cl.list_autostop_candidates)]
        assert names == ["idle-up"]
        assert {r.name for r in store.run_sync(cl.list_all)} >= {"no-autostop", "stopped"}
    finally:
        store.close()
