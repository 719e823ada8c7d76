"""Starting a local API server on this machine: ``python -m skyhop_core.server``, detached
(it outlives the command that started it), its output in ``<persistent
path>/server/<hostname>-<port>/server.log``, then waiting until it answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import urlparse

import httpx

import skyhop_core.paths as paths
from skyhop.client import DEFAULT_PORT, SERVER_START_TIMEOUT, _tls_verify
from skyhop_core import exceptions


def start_local_server(
    endpoint: str,
    *,
    host: str = "127.0.0.1",
    timeout: float = SERVER_START_TIMEOUT,
    deploy: bool = False,
) -> None:
    """Start ``python -m skyhop_core.server`` detached on the endpoint's port; wait for it.

    ``host`` is the address it binds; ``deploy`` starts a team server that requires
    bearer tokens (``--deploy``). Raises ApiServerError naming the server log if the
    server does not answer ``endpoint`` within ``timeout`` seconds.
    """
    port = urlparse(endpoint).port or DEFAULT_PORT
    log_path = paths.replica_dir(port) / "server.log"
    command = [sys.executable, "-m", "skyhop_core.server", "--host", host, "--port", str(port)]
    if deploy:
        command.append("--deploy")
    # A command's --config overrides are this client's; the server outlives the command.
    env = {k: v for k, v in os.environ.items() if k != paths.CONFIG_OVERRIDES_ENV}
    with paths.open_private(log_path, "ab") as log:
        proc = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    probe = httpx.Client(base_url=endpoint, timeout=1.0, verify=_tls_verify(endpoint))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            exited = proc.poll() is not None
            try:
                if probe.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if exited:  # another client may have won the race; it answered above if so
                raise exceptions.ApiServerError(
                    f"The local API server exited with code {proc.returncode} while starting "
                    f"on port {port}; see its log: {log_path}"
                )
            time.sleep(0.1)
    finally:
        probe.close()
    raise exceptions.ApiServerError(
        f"The local API server did not answer at {endpoint} within {timeout:.0f} s; "
        f"see its log: {log_path}"
    )
