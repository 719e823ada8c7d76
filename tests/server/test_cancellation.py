"""Cancelling requests: at once, mid-provisioning or mid-stream, with consistent records."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from serverproc import processes_under

HEADERS = {"X-Skyhop-User": "carol", "X-Skyhop-User-Hash": "ca201000"}
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def submit(server, op, body):
    r = httpx.post(f"{server.endpoint}/api/v1/{op}", json=body, headers=HEADERS)
    assert r.status_code == 202, r.text
    return r.json()["request_id"]


def result(server, request_id):
    return httpx.get(f"{server.endpoint}/api/get", params={"request_id": request_id}, timeout=120).json()


def request_status(server, request_id):
    rows = httpx.get(
        f"{server.endpoint}/api/status",
        params={"request_ids": request_id, "all": "true"},
        headers=HEADERS,
    ).json()
    return rows[0]["status"]


def cancel(server, *ids):
    return httpx.post(
        f"{server.endpoint}/api/cancel", json={"request_ids": list(ids)}, headers=HEADERS, timeout=30
    ).json()


def wait_status(server, request_id, wanted, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = request_status(server, request_id)
        if status == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"{request_id} stayed {status}, wanted {wanted}")


@pytest.fixture
def slow_server(make_server, monkeypatch):
    env = {"SKYHOP_PLUGINS": "slow_backend", "PYTHONPATH": str(FIXTURES)}
    return make_server(env=env)


def launch_local(server, name, run=None):
    task = {"resources": {"infra": "local"}}
    if run:
        task["run"] = run
    return result(server, submit(server, "launch", {"task": task, "cluster_name": name}))


def test_cancel_mid_provisioning_leaves_an_init_cluster_that_down_removes(slow_server):
    request_id = submit(
        slow_server, "launch", {"task": {"resources": {"infra": "slow"}}, "cluster_name": "sl"}
    )
    node_dir = slow_server.root / "backends" / "slow" / "sl"
    deadline = time.monotonic() + 20
    while not node_dir.exists():
        assert time.monotonic() < deadline, "provisioning never started"
        time.sleep(0.05)
    started = time.monotonic()
    assert cancel(slow_server, request_id[:10])["cancelled"] == [request_id]
    assert time.monotonic() - started < 1.0
    assert request_status(slow_server, request_id) == "CANCELLED"
    assert result(slow_server, request_id)["error"]["type"] == "RequestCancelledError"
    assert not node_dir.exists(), "the backend's shielded cleanup did not run"
    status = result(slow_server, submit(slow_server, "status", {}))["result"]
    assert [(c["name"], c["status"]) for c in status] == [("sl", "INIT")]
    down = result(slow_server, submit(slow_server, "down", {"cluster_name": "sl"}))
    assert down["status"] == "SUCCEEDED", down
    assert result(slow_server, submit(slow_server, "status", {}))["result"] == []


def test_cancel_a_log_stream_stops_it_and_its_processes(server):
    launch_local(server, "lg")
    job = result(server, submit(server, "exec", {"task": {"run": "sleep 300"}, "cluster_name": "lg"}))
    job_id = job["result"]["job_id"]
    logs_id = submit(server, "logs", {"cluster_name": "lg", "job_id": job_id, "follow": True})
    wait_status(server, logs_id, "RUNNING")
    runtime = server.root / "backends" / "local" / "clusters" / "lg"
    deadline = time.monotonic() + 10
    tails = []
    while not tails:
        assert time.monotonic() < deadline
        tails = [p for p in processes_under(runtime) if b" tail " in Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")]
        time.sleep(0.05)
    started = time.monotonic()
    assert cancel(server, logs_id)["cancelled"] == [logs_id]
    assert time.monotonic() - started < 1.0
    assert request_status(server, logs_id) == "CANCELLED"
    for pid in tails:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    # What `sky.api_cancel` sends — an `api_cancel` request answered with its result — is
    # answered after the cancelled request's CANCELLED row is stored (the two rows share a
    # commit): a status read right after the answer sees it.
    for _ in range(3):
        logs_id = submit(server, "logs", {"cluster_name": "lg", "job_id": job_id, "follow": True})
        wait_status(server, logs_id, "RUNNING")
        answer = httpx.post(
            f"{server.endpoint}/api/v1/api_cancel", params={"wait": "10"}, headers=HEADERS,
            json={"request_ids": [logs_id], "all": False, "all_users": False}, timeout=30,
        ).json()
        assert answer["status"] == "SUCCEEDED" and answer["result"] == [logs_id]
        assert request_status(server, logs_id) == "CANCELLED"
    # Cancelling the stream did not cancel the job.
    statuses = result(server, submit(server, "job_status", {"cluster_name": "lg", "job_ids": [job_id]}))
    assert statuses["result"] == {str(job_id): "RUNNING"}
    result(server, submit(server, "down", {"cluster_name": "lg"}))


def test_down_cancels_every_request_on_the_cluster(server):
    launch_local(server, "dn")
    job_id = result(server, submit(server, "exec", {"task": {"run": "sleep 300"}, "cluster_name": "dn"}))["result"]["job_id"]
    logs_id = submit(server, "logs", {"cluster_name": "dn", "job_id": job_id, "follow": True})
    wait_status(server, logs_id, "RUNNING")
    down = result(server, submit(server, "down", {"cluster_name": "dn"}))
    assert down["status"] == "SUCCEEDED"
    assert request_status(server, logs_id) == "CANCELLED"


def test_running_requests_fail_and_pending_ones_run_after_a_sigkill(make_server, tmp_path):
    import signal

    env = {"SKYHOP_PLUGINS": "slow_backend", "PYTHONPATH": str(FIXTURES),
           "SKYHOP_REQUEST_SLOTS": "long=1"}
    first = make_server(tmp_path / "rs", env=env)
    slow = {"task": {"resources": {"infra": "slow"}}, "cluster_name": "rs"}
    running = submit(first, "launch", slow)
    wait_status(first, running, "RUNNING")
    # Killed once it provisions (RUNNING comes earlier; a launch killed before it
    # provisions leaves no cluster behind).
    deadline = time.monotonic() + 20
    while not (tmp_path / "rs" / "backends" / "slow" / "rs").exists():
        assert time.monotonic() < deadline, "the launch never started provisioning"
        time.sleep(0.05)
    pending = submit(first, "launch", {**slow, "cluster_name": "rs2"})
    time.sleep(0.3)
    assert request_status(first, pending) == "PENDING"  # the one long slot is taken
    first.kill(signal.SIGKILL)
    again = make_server(tmp_path / "rs", env=env)
    done = result(again, running)
    assert done["status"] == "FAILED"
    assert done["error"]["type"] == "ServerRestartedError"
    wait_status(again, pending, "RUNNING")  # the PENDING launch was picked up again
    # Its nodes exist once the backend provisions (the record alone comes earlier: a
    # launch cancelled before provisioning leaves nothing, and no record).
    node_dir = tmp_path / "rs" / "backends" / "slow" / "rs2"
    deadline = time.monotonic() + 20
    while not node_dir.exists():
        assert time.monotonic() < deadline, "the resumed launch never started provisioning"
        time.sleep(0.05)
    assert cancel(again, pending)["cancelled"] == [pending]
    names = {c["name"]: c["status"] for c in result(again, submit(again, "status", {}))["result"]}
    assert names == {"rs": "INIT", "rs2": "INIT"}
    for name in names:
        assert result(again, submit(again, "down", {"cluster_name": name}))["status"] == "SUCCEEDED"


def test_finished_requests_expire_with_their_logs(make_server):
    server = make_server(env={"SKYHOP_REQUEST_RETENTION_SECONDS": "1"})
    request_id = submit(server, "queue", {"cluster_name": "gone"})  # fails, and logs why
    result(server, request_id)
    log = server.root / "requests" / f"{request_id}.log"
    assert log.exists()
    deadline = time.monotonic() + 15
    while log.exists():
        assert time.monotonic() < deadline, "the finished request was never removed"
        time.sleep(0.2)
    r = httpx.get(f"{server.endpoint}/api/get", params={"request_id": request_id})
    assert r.status_code == 404


def test_reads_never_wait_behind_long_work(make_server, tmp_path):
    env = {"SKYHOP_PLUGINS": "slow_backend", "PYTHONPATH": str(FIXTURES),
           "SKYHOP_REQUEST_SLOTS": "long=2"}
    server = make_server(tmp_path / "busy", env=env)
    slow = [
        submit(server, "launch", {"task": {"resources": {"infra": "slow"}}, "cluster_name": f"b{i}"})
        for i in range(6)
    ]
    wait_status(server, slow[0], "RUNNING")
    # Every long slot is busy and four launches queue behind them; reads still finish.
    for _ in range(5):
        assert result(server, submit(server, "status", {}))["status"] == "SUCCEEDED"
    assert sorted(request_status(server, r) for r in slow) == ["PENDING"] * 4 + ["RUNNING"] * 2
    cancel(server, *slow)
    assert {request_status(server, r) for r in slow} == {"CANCELLED"}
