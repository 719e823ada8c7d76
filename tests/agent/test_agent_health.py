"""The agent tells the truth about a dead daemon, and a following tail dies with its reader."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import Agent, wait_gone

from skyhop_core.agent.procs import pid_alive


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path)
    yield a
    a.close()


def running_job(agent: Agent) -> tuple[int, int]:
    """A job that sleeps, and the pid of its process."""
    job = agent.submit("echo $$ > r.pid; exec sleep 300")
    agent.wait(job, {"RUNNING"})
    pid_file = agent.homes[0] / "r.pid"
    deadline = time.monotonic() + 5
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return job, int(pid_file.read_text())


def kill_daemon(agent: Agent) -> None:
    daemon = agent.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    assert wait_gone(daemon)


def test_queue_right_after_a_kill_shows_failed_driver(agent: Agent) -> None:
    job, pid = running_job(agent)
    kill_daemon(agent)
    (row,) = agent.cli("queue")
    assert (row["job_id"], row["status"]) == (job, "FAILED_DRIVER")
    assert row["end_at"] is not None
    assert wait_gone(pid), "the driverless job's process must be stopped"
    assert agent.daemon_pid() is None, "queue must not resurrect the daemon"


def test_status_right_after_a_kill_shows_failed_driver(agent: Agent) -> None:
    job, _ = running_job(agent)
    kill_daemon(agent)
    assert agent.status(job) == "FAILED_DRIVER"


def test_health_reports_the_daemon_and_its_heartbeat(agent: Agent) -> None:
    agent.cli("start")
    healthy = agent.cli("health")
    assert healthy["daemon_pid"] == agent.daemon_pid() and healthy["failed_driver"] == []
    assert healthy["heartbeat_age"] is not None and healthy["heartbeat_age"] < 3
    time.sleep(1.5)
    assert agent.cli("health")["heartbeat_age"] < 1.5, "the daemon keeps beating"

    job, pid = running_job(agent)
    kill_daemon(agent)
    dead = agent.cli("health")
    assert dead["daemon_pid"] is None and dead["failed_driver"] == [job]
    assert wait_gone(pid)
    assert agent.cli("health")["failed_driver"] == []  # reconciled once


def test_a_working_daemon_keeps_its_jobs(agent: Agent) -> None:
    job, pid = running_job(agent)
    for _ in range(3):
        agent.cli("queue")
        agent.cli("health")
    assert agent.status(job) == "RUNNING" and pid_alive(pid)


def test_stop_is_not_raced_by_health_checks(agent: Agent) -> None:
    job, _ = running_job(agent)
    checks = [subprocess.Popen(agent.argv("health"), stdout=subprocess.DEVNULL) for _ in range(3)]
    agent.cli("stop")
    for check in checks:
        check.wait(20)
    assert agent.status(job) == "FAILED_DRIVER"  # the stop's, with its log line
    assert "the cluster was stopped while this job ran" in agent.tail(str(job))[1]


def test_following_tail_exits_when_its_reader_goes(agent: Agent) -> None:
    job, _ = running_job(agent)
    tail = subprocess.Popen(agent.argv("tail", str(job), "--follow"), stdout=subprocess.PIPE)
    time.sleep(1.5)  # it has copied the (empty) log and waits for more
    assert tail.poll() is None
    assert tail.stdout is not None
    tail.stdout.close()  # the reader is gone (as when a server is SIGKILLed)
    tail.wait(5)
    assert agent.status(job) == "RUNNING", "the job outlives the tail"


def test_following_tail_with_a_lifeline_exits_when_stdin_closes(agent: Agent) -> None:
    job, _ = running_job(agent)
    tail = subprocess.Popen(
        agent.argv("tail", str(job), "--follow"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,  # no reader to lose: only the lifeline tells
        env={**os.environ, "SKYHOP_TAIL_STDIN_LIFELINE": "1"},
    )
    time.sleep(1.5)
    assert tail.poll() is None
    assert tail.stdin is not None
    tail.stdin.close()
    tail.wait(5)
