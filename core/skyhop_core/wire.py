"""The one JSON converter between the server and its clients.

Encoding decisions (all in this module, nowhere else):

- attrs records become JSON objects with their field names; unknown keys are rejected
  on the way back in (``forbid_extra_keys``).
- Structuring is strict, never coercing: a string is a JSON string, an integer a JSON
  integer (not a bool, not a float, not a numeric string), a float a JSON number, a bool
  ``true``/``false``, a list/tuple/set a JSON array (never a string, which would become
  a list of letters), a mapping a JSON object. The only conversion is the one this
  module makes itself: int dict keys travel as decimal strings. A mismatch raises
  :class:`WireTypeError`, and :func:`describe_error` names the field's path
  (``request_ids``, ``task.job_ids[2]``).
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

import enum
import functools
import re
from collections.abc import Callable
from typing import Any

import cattrs
import cattrs.v
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    is_any_set,
    is_mapping,
    is_sequence,
    list_structure_factory,
    mapping_structure_factory,
)

from skyhop_core import exceptions
from skyhop_core.models.records import (
    CheckResult,
    ClusterHandle,
    ClusterRecord,
    JobRecord,
    JobSubmission,
    RequestRecord,
)
from skyhop_core.models.status import ClusterStatus, JobStatus, ManagedJobStatus


class WireTypeError(TypeError):
    """A JSON value has the wrong type for its field (see the module docstring)."""


_JSON_KINDS = (
    (bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
    (list, "an array"), (tuple, "an array"), (dict, "an object"), (type(None), "null"),
)
_INT_KEY = re.compile(r"^-?[0-9]{1,20}$")


def _kind(value: Any) -> str:
    """How a value looks in JSON, for error messages: ``a string 'abc'``."""
    name = next((n for t, n in _JSON_KINDS if isinstance(value, t)), type(value).__name__)
    if isinstance(value, list | tuple | dict):
        return name
    text = repr(value)
    return f"{name} {text[:40] + '...' if len(text) > 43 else text}"


def _scalar_hook(accepted: tuple[type, ...], expected: str) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _cls: Any) -> Any:
        if isinstance(value, bool) and bool not in accepted:
            raise WireTypeError(f"expected {expected}, got {_kind(value)}")
        if not isinstance(value, accepted):
            raise WireTypeError(f"expected {expected}, got {_kind(value)}")
        return float(value) if float in accepted else value  # type: ignore[arg-type]

    return hook


def _sequence_factory(conv: cattrs.Converter) -> Callable[[Any], Any]:
    """Arrays only: a string or an object is not silently iterated into a list."""

    def factory(tp: Any) -> Any:
        origin = getattr(tp, "__origin__", tp)
        if origin is tuple:
            base = homogenous_tuple_structure_factory(tp, conv)
        else:
            args = getattr(tp, "__args__", None) or (Any,)
            base = list_structure_factory(list[args[0]], conv)  # type: ignore[valid-type]
        build: Callable[[Any], Any] = (
            frozenset if origin is frozenset else set if origin is set else lambda x: x
        )

        def hook(value: Any, _cls: Any) -> Any:
            if not isinstance(value, list | tuple | set | frozenset):
                raise WireTypeError(f"expected an array, got {_kind(value)}")
            return build(base(list(value), tp))

        return hook

    return factory


def _mapping_factory(conv: cattrs.Converter) -> Callable[[Any], Any]:
    def factory(tp: Any) -> Any:
        args = getattr(tp, "__args__", None) or (Any, Any)
        base = mapping_structure_factory(tp, conv, key_type=args[0], val_type=args[1])
        int_keys = args[0] is int

        def hook(value: Any, _cls: Any) -> Any:
            if not isinstance(value, dict):
                raise WireTypeError(f"expected an object, got {_kind(value)}")
            if int_keys:  # this module's own encoding of int keys (ports)
                value = {
                    int(k) if isinstance(k, str) and _INT_KEY.match(k) else k: v
                    for k, v in value.items()
                }
            return base(value, tp)

        return hook

    return factory


def _enum_hook(value: Any, cls: Any) -> Any:
    for member in cls:
        if type(value) is type(member.value) and value == member.value:
            return member
    choices = ", ".join(str(m.value) for m in cls)
    raise WireTypeError(f"expected one of {choices}, got {_kind(value)}")


@functools.cache
def converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_unstructure_hook(frozenset, lambda v: sorted(conv.unstructure(x) for x in v))
    conv.register_structure_hook(str, _scalar_hook((str,), "a string"))
    conv.register_structure_hook(int, _scalar_hook((int,), "an integer"))
    conv.register_structure_hook(float, _scalar_hook((int, float), "a number"))
    conv.register_structure_hook(bool, _scalar_hook((bool,), "a boolean (true or false)"))
    conv.register_structure_hook_factory(
        lambda t: (is_sequence(t) or is_any_set(t)) and t is not str, _sequence_factory(conv)
    )
    conv.register_structure_hook_factory(is_mapping, _mapping_factory(conv))
    conv.register_structure_hook_factory(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda _t: _enum_hook
    )
    return conv


def leaf_errors(exc: BaseException) -> list[BaseException]:
    """The individual errors inside a cattrs error group (or ``exc`` itself)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_errors(inner)]
    return [exc]


def describe_error(exc: BaseException) -> str:
    """One line naming every bad field of a structuring error: ``request_ids: expected
    an array, got a string 'abc'``. Validator messages (bounds, names) are kept as they
    are; they already name their field."""
    from cattrs import transform_error

    def fmt(error: BaseException, tp: Any) -> str:
        if isinstance(error, WireTypeError | ValueError | exceptions.SkyhopError):
            return str(error) or type(error).__name__
        return cattrs.v.format_exception(error, tp)

    try:
        lines = transform_error(exc, format_exception=fmt)  # type: ignore[arg-type]
    except Exception:
        return str(exc)
    out = []
    for line in lines:
        message, _, path = line.rpartition(" @ ")
        field = path.removeprefix("$").removeprefix(".")
        out.append(f"{field}: {message}" if field and message else message or line)
    return "; ".join(out)


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
    if operation == "serve_up":  # SkyPilot's (service_name, endpoint)
        return tuple(data)
    if operation == "serve_status":  # service records: dicts, with statuses as enums
        from skyhop_core.models.status import ReplicaStatus, ServiceStatus

        return [
            {**r, "status": ServiceStatus(r["status"]), "replica_info": [
                {**i, "status": ReplicaStatus(i["status"])} for i in r["replica_info"]
            ]}
            for r in data
        ]
    if operation == "jobs_queue":  # managed-job records: dicts, with status an enum
        return [{**r, "status": ManagedJobStatus(r["status"])} for r in data]
    if operation == "cost_report":  # a torn-down cluster's status is None (SkyPilot's)
        return [{**r, "status": None if r["status"] is None else ClusterStatus(r["status"])}
                for r in data]  # fmt: skip
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
