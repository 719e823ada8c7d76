"""HTTP routes of the API server (see docs/http-api.md)."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from skyhop_core import API_VERSION, __version__, exceptions, wire
from skyhop_core.ops import requests_cancel
from skyhop_core.ops.params import CancelRequestsParams
from skyhop_core.ops.requests_cancel import cancel_requests
from skyhop_core.requests.context import User
from skyhop_core.requests.engine import Engine
from skyhop_core.requests.logs import follow, tail_offset
from skyhop_core.server import bodies, openapi
from skyhop_core.server.auth import AuthMiddleware, current_user
from skyhop_core.server.querycheck import QueryCheckMiddleware
from skyhop_core.server.shell import PATH as SHELL_PATH
from skyhop_core.server.shell import serve_session
from skyhop_core.server.uploads import openapi_paths as upload_openapi_paths
from skyhop_core.server.uploads import upload_routes
from skyhop_core.state import requests as rq
from skyhop_core.storage.uploads import UploadStore

_STATUS_CODES: dict[type[BaseException], int] = {
    exceptions.RequestNotFoundError: 404,
    exceptions.AmbiguousRequestIdError: 409,
    exceptions.BodyTooLargeError: 413,
    exceptions.NotAuthenticatedError: 401,
    exceptions.PermissionDeniedError: 403,
    exceptions.TaskValidationError: 400,
    exceptions.InvalidClusterNameError: 400,
    ValueError: 400,
}


def error_response(exc: BaseException) -> JSONResponse:
    code = next((c for t, c in _STATUS_CODES.items() if isinstance(exc, t)), None)
    if code is None:
        code = 400 if isinstance(exc, exceptions.SkyhopError) else 500
    return JSONResponse({"error": wire.encode_error(exc)}, status_code=code)


def _user(request: Request | Any) -> User:
    """The caller of a request or ASGI scope (set by AuthMiddleware; only /api/health may
    be anonymous)."""
    return current_user(request) or User("unknown", "unknown")


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes", "on")


#: Largest value an integer query parameter may take (offsets, tails, limits).
_MAX_INT = 2**53


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= _MAX_INT:
        raise ValueError(f"Query parameter {name}={value!r} must be an integer from 0 to 2**53.")
    return number


#: The longest ``POST /api/v1/<op>?wait=`` a server honours, in seconds.
MAX_SUBMIT_WAIT = 60.0


def _wait_seconds(value: str | None) -> float:
    """``?wait=`` of a submission: seconds to wait for the result (0: do not wait)."""
    if value is None:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_SUBMIT_WAIT:  # also refuses nan
        raise ValueError(
            f"Query parameter wait={value!r} must be a number of seconds from 0 to "
            f"{MAX_SUBMIT_WAIT:g}."
        )
    return seconds


async def _send_json(send: Any, status: int, content: Any) -> None:
    """What ``JSONResponse(content, status)`` sends, without building one."""
    body = json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _size(path: Any) -> int:
    try:
        return int(os.stat(path).st_size)
    except OSError:
        return 0


def _outcome(row: Any) -> dict[str, Any]:
    """A finished request as ``GET /api/get`` returns it."""
    return {
        "request_id": row.request_id,
        "name": row.name,
        "status": row.status,
        "result": row.result,
        "error": row.error,
    }


def _cancel_body(data: Any) -> CancelRequestsParams:
    try:
        if not isinstance(data, dict):
            raise wire.WireTypeError("expected an object")
        return wire.structure(data, CancelRequestsParams)  # type: ignore[no-any-return]
    except Exception as exc:
        raise ValueError(
            f"Invalid cancel body: {wire.describe_error(exc)}. The body is "
            '{"request_ids": [ID, ...], "all": bool, "all_users": bool}.'
        ) from None


class _Endpoint:
    """A bare ASGI function as a route's endpoint (Starlette wraps plain functions as
    request handlers)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class LazyDashboard:
    """The ``/dashboard`` pages, imported on their first request so that the server
    starts without Jinja2 and the dashboard's modules (see :mod:`skyhop_core.dashboard`).
    Its HTML routes are not in the OpenAPI document: they are not the JSON API."""

    def __init__(self, engine: Engine, deploy: bool) -> None:
        self.engine = engine
        self.deploy = deploy
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from skyhop_core.dashboard import build_dashboard

            self._app = build_dashboard(self.engine, deploy=self.deploy)
        await self._app(scope, receive, send)


def build_app(engine: Engine, shutdown: Any, *, deploy: bool = False) -> FastRoutes:
    """The ASGI app. ``deploy``: a team server that authenticates callers by bearer token
    (see :mod:`skyhop_core.server.auth`) instead of trusting identity headers."""
    services = engine.services
    heartbeat = float(os.environ.get("SKYHOP_STREAM_HEARTBEAT_SECONDS", "5"))

    def owner_scope(user: User) -> str | None:
        return requests_cancel.owner_scope(user, deploy)

    def check_all_users(user: User, what: str) -> None:
        requests_cancel.check_all_users(user, what, deploy)

    async def health(scope: Any, receive: Any, send: Any) -> None:
        user = current_user(scope)
        info: dict[str, Any] = {
            "status": "healthy",
            "version": __version__,
            "api_version": API_VERSION,
            "auth_required": deploy,
        }
        if user is None:  # anonymous on a deployed server: nothing about the machine
            info["user"] = None
        else:
            info["persistent_path"] = str(services.persistent_path)
            info["pid"] = os.getpid()
            info["user"] = {"name": user.name, "hash": user.hash, "role": user.role}
        await _send_json(send, 200, info)

    async def submit(scope: Any, receive: Any, send: Any) -> None:
        """``POST /api/v1/<operation>``: every request's way in, as a bare ASGI endpoint
        (no Request and Response objects: a tenth of a read's server CPU was Starlette's)."""
        try:
            query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            wait = _wait_seconds(query["wait"][-1] if "wait" in query else None)
            body = bodies.parse_json(
                await bodies.receive_body(scope, receive, bodies.max_body_bytes())
            )
            if not isinstance(body, dict):
                raise ValueError("The request body must be a JSON object.")
            request_id, row = await engine.submit_and_wait(
                scope["path_params"]["operation"], body, _user(scope), wait=wait
            )
        except Exception as exc:
            await error_response(exc)(scope, receive, send)
            return
        if row is not None:  # finished within ?wait=: the result, as GET /api/get has it
            # ...and how long its log is, so a client need not ask for an empty one (the
            # engine counted what it wrote: no stat of the file, which gives up the GIL).
            log_bytes = getattr(row, "log_bytes", None)
            if log_bytes is None:
                log_bytes = _size(services.logs.path(request_id))
            await _send_json(send, 200, {**_outcome(row), "log_bytes": log_bytes})
        else:
            await _send_json(send, 202, {"request_id": request_id})

    async def get(request: Request) -> Response:
        try:
            request_id = await engine.resolve(
                request.query_params.get("request_id", ""), owner_scope(_user(request))
            )
            row = await engine.wait(request_id)
        except Exception as exc:
            return error_response(exc)
        return JSONResponse(_outcome(row))

    async def _latest_request_of(user: Any) -> str:
        """Without a request ID, ``/api/stream`` follows the caller's most recent request."""
        records = await services.store.run(
            lambda conn: rq.list_records(conn, include_finished=True, user_hash=user.hash, limit=1)
        )
        if not records:
            raise exceptions.RequestNotFoundError("You have no requests on this API server.")
        return records[0].request_id

    async def stream(request: Request) -> Response:
        q = request.query_params
        try:
            if q.get("request_id"):
                request_id = await engine.resolve(q["request_id"], owner_scope(_user(request)))
            else:
                request_id = await _latest_request_of(_user(request))
            tail = _int(q.get("tail"), "tail")
            offset = _int(q.get("offset"), "offset") or 0
        except Exception as exc:
            return error_response(exc)
        if tail is not None:
            offset = tail_offset(services.logs.path(request_id), tail)

        async def body() -> Any:
            async for chunk in follow(
                services.logs,
                request_id,
                offset=offset,
                is_finished=lambda: engine.is_finished(request_id),
                follow=_bool(q.get("follow"), True),
                heartbeat=heartbeat,
                poll=None if engine.is_local(request_id) else 0.1,
            ):
                yield chunk or b"\0"  # an empty chunk is a heartbeat: NUL, dropped by clients

        return StreamingResponse(
            body(),
            media_type="text/plain; charset=utf-8",
            headers={"X-Skyhop-Request-Id": request_id, "X-Skyhop-Log-Offset": str(offset)},
        )

    async def api_status(request: Request) -> Response:
        q = request.query_params
        user = _user(request)
        try:
            all_users = _bool(q.get("all_users"))
            if all_users:
                check_all_users(user, "list")
            ids = [await engine.resolve(i, owner_scope(user)) for i in q.getlist("request_ids")]
            limit = _int(q.get("limit"), "limit")

            def listing(conn: Any) -> Any:
                return rq.list_records(
                    conn,
                    include_finished=_bool(q.get("all")) or bool(ids),
                    # Named IDs were resolved within the caller's scope already.
                    user_hash=None if all_users or ids else user.hash,
                    request_ids=ids or None,
                    limit=limit,
                )

            # A short listing (named requests, a small limit: what a client polls) is read
            # on the event loop when the server is quiet (else with the writer's batch); a
            # long one on a worker thread, so it holds up nothing.
            short = len(ids) <= 100 and (bool(ids) or (limit is not None and 0 < limit <= 100))
            records = await (services.store.read if short else services.store.run)(listing)
        except Exception as exc:
            return error_response(exc)
        return JSONResponse(wire.unstructure(records))

    async def cancel(request: Request) -> Response:
        try:
            body = _cancel_body(await bodies.read_json(request))
            cancelled, finished = await cancel_requests(
                engine, body, _user(request), deploy=deploy
            )
        except Exception as exc:
            return error_response(exc)
        return JSONResponse({"cancelled": cancelled, "finished": finished})

    async def shutdown_route(request: Request) -> Response:
        if deploy:
            return error_response(
                exceptions.PermissionDeniedError(
                    "A deployed API server cannot be shut down over the API; stop it on the "
                    "server machine (skyhop api stop there, or SIGTERM its process)."
                )
            )
        shutdown.set()
        return JSONResponse({})

    openapi_doc = openapi.build(engine.operations)
    openapi_doc["paths"].update(upload_openapi_paths())

    async def openapi_route(request: Request) -> Response:
        return JSONResponse(openapi_doc)

    routes = [
        Route("/api/health", _Endpoint(health), methods=["GET"]),
        Route("/api/v1/{operation}", _Endpoint(submit), methods=["POST"]),
        Route("/api/get", get, methods=["GET"]),
        Route("/api/stream", stream, methods=["GET"]),
        Route("/api/status", api_status, methods=["GET"]),
        Route("/api/cancel", cancel, methods=["POST"]),
        Route("/api/shutdown", shutdown_route, methods=["POST"]),
        Route("/api/openapi.json", openapi_route, methods=["GET"]),
        Mount("/dashboard", app=LazyDashboard(engine, deploy)),
    ]
    routes.extend(upload_routes(UploadStore(services.persistent_path), error_response))
    auth = AuthMiddleware(None, store=services.store, deploy=deploy)
    middleware = [
        Middleware(AuthMiddleware, store=services.store, deploy=deploy),
        Middleware(QueryCheckMiddleware, document=openapi_doc),
    ]
    async def shell_session(scope: Any, receive: Any, send: Any) -> None:
        await serve_session(services, _user(scope), scope, receive, send)

    return FastRoutes(
        Starlette(routes=routes, middleware=middleware), auth, submit, health, shell_session
    )


class FastRoutes:
    """The routes every client calls all the time — ``POST /api/v1/<operation>`` and
    ``GET /api/health`` — answered before Starlette's layers (its error and exception
    middlewares wrap every ``send``, its router matches each route in turn): the caller
    is identified exactly as :class:`AuthMiddleware` does, then the route's bare ASGI
    endpoint runs, which answers every error itself. Anything else, including those
    paths with another method, goes to ``app`` unchanged. The WebSocket of ``skyhop ssh``
    (:mod:`skyhop_core.server.shell`) is identified the same way, then served here."""

    _SUBMIT = "/api/v1/"
    _SHELL = SHELL_PATH

    def __init__(
        self, app: Starlette, auth: AuthMiddleware, submit: Any, health: Any, shell: Any
    ) -> None:
        self.app = app
        self.auth = auth
        self.submit = submit
        self.health = health
        self.shell = shell

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if method == "POST" and path.startswith(self._SUBMIT):
                operation = path[len(self._SUBMIT):]
                if operation and "/" not in operation:
                    if await self.auth.identify(scope, send):
                        scope["path_params"] = {"operation": operation}
                        await self.submit(scope, receive, send)
                    return
            elif method == "GET" and path == "/api/health":
                if await self.auth.identify(scope, send):
                    await self.health(scope, receive, send)
                return
        elif scope["type"] == "websocket" and scope["path"] == self._SHELL:
            if await self.auth.identify(scope, send):
                await self.shell(scope, receive, send)
            return
        await self.app(scope, receive, send)
