"""The OpenAPI document of the API server, built from the operations' parameter classes.

Every ``POST /api/v1/<operation>`` gets a request body schema derived from its attrs
parameters class, bounds included (each field's ``metadata``: ``minimum``, ``maximum``,
``maxLength``, ``pattern``, ``maxItems``, ``items``), so the document cannot drift from
what the server accepts. Every status code the server can answer is listed;
schemathesis checks the document against the running server (tests/server).
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

import attrs

from skyhop_core import API_VERSION, __version__
from skyhop_core.ops.params import CancelRequestsParams
from skyhop_core.requests.engine import Operation

_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
#: What every route may answer besides its own codes.
_COMMON = {"400": _ERROR, "401": _ERROR, "403": _ERROR}
#: What every POST may answer: its body is over the size limit.
_POST = {**_COMMON, "413": _ERROR}


def type_schema(tp: Any) -> dict[str, Any]:
    """JSON schema of a parameter annotation (the subset the parameter classes use)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        schemas = [type_schema(a) for a in options]
        if type(None) in args:
            schemas.append({"type": "null"})
        return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    if origin is list:
        return {"type": "array", "items": type_schema(args[0]) if args else {}}
    if origin is dict or tp is dict:
        return {"type": "object", "additionalProperties": True}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if tp in simple:
        return {"type": simple[tp]}
    return {}


_BOUNDS = ("minimum", "maximum", "maxLength", "pattern", "maxItems")


def _with_bounds(schema: dict[str, Any], metadata: Any) -> dict[str, Any]:
    """``schema`` narrowed by a field's bounds (its items' too, for a list)."""
    bounds = {k: metadata[k] for k in _BOUNDS if k in metadata}
    if "anyOf" in schema:
        return {**schema, "anyOf": [_with_bounds(s, metadata) for s in schema["anyOf"]]}
    if schema.get("type") == "null":
        return schema
    if schema.get("type") == "array":
        items = schema.get("items", {})
        if "items" in metadata:
            items = {**items, **metadata["items"]}
        return {**schema, "items": items, **{k: v for k, v in bounds.items() if k == "maxItems"}}
    return {**schema, **{k: v for k, v in bounds.items() if k != "maxItems"}}


def params_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required = []
    for field in attrs.fields(cls):
        if "schema" in field.metadata:
            properties[field.name] = field.metadata["schema"]
        else:
            properties[field.name] = _with_bounds(type_schema(hints[field.name]), field.metadata)
        if field.default is attrs.NOTHING:
            required.append(field.name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    # Rules across fields (the class's __attrs_post_init__ enforces them).
    schema.update(getattr(cls, "schema_extra", {}))
    return schema


def _query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def build(operations: dict[str, Operation]) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/health": {"get": {"summary": "Server health and versions",
                                "responses": {"200": {"description": "Healthy"}}}},
        "/api/get": {"get": {
            "summary": "Wait for a request and return its result or error",
            "parameters": [_query("request_id", {"type": "string"}, True)],
            "responses": {"200": {"description": "The finished request"}, **_COMMON,
                          "404": _ERROR, "409": _ERROR}}},
        "/api/stream": {"get": {
            "summary": "Stream a request's log (without request_id: your most recent request)",
            "parameters": [_query("request_id", {"type": "string"}),
                           _query("follow", {"type": "boolean"}),
                           _query("offset", {"type": "integer", "minimum": 0, "maximum": 2**53}),
                           _query("tail", {"type": "integer", "minimum": 0, "maximum": 2**53})],
            "responses": {"200": {"description": "The log",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          **_COMMON, "404": _ERROR, "409": _ERROR}}},
        "/api/status": {"get": {
            "summary": "List requests",
            "parameters": [_query("all", {"type": "boolean"}),
                           _query("all_users", {"type": "boolean"}),
                           _query("limit", {"type": "integer", "minimum": 0,
                                             "maximum": 2**53}),
                           _query("request_ids", {"type": "array", "items": {"type": "string"}})],
            "responses": {"200": {"description": "Request records"}, **_COMMON,
                          "404": _ERROR, "409": _ERROR}}},
        "/api/cancel": {"post": {
            "summary": "Cancel requests",
            "requestBody": {"content": {"application/json": {
                "schema": params_schema(CancelRequestsParams)}}},
            "responses": {"200": {"description": "Cancelled and already-finished IDs"},
                          **_POST, "404": _ERROR, "409": _ERROR}}},
    }
    for name, op in sorted(operations.items()):
        paths[f"/api/v1/{name}"] = {"post": {
            "summary": (op.handler.__doc__ or name).strip().splitlines()[0],
            "operationId": name,
            "parameters": [_query("wait", {"type": "number", "minimum": 0, "maximum": 60})],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": params_schema(op.params)}}},
            "responses": {"200": {"description": "Finished within ?wait=: as GET /api/get"},
                          "202": {"description": "Accepted: the request ID"}, **_POST},
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "skyhop API server", "version": f"{__version__} (API {API_VERSION})"},
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object",
            "properties": {"error": {"type": "object", "properties": {
                "type": {"type": "string"}, "message": {"type": "string"},
                "args": {"type": "object"}}}}}}},
    }
