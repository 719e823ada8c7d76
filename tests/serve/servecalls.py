"""Helpers for the serve tests: the replica task, waiting on statuses, a WebSocket client.

Importable as ``servecalls`` (tests/serve is put on sys.path by the tests' conftest-free
import below)."""

from __future__ import annotations

import random
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

import skyhop as sky

APP_DIR = Path(__file__).resolve().parent / "replica_app"
#: Short intervals so the tests do not wait for production defaults.
FAST = {
    "SKYHOP_SERVE_PROBE_SECONDS": "0.3",
    "SKYHOP_SERVE_NOT_READY_SECONDS": "1.5",
    "SKYHOP_SERVE_DRAIN_SECONDS": "20",
    "SKYHOP_SERVE_QPS_WINDOW_SECONDS": "4",
    "SKYHOP_SERVER_LEASE_SECONDS": "3",
}


def port_range() -> str:
    """A load-balancer port range of this test run's (SKYHOP_SERVE_PORTS)."""
    base = random.randrange(32000, 60000, 100)
    return f"{base}-{base + 99}"


def node_network_config() -> Any:
    """``tests/plugins/local/netconfig.py``: node networks on a bridge of the tests'."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "plugins" / "local" / "netconfig.py"
    spec = importlib.util.spec_from_file_location("serve_netconfig", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.node_network_config()


def service_task(*, version: int = 1, replicas: int | None = 2, policy: dict | None = None,
                 probe: Any = None, **service: Any) -> dict[str, Any]:
    """A service whose replicas run ``replica_app/app.py`` (hypercorn on port 8080)."""
    section: dict[str, Any] = {
        "readiness_probe": probe or {"path": "/health", "initial_delay_seconds": 60},
        "ports": 8080, **service,
    }
    if policy is not None:
        section["replica_policy"] = policy
    elif replicas is not None:
        section["replicas"] = replicas
    return {
        "name": "web",
        "workdir": str(APP_DIR),
        "resources": {"infra": "local"},
        "envs": {"VERSION": str(version)},
        "run": f"exec {sys.executable} app.py 8080",
        "service": section,
    }


def record(name: str) -> dict[str, Any]:
    records = sky.get(sky.serve.status(name))
    assert len(records) == 1, records
    return records[0]


def replicas(name: str) -> dict[int, tuple[str, int]]:
    """replica ID -> (status, version)."""
    return {r["replica_id"]: (r["status"].value, r["version"])
            for r in record(name)["replica_info"]}


def wait_for(condition: Any, timeout: float = 90, what: str = "", poll: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what or condition}: last {last!r}")


def ready_count(name: str, version: int | None = None) -> int:
    return sum(s == "READY" and (version is None or v == version)
               for s, v in replicas(name).values())


def wait_ready(name: str, count: int, version: int | None = None, timeout: float = 90) -> None:
    wait_for(lambda: ready_count(name, version) >= count and record(name)["status"].value
             == "READY", timeout, f"{count} READY replica(s) of {name}")


def get(endpoint: str, path: str = "/", **kwargs: Any) -> httpx.Response:
    return httpx.get(endpoint + path, trust_env=False, timeout=30, **kwargs)


def websocket_echo(endpoint: str, text: str) -> str:
    """One message through a WebSocket at ``endpoint/ws`` (a wsproto client)."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

    url = urlparse(endpoint)
    ws = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(ws.send(Request(host=url.netloc, target="/ws")))
        reply: str | None = None
        accepted = False
        while reply is None:
            data = sock.recv(65536)
            if not data:
                raise AssertionError("the load balancer closed the WebSocket")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    accepted = True
                    sock.sendall(ws.send(TextMessage(data=text)))
                elif isinstance(event, TextMessage):
                    reply = event.data
                elif isinstance(event, CloseConnection):
                    raise AssertionError(f"closed: {event.code} (accepted={accepted})")
        sock.sendall(ws.send(CloseConnection(code=1000)))
        return reply
