"""States that tell the truth when a cluster's agent dies or a log tail loses its server.

A ``kill -9`` of the agent daemon on a local cluster while a job runs: the job is
FAILED_DRIVER (and its processes gone) without anyone asking for its logs — at the very
next ``queue``, and through the server's health watcher within its interval even when
nobody asks — and the cluster becomes INIT with a reason; ``start`` brings it back and
``down`` removes it. A ``logs --follow`` tail exits when its server is SIGKILLed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apicalls import call, clusters, log, submit, wait_for
from serverproc import ServerProcess, processes_under

pytestmark = pytest.mark.timeout(90)

SLEEPER = {"resources": {"infra": "local"}, "run": "echo started; sleep 300"}


def node_root(server: ServerProcess, name: str) -> Path:
    return server.root / "backends" / "local" / "clusters" / name


def runtime_dir(server: ServerProcess, name: str) -> Path:
    return node_root(server, name) / "node-0" / ".skyhop_runtime"


def job_processes(server: ServerProcess, name: str) -> list[int]:
    """The job's own processes (``sleep 300``), not the agent's."""
    found = []
    for pid in processes_under(node_root(server, name)):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"sleep\x00300" in cmdline:
            found.append(pid)
    return found


def queue(server: ServerProcess, name: str) -> list[tuple[int, str]]:
    return [(j["job_id"], j["status"]) for j in call(server, "queue", {"cluster_name": name})]


def status_of(server: ServerProcess, name: str, refresh: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"cluster_names": [name]}
    if refresh:
        body["refresh"] = "FORCE"
    (record,) = call(server, "status", body)
    return dict(record)


def launch_sleeper(server: ServerProcess, name: str) -> int:
    job_id = int(call(server, "launch", {"task": SLEEPER, "cluster_name": name})["job_id"])
    wait_for(lambda: queue(server, name) == [(job_id, "RUNNING")], "the job runs")
    wait_for(lambda: bool(job_processes(server, name)), "the job's process runs")
    return job_id


def kill_agent_daemon(server: ServerProcess, name: str) -> None:
    pid = int((runtime_dir(server, name) / "daemon.pid").read_text())
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def start(make_server: Callable[..., ServerProcess], tmp_path: Path) -> Callable[..., ServerProcess]:
    def run(**env: str) -> ServerProcess:
        return make_server(tmp_path / "health", env=env)

    return run


def test_queue_tells_the_truth_at_once_and_refresh_says_init(start: Any) -> None:
    # The watcher never runs here: what queue shows is the agent's own reconciliation.
    server = start(SKYHOP_HEALTH_INTERVAL="3600")
    job_id = launch_sleeper(server, "dead")
    kill_agent_daemon(server, "dead")

    assert queue(server, "dead") == [(job_id, "FAILED_DRIVER")]
    wait_for(lambda: not job_processes(server, "dead"), "the driverless job's processes are gone", 5)
    assert status_of(server, "dead")["status"] == "UP"  # not refreshed: the record as it was
    refreshed = status_of(server, "dead", refresh=True)
    assert refreshed["status"] == "INIT"
    reason = refreshed["metadata"]["status_reason"]
    assert "agent daemon" in reason and "not running" in reason and "skyhop start dead" in reason
    assert status_of(server, "dead")["status"] == "INIT"  # and it stays so

    # INIT refuses new work, and says why ...
    done = call_failing(server, "exec", {"task": {"run": "echo hi"}, "cluster_name": "dead"})
    assert "INIT" in done and "not running" in done
    # ... `start` brings the runtime back, and the cluster runs jobs again.
    call(server, "start", {"cluster_name": "dead"})
    assert status_of(server, "dead", refresh=True)["status"] == "UP"
    assert "status_reason" not in status_of(server, "dead")["metadata"]
    again = call(server, "exec", {"task": {"run": "echo again"}, "cluster_name": "dead"})
    wait_for(lambda: (again["job_id"], "SUCCEEDED") in queue(server, "dead"), "the new job ran")
    assert (job_id, "FAILED_DRIVER") in queue(server, "dead")
    call(server, "down", {"cluster_name": "dead"})
    assert not node_root(server, "dead").exists()
    assert "dead" not in clusters(server)


def call_failing(server: ServerProcess, op: str, body: dict[str, Any]) -> str:
    from apicalls import result

    done = result(server, submit(server, op, body))
    assert done["status"] == "FAILED", done
    return str(done["error"]["message"])


def test_watcher_fails_the_jobs_of_a_dead_agent_without_any_call(start: Any) -> None:
    server = start(SKYHOP_HEALTH_INTERVAL="0.5")
    job_id = launch_sleeper(server, "quiet")
    killed_at = time.monotonic()
    kill_agent_daemon(server, "quiet")

    # Nobody asks the agent anything: the job's processes go, the cluster turns INIT.
    wait_for(lambda: not job_processes(server, "quiet"), "the watcher stopped the job", 15)
    wait_for(lambda: clusters(server)["quiet"] == "INIT", "the watcher marked the cluster", 15)
    assert time.monotonic() - killed_at < 15
    assert queue(server, "quiet") == [(job_id, "FAILED_DRIVER")]
    log = (runtime_dir(server, "quiet") / "jobs" / str(job_id) / "run.log").read_bytes()
    assert b"started" in log and b"the agent daemon died" in log
    call(server, "down", {"cluster_name": "quiet"})
    assert "quiet" not in clusters(server)


def test_a_working_cluster_stays_up_under_the_watcher(start: Any) -> None:
    server = start(SKYHOP_HEALTH_INTERVAL="0.2")
    job_id = launch_sleeper(server, "fine")
    time.sleep(2)  # several rounds of checks
    assert clusters(server)["fine"] == "UP"
    assert queue(server, "fine") == [(job_id, "RUNNING")]
    call(server, "down", {"cluster_name": "fine"})


def tail_processes(server: ServerProcess, name: str) -> list[int]:
    found = []
    for pid in processes_under(runtime_dir(server, name)):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tail" in cmdline and b"--follow" in cmdline:
            found.append(pid)
    return found


def test_log_tail_exits_when_its_server_is_killed(start: Any) -> None:
    server = start(SKYHOP_HEALTH_INTERVAL="3600")
    job_id = launch_sleeper(server, "tl")
    logs_id = submit(server, "logs", {"cluster_name": "tl", "job_id": job_id, "follow": True})
    # Once the tail has sent what the job wrote, it has nothing more to write: a write
    # to the dead server's pipe would never come to tell it the server is gone.
    wait_for(lambda: b"started" in log(server, logs_id), "the tail streams the log")
    (tail,) = tail_processes(server, "tl")
    time.sleep(1.5)
    server.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: tail not in tail_processes(server, "tl"), "the tail exited with its server", 5)
    assert time.monotonic() - killed_at < 5
    assert job_processes(server, "tl"), "the job itself keeps running"
    server = start(SKYHOP_HEALTH_INTERVAL="3600")
    assert queue(server, "tl") == [(job_id, "RUNNING")]
    call(server, "down", {"cluster_name": "tl"})


def test_a_hung_agent_makes_the_cluster_init(start: Any) -> None:
    server = start(SKYHOP_HEALTH_INTERVAL="0.5", SKYHOP_AGENT_STALE_SECONDS="2")
    job_id = launch_sleeper(server, "hung")
    pid = int((runtime_dir(server, "hung") / "daemon.pid").read_text())
    os.kill(pid, signal.SIGSTOP)  # alive, holding its lock, doing nothing
    try:
        wait_for(lambda: clusters(server)["hung"] == "INIT", "the watcher noticed", 20)
        assert "has not made progress" in status_of(server, "hung")["metadata"]["status_reason"]
        # A hang is not a death: the job keeps its status and its processes.
        assert queue(server, "hung") == [(job_id, "RUNNING")] and job_processes(server, "hung")
    finally:
        os.kill(pid, signal.SIGCONT)
    call(server, "down", {"cluster_name": "hung"})
    assert not job_processes(server, "hung")
