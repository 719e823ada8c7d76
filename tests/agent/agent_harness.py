"""Drives the node agent CLI as a subprocess on a throwaway runtime directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from skyhop_core.agent.procs import pid_alive

TERMINAL = {"SUCCEEDED", "FAILED", "FAILED_SETUP", "FAILED_DRIVER", "CANCELLED"}


class Agent:
    """An agent whose nodes are directories ``node-<rank>`` under ``base``.

    Nodes with a rank in ``launched`` get the launcher ``["bash", "-c"]``, which exercises
    the remote code path (script on stdin) without a remote machine.
    """

    def __init__(
        self,
        base: Path,
        nodes: int = 1,
        cpus: float = 2,
        launched: tuple[int, ...] = (),
        gpus: dict[str, float] | None = None,
    ):
        self.base = base
        self.homes = [base / f"node-{rank}" for rank in range(nodes)]
        for home in self.homes:
            home.mkdir(parents=True, exist_ok=True)
        self.root = self.homes[0] / ".skyhop_runtime"
        self.root.mkdir()
        cluster = {
            "cluster_name": "test-cluster",
            "backend": "local",
            "nodes": [
                {
                    "rank": rank,
                    "ip": f"127.0.0.{rank + 1}",
                    "cpus": cpus,
                    "gpus": dict(gpus or {}),  # a fake GPU inventory: only counted
                    "home": str(home),
                    "runtime_dir": str(home / ".skyhop_runtime"),
                    "launcher": ["bash", "-c"] if rank in launched else None,
                }
                for rank, home in enumerate(self.homes)
            ],
        }
        (self.root / "cluster.json").write_text(json.dumps(cluster))

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "skyhop_core.agent", "--root", str(self.root), *args]

    def run(
        self, *args: str, input: str | None = None, timeout: float = 20
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.argv(*args),
            input=None if input is None else input.encode(),
            capture_output=True,
            timeout=timeout,
        )

    def cli(self, *args: str, input: str | None = None) -> Any:
        done = self.run(*args, input=input)
        assert done.returncode == 0, (
            f"agent {args} exited {done.returncode}: {done.stderr.decode()}"
        )
        return json.loads(done.stdout)

    def submit(self, run: Any, **spec: Any) -> int:
        return int(
            self.cli("submit", input=json.dumps({"name": "t", "run": run, **spec}))["job_id"]
        )

    def status(self, job_id: int) -> str | None:
        return self.cli("status", "--job-ids", str(job_id))[str(job_id)]

    def wait(self, job_id: int, statuses: set[str], timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self.status(job_id)
            if status in statuses:
                return status
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} never reached {statuses}; last {status}")

    def tail(self, *args: str, timeout: float = 20) -> tuple[int, str]:
        done = self.run("tail", *args, timeout=timeout)
        return done.returncode, done.stdout.decode()

    def daemon_pid(self) -> int | None:
        try:
            pid = int((self.root / "daemon.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def close(self) -> None:
        """Stop the agent; make sure its daemon is gone."""
        pid = self.daemon_pid()
        self.run("stop")
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def wait_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False
