"""The one JSON converter between the server and its clients.

Encoding decisions (all in this module, nowhere else):

- attrs records become JSON objects with their field names; unknown keys are rejected
  on the way back in (``forbid_extra_keys``).
- Enums travel as their ``value`` strings.
- ``frozenset``/``tuple`` travel as JSON arrays; dicts with int keys (ports) as string keys.
- A ``Task`` travels as its task-YAML mapping (``Task.to_yaml_config``), never pickled.
- Errors travel as ``{"type": class name, "message": str, "args": {wire fields}}``;
  :func:`decode_error` rebuilds the same ``SkyhopError`` subclass, or, for a type the
  client does not know, a ``SkyhopError`` whose message names the original type. Builtin
  ``ValueError``/``RuntimeError``/``KeyError`` keep their type too.
- A request's result is encoded with the type its operation declares in
  :data:`RESULT_TYPES`, so the client gets records back, not bare dicts; ``launch`` and
  ``exec`` decode to a :class:`JobSubmission` (``job_id, handle = result``).
"""

from __future__ import annotations

import functools
from typing import Any

import cattrs

from skyhop_core import exceptions
from skyhop_core.models.records import (
    CheckResult,
    ClusterHandle,
    ClusterRecord,
    JobRecord,
    JobSubmission,
    RequestRecord,
)
from skyhop_core.models.status import JobStatus, ManagedJobStatus


@functools.cache
def converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_unstructure_hook(frozenset, lambda v: sorted(conv.unstructure(x) for x in v))
    return conv


def unstructure(value: Any) -> Any:
    return converter().unstructure(value)


def structure(data: Any, cls: Any) -> Any:
    return converter().structure(data, cls)


# --- Request results -------------------------------------------------------------------

#: Result type of each operation (``None`` = plain JSON, passed through).
RESULT_TYPES: dict[str, Any] = {
    "launch": dict[str, Any],
    "exec": dict[str, Any],
    "status": list[ClusterRecord],
    "queue": list[JobRecord],
    "job_status": dict[str, JobStatus | None],
    "check": list[CheckResult],
    "api_status": list[RequestRecord],
}


def encode_result(operation: str, value: Any) -> Any:
    if operation in ("launch", "exec") and isinstance(value, dict):
        return {k: unstructure(v) for k, v in value.items()}
    return unstructure(value)


def decode_result(operation: str, data: Any) -> Any:
    if data is None:
        return None
    if operation in ("launch", "exec"):
        handle = data.get("handle")
        return JobSubmission(
            job_id=data.get("job_id"),
            handle=structure(handle, ClusterHandle) if handle is not None else None,
        )
    if operation == "jobs_launch":  # SkyPilot's (job_id, controller_handle): no controller VM
        return JobSubmission(job_id=data.get("job_id"), handle=None)
    if operation == "jobs_queue":  # managed-job records: dicts, with status an enum
        return [{**r, "status": ManagedJobStatus(r["status"])} for r in data]
    cls = RESULT_TYPES.get(operation)
    if cls is None:
        return data
    return structure(data, cls)


# --- Errors ----------------------------------------------------------------------------

_BUILTIN_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "RuntimeError": RuntimeError,
    "KeyError": KeyError,
    "TimeoutError": TimeoutError,
}


def encode_error(exc: BaseException) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if isinstance(exc, exceptions.SkyhopError):
        args = {k: unstructure(v) for k, v in exc.wire_args().items()}
        message = exc.message
    else:
        message = str(exc) or type(exc).__name__
    return {"type": type(exc).__name__, "message": message, "args": args}


def decode_error(data: dict[str, Any]) -> Exception:
    name = str(data.get("type", "SkyhopError"))
    message = str(data.get("message", ""))
    args = data.get("args") or {}
    known = exceptions.all_error_types()
    if name in known:
        cls = known[name]
        fields = {k: v for k, v in args.items() if k in cls.wire_fields}
        return cls(message, **fields)
    if name in _BUILTIN_ERRORS:
        return _BUILTIN_ERRORS[name](message)
    return exceptions.SkyhopError(f"{name}: {message}")
