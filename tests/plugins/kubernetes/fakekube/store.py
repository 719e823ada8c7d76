"""The fake API server's object store: one resourceVersion counter, watches, selectors.

Objects are plain dicts exactly as the API returns them. Every write bumps the global
resourceVersion and appends an event to a bounded history, so a watch from a recent
version replays what it missed and one from a version older than the history gets
``410 Gone`` (the "too old resource version" a real client must handle by relisting).
"""

from __future__ import annotations

import builtins
import copy
import datetime
import re
import uuid
from collections.abc import Callable
from typing import Any

import trio

HISTORY = 1000


class ApiError(Exception):
    """An error answered as a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "details": self.details,
                "code": self.code}  # fmt: skip


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- label and field selectors ------------------------------------------------------

_SET = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


Labels = dict[str, str]


def _has(key: str, present: bool) -> Callable[[Labels], bool]:
    return lambda labels: (key in labels) == present


def _equals(key: str, value: str, equal: bool) -> Callable[[Labels], bool]:
    return lambda labels: (labels.get(key) == value) == equal


def _member(key: str, values: set[str], inside: bool) -> Callable[[Labels], bool]:
    return lambda labels: (labels.get(key) in values) == inside


def label_matcher(selector: str | None) -> Callable[[Labels], bool]:
    """A predicate for a label selector (``a=b,c!=d,e in (x,y),!f,g``); 400 when bad."""
    tests: list[Callable[[Labels], bool]] = []
    for part in _split(selector or ""):
        eq = _EQ.match(part)
        if eq:
            key, op, value = eq.groups()
            tests.append(_equals(key, value, op != "!="))
            continue
        st = _SET.match(part)
        if not st:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
        neg, key, op, values = st.groups()
        if op:
            vals = {v.strip() for v in values.split(",") if v.strip()}
            tests.append(_member(key, vals, op == "in"))
        else:
            tests.append(_has(key, not neg))
    return lambda labels: all(t(labels) for t in tests)


FIELDS = {
    "metadata.name": lambda o: o["metadata"].get("name"),
    "metadata.namespace": lambda o: o["metadata"].get("namespace"),
    "status.phase": lambda o: o.get("status", {}).get("phase"),
    "spec.nodeName": lambda o: o.get("spec", {}).get("nodeName", ""),
    "spec.unschedulable": lambda o: str(bool(o.get("spec", {}).get("unschedulable"))).lower(),
}


def _field(get: Callable[[dict[str, Any]], Any], value: str,
           equal: bool) -> Callable[[dict[str, Any]], bool]:  # fmt: skip
    return lambda obj: (get(obj) == value) == equal


def field_matcher(selector: str | None) -> Callable[[dict[str, Any]], bool]:
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for part in _split(selector or ""):
        eq = _EQ.match(part) or re.match(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not eq or eq.group(1) not in FIELDS:
            raise ApiError(400, "BadRequest", f'field label not supported: "{part.strip()}"')
        key, op, value = eq.groups()
        tests.append(_field(FIELDS[key], value, op != "!="))
    return lambda obj: all(t(obj) for t in tests)


# --- the store ------------------------------------------------------------------------


class Store:
    """Objects keyed by (kind, namespace, name); every change is an event."""

    def __init__(self) -> None:
        self.version = 1
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, kind, type, obj)
        self.changed = trio.Event()
        self.received: list[dict[str, Any]] = []  # every manifest created, as sent

    def _bump(self, kind: str, kind_event: str, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.history.append((self.version, kind, kind_event, copy.deepcopy(obj)))
        del self.history[:-HISTORY]
        self.changed.set()
        self.changed = trio.Event()

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get((kind, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{kind} "{name}" not found', name=name, kind=kind)
        return obj

    def list(self, kind: str, namespace: str | None = None, labels: str | None = None,
             fields: str | None = None) -> builtins.list[dict[str, Any]]:  # fmt: skip
        lm, fm = label_matcher(labels), field_matcher(fields)
        return [
            o for (k, ns, _), o in sorted(self.objects.items())
            if k == kind and (namespace is None or ns == namespace)
            and lm(o["metadata"].get("labels") or {}) and fm(o)
        ]  # fmt: skip

    def create(self, kind: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if (kind, namespace, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{kind} "{name}" already exists',
                           name=name, kind=kind)  # fmt: skip
        if namespace:
            meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        self.objects[(kind, namespace, name)] = obj
        self._bump(kind, "ADDED", obj)
        return obj

    def update(self, kind: str, obj: dict[str, Any]) -> None:
        """Record a change the server made itself (status, scheduling)."""
        self._bump(kind, "MODIFIED", obj)

    def delete(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.pop((kind, namespace, name), None)
        if obj is None:
            raise ApiError(404, "NotFound", f'{kind} "{name}" not found', name=name, kind=kind)
        self._bump(kind, "DELETED", obj)
        return obj

    def events_since(self, version: int) -> builtins.list[tuple[int, str, str, dict[str, Any]]]:
        """Events after ``version``; 410 when it is older than the kept history."""
        if self.history and version < self.history[0][0] - 1:
            raise ApiError(410, "Expired", f"too old resource version: {version} "
                           f"({self.history[0][0] - 1})")  # fmt: skip
        return [e for e in self.history if e[0] > version]
