"""The ``filter`` parameter of Compute ``list`` methods, as the real API reads it.

Supported: comparisons ``field = "value"``, ``field != value``, ``field:value`` (has),
and the older regex form ``field eq 'regex'`` / ``field ne 'regex'``; ``AND``/``OR``
(and adjacent terms, which mean AND) with parentheses. A field is a dotted path into the
resource (``labels.skyhop-cluster``, ``status``, ``scheduling.provisioningModel``); a
top-level name the resource's schema does not have is a 400, as on the real API.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from fakegce.discovery import ApiError

Predicate = Callable[[Mapping[str, Any]], bool]
TOKEN = re.compile(r'\s*(\(|\)|!=|=|:|"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^\s()=!:]+)')


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise ApiError(400, f"Invalid value for field 'filter': '{text}'.")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _lookup(resource: Mapping[str, Any], field: str) -> Any:
    value: Any = resource
    for part in field.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1].replace('\\"', '"')
    return token


def parse(text: str, fields: set[str]) -> Predicate:
    """A predicate for ``text``; ``fields`` are the resource's top-level property names."""
    tokens = _tokens(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ApiError(400, f"Invalid value for field 'filter': '{text}' ends early.")
        pos += 1
        return tokens[pos - 1]

    def term() -> Predicate:
        if peek() == "(":
            take()
            inner = expr()
            if take() != ")":
                raise ApiError(400, f"Invalid value for field 'filter': '{text}'.")
            return inner
        field, op, raw = take(), take(), take()
        if field.split(".")[0] not in fields:
            raise ApiError(400, f"Invalid value for field 'filter': '{text}'. Invalid field "
                                f"name '{field}'.")  # fmt: skip
        want = _unquote(raw)
        if op in ("=", "!="):
            eq = op == "="
            return lambda r: (_text(_lookup(r, field)) == want) == eq
        if op == ":":
            return lambda r: _has(_lookup(r, field), want)
        if op in ("eq", "ne"):
            regex = re.compile(want)
            eq = op == "eq"
            return lambda r: bool(regex.fullmatch(_text(_lookup(r, field)))) == eq
        raise ApiError(400, f"Invalid value for field 'filter': unknown operator {op!r}.")

    def conj() -> Predicate:
        parts = [term()]
        while peek() not in (None, ")", "OR"):
            if peek() == "AND":
                take()
            parts.append(term())
        return lambda r: all(p(r) for p in parts)

    def expr() -> Predicate:
        parts = [conj()]
        while peek() == "OR":
            take()
            parts.append(conj())
        return lambda r: any(p(r) for p in parts)

    predicate = expr()
    if pos != len(tokens):
        raise ApiError(400, f"Invalid value for field 'filter': '{text}'.")
    return predicate


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _has(value: Any, want: str) -> bool:
    if want == "*":
        return value is not None
    if isinstance(value, list):
        return any(_text(v) == want for v in value)
    if isinstance(value, Mapping):
        return want in value
    return _text(value) == want
