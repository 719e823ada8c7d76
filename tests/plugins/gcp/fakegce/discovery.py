"""Routes and request validation of the fake, read from Google's ``compute.v1`` and
``storage.v1`` discovery documents (the copies google-api-python-client ships for offline
use); every function takes the API's document name (``api``), Compute by default.

Every method of every resource becomes a :class:`Route` (HTTP method + ``flatPath``
template). A request is matched to its route, its query parameters are checked against
the method's and the API's global parameters (name, type, enum, required), and its body
against the method's request schema: an unknown field, a wrong type or a value outside
an enum is a 400 with the message shape the real API uses (``Invalid JSON payload
received. Unknown name "x" at 'resource.scheduling': Cannot find field.``). The fake also
checks its own responses against the response schema, so it cannot drift from the API.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

SERVICE_PATH = "/compute/v1/"


class ApiError(Exception):
    """An error response: HTTP ``status``, the ``reason`` of ``error.errors[0]``, a message."""

    def __init__(self, status: int, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": self.message,
                          "errors": [{"message": self.message, "domain": "global",
                                      "reason": self.reason}]}}  # fmt: skip


COMPUTE = "compute.v1"
STORAGE = "storage.v1"


@functools.cache
def document(api: str = COMPUTE) -> dict[str, Any]:
    """The discovery document ``api`` shipped inside google-api-python-client."""
    import googleapiclient

    path = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache",
                        "documents", f"{api}.json")  # fmt: skip
    with open(path) as f:
        return dict(json.load(f))


@attrs.frozen
class Route:
    method_id: str  # "compute.instances.insert"
    http_method: str
    template: str
    pattern: re.Pattern[str]
    parameters: Mapping[str, Any]
    request_ref: str | None
    response_ref: str | None
    api: str = COMPUTE
    #: Whether ``alt=media`` (the object's bytes) is allowed.
    media_download: bool = False


def _compile(template: str) -> re.Pattern[str]:
    out, pos = "", 0
    for m in re.finditer(r"\{(\+?)([^}]+)\}", template):
        out += re.escape(template[pos : m.start()])
        out += f"(?P<{m.group(2)}>{'.+' if m.group(1) else '[^/]+'})"
        pos = m.end()
    return re.compile("^" + out + re.escape(template[pos:]) + "$")


def _methods(resources: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in resources.values():
        yield from resource.get("methods", {}).values()
        yield from _methods(resource.get("resources", {}))


@functools.cache
def routes(api: str = COMPUTE) -> tuple[Route, ...]:
    found = []
    for m in _methods(document(api)["resources"]):
        template = m.get("flatPath") or m["path"]
        found.append(Route(
            m["id"], m["httpMethod"], template, _compile(template), m.get("parameters", {}),
            (m.get("request") or {}).get("$ref"), (m.get("response") or {}).get("$ref"),
            api, bool(m.get("supportsMediaDownload")),
        ))  # fmt: skip
    # Literal segments beat parameters: ".../instances/{instance}/start" before "{instance}".
    return tuple(sorted(found, key=lambda r: -len(re.sub(r"\{[^}]+\}", "", r.template))))


def match(http_method: str, path: str, api: str = COMPUTE) -> tuple[Route, dict[str, str]]:
    """The route of ``path`` (below the API's service path) and its path parameters."""
    known_path = False
    for route in routes(api):
        m = route.pattern.match(path)
        if m:
            known_path = True
            if route.http_method == http_method:
                return route, m.groupdict()
    if known_path:
        raise ApiError(405, f"Method {http_method} is not allowed on {path}.", "methodNotAllowed")
    service = "/" + str(document(api)["servicePath"])
    raise ApiError(404, f"The requested URL {service}{path} was not found.", "notFound")


def _check_scalar(spec: Mapping[str, Any], value: Any, where: str) -> None:
    kind = spec.get("type")
    if kind == "string":
        if spec.get("format") in ("int64", "uint64") and isinstance(value, int):
            return  # JSON numbers are accepted for 64-bit integers
        if not isinstance(value, str):
            raise ApiError(400, f"Invalid value at '{where}' ({type(value).__name__}), "
                                f"expected a string.")  # fmt: skip
        if spec.get("enum") and value not in spec["enum"]:
            raise ApiError(400, f"Invalid value at '{where}' ({value!r}): not one of "
                                f"{', '.join(spec['enum'])}.")  # fmt: skip
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ApiError(400, f"Invalid value at '{where}' ({value!r}), expected an integer.")
        if isinstance(value, str) and not re.fullmatch(r"-?\d+", value):
            raise ApiError(400, f"Invalid value at '{where}' ({value!r}), expected an integer.")
    elif kind == "boolean" and not isinstance(value, bool):
        raise ApiError(400, f"Invalid value at '{where}' ({value!r}), expected a boolean.")
    elif kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ApiError(400, f"Invalid value at '{where}' ({value!r}), expected a number.")


def validate(
    value: Any, spec: Mapping[str, Any], where: str = "resource", api: str = COMPUTE
) -> None:
    """Check ``value`` against a discovery schema; raise the API's 400 on the first fault."""
    if "$ref" in spec:
        spec = document(api)["schemas"][spec["$ref"]]
    kind = spec.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            raise ApiError(400, f"Invalid JSON payload received. Expected an object at '{where}'.")
        props = spec.get("properties")
        extra = spec.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                validate(item, props[key], f"{where}.{key}", api)
            elif extra is not None:
                validate(item, extra, f"{where}[{key!r}]", api)
            else:
                raise ApiError(400, f'Invalid JSON payload received. Unknown name "{key}" at '
                                    f"'{where}': Cannot find field.")  # fmt: skip
    elif kind == "array":
        if not isinstance(value, list):
            raise ApiError(400, f"Invalid JSON payload received. Expected a list at '{where}'.")
        for i, item in enumerate(value):
            validate(item, spec.get("items", {}), f"{where}[{i}]", api)
    elif kind == "any":
        return
    else:
        _check_scalar(spec, value, where)


GLOBAL_SKIP = {"alt", "prettyPrint", "fields", "key", "quotaUser", "userIp", "$.xgafv",
               "callback", "uploadType", "upload_protocol", "access_token", "oauth_token"}  # fmt: skip


def check_query(route: Route, query: Mapping[str, list[str]]) -> dict[str, str]:
    """The query parameters of a request, checked against the method; one value each."""
    known = {**document(route.api)["parameters"], **route.parameters}
    out: dict[str, str] = {}
    for name, values in query.items():
        spec = known.get(name)
        if spec is None or spec.get("location", "query") != "query":
            raise ApiError(400, f"Invalid JSON payload received. Unknown name \"{name}\": "
                                "Cannot bind query parameter.")  # fmt: skip
        value = values[-1]
        if spec.get("type") == "boolean" and value not in ("true", "false"):
            raise ApiError(400, f"Invalid value for parameter {name!r}: {value!r}.")
        if spec.get("type") == "integer":
            _check_scalar(spec, value, name)
        if spec.get("enum") and value not in spec["enum"]:
            raise ApiError(400, f"Invalid value for parameter {name!r}: {value!r}.")
        if name == "alt" and value == "media" and not route.media_download:
            raise ApiError(400, f"{route.method_id} does not support alt=media.")
        out[name] = value
    for name, spec in route.parameters.items():
        if spec.get("location") == "query" and spec.get("required") and name not in out:
            raise ApiError(400, f"Required parameter {name!r} is missing.", "required")
    return out


def check_path(route: Route, params: Mapping[str, str]) -> None:
    for name, value in params.items():
        pattern = route.parameters.get(name, {}).get("pattern")
        if pattern and not re.fullmatch(pattern, value):
            raise ApiError(400, f"Invalid value for field '{name}': '{value}'. Must be a match "
                                f"of regex '{pattern}'")  # fmt: skip


def check_body(route: Route, body: Any) -> None:
    if route.request_ref is None:
        if body not in (None, {}):
            raise ApiError(400, f"{route.method_id} takes no request body.")
        return
    if body is None:
        raise ApiError(400, f"{route.method_id} needs a request body ({route.request_ref}).")
    validate(body, {"$ref": route.request_ref}, api=route.api)


def check_response(route: Route, body: Any) -> None:
    """The fake's own answer must fit the method's response schema (a bug here is a 500)."""
    if route.response_ref is not None:
        validate(body, {"$ref": route.response_ref}, "response", route.api)
