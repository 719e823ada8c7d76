"""Helpers to run a real API server for tests: ports, the server process, cleanup.

Importable as ``serverproc`` from any test (tests/ is on sys.path); ``conftest`` names
are ambiguous across test folders, so shared helpers live here, not in a conftest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_under(path: Path) -> list[int]:
    """PIDs whose command line, working directory or environment names ``path`` (the
    environment finds local nodes' sandbox holders and jobs, which run chrooted)."""
    found = []
    needle = str(path)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().decode(errors="replace")
        except OSError:
            environ = ""
        if needle in cmdline or cwd.startswith(needle) or needle in environ:
            found.append(int(entry))
    return found


def kill_processes_under(path: Path) -> None:
    for pid in processes_under(path):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


class ServerProcess:
    """An API server subprocess with its own persistent path."""

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ):
        self.root = root
        self.args = tuple(args)  # extra server flags, e.g. ("--deploy",)
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SKYHOP_PERSISTENT_PATH": str(root),
            "SKYHOP_API_SERVER_ENDPOINT": self.endpoint,
            "SKYHOP_CONFIG": str(root / "config.yaml"),
            "SKYHOP_AUTOSTOP_INTERVAL": "0.5",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> ServerProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server-test.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "skyhop_core.server", "--port", str(self.port), *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.root / 'server-test.log').read_text()}")
            try:
                if httpx.get(self.endpoint + "/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def log(self) -> str:
        return (self.root / "server-test.log").read_text(errors="replace")
