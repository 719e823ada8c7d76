"""The upload routes over real HTTP on a deployed server: dedup, chunks, resume, limits,
and users who must never see each other's files."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import skyhop as sky
from skyhop import exceptions, uploads
from skyhop.client import ApiClient, using
from skyhop_core.state import open_store
from skyhop_core.state import tokens as tk

LIMIT = 12 << 20  # SKYHOP_UPLOAD_MAX_BYTES of the test server


class Team:
    def __init__(self, root: Path) -> None:
        import serverproc

        self.server = serverproc.ServerProcess(
            root, args=("--deploy",), env={"SKYHOP_UPLOAD_MAX_BYTES": str(LIMIT)}
        ).start()
        self.endpoint = self.server.endpoint
        store = open_store(root)
        self.alice, _ = store.run_sync(tk.create, "alice")
        self.bob, _ = store.run_sync(tk.create, "bob")
        self.clients: list[ApiClient] = []

    def client(self, token: str) -> ApiClient:
        client = ApiClient(self.endpoint, token=token, auto_start=False)
        self.clients.append(client)
        return client

    def http(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, self.endpoint + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    import serverproc

    root = tmp_path_factory.mktemp("uploads-team")
    team = Team(root)
    yield team
    for client in team.clients:
        client.close()
    try:
        team.server.stop()
    finally:
        team.server.kill()
        serverproc.kill_processes_under(root)


class Counting:
    """A caller that counts the bodies carrying content: chunks (PUT) and packs."""

    def __init__(self, client: ApiClient) -> None:
        self.client, self.puts, self.put_bytes, self.packs = client, 0, 0, 0

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        if method == "PUT":
            self.puts += 1
            self.put_bytes += len(kwargs["content"])
        if path == "/api/uploads/pack":
            self.packs += 1
        return self.client.call(method, path, **kwargs)


def test_unchanged_files_are_never_sent_twice(team: Team, tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("print('a')\n")
    (tmp_path / "b.py").write_text("print('b')\n")
    (tmp_path / "copy.py").write_text("print('a')\n")  # same content as a.py: one blob
    caller = Counting(team.client(team.alice))
    first = uploads.upload_source(caller, str(tmp_path))
    assert (first.files, first.blobs_sent, caller.packs) == (3, 2, 1)  # small files: one body
    again = uploads.upload_source(caller, str(tmp_path))
    assert again.upload_id == first.upload_id and again.blobs_sent == 0 and caller.packs == 1
    (tmp_path / "b.py").write_text("print('edited')\n")
    edited = uploads.upload_source(caller, str(tmp_path))
    assert edited.upload_id != first.upload_id and edited.blobs_sent == 1 and caller.packs == 2
    assert edited.bytes_sent == len("print('edited')\n") and caller.puts == 0
    info = team.http("GET", f"/api/uploads/{edited.upload_id}", team.alice).json()
    assert info["state"] == "ready" and info["files"] == 3 and info["new_blobs"] == 1


def test_a_big_file_goes_in_chunks_and_an_interrupted_upload_resumes(
    team: Team, tmp_path: Path
) -> None:
    data = bytes(range(256)) * (9 * 4096)  # 9 MiB: two chunks of at most 8 MiB
    (tmp_path / "weights.bin").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    client = team.client(team.alice)
    scanned = uploads.scan(str(tmp_path))
    assert client.call("POST", "/api/uploads", json=scanned.manifest)["missing"] == [sha]
    # The first 3 MiB arrive, then the client "dies".
    client.call("PUT", f"/api/uploads/blobs/{sha}", content=data[: 3 << 20],
                params={"offset": 0, "size": len(data)})  # fmt: skip
    caller = Counting(client)
    progress = io.StringIO()
    result = uploads.upload_source(caller, str(tmp_path), label="workdir", progress_stream=progress)
    assert result.blobs_sent == 1
    assert caller.put_bytes == len(data) - (3 << 20)  # only the rest was sent
    assert caller.puts == 1  # 6 MiB left: one chunk
    assert "Uploaded workdir: 9.0 MiB" in progress.getvalue()
    status = team.http("GET", f"/api/uploads/blobs/{sha}", team.alice).json()
    assert status == {"sha256": sha, "received": len(data), "complete": True}


def test_bad_chunks_are_refused(team: Team) -> None:
    data = b"hello world"
    sha = hashlib.sha256(data).hexdigest()
    put = f"/api/uploads/blobs/{sha}"
    wrong = team.http("PUT", put, team.bob, params={"offset": 5, "size": 11}, content=data[5:])
    assert wrong.status_code == 409 and wrong.json()["received"] == 0
    forged = hashlib.sha256(b"other").hexdigest()
    bad = team.http("PUT", f"/api/uploads/blobs/{forged}", team.bob,
                    params={"offset": 0, "size": 11}, content=data)  # fmt: skip
    assert bad.status_code == 400 and "does not hash" in bad.json()["error"]["message"]
    pack = hashlib.sha256(b"abc").hexdigest()
    lying = team.http("POST", "/api/uploads/pack", team.bob,
                      content=f'[["{pack}",3]]\nabd'.encode())  # fmt: skip
    assert lying.status_code == 400 and "does not hash" in lying.text
    short = team.http("POST", "/api/uploads/pack", team.bob,
                      content=f'[["{pack}",5]]\nabc'.encode())  # fmt: skip
    assert short.status_code == 400 and "names 5 bytes, but 3 followed" in short.text
    assert team.http("GET", f"/api/uploads/blobs/{pack}", team.bob).json()["complete"] is False
    huge = team.http("PUT", put, team.bob, params={"offset": 0, "size": 9 << 20},
                     content=b"\0" * ((8 << 20) + 1))  # fmt: skip
    assert huge.status_code == 413
    traversal = team.http("POST", "/api/uploads", team.bob, json={"kind": "dir", "entries": [
        {"path": "../../etc/cron.d/x", "type": "file", "size": 1, "sha256": sha}]})  # fmt: skip
    assert traversal.status_code == 400 and "entries[0].path" in traversal.text


def test_the_size_limit_names_itself_and_the_biggest_files(team: Team, tmp_path: Path) -> None:
    (tmp_path / "small.txt").write_text("x")
    with open(tmp_path / "dataset.bin", "wb") as f:
        f.truncate(13 << 20)
    with using(team.client(team.alice)), pytest.raises(exceptions.UploadTooLargeError) as info:
        sky.launch(sky.Task(run="true", workdir=str(tmp_path)), cluster_name="never")
    message = str(info.value)
    assert "12.0 MiB" in message and "SKYHOP_UPLOAD_MAX_BYTES" in message
    assert "dataset.bin (13.0 MiB)" in message
    assert info.value.limit == LIMIT and info.value.total == (13 << 20) + 1


def test_a_user_never_reaches_another_users_upload(team: Team, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("alice's secret\n")
    alice = uploads.upload_source(team.client(team.alice), str(tmp_path))
    assert team.http("GET", f"/api/uploads/{alice.upload_id}", team.alice).status_code == 200
    theirs = team.http("GET", f"/api/uploads/{alice.upload_id}", team.bob)
    assert theirs.status_code == 404 and theirs.json()["error"]["type"] == "UploadNotFoundError"
    assert team.http("POST", f"/api/uploads/{alice.upload_id}/complete", team.bob).status_code == 404
    # Bob names alice's upload in a launch: it fails as "not found", nothing is synced.
    task = {"run": "cat secret.txt", "workdir": f"skyhop-upload://{alice.upload_id}",
            "resources": {"infra": "local"}}  # fmt: skip
    with using(team.client(team.bob)):
        request_id = team.client(team.bob).submit("launch", {"task": task, "cluster_name": "bdev"})
        with pytest.raises(exceptions.UploadNotFoundError):
            sky.stream_and_get(request_id, output_stream=io.StringIO())
        assert sky.get(sky.status(["bdev"])) == []  # refused before provisioning anything


def test_a_client_path_in_a_request_is_refused_at_submission(team: Team) -> None:
    body = {"task": {"run": "ls", "workdir": "/etc"}, "cluster_name": "x"}
    response = team.http("POST", "/api/v1/launch", team.alice, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "TaskValidationError" and error["args"]["field"] == "workdir"
    assert "POST /api/uploads" in error["message"]


def test_an_upload_resumes_after_the_server_is_killed(tmp_path: Path) -> None:
    import serverproc

    data = bytes(range(256)) * (10 * 4096)  # 10 MiB
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    server = serverproc.ServerProcess(tmp_path / "state").start()
    client = ApiClient(server.endpoint, auto_start=False)
    try:
        client.call("POST", "/api/uploads", json=uploads.scan(str(tmp_path / "src")).manifest)
        client.call("PUT", f"/api/uploads/blobs/{sha}", content=data[: 8 << 20],
                    params={"offset": 0, "size": len(data)})  # fmt: skip
        server.kill()  # SIGKILL, mid-upload
        server = serverproc.ServerProcess(tmp_path / "state", port=server.port).start()
        caller = Counting(client)
        result = uploads.upload_source(caller, str(tmp_path / "src"))
        assert caller.put_bytes == len(data) - (8 << 20)  # the first 8 MiB survived
        info = client.call("GET", f"/api/uploads/{result.upload_id}")
        assert info["state"] == "ready" and info["bytes"] == len(data)
    finally:
        client.close()
        server.stop()
        serverproc.kill_processes_under(tmp_path / "state")


def test_unused_uploads_are_garbage_collected(tmp_path: Path) -> None:
    import serverproc

    env = {"SKYHOP_UPLOAD_RETENTION_SECONDS": "1", "SKYHOP_UPLOAD_GC_INTERVAL_SECONDS": "0.2"}
    server = serverproc.ServerProcess(tmp_path / "state", env=env).start()
    client = ApiClient(server.endpoint, auto_start=False)
    try:
        (tmp_path / "f.txt").write_text("soon gone")
        result = uploads.upload_source(client, str(tmp_path / "f.txt"))
        assert client.call("GET", f"/api/uploads/{result.upload_id}")["files"] == 1
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.call("GET", f"/api/uploads/{result.upload_id}")
            except exceptions.UploadNotFoundError:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the upload outlived its retention")
        assert not any((tmp_path / "state" / "uploads").glob("*/blobs/*/*"))
    finally:
        client.close()
        server.stop()
        serverproc.kill_processes_under(tmp_path / "state")


def test_a_live_managed_jobs_workdir_outlives_the_retention_and_goes_after(tmp_path: Path) -> None:
    """A managed job syncs its workdir again when it recovers, however long after the
    upload: the collector keeps what a live job names, and collects it once it ended."""
    import shutil

    import serverproc
    from jobcalls import wait_status

    env = {
        "SKYHOP_UPLOAD_RETENTION_SECONDS": "1", "SKYHOP_UPLOAD_GC_INTERVAL_SECONDS": "0.2",
        "SKYHOP_JOBS_POLL_SECONDS": "0.2", "SKYHOP_JOBS_RETRY_BASE": "0.2",
        "SKYHOP_LOCAL_SANDBOX": "off",  # the job leaves a marker on the host
    }  # fmt: skip
    root = tmp_path / "state"
    server = serverproc.ServerProcess(root, env=env).start()
    marker = tmp_path / "ran-once"
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "data.txt").write_text("synced-again")
    run = f"if [ -f {marker} ]; then cat data.txt; exit 0; fi; touch {marker}; sleep 600"
    task = {"name": "long", "workdir": str(tmp_path / "wd"), "run": run,
            "resources": {"infra": "local"}}  # fmt: skip
    trees = root / "uploads"
    try:
        with using(ApiClient(server.endpoint, auto_start=False)):
            job_id = int(sky.get(sky.jobs.launch(task))[0])
            wait_status(job_id, "RUNNING")
            while not marker.exists():  # the first attempt's command has started
                time.sleep(0.05)
            time.sleep(3)  # the upload is unused for 3 retentions, 15 collections
            assert len(list(trees.glob("*/trees/*.json"))) == 1
            where = root / "backends" / "local" / "clusters" / f"long-{job_id}"
            serverproc.kill_processes_under(where)  # preempted: the relaunch syncs again
            shutil.rmtree(where)
            assert wait_status(job_id, "SUCCEEDED", timeout=90)["recovery_count"] == 1
            out = io.StringIO()
            sky.jobs.tail_logs(job_id=job_id, follow=False, output_stream=out)  # type: ignore[arg-type]
            assert "synced-again" in out.getvalue()
            deadline = time.monotonic() + 15
            while any(trees.glob("*/trees/*.json")) or any(trees.glob("*/blobs/*/*")):
                assert time.monotonic() < deadline, "the ended job's upload was never collected"
                time.sleep(0.2)
    finally:
        server.stop()
        serverproc.kill_processes_under(root)
