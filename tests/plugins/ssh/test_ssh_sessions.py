"""A real sshd's interactive session, as the node agent sees it (``idle --ssh``, for
``autostop --wait-for jobs_and_ssh``): ``ssh -tt`` into a fake host makes the agent in that
host's network namespace report busy; the same agent outside it does not see another
machine's session; once the session closes, the idle time counts from then."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ssh_netns import FakeHosts


def agent(runtime: Path, *args: str, netns: str | None = None) -> Any:
    argv = [sys.executable, "-m", "skyhop_core.agent", "--root", str(runtime), *args]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    out = subprocess.run(argv, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return json.loads(out.stdout)


def make_runtime(runtime: Path) -> Path:
    """A node agent's runtime directory (its cluster.json: one node, this directory)."""
    runtime.mkdir()
    node = {"rank": 0, "ip": "127.0.0.1", "cpus": 1, "gpus": {}, "home": str(runtime.parent),
            "runtime_dir": str(runtime)}  # fmt: skip
    (runtime / "cluster.json").write_text(json.dumps(
        {"cluster_name": "c", "backend": "ssh", "nodes": [node]}))  # fmt: skip
    return runtime


def wait_for(condition: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_an_interactive_ssh_session_keeps_the_node_busy(
    fake_hosts: FakeHosts, tmp_path: Path
) -> None:
    runtime, outside = make_runtime(tmp_path / "rt"), make_runtime(tmp_path / "outside")
    ns = fake_hosts.namespaces[2]
    agent(runtime, "start")
    agent(outside, "start")
    session = None
    try:
        time.sleep(1.5)  # the node has been idle since its daemon started
        assert agent(runtime, "idle", "--ssh", netns=ns)["idle_seconds"] >= 1.0
        session = subprocess.Popen(
            ["ssh", "-tt", "-i", str(fake_hosts.key), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15",
             f"root@{fake_hosts.ips[2]}", "sleep", "300"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: agent(runtime, "idle", "--ssh", netns=ns)["idle_seconds"] == 0,
                 "the agent to see the session")  # fmt: skip
        # Jobs only: the session is not activity. Outside the host's namespace: another
        # machine's session.
        assert agent(runtime, "idle", netns=ns)["idle_seconds"] >= 1.0
        assert agent(outside, "idle", "--ssh")["idle_seconds"] >= 1.0
        last_seen = time.time()
        assert agent(runtime, "idle", "--ssh", netns=ns)["idle_seconds"] == 0  # still open
        session.kill()
        session.wait(timeout=10)
        wait_for(lambda: agent(runtime, "idle", "--ssh", netns=ns)["idle_seconds"] > 0,
                 "the session to end on the host")  # fmt: skip
        since_close = agent(runtime, "idle", "--ssh", netns=ns)["idle_seconds"]
        assert since_close <= time.time() - last_seen  # from the session's end...
        assert since_close < agent(runtime, "idle", netns=ns)["idle_seconds"] - 1.0  # ...not the last job's
    finally:
        if session is not None and session.poll() is None:
            session.kill()
            session.wait(timeout=10)
        agent(runtime, "stop")
        agent(outside, "stop")
