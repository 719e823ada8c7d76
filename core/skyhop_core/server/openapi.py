"""The OpenAPI document of the API server, built from the operations' parameter classes.

Every ``POST /api/v1/<operation>`` gets a request body schema derived from its attrs
parameters class, so the document cannot drift from what the server accepts.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

import attrs

from skyhop_core import API_VERSION, __version__
from skyhop_core.requests.engine import Operation

_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def type_schema(tp: Any) -> dict[str, Any]:
    """JSON schema of a parameter annotation (the subset the parameter classes use)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        schema = type_schema(options[0]) if len(options) == 1 else {
            "anyOf": [type_schema(a) for a in options]
        }
        if type(None) in args:
            schema = {**schema, "nullable": True}
        return schema
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


def params_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required = []
    for field in attrs.fields(cls):
        properties[field.name] = type_schema(hints[field.name])
        if field.default is attrs.NOTHING:
            required.append(field.name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
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
            "responses": {"200": {"description": "The finished request"},
                          "404": _ERROR, "409": _ERROR}}},
        "/api/stream": {"get": {
            "summary": "Stream a request's log",
            "parameters": [_query("request_id", {"type": "string"}, True),
                           _query("follow", {"type": "boolean"}),
                           _query("offset", {"type": "integer", "minimum": 0}),
                           _query("tail", {"type": "integer", "minimum": 0})],
            "responses": {"200": {"description": "The log",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          "400": _ERROR, "404": _ERROR, "409": _ERROR}}},
        "/api/status": {"get": {
            "summary": "List requests",
            "parameters": [_query("all", {"type": "boolean"}),
                           _query("all_users", {"type": "boolean"}),
                           _query("limit", {"type": "integer", "minimum": 1}),
                           _query("request_ids", {"type": "array", "items": {"type": "string"}})],
            "responses": {"200": {"description": "Request records"}, "400": _ERROR,
                          "404": _ERROR, "409": _ERROR}}},
        "/api/cancel": {"post": {
            "summary": "Cancel requests",
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"request_ids": {"type": "array", "items": {"type": "string"}},
                               "all": {"type": "boolean"}, "all_users": {"type": "boolean"}},
                "additionalProperties": False}}}},
            "responses": {"200": {"description": "Cancelled and already-finished IDs"},
                          "400": _ERROR, "404": _ERROR, "409": _ERROR}}},
    }
    for name, op in sorted(operations.items()):
        paths[f"/api/v1/{name}"] = {"post": {
            "summary": (op.handler.__doc__ or name).strip().splitlines()[0],
            "operationId": name,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": params_schema(op.params)}}},
            "responses": {"202": {"description": "Accepted: the request ID"}, "400": _ERROR},
        }}
    return {
        "openapi": "3.0.3",
        "info": {"title": "skyhop API server", "version": f"{__version__} (API {API_VERSION})"},
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object",
            "properties": {"error": {"type": "object", "properties": {
                "type": {"type": "string"}, "message": {"type": "string"},
                "args": {"type": "object"}}}}}}},
    }
