"""Small HTTP helpers for tests that drive a real API server (``serverproc.ServerProcess``).

Importable as ``apicalls`` from any test (tests/ is on sys.path).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from serverproc import ServerProcess

HEADERS = {"X-Skyhop-User": "dora", "X-Skyhop-User-Hash": "d0a00001"}


def submit(server: ServerProcess, op: str, body: dict[str, Any]) -> str:
    """Submit an operation; returns its request ID."""
    r = httpx.post(f"{server.endpoint}/api/v1/{op}", json=body, headers=HEADERS, timeout=30)
    assert r.status_code == 202, r.text
    return str(r.json()["request_id"])


def result(server: ServerProcess, request_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait for a request to finish; its status, result and error."""
    r = httpx.get(f"{server.endpoint}/api/get", params={"request_id": request_id},
                  timeout=timeout)  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json())


def call(server: ServerProcess, op: str, body: dict[str, Any]) -> Any:
    """Submit, wait, and return the result of a request that must succeed."""
    done = result(server, submit(server, op, body))
    assert done["status"] == "SUCCEEDED", done
    return done["result"]


def requests(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """Every request the server lists (``skyhop api status -a``), by ID."""
    rows = httpx.get(f"{server.endpoint}/api/status", params={"all": "true"}, headers=HEADERS,
                     timeout=30).json()  # fmt: skip
    return {row["request_id"]: row for row in rows}


def log(server: ServerProcess, request_id: str) -> bytes:
    """The request's whole log, without following it."""
    r = httpx.get(f"{server.endpoint}/api/stream",
                  params={"request_id": request_id, "follow": "false"}, timeout=30)  # fmt: skip
    return r.content


def clusters(server: ServerProcess) -> dict[str, str]:
    """Cluster name -> status, as ``skyhop status`` shows them."""
    return {c["name"]: c["status"] for c in call(server, "status", {})}


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    """Poll ``predicate()`` until it is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def wait_running(server: ServerProcess, request_id: str) -> None:
    wait_for(lambda: requests(server)[request_id]["status"] == "RUNNING",
             f"{request_id} is RUNNING")  # fmt: skip


class _Caller:
    """What ``skyhop.uploads`` needs: JSON calls to ``server`` as the tests' user."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        r = httpx.request(method, f"{self.server.endpoint}{path}", headers=HEADERS,
                          timeout=60, **kwargs)  # fmt: skip
        assert r.status_code < 300, r.text
        return r.json() if r.content else None


def with_uploads(server: ServerProcess, op: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its task's local workdir and file mounts uploaded, as the SDK does."""
    from skyhop.uploads import prepare_body

    return prepare_body(_Caller(server), op, body)
