"""The servers the suite runs: skyhop API servers and the trivial baseline server.

Everything the suite starts is tracked by PID and stopped at the end: API servers get
``POST /api/shutdown``, then SIGTERM, then SIGKILL, and whatever still runs with its
command line or working directory under a server's temporary persistent path (the
detached agents of local clusters) is killed by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.util import free_port, kill_pids, processes_under, stop_process


class ApiServer:
    """A skyhop API server on loopback with its own temporary persistent path."""

    def __init__(self, root: Path | None = None, env: dict[str, str | None] | None = None) -> None:
        """``env``: variables to set for the server (None: unset), e.g. a bytecode cache."""
        self.root = root or Path(tempfile.mkdtemp(prefix="skyhop-bench-"))
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SKYHOP_PERSISTENT_PATH": str(self.root),
            "SKYHOP_API_SERVER_ENDPOINT": self.endpoint,
            "SKYHOP_CONFIG": str(self.root / "config.yaml"),
            # Local nodes share the host's network unless a figure gives them a bridge
            # of its own (bench/sandbox.py): the default bridge would outlive the run.
            "SKYHOP_LOCAL_NETWORK": os.environ.get("SKYHOP_LOCAL_NETWORK", "off"),
        }
        for key, value in (env or {}).items():
            if value is None:
                self.env.pop(key, None)
            else:
                self.env[key] = value
        #: ``time.perf_counter()`` when :meth:`start` spawned the process.
        self.started_at = 0.0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def start(self, timeout: float = 30) -> float:
        """Start the server; return the seconds until ``/api/health`` answered 200."""
        log = open(self.root / "bench-server.log", "ab")  # noqa: SIM115 - the child owns it
        start = self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "skyhop_core.server", "--host", "127.0.0.1",
             "--port", str(self.port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        wait_healthy(self.endpoint + "/api/health", self.proc, timeout)
        return time.perf_counter() - start

    def stop(self) -> None:
        """Shut the server down and kill anything left under its persistent path."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(self.endpoint + "/api/shutdown", timeout=3)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stop_process(self.proc)
        for _ in range(3):
            left = processes_under(self.root)
            if not left:
                break
            kill_pids(left)
            time.sleep(0.2)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``url`` every 5 ms until it answers 200; raise if the process exits first."""
    deadline = time.perf_counter() + timeout
    with httpx.Client(timeout=1) as client:
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode} while starting")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.005)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class TrivialServer:
    """The baseline HTTP server (``bench.trivial``) in its own interpreter."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> float:
        start = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.trivial", str(self.port)],
            cwd=str(Path(__file__).resolve().parent.parent),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        wait_healthy(self.endpoint + "/api/health", self.proc, timeout)
        return time.perf_counter() - start

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
