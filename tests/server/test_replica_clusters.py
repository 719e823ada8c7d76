"""Two API server replicas act on clusters as one server does.

Both replicas share one PostgreSQL database and one persistent path, as in the README's
HA deployment. Lifecycle operations on one cluster submitted through different replicas
are serialised by a lease row (see ``skyhop_core.ops.locking``); a replica killed while
holding a cluster's lease frees it within one lease.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from apicalls import clusters, log, result, submit, wait_for, wait_running

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
    return shared, make_server(shared, env=env), make_server(shared, env=env)


def node_dirs(shared: Path, backend: str, name: str) -> Path:
    sub = "clusters" if backend == "local" else ""
    return shared / "backends" / backend / sub / name


LOCAL = {"resources": {"infra": "local"}, "run": "true"}


def test_concurrent_launch_and_down_through_two_replicas_stay_consistent(
    make_server, tmp_path: Path, pg_url: str
):
    shared, a, b = pair(make_server, tmp_path, pg_url)
    for round_ in range(4):
        first, second = (a, b) if round_ % 2 == 0 else (b, a)
        launch = submit(first, "launch", {"task": LOCAL, "cluster_name": "race"})
        down = submit(second, "down", {"cluster_name": "race"})
        outcomes = {result(first, launch)["status"], result(second, down)["status"]}
        assert outcomes <= {"SUCCEEDED", "CANCELLED", "FAILED"}, outcomes
        # Whatever order they ran in, the record and the nodes agree.
        listed = clusters(a)
        assert listed == clusters(b)
        exists = node_dirs(shared, "local", "race").exists()
        if "race" in listed:
            assert listed["race"] == "UP" and exists, (listed, round_)
        else:
            assert not exists, f"round {round_}: nodes leaked without a cluster record"
        stop = submit(second, "stop", {"cluster_name": "race"})
        again = submit(first, "launch", {"task": LOCAL, "cluster_name": "race"})
        result(second, stop)
        assert result(first, again)["status"] == "SUCCEEDED"
        assert clusters(b)["race"] == "UP"
        result(second, submit(second, "down", {"cluster_name": "race"}))
        assert "race" not in clusters(a)
        assert not node_dirs(shared, "local", "race").exists()


def test_a_launch_on_a_busy_cluster_waits_for_the_other_replica(
    make_server, tmp_path: Path, pg_url: str
):
    shared, a, b = pair(make_server, tmp_path, pg_url, SLOW_BACKEND_DELAY="3")
    task = {"resources": {"infra": "slow"}, "run": "echo ran"}
    first = submit(a, "launch", {"task": task, "cluster_name": "busy"})
    wait_running(a, first)
    wait_for(lambda: b"slow: waiting" in log(a, first), "A is provisioning")
    second = submit(b, "launch", {"task": task, "cluster_name": "busy"})
    wait_for(lambda: b"is busy" in log(b, second), "B says what it waits for")
    waiting = log(b, second).decode()
    assert f"its launch request {first[:8]} runs on another API server" in waiting
    assert result(a, first)["status"] == "SUCCEEDED"
    assert result(b, second)["status"] == "SUCCEEDED"
    second_log = log(b, second).decode()
    assert "is UP; reusing it" in second_log, second_log
    assert second_log.count("slow: waiting") == 0  # provisioned once, by A
    result(b, submit(b, "down", {"cluster_name": "busy"}))


def test_a_replica_killed_holding_a_cluster_frees_it_within_a_lease(
    make_server, tmp_path: Path, pg_url: str
):
    shared, a, b = pair(make_server, tmp_path, pg_url, SLOW_BACKEND_DELAY="60")
    launch = submit(a, "launch", {"task": {"resources": {"infra": "slow"}}, "cluster_name": "k"})
    wait_running(a, launch)
    wait_for(lambda: node_dirs(shared, "slow", "k").exists(), "A started provisioning")
    a.kill(signal.SIGKILL)
    killed = time.monotonic()
    down = submit(b, "down", {"cluster_name": "k"})
    done = result(b, down, timeout=60)
    assert done["status"] == "SUCCEEDED", done
    # One lease for B to see A dead, one for the cluster's lease, and some slack.
    assert time.monotonic() - killed < 4 * LEASE + 10
    assert "k" not in clusters(b)
    assert not node_dirs(shared, "slow", "k").exists(), "the half-made nodes leaked"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skyhop.cli", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_each_replica_keeps_its_own_files_and_api_stop_stops_only_it(
    tmp_path: Path, pg_url: str
):
    import serverproc

    shared = tmp_path / "shared"
    base = {k: v for k, v in os.environ.items() if not k.startswith("SKYHOP_")}
    base.update(SKYHOP_PERSISTENT_PATH=str(shared), SKYHOP_DB_URL=pg_url,
                SKYHOP_CONFIG=str(tmp_path / "config.yaml"))  # fmt: skip
    ports = [serverproc.free_port(), serverproc.free_port()]
    envs = [{**base, "SKYHOP_API_SERVER_ENDPOINT": f"http://127.0.0.1:{p}"} for p in ports]
    try:
        for env, port in zip(envs, ports, strict=True):
            started = _cli(env, "api", "start", "--deploy", "--host", "127.0.0.1",
                           "--port", str(port))  # fmt: skip
            assert started.returncode == 0, started.stdout + started.stderr
        dirs = [shared / "server" / f"{socket.gethostname()}-{p}" for p in ports]
        pids = [int((d / "server.pid").read_text().split()[0]) for d in dirs]
        assert pids[0] != pids[1]
        assert all((d / "server.log").exists() for d in dirs)

        stopped = _cli(envs[0], "api", "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not (dirs[0] / "server.pid").exists()
        health = httpx.get(f"http://127.0.0.1:{ports[1]}/api/health", timeout=5)
        assert health.status_code == 200, "stopping one replica stopped the other"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{ports[0]}/api/health", timeout=2)
    finally:
        for env in envs:
            _cli(env, "api", "stop")
        serverproc.kill_processes_under(shared)
