"""Nothing leaks from the persistent path: private modes, and secrets never on disk.

A deployed server started under umask 000 (the most permissive a careless admin could
have) launches jobs with a task secret, once directly and once from a PENDING request
that survives a SIGKILL of the server (so the secret has to come back from the stored
body). Afterwards every directory under the persistent path is 0700, every file has no
group/other bits, and no file contains the secret — while the job's output proves it
reached the job's environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from serverproc import ServerProcess, kill_processes_under

from skyhop_core.requests.secrets import SecretBox, SecretsUnavailableError, redact
from skyhop_core.state import open_store
from skyhop_core.state import tokens as tk
from skyhop_core.state.db import requests as requests_table

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

pytestmark = pytest.mark.timeout(180)

#: The test harness's own file (ServerProcess writes the server's output there).
HARNESS_FILES = {"server-test.log"}


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


class Client:
    """alice's HTTP calls to a deployed server."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {token}"}

    def submit(self, op: str, body: dict[str, Any]) -> str:
        r = httpx.post(f"{self.server.endpoint}/api/v1/{op}", json=body, headers=self.headers,
                       timeout=30)  # fmt: skip
        assert r.status_code == 202, r.text
        return str(r.json()["request_id"])

    def result(self, request_id: str) -> dict[str, Any]:
        r = httpx.get(f"{self.server.endpoint}/api/get", params={"request_id": request_id},
                      headers=self.headers, timeout=120)  # fmt: skip
        assert r.status_code == 200, r.text
        return dict(r.json())

    def call(self, op: str, body: dict[str, Any]) -> Any:
        done = self.result(self.submit(op, body))
        assert done["status"] == "SUCCEEDED", done
        return done["result"]

    def log(self, request_id: str) -> str:
        r = httpx.get(f"{self.server.endpoint}/api/stream",
                      params={"request_id": request_id, "follow": "false"},
                      headers=self.headers, timeout=30)  # fmt: skip
        return r.content.replace(b"\0", b"").decode(errors="replace")

    def job_output(self, cluster: str, job_id: int) -> str:
        request_id = self.submit("logs", {"cluster_name": cluster, "job_id": job_id,
                                          "follow": True})  # fmt: skip
        assert self.result(request_id)["result"] == 0
        return self.log(request_id)

    def status(self, request_id: str) -> str:
        r = httpx.get(f"{self.server.endpoint}/api/status",
                      params={"request_ids": request_id}, headers=self.headers, timeout=30)
        return str(r.json()[0]["status"])


def task(secret: str) -> dict[str, Any]:
    # The job shows the secret reached it without printing it (it is never in a log).
    return {
        "resources": {"infra": "local"},
        "secrets": {"MY_SECRET": secret},
        "run": 'echo "len=${#MY_SECRET} rev=$(printf %s "$MY_SECRET" | rev)"',
    }


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            with contextlib.suppress(OSError), open(path, "rb") as f:
                if needle in f.read():
                    hits.append(str(path))
    return hits


def loose_modes(root: Path) -> list[str]:
    """Entries under ``root`` (and root) that are not 0700 dirs / private files."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath).parent.name == "layers":
            # A local node's own file system (its overlay's upper and work directories)
            # has a machine's modes (/ is 0755, /tmp 1777): it is reached only from inside
            # the node, through its layer directory, which must itself be private.
            dirnames[:] = [d for d in dirnames if d not in ("upper", "work")]
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath) / name if name != "." else Path(dirpath)
            if name in HARNESS_FILES and Path(dirpath) == root:
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            if stat.S_ISDIR(mode):
                if stat.S_IMODE(mode) != 0o700:
                    bad.append(f"{path} {oct(stat.S_IMODE(mode))}")
            elif stat.S_IMODE(mode) & 0o077:
                bad.append(f"{path} {oct(stat.S_IMODE(mode))}")
    return sorted(set(bad))


@pytest.fixture
def team_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "state"
    try:
        yield root
    finally:
        kill_processes_under(root)


#: A deployed server runs local jobs only when its administrator enables it, as a user.
LOCAL_ENABLED = "backends:\n  local:\n    allow_on_deployed_server: true\n    run_as: nobody\n"


def start(root: Path, **env: str) -> ServerProcess:
    env = {"SKYHOP_PLUGINS": "slow_backend", "PYTHONPATH": str(FIXTURES),
           "SKYHOP_REQUEST_SLOTS": "long=1", **env}  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(LOCAL_ENABLED)
    (root / "config.yaml").chmod(0o600)  # the administrator's file, written privately
    with umask(0):
        return ServerProcess(root, env=env, args=("--deploy",)).start()


def test_a_secret_reaches_the_job_but_no_file_and_every_mode_is_private(team_root: Path) -> None:
    secret = "s3cr3t-" + os.urandom(8).hex()
    with umask(0):
        os.mkdir(team_root, 0o777)  # a world-open persistent path, made before skyhop
        store = open_store(team_root)  # the admin's token commands create the database
        token, _ = store.run_sync(tk.create, "alice")
        store.engine.dispose()
    server = start(team_root)
    alice = Client(server, token)
    try:
        launched = alice.call("launch", {"task": task(secret), "cluster_name": "pv"})
        out = alice.job_output("pv", launched["job_id"])
        assert f"len={len(secret)} rev={secret[::-1]}" in out, out

        # A request that waits for a slot (the only long slot is held by a slow launch)
        # is stored PENDING with its secrets sealed, and survives a SIGKILL.
        slow = alice.submit("launch", {"task": {"resources": {"infra": "slow"}},
                                       "cluster_name": "sl"})  # fmt: skip
        deadline = time.monotonic() + 20
        while alice.status(slow) != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        queued = alice.submit("exec", {"task": task(secret), "cluster_name": "pv"})
        assert alice.status(queued) == "PENDING"
        store = open_store(team_root)
        with store.engine.connect() as conn:
            body = conn.execute(
                sa.select(requests_table.c.body).where(requests_table.c.request_id == queued)
            ).scalar_one()
        store.engine.dispose()
        sealed = body["task"]["secrets"]
        assert sealed["$names"] == ["MY_SECRET"] and secret not in str(body)
        server.kill(signal.SIGKILL)

        server = start(team_root)
        alice = Client(server, token)
        assert alice.result(slow)["error"]["type"] == "ServerRestartedError"
        resumed = alice.result(queued)
        assert resumed["status"] == "SUCCEEDED", resumed
        out = alice.job_output("pv", resumed["result"]["job_id"])
        assert f"len={len(secret)} rev={secret[::-1]}" in out, out
        # While the cluster is up (its node and agent files exist) ...
        assert (team_root / "backends" / "local" / "clusters" / "pv").is_dir()
        assert files_containing(team_root, secret.encode()) == []
        assert loose_modes(team_root) == []
        for cluster in ("pv", "sl"):
            alice.call("down", {"cluster_name": cluster})
    finally:
        server.stop()

    # ... and after everything is down and the server stopped.
    assert files_containing(team_root, secret.encode()) == []
    assert loose_modes(team_root) == []
    store = open_store(team_root)
    with store.engine.connect() as conn:
        bodies = [r.body for r in conn.execute(sa.select(requests_table)).all()]
    store.engine.dispose()
    # Finished requests keep only the secrets' names, not even the sealed values.
    assert {"$redacted": ["MY_SECRET"]} in [b.get("task", {}).get("secrets") for b in bodies]
    assert not [b for b in bodies if "$sealed" in str(b)]


def test_sealed_secrets_open_only_with_their_key(tmp_path: Path) -> None:
    box = SecretBox(tmp_path)
    body = {"task": {"run": "x", "secrets": {"A": "1", "B": "two"}}, "cluster_name": "c"}
    sealed = box.seal(body)
    assert "two" not in str(sealed) and sealed["cluster_name"] == "c"
    assert stat.S_IMODE((tmp_path / "keys" / "secrets.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert SecretBox(tmp_path).open(sealed) == body  # another replica: same key
    assert redact(sealed)["task"]["secrets"] == {"$redacted": ["A", "B"]}
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(SecretsUnavailableError, match="cannot be decrypted"):
        SecretBox(other).open(sealed)


def test_no_postgresql_row_holds_a_secret(pg_url: str, team_root: Path) -> None:
    secret = "pgs3cr3t-" + os.urandom(8).hex()
    from skyhop_core.state.migrate import upgrade

    engine = sa.create_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        token, _ = tk.create(conn, "alice")
    server = start(team_root, SKYHOP_DB_URL=pg_url)
    alice = Client(server, token)
    try:
        slow = alice.submit("launch", {"task": {"resources": {"infra": "slow"}},
                                       "cluster_name": "sl"})  # fmt: skip
        deadline = time.monotonic() + 20
        while alice.status(slow) != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        queued = alice.submit("launch", {"task": task(secret), "cluster_name": "pg"})
        assert alice.status(queued) == "PENDING"  # its row is in PostgreSQL, sealed

        def everything() -> str:
            metadata = sa.MetaData()
            metadata.reflect(engine)
            with engine.connect() as conn:
                return repr([conn.execute(sa.select(t)).all() for t in metadata.sorted_tables])

        rows = everything()
        assert "$sealed" in rows and secret not in rows
        httpx.post(f"{server.endpoint}/api/cancel", json={"request_ids": [slow]},
                   headers=alice.headers, timeout=30)  # fmt: skip
        launched = alice.result(queued)
        assert launched["status"] == "SUCCEEDED", launched
        out = alice.job_output("pg", launched["result"]["job_id"])
        assert f"len={len(secret)} rev={secret[::-1]}" in out, out
        assert secret not in everything()
        assert files_containing(team_root, secret.encode()) == []
        for cluster in ("pg", "sl"):
            alice.call("down", {"cluster_name": cluster})
    finally:
        server.stop()
        engine.dispose()
    assert not (team_root / "skyhop.db").exists()


def test_a_pending_request_whose_key_was_replaced_fails_clearly(team_root: Path) -> None:
    from cryptography.fernet import Fernet

    team_root.mkdir()
    store = open_store(team_root)
    token, _ = store.run_sync(tk.create, "alice")
    store.engine.dispose()
    server = start(team_root)
    alice = Client(server, token)
    try:
        slow = alice.submit("launch", {"task": {"resources": {"infra": "slow"}},
                                       "cluster_name": "sl"})  # fmt: skip
        deadline = time.monotonic() + 20
        while alice.status(slow) != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        queued = alice.submit("launch", {"task": task("never-runs"), "cluster_name": "k"})
        server.kill(signal.SIGKILL)
        (team_root / "keys" / "secrets.key").write_bytes(Fernet.generate_key())
        server = start(team_root)
        alice = Client(server, token)
        failed = alice.result(queued)
        assert failed["status"] == "FAILED"
        assert "cannot be decrypted" in failed["error"]["message"]
        for cluster in alice.call("status", {}):  # the slow launch may have made its record
            alice.call("down", {"cluster_name": cluster["name"]})
    finally:
        server.stop()
    store = open_store(team_root)
    with store.engine.connect() as conn:
        body = conn.execute(
            sa.select(requests_table.c.body).where(requests_table.c.request_id == queued)
        ).scalar_one()
    store.engine.dispose()
    assert body["task"]["secrets"] == {"$redacted": ["MY_SECRET"]}
