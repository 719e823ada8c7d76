"""Several API server replicas on one PostgreSQL and one persistent path.

Two real servers share the database and the path. A request submitted to one is visible,
streamable and cancellable from the other; when one is killed, the other fails what it
was running and runs what it had queued, once, within a bounded time.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
from apicalls import HEADERS, call, clusters, requests, result, submit, wait_for, wait_running

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LEASE = 2.0


def pair(make_server, tmp_path: Path, pg_url: str, **extra: str):
    env = {
        "SKYHOP_DB_URL": pg_url,
        "SKYHOP_PLUGINS": "slow_backend",
        "PYTHONPATH": str(FIXTURES),
        "SKYHOP_SERVER_LEASE_SECONDS": str(LEASE),
        **extra,
    }
    shared = tmp_path / "shared"
    return make_server(shared, env=env), make_server(shared, env=env)


SLOW = {"task": {"resources": {"infra": "slow"}}}


def test_a_request_on_one_replica_is_seen_streamed_and_cancelled_from_the_other(
    make_server, tmp_path: Path, pg_url: str
):
    a, b = pair(make_server, tmp_path, pg_url)
    quick = submit(a, "launch", {"task": {"resources": {"infra": "local"}, "run": "echo hi-a"},
                                 "cluster_name": "ra"})
    done = result(b, quick)  # waited for on B, run on A
    assert done["status"] == "SUCCEEDED", done
    streamed = httpx.get(f"{b.endpoint}/api/stream", params={"request_id": quick[:8]}).text
    assert "Job submitted" in streamed
    assert quick in requests(b)

    slow = submit(a, "launch", {**SLOW, "cluster_name": "rb"})
    wait_running(b, slow)
    wait_for(lambda: "rb" in clusters(b), "the slow launch started provisioning")
    started = time.monotonic()
    r = httpx.post(f"{b.endpoint}/api/cancel", json={"request_ids": [slow]}, headers=HEADERS,
                   timeout=30)
    assert r.json()["cancelled"] == [slow]
    assert time.monotonic() - started < 2.0
    assert requests(a)[slow]["status"] == "CANCELLED"
    for name in ("ra", "rb"):
        call(b, "down", {"cluster_name": name})


def test_a_killed_replicas_queue_moves_to_another_and_runs_once(
    make_server, tmp_path: Path, pg_url: str
):
    a, b = pair(make_server, tmp_path, pg_url, SKYHOP_REQUEST_SLOTS="long=1")
    running = submit(a, "launch", {**SLOW, "cluster_name": "k1"})
    wait_running(a, running)
    queued = submit(a, "launch", {**SLOW, "cluster_name": "k2"})
    assert requests(b)[queued]["status"] == "PENDING"
    a.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: requests(b)[queued]["status"] == "RUNNING",
             "the other replica runs the queued launch", timeout=30)
    assert time.monotonic() - killed_at < 30
    failed = result(b, running)
    assert failed["status"] == "FAILED" and failed["error"]["type"] == "ServerRestartedError"
    wait_for(lambda: "k2" in clusters(b), "k2 is provisioning on B")
    # Exactly one replica ran it: its log says it started provisioning once.
    log = httpx.get(f"{b.endpoint}/api/stream",
                    params={"request_id": queued, "follow": "false"}).text
    assert log.count("slow: waiting") == 1, log
    r = httpx.post(f"{b.endpoint}/api/cancel", json={"request_ids": [queued]}, headers=HEADERS,
                   timeout=30)
    assert r.json()["cancelled"] == [queued]
    for name in clusters(b):
        call(b, "down", {"cluster_name": name})
