"""Waiting on requests and managing the API server: get, stream_and_get, api_*.

:func:`get` and :func:`stream_and_get` turn a request ID into its result, raising the
exception the request raised. The ``api_*`` functions are synchronous: they list and
cancel requests, and start, stop and describe the API server.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO
from urllib.parse import urlparse

import attrs

import skyhop_core.paths as paths
import skyhop_core.wire as wire
from skyhop.client import (
    DEFAULT_PORT,
    ApiClient,
    ClientBase,
    RequestInterrupted,
    current_client,
    is_loopback,
)
from skyhop.localserver import start_local_server
from skyhop_core import exceptions
from skyhop_core.models.records import RequestRecord

#: Operations whose records ``get`` returns as plain dicts (SkyPilot-compatible).
_DICT_RESULTS = frozenset({"status", "queue"})


def _decode_response(data: dict[str, Any]) -> Any:
    if data.get("error"):
        raise wire.decode_error(data["error"])
    name = str(data.get("name", ""))
    result = wire.decode_result(name, data.get("result"))
    if name in _DICT_RESULTS and result is not None:
        return [attrs.asdict(record, recurse=False) for record in result]
    return result


def get(request_id: str) -> Any:
    """Wait for a request to finish and return its result (see each function's docs).

    Raises the exception the request raised (``RequestCancelledError`` if cancelled).
    ``request_id`` may be any unique prefix.
    """
    return _decode_response(current_client().get(request_id))


def stream_and_get(
    request_id: str | None = None,
    log_path: str | None = None,
    tail: int | None = None,
    follow: bool = True,
    output_stream: TextIO | None = None,
) -> Any:
    """Stream a request's log, then return its result like :func:`get`.

    Args:
        request_id: the request (a unique prefix is enough); ``None`` picks your most
            recent request.
        log_path: instead of a request, print this local log file (returns ``None``).
        tail: start with the last ``tail`` lines only.
        follow: keep streaming until the request finishes.
        output_stream: where to write (default: stdout).
    """
    out = output_stream if output_stream is not None else sys.stdout
    if request_id is None and log_path is not None:
        _print_file(log_path, tail, out)
        return None
    client = current_client()
    if request_id is None:
        request_id = _latest_request_id(client)
    try:
        for chunk in client.stream(request_id, follow=follow, tail=tail):
            out.write(chunk)
            out.flush()
        return _decode_response(client.get(request_id))
    except RequestInterrupted:
        raise
    except KeyboardInterrupt:
        raise RequestInterrupted(request_id, client.endpoint) from None


def _print_file(log_path: str, tail: int | None, out: TextIO) -> None:
    with open(log_path, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    out.writelines(lines[-tail:] if tail else lines)
    out.flush()


#: ``GET /api/status`` parameters that list every request of yours.
_ALL_REQUESTS = {"all": "true"}


def _latest_request_id(client: ApiClient) -> str:
    return _latest_of(client.call("GET", "/api/status", params=_ALL_REQUESTS))


def _latest_of(data: Any) -> str:
    records: list[RequestRecord] = wire.structure(data, list[RequestRecord])
    if not records:
        raise exceptions.RequestNotFoundError("You have no requests on this API server.")
    return str(max(records, key=lambda r: r.created_at).request_id)


def api_status(
    request_ids: list[str] | None = None,
    all_status: bool = False,
    all_users: bool = False,
    limit: int | None = None,
) -> list[RequestRecord]:
    """List requests (``RequestRecord``): unfinished ones unless ``all_status``. Synchronous.

    ``request_ids`` (prefixes allowed) selects requests whatever their status.
    """
    params = _status_params(request_ids, all_status, all_users, limit)
    data = current_client().call("GET", "/api/status", params=params)
    return list(wire.structure(data, list[RequestRecord]))


def _status_params(
    request_ids: list[str] | None, all_status: bool, all_users: bool, limit: int | None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "all": "true" if all_status else "false",
        "all_users": "true" if all_users else "false",
    }
    if limit is not None:
        params["limit"] = limit
    if request_ids:
        params["request_ids"] = list(request_ids)
    return params


def api_cancel(
    request_ids: str | list[str] | None = None,
    all_users: bool = False,
    silent: bool = False,
    *,
    all: bool = False,  # noqa: A002 - mirrors the CLI's --all
) -> str:
    """Cancel requests: the given IDs (prefixes allowed), ``all`` of yours, or everyone's.

    Returns:
        The request ID of the cancel request itself (as SkyPilot's SDK). Its result
        (``get``) is the list of request IDs that were cancelled; already finished ones
        are skipped.

    Raises:
        ValueError: no request ID, and neither ``all`` nor ``all_users`` (before sending).

    ``silent`` is accepted for SkyPilot compatibility; this function prints nothing.
    """
    del silent
    from skyhop.sdk import _submit

    return _submit("api_cancel", _cancel_body(request_ids, all_users, all))


def _cancel_body(
    request_ids: str | list[str] | None,
    all_users: bool,
    all: bool,  # noqa: A002
) -> dict[str, Any]:
    if isinstance(request_ids, str):
        request_ids = [request_ids]
    if not request_ids and not all and not all_users:
        raise ValueError("Name the request IDs to cancel, or pass all=True or all_users=True.")
    return {"request_ids": list(request_ids or []), "all": all, "all_users": all_users}


def api_info() -> dict[str, Any]:
    """The server's health document plus ``endpoint`` and ``user`` (name and hash).

    ``user`` is who the server takes the caller to be (the token's name on a deployed
    server, ``None`` when it requires a token and got no valid one); a local server that
    does not say falls back to this client's own identity.
    """
    client = current_client()
    return _info_of(client, client.ensure_server())


def _info_of(client: ClientBase, info: dict[str, Any]) -> dict[str, Any]:
    user = info.get("user")
    if user is None and not info.get("auth_required"):
        user = {"name": client.user_name, "hash": client.user_hash}
    return {**info, "endpoint": client.endpoint, "user": user}


def _local_client(host: str, port: int | None) -> ApiClient:
    endpoint = current_client().endpoint
    if port is None and is_loopback(endpoint):
        port = urlparse(endpoint).port
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return ApiClient(f"http://{probe_host}:{port or DEFAULT_PORT}")


def api_start(host: str = "127.0.0.1", port: int | None = None) -> str:
    """Start a local API server unless one already answers; returns its endpoint.

    ``host`` is the address the server binds (``0.0.0.0`` to accept remote clients);
    ``port`` defaults to the configured endpoint's port (46590).
    """
    client = _local_client(host, port)
    try:
        if not client.is_up():
            start_local_server(client.endpoint, host=host)
        client.ensure_server()
        return client.endpoint
    finally:
        client.close()


def api_stop(timeout: float = 20.0) -> bool:
    """Stop the local API server; returns False if none was running.

    Requests still running on it are interrupted (a restarted server marks them failed).
    """
    client = current_client()
    if not is_loopback(client.endpoint):
        raise exceptions.ApiServerError(
            f"{client.endpoint} is a remote API server; only a local server can be stopped "
            "from here. Ask its administrator, or point SKYHOP_API_SERVER_ENDPOINT at a local one."
        )
    if not client.is_up():
        return False
    client.shutdown()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client.is_up():
            return True
        time.sleep(0.1)
    raise exceptions.ApiServerError(
        f"The API server at {client.endpoint} did not stop within {timeout:.0f} s; "
        f"its pid is in {paths.replica_dir(urlparse(client.endpoint).port or DEFAULT_PORT) / 'server.pid'}."
    )
