"""Reading a JSON request body within limits: its size and its nesting depth.

A body is read as a stream and refused (413) as soon as it passes the limit, so a huge
upload costs the server at most the limit in memory; a ``Content-Length`` over the limit
is refused before anything is read. JSON nested deeper than :data:`MAX_JSON_DEPTH` is a
400, whether the parser itself runs out of recursion or the document is merely deep: no
handler ever sees a structure deep enough to exhaust the stack. A whole number written
with a fraction or exponent (``2.0``, ``1e3``) is the integer it denotes.

Limits (environment of the server): ``SKYHOP_MAX_BODY_BYTES`` (default 16 MiB).
File uploads have routes of their own with their own limit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from skyhop_core.exceptions import BodyTooLargeError

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Deepest nesting of arrays/objects a request body may have.
MAX_JSON_DEPTH = 64
#: Bytes of a refused body the server still reads (and drops) so the client, which is
#: still sending, gets the 413 instead of a reset connection.
DRAIN_BYTES = 64 * 1024 * 1024


def max_body_bytes() -> int:
    value = os.environ.get("SKYHOP_MAX_BODY_BYTES", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_BODY_BYTES


def _too_large(limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"The request body is larger than this server accepts ({limit} bytes; "
        "SKYHOP_MAX_BODY_BYTES on the server). Send less: large files go through uploads."
    )


async def read_body(
    request: Request, limit: int, too_large: Callable[[int], Exception] | None = None
) -> bytes:
    """The raw body, or :class:`BodyTooLargeError` once it passes ``limit`` bytes (or what
    ``too_large(bytes received)`` makes, for a route with an error of its own)."""
    return await _read(
        request.headers.get("content-length", ""), request.stream(), limit, too_large
    )


async def receive_body(scope: Any, receive: Any, limit: int) -> bytes:
    """:func:`read_body` for a bare ASGI endpoint (``receive`` of its call)."""
    declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
    return await _read(declared.decode("latin-1"), _chunks(receive), limit)


async def _chunks(receive: Any) -> Any:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if body := message.get("body", b""):
            yield body
        if not message.get("more_body", False):
            return


async def _read(
    declared: str, stream: Any, limit: int, too_large: Callable[[int], Exception] | None = None
) -> bytes:
    refuse = too_large or (lambda _size: _too_large(limit))
    if declared.isdigit() and int(declared) > limit:
        raise refuse(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            chunks.clear()
            async for rest in stream:  # drop the rest, bounded
                size += len(rest)
                if size > limit + DRAIN_BYTES:
                    break
            raise refuse(size)
        chunks.append(chunk)
    return b"".join(chunks)


def depth_of(value: Any) -> int:
    """How deeply arrays/objects nest in ``value`` (iterative: no recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            return depth
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _number(text: str) -> int | float:
    """A JSON number with a fraction or exponent: an int when it is a whole number
    (JSON has one number type; ``2.0`` is the integer 2, as JSON Schema says)."""
    value = float(text)
    return int(value) if value.is_integer() else value


#: One decoder for every body (``json.loads`` with ``parse_float`` builds a new one per call).
_DECODER = json.JSONDecoder(parse_float=_number)


def parse_json(raw: bytes) -> Any:
    """The JSON document in ``raw`` (empty means ``{}``); ValueError when it is not JSON
    or nests deeper than :data:`MAX_JSON_DEPTH`."""
    too_deep = ValueError(
        f"The request body nests arrays/objects more than {MAX_JSON_DEPTH} levels deep."
    )
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass") if raw else "{}"
        value = _DECODER.decode(text)
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"The request body is not valid JSON: {exc}.") from None
    if depth_of(value) > MAX_JSON_DEPTH:
        raise too_deep
    return value


async def read_json(request: Request) -> Any:
    """The request's JSON body within the size and depth limits."""
    return parse_json(await read_body(request, max_body_bytes()))
