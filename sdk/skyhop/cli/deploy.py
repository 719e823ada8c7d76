"""Starting and stopping a deployed (team) API server from ``skyhop api start|stop``.

The server stack is never imported here: the server runs as ``python -m
skyhop_core.server``, detached (like the local auto-start) or, with ``--foreground``,
in place of the CLI process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import NoReturn
from urllib.parse import urlparse

from skyhop.client import (
    DEFAULT_PORT,
    ApiClient,
    is_loopback,
    resolve_endpoint,
)
from skyhop.localserver import start_local_server
from skyhop_core import exceptions, paths


def default_port(port: int | None) -> int:
    """``port``, else the configured endpoint's port when it is local, else 46590."""
    if port is not None:
        return port
    endpoint = resolve_endpoint()
    return (urlparse(endpoint).port if is_loopback(endpoint) else None) or DEFAULT_PORT


def exec_server(host: str, port: int | None, *, deploy: bool) -> NoReturn:
    """Replace this process with the server (signals then reach it directly)."""
    argv = [sys.executable, "-m", "skyhop_core.server", "--host", host]
    argv += ["--port", str(default_port(port))]
    if deploy:
        argv.append("--deploy")
    os.execv(sys.executable, argv)


def start_deployed(host: str, port: int | None) -> str:
    """Start a deployed server detached unless one answers; returns the local endpoint.

    Raises ApiServerError when a non-deployed server already holds the port.
    """
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    endpoint = f"http://{probe_host}:{default_port(port)}"
    client = ApiClient(endpoint, token="", auto_start=False)
    try:
        if client.is_up():
            info = client.ensure_server()
            if not info.get("auth_required"):
                raise exceptions.ApiServerError(
                    f"A local (non-deployed) API server already runs at {endpoint}. Stop it "
                    "first (skyhop api stop), or deploy on another port (--port)."
                )
            return endpoint
        start_local_server(endpoint, host=host, deploy=True)
        client.ensure_server()
        return endpoint
    finally:
        client.close()


def stop_by_pid_file(endpoint: str, timeout: float = 20.0) -> bool:
    """SIGTERM the server this persistent path runs on ``endpoint``'s port; wait for it.

    Returns False when nothing answers there; raises ApiServerError when a server answers
    but was not started from this machine's persistent path.
    """
    client = ApiClient(endpoint, token="", auto_start=False)
    try:
        if not client.is_up():
            return False
        pid = _pid_for_port(urlparse(endpoint).port or DEFAULT_PORT)
        if pid is None:
            raise exceptions.ApiServerError(
                f"The API server at {endpoint} is deployed and was not started from "
                f"{paths.persistent_path()}; stop it on its own machine."
            )
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not client.is_up():
                return True
            time.sleep(0.1)
        raise exceptions.ApiServerError(
            f"The API server at {endpoint} (pid {pid}) did not stop within {timeout:.0f} s."
        )
    finally:
        client.close()


def _pid_for_port(port: int) -> int | None:
    pid_file = paths.replica_dir(port) / "server.pid"
    try:
        pid, _host, pid_port = pid_file.read_text().split()
    except (OSError, ValueError):
        return None
    return int(pid) if int(pid_port) == port else None
