"""Storage buckets are per user on a deployed server: a second user neither sees,
deletes nor borrows the first one's buckets (their names stay taken)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverproc import ServerProcess, kill_processes_under

from skyhop_core.state import open_store
from skyhop_core.state import tokens as tk

pytestmark = pytest.mark.timeout(180)
LOCAL_ENABLED = "backends:\n  local:\n    allow_on_deployed_server: true\n    run_as: nobody\n"


class User:
    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server, self.headers = server, {"Authorization": f"Bearer {token}"}

    def done(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(f"{self.server.endpoint}/api/v1/{op}", json=body, headers=self.headers,
                       timeout=30)  # fmt: skip
        assert r.status_code == 202, r.text
        r = httpx.get(f"{self.server.endpoint}/api/get", headers=self.headers, timeout=120,
                      params={"request_id": r.json()["request_id"]})  # fmt: skip
        assert r.status_code == 200, r.text
        return dict(r.json())

    def call(self, op: str, body: dict[str, Any]) -> Any:
        done = self.done(op, body)
        assert done["status"] == "SUCCEEDED", done
        return done["result"]

    def error(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        done = self.done(op, body)
        assert done["status"] == "FAILED", done
        return dict(done["error"])


@pytest.fixture
def team(tmp_path: Path) -> Iterator[tuple[User, User, Path]]:
    root = tmp_path / "team"
    root.mkdir()
    (root / "config.yaml").write_text(LOCAL_ENABLED)
    store = open_store(root)
    alice, _ = store.run_sync(tk.create, "alice")
    bob, _ = store.run_sync(tk.create, "bob")
    store.engine.dispose()
    server = ServerProcess(root, args=("--deploy",)).start()
    try:
        yield User(server, alice), User(server, bob), root
    finally:
        server.stop()
        kill_processes_under(root)


def launch_body(cluster: str, mount: Any) -> dict[str, Any]:
    return {"cluster_name": cluster, "task": {
        "resources": {"infra": "local"}, "run": "ls /d", "file_mounts": {"/d": mount}}}


def test_a_second_user_never_sees_deletes_or_borrows_your_bucket(team) -> None:
    alice, bob, root = team
    alice.call("launch", launch_body("a1", {"name": "alice-data", "mode": "COPY"}))
    assert [r["name"] for r in alice.call("storage_ls", {})] == ["alice-data"]
    assert bob.call("storage_ls", {}) == []
    error = bob.error("storage_delete", {"names": ["alice-data"]})
    assert error["type"] == "StorageError" and "No storage named 'alice-data'" in error["message"]
    for mount in ({"name": "alice-data", "mode": "COPY"}, "local://alice-data"):
        error = bob.error("launch", launch_body("b1", mount))
        assert error["type"] == "StorageError" and "is taken" in error["message"], error
    assert (root / "stores" / "local" / "alice-data").is_dir()  # still there
    admin_view = bob.error("storage_ls", {"all_users": True})
    assert admin_view["type"] == "PermissionDeniedError"
    assert alice.call("storage_delete", {"all": True}) == ["alice-data"]
    for user, cluster in ((alice, "a1"), (bob, "b1")):
        user.done("down", {"cluster_name": cluster})
