"""Query parameters checked against the OpenAPI document before any route runs.

The document (:mod:`skyhop_core.server.openapi`) lists each GET route's query parameters
with their types and bounds; this middleware enforces exactly that, so the document and
the server cannot disagree: a boolean is ``true`` or ``false``, an integer is decimal
digits within its ``minimum``/``maximum``, a required parameter is present, and a
parameter given twice that is not an array is refused. Each refusal is a 400 naming the
parameter and the value.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from skyhop_core import wire

_INTEGER = re.compile(r"^-?[0-9]{1,20}$")


def _problem(name: str, values: list[str], spec: dict[str, Any]) -> str | None:
    schema = spec.get("schema", {})
    kind = schema.get("type")
    if kind == "array":
        return None
    if len(values) > 1:
        return f"Query parameter {name} is given {len(values)} times; give it once."
    value = values[0]
    if kind == "boolean" and value not in ("true", "false"):
        return f"Query parameter {name}={value!r} must be true or false."
    if kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        number = int(value) if _INTEGER.match(value) else None
        if number is None or (lo is not None and number < lo) or (hi is not None and number > hi):
            return f"Query parameter {name}={value!r} must be an integer from {lo} to {hi}."
    return None


def query_problem(params: list[dict[str, Any]], query: str) -> str | None:
    """Why ``query`` does not match the documented ``params`` (None: it does)."""
    given = parse_qs(query, keep_blank_values=True)
    for spec in params:
        if spec.get("in") != "query":
            continue
        name = spec["name"]
        if name not in given:
            if spec.get("required"):
                return f"Query parameter {name} is required."
            continue
        problem = _problem(name, given[name], spec)
        if problem:
            return problem
    return None


class QueryCheckMiddleware:
    """Refuses GET requests whose query does not match the document (400)."""

    def __init__(self, app: ASGIApp, document: dict[str, Any]) -> None:
        self.app = app
        self.params = {
            path: item["get"].get("parameters", [])
            for path, item in document.get("paths", {}).items()
            if "get" in item
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "GET":
            params = self.params.get(scope.get("path", ""))
            if params:
                query = scope.get("query_string", b"").decode("latin-1")
                problem = query_problem(params, query)
                if problem:
                    body = {"error": wire.encode_error(ValueError(problem))}
                    await JSONResponse(body, status_code=400)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
