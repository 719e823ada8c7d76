"""A fake API server behind ``httpx.MockTransport`` for SDK and CLI tests.

It speaks the HTTP contract of docs/http-api.md closely enough to check what the SDK
sends and how it reads answers; the real server is exercised by tests/e2e.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from skyhop.client import ApiClient, using
from skyhop_core import API_VERSION, wire

ENDPOINT = "http://127.0.0.1:46590"

#: What a request does when it is fetched: its result (already encoded), an error
#: mapping, and its log. A callable gets the request body and returns the triple.
Outcome = tuple[Any, dict[str, Any] | None, str]


class FakeServer:
    """Records every call; answers from ``outcomes`` (operation -> Outcome or callable)."""

    def __init__(self, api_version: str = API_VERSION) -> None:
        self.api_version = api_version
        self.calls: list[httpx.Request] = []
        self.submitted: list[tuple[str, dict[str, Any]]] = []
        self.requests: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, Outcome | Callable[[dict[str, Any]], Outcome]] = {}
        self.submit_errors: dict[str, tuple[int, dict[str, Any]]] = {}
        self.interrupt_on: set[str] = set()  # paths whose call raises KeyboardInterrupt
        self.request_records: list[dict[str, Any]] = []
        self.down = False
        self.manifests: list[dict[str, Any]] = []  # POST /api/uploads (it has every blob)

    # --- helpers for tests -------------------------------------------------------------

    def on(
        self, operation: str, result: Any = None, *, error: Exception | None = None, log: str = ""
    ) -> None:
        self.outcomes[operation] = (
            wire.encode_result(operation, result),
            wire.encode_error(error) if error is not None else None,
            log,
        )

    def bodies(self, operation: str) -> list[dict[str, Any]]:
        return [body for op, body in self.submitted if op == operation]

    def paths(self) -> list[str]:
        return [c.url.path for c in self.calls]

    # --- the transport -----------------------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        path = request.url.path
        if path in self.interrupt_on:
            raise KeyboardInterrupt
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if path == "/api/health":
            return httpx.Response(
                200,
                json={
                    "status": "healthy",
                    "version": "9.9.9",
                    "api_version": self.api_version,
                    "persistent_path": "/tmp/fake",
                    "pid": 1,
                },
            )
        if path.startswith("/api/v1/"):
            return self._submit(path.rsplit("/", 1)[1], json.loads(request.content or b"{}"))
        if path in ("/api/get", "/api/stream"):
            found = self._resolve(request.url.params.get("request_id", ""))
            if isinstance(found, httpx.Response):
                return found
            if path == "/api/stream":
                return httpx.Response(200, text=found["log"])
            return httpx.Response(
                200, json={k: found[k] for k in ("request_id", "name", "status", "result", "error")}
            )
        if path == "/api/status":
            return httpx.Response(200, json=self.request_records)
        if path == "/api/cancel":
            body = json.loads(request.content)
            return httpx.Response(
                200, json={"cancelled": body.get("request_ids", []), "finished": []}
            )
        if path == "/api/uploads":
            self.manifests.append(json.loads(request.content))
            upload_id = f"{len(self.manifests):032x}"
            return httpx.Response(
                200, json={"upload_id": upload_id, "missing": [], "files": 0, "bytes": 0,
                           "chunk_bytes": 8 << 20},
            )  # fmt: skip
        if path.startswith("/api/uploads/"):
            return httpx.Response(200, json={"state": "ready"})
        if path == "/api/shutdown":
            self.down = True
            return httpx.Response(200, json={})
        return httpx.Response(404, text="no such route")

    def _submit(self, operation: str, body: dict[str, Any]) -> httpx.Response:
        if operation in self.submit_errors:
            code, error = self.submit_errors[operation]
            return httpx.Response(code, json={"error": error})
        self.submitted.append((operation, body))
        outcome = self.outcomes.get(operation, (None, None, ""))
        result, error, log = outcome(body) if callable(outcome) else outcome
        request_id = str(uuid.uuid4())
        self.requests[request_id] = {
            "request_id": request_id,
            "name": operation,
            "status": "FAILED" if error else "SUCCEEDED",
            "result": result,
            "error": error,
            "log": log,
        }
        return httpx.Response(202, json={"request_id": request_id})

    def _resolve(self, prefix: str) -> dict[str, Any] | httpx.Response:
        matches = [rid for rid in self.requests if rid.startswith(prefix)] if prefix else []
        if len(matches) == 1:
            return self.requests[matches[0]]
        if not matches:
            error = {
                "type": "RequestNotFoundError",
                "message": f"No request matches {prefix!r}.",
                "args": {},
            }
            return httpx.Response(404, json={"error": error})
        error = {
            "type": "AmbiguousRequestIdError",
            "message": "ambiguous",
            "args": {"matches": matches},
        }
        return httpx.Response(409, json={"error": error})


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def client(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ApiClient]:
    """The SDK and CLI in this test talk to ``fake`` through a mock transport."""
    monkeypatch.setenv("SKYHOP_API_SERVER_ENDPOINT", ENDPOINT)
    # The client's own state (the upload hash cache) stays in the test's directory.
    monkeypatch.setenv("SKYHOP_PERSISTENT_PATH", str(tmp_path / "client-state"))
    api_client = ApiClient(ENDPOINT, transport=httpx.MockTransport(fake.handler))
    with using(api_client):
        yield api_client
    api_client.close()


def make_handle(name: str = "dev", nodes: int = 1, region: str | None = None) -> Any:
    from skyhop_core.models.records import ClusterHandle, NodeInfo

    return ClusterHandle(
        cluster_name=name,
        backend="local",
        nodes=tuple(
            NodeInfo(
                rank=i,
                ip=f"10.0.0.{i + 1}",
                instance_id=f"n{i}",
                cpus=4,
                memory_gb=8,
                runtime_dir="/rt",
                home="/home/u",
            )
            for i in range(nodes)
        ),
        instance_type="local-4cpu",
        region=region,
    )


def make_cluster(
    name: str = "dev",
    status: str = "UP",
    autostop: int = -1,
    to_down: bool = False,
    launched_at: float | None = None,
    region: str | None = None,
) -> Any:
    from skyhop_core.models.records import ClusterRecord
    from skyhop_core.models.status import ClusterStatus

    return ClusterRecord(
        name=name,
        status=ClusterStatus(status),
        backend="local",
        launched_at=launched_at,
        last_use="launch",
        autostop=autostop,
        to_down=to_down,
        user_hash="abcd1234",
        user_name="alice",
        resources_str="1x local(cpus=4, mem=8)",
        handle=make_handle(name, region=region),
    )


def make_job(
    job_id: int = 1,
    status: str = "SUCCEEDED",
    submitted_at: float = 1000.0,
    start_at: float | None = 1001.0,
    end_at: float | None = 1066.0,
) -> Any:
    from skyhop_core.models.records import JobRecord
    from skyhop_core.models.status import JobStatus

    return JobRecord(
        job_id=job_id,
        job_name="train",
        username="alice",
        user_hash="abcd1234",
        submitted_at=submitted_at,
        start_at=start_at,
        end_at=end_at,
        resources="1x[cpus=0.5]",
        status=JobStatus(status),
        log_path=f"~/logs/{job_id}.log",
    )


@pytest.fixture
def records() -> Any:
    """Builders of realistic records: ``records.handle/cluster/job(...)``."""

    class Builders:
        handle = staticmethod(make_handle)
        cluster = staticmethod(make_cluster)
        job = staticmethod(make_job)

    return Builders
