"""What the upload collector keeps: uploads named by live managed jobs (every task of a
pipeline) and by any version of a service, per user; not those of ended jobs."""

from __future__ import annotations

from pathlib import Path

from skyhop_core.jobs import state as js
from skyhop_core.serve import state as ss
from skyhop_core.state import open_store
from skyhop_core.storage.in_use import uploads_in_use
from skyhop_core.storage.manifest import upload_ref

IDS = [f"{i:032x}" for i in range(8)]


def job(conn, user: str, task: dict, tasks: list | None = None) -> int:  # type: ignore[no-untyped-def]
    return js.insert(conn, name="j", user_name=user, user_hash=user, task=task, tasks=tasks,
                     resources_str="", strategy="EAGER_NEXT_REGION")  # fmt: skip


def test_live_jobs_and_services_keep_their_uploads(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        def fill(conn):  # type: ignore[no-untyped-def]
            job(conn, "alice", {"workdir": upload_ref(IDS[0]),
                                "file_mounts": {"/d": {"source": [upload_ref(IDS[1]), "s3://b"]}}})  # fmt: skip
            ended = job(conn, "alice", {"workdir": upload_ref(IDS[2])})
            js.update(conn, ended, status="SUCCEEDED")
            job(conn, "bob", {"workdir": upload_ref(IDS[3])},
                tasks=[{"name": "a", "task": {"file_mounts": {"/f": upload_ref(IDS[4])}}}])
            ss.insert(conn, name="svc", user_name="carol", user_hash="carol",
                      task={"service": {"tls": {"keyfile": upload_ref(IDS[5])}}},
                      resources_str="", lb_port=1, endpoint="", owner="o", lease=5)  # fmt: skip
            ss.add_version(conn, "svc", 2, {"workdir": upload_ref(IDS[6])}, "rolling", "")
            # Not upload references: a path that looks like one, and other types.
            job(conn, "dave", {"workdir": "/skyhop-upload://" + IDS[7], "num_nodes": 2})

        store.run_sync(fill)
        assert store.run_sync(uploads_in_use) == {
            ("alice", IDS[0]), ("alice", IDS[1]), ("bob", IDS[3]), ("bob", IDS[4]),
            ("carol", IDS[5]), ("carol", IDS[6]),
        }  # fmt: skip
    finally:
        store.close()
