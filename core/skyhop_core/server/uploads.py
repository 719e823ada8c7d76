"""HTTP routes of the upload store (docs/http-api.md, "Uploads"), and its GC loop.

The client uploads a task's workdir and local file-mount sources before it submits the
request (see :mod:`skyhop.uploads`):

1. ``POST /api/uploads`` with the manifest -> ``upload_id`` and the blobs ``missing``;
2. ``POST /api/uploads/pack``: small blobs, many in one body of at most 8 MiB;
3. ``GET /api/uploads/blobs/{sha}`` -> how many bytes of a blob the server has (resume);
   ``PUT /api/uploads/blobs/{sha}?offset=N&size=T`` with at most 8 MiB of a big one;
4. ``POST /api/uploads/{id}/complete`` -> the upload is materialised and usable;
5. ``GET /api/uploads/{id}`` -> its state, size and how many blobs were new.

Every route acts for the caller :class:`~skyhop_core.server.auth.AuthMiddleware` found;
uploads are stored per user, so another user's upload ID is not found (404).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from skyhop_core import exceptions
from skyhop_core.server import bodies
from skyhop_core.server.auth import current_user
from skyhop_core.storage import manifest as mf
from skyhop_core.storage.uploads import (
    DEFAULT_RETENTION_SECONDS,
    MAX_CHUNK_BYTES,
    ChunkOffsetError,
    UploadIncompleteError,
    UploadStore,
)

log = logging.getLogger("skyhop.uploads")

#: A manifest of MAX_ENTRIES entries fits in this (its own limit, not the 16 MiB one).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (exceptions.UploadNotFoundError, 404),
    (exceptions.UploadTooLargeError, 413),
    (ChunkOffsetError, 409),
    (UploadIncompleteError, 409),
    (ValueError, 400),
)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413, naming the size and the limit) past ``limit``."""

    def too_large(received: int) -> Exception:
        return exceptions.UploadTooLargeError(
            f"The body of {received} bytes or more is over this route's limit of {limit} "
            "bytes.", limit=limit, total=received,
        )  # fmt: skip

    return await bodies.read_body(request, limit, too_large)


def upload_routes(
    store: UploadStore, error_response: Callable[[BaseException], JSONResponse]
) -> list[Route]:
    """The upload routes over ``store``; ``error_response`` encodes errors as the app does."""

    def failed(exc: BaseException) -> Response:
        response = error_response(exc)
        code = next((c for t, c in _CODES if isinstance(exc, t)), None)
        if code is not None:
            response.status_code = code
        if isinstance(exc, ChunkOffsetError):
            body = json.loads(bytes(response.body))
            body["received"] = exc.received
            return JSONResponse(body, status_code=409)
        return response

    def user_hash(request: Request) -> str:
        user = current_user(request)
        return user.hash if user is not None else "unknown"

    async def register(request: Request) -> Response:
        try:
            raw = await _read_body(request, MAX_MANIFEST_BYTES)
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                raise mf.ManifestError("The manifest must be JSON.") from None
            answer = await store.run(store.register, user_hash(request), data)
        except Exception as exc:
            return failed(exc)
        log.info(
            "upload %s: %d file(s), %d new blob(s)",
            answer["upload_id"], answer["files"], len(answer["missing"]),
        )  # fmt: skip
        answer["chunk_bytes"] = MAX_CHUNK_BYTES
        answer["max_bytes"] = store.max_bytes
        return JSONResponse(answer)

    async def blob_status(request: Request) -> Response:
        try:
            sha = request.path_params["sha"]
            return JSONResponse(await store.run(store.blob_status, user_hash(request), sha))
        except Exception as exc:
            return failed(exc)

    async def put_chunk(request: Request) -> Response:
        q = request.query_params
        try:
            sha = request.path_params["sha"]
            offset, size = _count(q.get("offset"), "offset"), _count(q.get("size"), "size")
            data = await _read_body(request, MAX_CHUNK_BYTES)
            answer = await store.run(store.write_chunk, user_hash(request), sha, offset, size, data)
        except Exception as exc:
            return failed(exc)
        return JSONResponse(answer)

    async def put_pack(request: Request) -> Response:
        try:
            raw = await _read_body(request, MAX_CHUNK_BYTES)
            head, newline, payload = raw.partition(b"\n")
            try:
                index = json.loads(head) if newline else None
            except ValueError:
                index = None
            answer = await store.run(store.write_pack, user_hash(request), index, payload)
        except Exception as exc:
            return failed(exc)
        return JSONResponse(answer)

    async def complete(request: Request) -> Response:
        try:
            upload_id = request.path_params["upload_id"]
            return JSONResponse(await store.run(store.complete, user_hash(request), upload_id))
        except Exception as exc:
            return failed(exc)

    async def info(request: Request) -> Response:
        try:
            upload_id = request.path_params["upload_id"]
            return JSONResponse(await store.run(store.info, user_hash(request), upload_id))
        except Exception as exc:
            return failed(exc)

    return [
        Route("/api/uploads", register, methods=["POST"]),
        Route("/api/uploads/pack", put_pack, methods=["POST"]),
        Route("/api/uploads/blobs/{sha}", blob_status, methods=["GET"]),
        Route("/api/uploads/blobs/{sha}", put_chunk, methods=["PUT"]),
        Route("/api/uploads/{upload_id}/complete", complete, methods=["POST"]),
        Route("/api/uploads/{upload_id}", info, methods=["GET"]),
    ]


_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_SHA = {"name": "sha", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}  # fmt: skip
_ID = {"name": "upload_id", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}  # fmt: skip
_PATH = {"type": "string", "minLength": 1, "maxLength": 4096}
_ENTRY = {
    "oneOf": [
        {"type": "object", "additionalProperties": False,
         "required": ["path", "type", "size", "sha256"],
         "properties": {"path": _PATH, "type": {"const": "file"},
                        "size": {"type": "integer", "minimum": 0},
                        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                        "executable": {"type": "boolean"}}},
        {"type": "object", "additionalProperties": False, "required": ["path", "type"],
         "properties": {"path": _PATH, "type": {"const": "dir"}}},
        {"type": "object", "additionalProperties": False,
         "required": ["path", "type", "target"],
         "properties": {"path": _PATH, "type": {"const": "symlink"},
                        "target": {"type": "string", "minLength": 1, "maxLength": 4096}}},
    ]
}  # fmt: skip


def openapi_paths() -> dict[str, Any]:
    """The upload routes' part of ``/api/openapi.json``."""
    errors = {"400": _ERROR, "404": _ERROR, "409": _ERROR, "413": _ERROR}
    return {
        "/api/uploads": {"post": {
            "summary": "Register a manifest; returns the upload ID and the blobs missing",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["kind", "entries"], "additionalProperties": False,
                "properties": {"kind": {"type": "string", "enum": list(mf.KINDS)},
                               "entries": {"type": "array", "items": _ENTRY}}}}}},
            "responses": {"200": {"description": "upload_id, missing, chunk_bytes"}, **errors}}},
        "/api/uploads/pack": {"post": {
            "summary": "Several whole blobs in one body (at most 8 MiB): a JSON index "
                       "[[sha256, size], ...], a newline, then their bytes in that order",
            "requestBody": {"content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}},
            "responses": {"200": {"description": "stored"}, **errors}}},
        "/api/uploads/blobs/{sha}": {
            "get": {"summary": "How many bytes of a blob the server has",
                    "parameters": [_SHA], "responses": {"200": {"description": "received"},
                                                        **errors}},
            "put": {"summary": "Append one chunk (at most 8 MiB) at offset",
                    "parameters": [_SHA,
                                   {"name": "offset", "in": "query", "required": True,
                                    "schema": {"type": "integer", "minimum": 0}},
                                   {"name": "size", "in": "query", "required": True,
                                    "schema": {"type": "integer", "minimum": 0}}],
                    "requestBody": {"content": {"application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}}}},
                    "responses": {"200": {"description": "received, complete"}, **errors}}},
        "/api/uploads/{upload_id}/complete": {"post": {
            "summary": "Materialise an upload whose blobs have all arrived",
            "parameters": [_ID], "responses": {"200": {"description": "The upload"}, **errors}}},
        "/api/uploads/{upload_id}": {"get": {
            "summary": "An upload's state, size and how many blobs were new",
            "parameters": [_ID], "responses": {"200": {"description": "The upload"}, **errors}}},
    }  # fmt: skip


def _count(value: str | None, name: str) -> int:
    if value is None or not value.isdigit() or int(value) > 2**53:
        raise ValueError(f"Query parameter {name}={value!r} must be an integer from 0 to 2**53.")
    return int(value)


async def upload_gc_loop(
    store: UploadStore,
    retention_seconds: float,
    interval: float,
    in_use: Callable[[], Awaitable[Collection[tuple[str, str]]]] | None = None,
) -> None:
    """Every ``interval`` seconds, delete uploads unused for ``retention_seconds``
    (0 or less: keep them forever), but none ``in_use()`` returns (``(user_hash,
    upload_id)`` pairs: those of live managed jobs and services)."""
    if retention_seconds <= 0:
        return
    while True:
        try:
            keep = await in_use() if in_use is not None else ()
        except Exception as exc:  # the database away: collect nothing rather than too much
            log.warning("upload garbage collection skipped (uploads in use unknown): %s", exc)
            await trio.sleep(interval)
            continue
        try:
            removed = await store.run(store.collect_garbage, retention_seconds, None, keep)
        except OSError as exc:  # a full or flaky volume must not stop the server
            log.warning("upload garbage collection failed: %s", exc)
        else:
            if any(removed.values()):
                log.info("upload garbage collection: %s", removed)
        await trio.sleep(interval)


def gc_settings(env: dict[str, str] | Any) -> tuple[float, float]:
    """``(retention, interval)`` seconds from SKYHOP_UPLOAD_RETENTION_SECONDS and
    SKYHOP_UPLOAD_GC_INTERVAL_SECONDS (defaults: 7 days, 1 hour)."""
    retention = float(env.get("SKYHOP_UPLOAD_RETENTION_SECONDS", DEFAULT_RETENTION_SECONDS))
    interval = float(env.get("SKYHOP_UPLOAD_GC_INTERVAL_SECONDS", 3600))
    return retention, interval
