"""Async waiting on requests (get, stream_and_get) and the async ``api_*`` functions.

Parameters, results and errors are those of :mod:`skyhop.api`; the helpers that build
parameters and decode answers are shared with it.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import anyio

import skyhop_core.wire as wire
from skyhop.aio.client import AsyncApiClient, session
from skyhop.api import (
    _ALL_REQUESTS,
    _cancel_body,
    _decode_response,
    _info_of,
    _latest_of,
    _print_file,
    _status_params,
)
from skyhop.client import RequestInterrupted
from skyhop_core.models.records import RequestRecord


def _writer(output_stream: TextIO | None) -> Any:
    out = output_stream if output_stream is not None else sys.stdout

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    return write


async def follow_request(
    client: AsyncApiClient,
    request_id: str,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
    follow: bool = True,
    tail: int | None = None,
) -> Any:
    """Stream the request's log (if ``stream_logs``), then return its decoded result.

    Cancelling the awaiting task leaves the request running on the server, like Ctrl+C
    in the sync SDK: the cancellation propagates, with a note naming the request.
    Ctrl+C (``KeyboardInterrupt`` delivered inside the task, as trio does) becomes
    :class:`~skyhop.client.RequestInterrupted`, as in the sync SDK.
    """
    try:
        if stream_logs:
            await client.stream(request_id, _writer(output_stream), follow=follow, tail=tail)
        return _decode_response(await client.get(request_id))
    except RequestInterrupted:
        raise
    except KeyboardInterrupt:
        raise RequestInterrupted(request_id, client.endpoint) from None
    except anyio.get_cancelled_exc_class() as exc:
        exc.add_note(
            f"skyhop request {request_id} keeps running on {client.endpoint}; "
            f"reattach with skyhop api logs {request_id}, or cancel it with "
            f"skyhop api cancel {request_id}"
        )
        raise


async def submit_and_follow(
    operation: str,
    body: dict[str, Any],
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> Any:
    """Submit one request, then :func:`follow_request` it (in one client session)."""
    async with session() as client:
        request_id = await client.submit(operation, body)
        return await follow_request(
            client, request_id, stream_logs=stream_logs, output_stream=output_stream
        )


async def get(request_id: str) -> Any:
    """Wait for a request to finish and return its result (see :func:`skyhop.get`)."""
    async with session() as client:
        return await follow_request(client, request_id, stream_logs=False)


async def stream_and_get(
    request_id: str | None = None,
    log_path: str | None = None,
    tail: int | None = None,
    follow: bool = True,
    output_stream: TextIO | None = None,
) -> Any:
    """Stream a request's log, then return its result (see :func:`skyhop.stream_and_get`).

    ``request_id=None`` picks your most recent request; ``log_path`` prints a local file.
    """
    if request_id is None and log_path is not None:
        _print_file(log_path, tail, output_stream if output_stream is not None else sys.stdout)
        return None
    async with session() as client:
        if request_id is None:
            request_id = _latest_of(await client.call("GET", "/api/status", params=_ALL_REQUESTS))
        return await follow_request(
            client, request_id, output_stream=output_stream, follow=follow, tail=tail
        )


async def api_status(
    request_ids: list[str] | None = None,
    all_status: bool = False,
    all_users: bool = False,
    limit: int | None = None,
) -> list[RequestRecord]:
    """List requests (``RequestRecord``): unfinished ones unless ``all_status``."""
    params = _status_params(request_ids, all_status, all_users, limit)
    async with session() as client:
        data = await client.call("GET", "/api/status", params=params)
    return list(wire.structure(data, list[RequestRecord]))


async def api_cancel(
    request_ids: str | list[str] | None = None,
    all_users: bool = False,
    all: bool = False,  # noqa: A002 - mirrors the sync SDK
) -> list[str]:
    """Cancel requests; returns the IDs that were cancelled (see :func:`skyhop.api_cancel`)."""
    body = _cancel_body(request_ids, all_users, all)
    async with session() as client:
        data = await client.call("POST", "/api/cancel", json=body)
    return [str(i) for i in data.get("cancelled", [])]


async def api_info() -> dict[str, Any]:
    """The server's health document plus ``endpoint`` and ``user`` (name and hash)."""
    async with session() as client:
        return _info_of(client, await client.ensure_server())
