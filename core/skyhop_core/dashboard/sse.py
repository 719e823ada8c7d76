"""Logs as server-sent events, from the same streams ``/api/stream`` serves.

- ``/sse/request/{id}``: a request's own log (``api logs``).
- ``/sse/job/{cluster}/{job_id}``: a cluster job's log. Like ``skyhop logs -f`` this
  submits a ``logs`` request as the viewer and streams that request's log; the request
  is cancelled when the browser goes away.
- ``/sse/managed/{job_id}`` (``?controller=true``: its controller's log): likewise with a
  ``jobs_logs`` request.
- ``/sse/service/{name}/controller`` and ``.../load_balancer``: a service's controller
  or load-balancer log; ``/sse/service/{name}/replica/{id}``: a replica's job log;
  likewise with a ``serve_logs`` request.

Events: ``log`` (``data`` is a JSON string of text; ``id`` the byte offset after it, so a
reconnecting ``EventSource`` resumes from ``Last-Event-ID``), ``end`` when the request
finishes (``data``: its status and result; the browser stops listening), and comments
as heartbeats on a quiet stream.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from skyhop_core import wire
from skyhop_core.dashboard.context import Dashboard
from skyhop_core.dashboard.session import guarded
from skyhop_core.requests.context import User
from skyhop_core.requests.logs import follow

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(name: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _last_event_id(request: Request) -> int:
    value = request.headers.get("last-event-id", "")
    return int(value) if value.isdigit() else 0


async def stream_request(
    dash: Dashboard, request_id: str, *, offset: int = 0, skip: int = 0, owned: bool = False
) -> AsyncIterator[bytes]:
    """SSE events of a request's log from byte ``offset`` (``skip``: bytes of it the
    browser already has). ``owned``: the stream created the request, and cancels it when
    the browser leaves before it finished."""
    engine = dash.engine
    heartbeat = float(os.environ.get("SKYHOP_STREAM_HEARTBEAT_SECONDS", "5"))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    position = offset
    finished = False
    try:
        async for chunk in follow(
            dash.services.logs,
            request_id,
            offset=offset,
            is_finished=lambda: engine.is_finished(request_id),
            follow=True,
            heartbeat=heartbeat,
            poll=None if engine.is_local(request_id) else 0.1,
        ):
            if not chunk:
                yield b": heartbeat\n\n"
                continue
            position += len(chunk)
            if skip:
                dropped = min(skip, len(chunk))
                chunk, skip = chunk[dropped:], skip - dropped
            text = decoder.decode(chunk).replace("\0", "")
            if text:
                yield event("log", text, position)
        row = await engine.wait(request_id)
        finished = True
        error = (row.error or {}).get("message") if row is not None else None
        yield event("end", {
            "status": getattr(row, "status", "UNKNOWN"),
            "result": getattr(row, "result", None),
            "error": error,
        })
    finally:
        if owned and not finished:
            with trio.CancelScope(shield=True):
                await engine.cancel([request_id])


def _sse(body: AsyncIterator[bytes]) -> Response:
    return StreamingResponse(body, media_type="text/event-stream", headers=HEADERS)


async def _error_stream(message: str) -> AsyncIterator[bytes]:
    yield event("end", {"status": "FAILED", "result": None, "error": message})


def routes(dash: Dashboard) -> list[Route]:
    async def request_log(request: Request, user: User) -> Response:
        try:
            request_id = await dash.engine.resolve(
                request.path_params["request_id"], dash.owner_scope(user)
            )
        except Exception as exc:
            return _sse(_error_stream(wire.encode_error(exc)["message"]))
        return _sse(stream_request(dash, request_id, offset=_last_event_id(request)))

    async def submitted(user: User, operation: str, body: dict[str, Any], skip: int) -> Response:
        try:
            request_id = await dash.submit(user, operation, body)
        except Exception as exc:
            return _sse(_error_stream(wire.encode_error(exc)["message"]))
        return _sse(stream_request(dash, request_id, skip=skip, owned=True))

    async def job_log(request: Request, user: User) -> Response:
        body = {
            "cluster_name": request.path_params["cluster"],
            "job_id": request.path_params["job_id"],
            "follow": True,
        }
        return await submitted(user, "logs", body, _last_event_id(request))

    async def managed_log(request: Request, user: User) -> Response:
        body = {
            "job_id": request.path_params["job_id"],
            "follow": True,
            "controller": request.query_params.get("controller") == "true",
        }
        return await submitted(user, "jobs_logs", body, _last_event_id(request))

    async def service_log(request: Request, user: User) -> Response:
        target = request.path_params["target"]
        if target not in ("controller", "load_balancer"):
            return _sse(_error_stream(f"No log named {target!r}: controller or load_balancer."))
        body = {"service_name": request.path_params["name"], "target": target, "follow": True}
        return await submitted(user, "serve_logs", body, _last_event_id(request))

    async def replica_log(request: Request, user: User) -> Response:
        body = {
            "service_name": request.path_params["name"],
            "target": "replica",
            "replica_id": request.path_params["replica_id"],
            "follow": True,
        }
        return await submitted(user, "serve_logs", body, _last_event_id(request))

    return [
        Route("/sse/service/{name}/replica/{replica_id:int}", guarded(dash, replica_log),
              methods=["GET"]),
        Route("/sse/service/{name}/{target}", guarded(dash, service_log), methods=["GET"]),
        Route("/sse/request/{request_id}", guarded(dash, request_log), methods=["GET"]),
        Route("/sse/job/{cluster}/{job_id:int}", guarded(dash, job_log), methods=["GET"]),
        Route("/sse/managed/{job_id:int}", guarded(dash, managed_log), methods=["GET"]),
    ]
