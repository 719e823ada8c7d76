"""The JSON Schema of a task on the wire, and the check the server makes with it.

Clients send a task in its canonical form (:meth:`Task.to_yaml_config`: ``infra`` rather
than ``cloud``/``region``, ``accelerators`` as ``'H100:8'``, env values as strings).
This schema describes exactly that form and is published in the OpenAPI document; the
server checks every task against it at submission (:func:`check_wire_task`), so a task
the schema refuses is a 400, and a task it allows also passes the task model's own
validation. Patterns are Python regular expressions (``\\Z`` ends a string). Constraints JSON
Schema cannot state are named formats the server checks:
``port-range`` (``'LOW-HIGH'`` with 1 <= LOW <= HIGH <= 65535) and ``mount-path`` (a
non-empty path that does not end with ``/``).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from skyhop_core.exceptions import TaskValidationError
from skyhop_core.models import resources_fields as rf
from skyhop_core.models.storage import STORE_TYPES, StorageMode

#: Characters Python's str.isspace() calls whitespace (what the task model strips);
#: spelled out because regex engines disagree about ``\s``.
_SPACE = "\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_NONEMPTY = {"type": "string", "pattern": f"[^{_SPACE}]"}
_AMOUNT = r"([1-9][0-9]{0,5}(\.[0-9]{1,3})?|0\.[0-9]{0,2}[1-9])"
_POSITIVE = {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000}
_MINUTES = {"type": "integer", "minimum": 0, "maximum": 999_999_999}
_EXIT_CODE = {"type": "integer", "minimum": 0, "maximum": 255}
_SCALAR = {"type": ["string", "number", "boolean", "null"]}

RESOURCES: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "infra": {
            "type": "string",
            "pattern": r"^(\*|[a-z][a-z0-9_-]{0,30}(/[A-Za-z0-9_.:*-]{1,64}){0,2}"
                       r"|\*(/[A-Za-z0-9_.:*-]{1,64}){1,2})\Z",
        },
        "cpus": {"anyOf": [_POSITIVE, {"type": "string", "pattern": f"^{_AMOUNT}\\+?\\Z"}]},
        "memory": {
            "anyOf": [
                _POSITIVE,
                {"type": "string", "pattern": f"^{_AMOUNT}([KkMmGgTtPp][Bb]?)?\\+?\\Z"},
            ]
        },
        "accelerators": {
            "type": "string",
            # A whole count or a share of one device (T4:0.5).
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:([1-9][0-9]{0,5}(\.[0-9]{1,3})?"
                       r"|0\.[0-9]{0,2}[1-9]))?\Z",
        },
        "accelerator_args": {
            "type": "object",
            "propertyNames": _NONEMPTY,
            "additionalProperties": _SCALAR,
        },
        "instance_type": {"type": "string", "pattern": f"^[^{_SPACE}]{{1,128}}\\Z"},
        "use_spot": {"type": "boolean"},
        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
        "disk_size": {"type": "integer", "minimum": 1, "maximum": 2**31},
        "disk_tier": {"enum": list(rf.DISK_TIERS)},
        "network_tier": {"enum": list(rf.NETWORK_TIERS)},
        "ports": {
            "type": "array",
            "maxItems": 100,
            "items": {
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": 65535},
                    {"type": "string", "format": "port-range"},
                ]
            },
        },
        "labels": {
            "type": "object",
            "propertyNames": _NONEMPTY,
            "additionalProperties": {"type": "string"},
        },
        "image_id": {
            "anyOf": [
                _NONEMPTY,
                {"type": "object", "propertyNames": _NONEMPTY, "additionalProperties": _NONEMPTY},
            ]
        },
        "job_recovery": {
            "anyOf": [
                {"enum": list(rf.RECOVERY_STRATEGIES)},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "strategy": {"enum": list(rf.RECOVERY_STRATEGIES)},
                        "max_restarts_on_errors": {"type": "integer", "minimum": 0,
                                                   "maximum": 2**31},  # fmt: skip
                        "recover_on_exit_codes": {
                            "anyOf": [
                                _EXIT_CODE,
                                {"type": "array", "minItems": 1, "maxItems": 256,
                                 "items": _EXIT_CODE},  # fmt: skip
                            ]
                        },
                    },
                },
            ]
        },
        "autostop": {
            "anyOf": [
                {"type": "boolean"},
                _MINUTES,
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "idle_minutes": _MINUTES,
                        "down": {"type": "boolean"},
                        "wait_for": {"enum": list(rf.AUTOSTOP_WAIT_FOR)},
                        "hook": _NONEMPTY,
                        "hook_timeout": {"type": "integer", "minimum": 1, "maximum": 2**31},
                    },
                },
            ]
        },
    },
}

_OPTIONS = {"type": "array", "minItems": 1, "maxItems": 100, "items": RESOURCES}
_ENV_MAP = {
    "type": "object",
    "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,255}\Z"},
    "additionalProperties": {"type": "string"},
}
_JSON_SECTION = {"type": "object", "propertyNames": {"type": "string"}}
_MOUNT_PATH = {"type": "string", "format": "mount-path"}
#: A bucket URI as a file-mount or storage source (s3://bucket/path, gs://..., ...).
BUCKET_URI: dict[str, Any] = {
    "type": "string",
    "pattern": f"^(s3|gs|https|r2|cos|oci|nebius|cw|local)://[^{_SPACE}]+\\Z",
}
_GIT_WORKDIR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {"url": _NONEMPTY, "ref": _NONEMPTY},
}
_STORE = {"enum": list(STORE_TYPES)}
_SIZE_HINT = {
    "type": "object", "minProperties": 1, "maxProperties": 1, "propertyNames": _NONEMPTY,
    "additionalProperties": {"type": "number", "minimum": 0, "exclusiveMaximum": 1e15},
}


def _storage(source: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """A storage entry of ``file_mounts`` (Storage.to_yaml_config): ``source`` is one
    ``source`` (a path or bucket URI; on launch, an upload or bucket URI) or a list of
    ``item`` (local paths; uploads)."""
    return {
        "type": "object",
        "additionalProperties": False,
        # A bucket is found or created by its name or its source; a volume needs neither.
        "anyOf": [{"required": ["name"]}, {"required": ["source"]},
                  {"required": ["store"], "properties": {"store": {"const": "volume"}}}],
        "properties": {
            "name": {"type": "string", "pattern": f"^[^/{_SPACE}][^/]*\\Z"},
            "source": {"anyOf": [source, {"type": "array", "minItems": 1, "items": item}]},
            "store": {"anyOf": [_STORE, {"type": "array", "minItems": 2, "items": _STORE}]},
            "persistent": {"type": "boolean"},
            "mode": {"enum": [m.value for m in StorageMode]},
            "config": _JSON_SECTION,
        },
    }

TASK: dict[str, Any] = {
    "type": "object",
    "description": "A task in its canonical task-YAML form (Task.to_yaml_config).",
    "additionalProperties": False,
    "not": {"required": ["service", "pool"]},  # a service or a pool worker, not both
    "properties": {
        "name": {"type": "string", "maxLength": 256},
        "workdir": {"anyOf": [_NONEMPTY, _GIT_WORKDIR]},
        "num_nodes": {"type": "integer", "minimum": 1, "maximum": 2**53},
        "resources": {
            "anyOf": [
                RESOURCES,
                {"type": "object", "additionalProperties": False, "required": ["any_of"],
                 "properties": {"any_of": _OPTIONS}},  # fmt: skip
                {"type": "object", "additionalProperties": False, "required": ["ordered"],
                 "properties": {"ordered": _OPTIONS}},  # fmt: skip
            ]
        },
        "envs": _ENV_MAP,
        "secrets": _ENV_MAP,
        "file_mounts": {
            "type": "object",
            "propertyNames": _MOUNT_PATH,
            "additionalProperties": {
                "anyOf": [_MOUNT_PATH, _storage(_NONEMPTY, {**_NONEMPTY, "not": BUCKET_URI})]
            },
        },
        "volumes": {
            "type": "object",
            "propertyNames": _MOUNT_PATH,
            "additionalProperties": {"anyOf": [_NONEMPTY, {**_JSON_SECTION, "minProperties": 1}]},
        },
        "setup": {"type": "string"},
        "run": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "maxItems": 10_000, "items": {"type": ["string", "null"]}},
            ]
        },
        "service": _JSON_SECTION,
        "pool": _JSON_SECTION,
        "config": _JSON_SECTION,
        "inputs": _SIZE_HINT,
        "outputs": _SIZE_HINT,
        "event_callback": {"type": "string"},
    },
}

#: A workdir or file-mount source in a launch or exec: an upload the client made first
#: (``skyhop-upload://<upload id>``; the server never reads a client path).
UPLOAD_REF: dict[str, Any] = {
    "type": "string",
    "pattern": r"^skyhop-upload://[0-9a-f]{32}\Z",
    "description": "An upload made with POST /api/uploads (see docs/http-api.md).",
}

_UPLOAD_OR_URI = {"anyOf": [UPLOAD_REF, BUCKET_URI]}

#: TASK as launch and exec take it: client files are named by upload (a bucket URI or a
#: git repository is passed as it is).
TASK_WITH_UPLOADS: dict[str, Any] = {
    **TASK,
    "properties": {
        **TASK["properties"],
        "workdir": {"anyOf": [UPLOAD_REF, _GIT_WORKDIR]},
        "file_mounts": {
            **TASK["properties"]["file_mounts"],
            "additionalProperties": {
                "anyOf": [_UPLOAD_OR_URI, _storage(_UPLOAD_OR_URI, UPLOAD_REF)]
            },
        },
    },
}

_PORT_RANGE = re.compile(r"^(\d{1,5})-(\d{1,5})\Z")


def is_port_range(value: object) -> bool:
    match = _PORT_RANGE.match(value) if isinstance(value, str) else None
    return bool(match) and 1 <= int(match.group(1)) <= int(match.group(2)) <= 65535  # type: ignore[union-attr]


def is_mount_path(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip()) and not value.endswith("/")


def warm_up() -> None:
    """Import jsonschema and build the validator (slow once; the server does it at start,
    in a thread, so the first submission does not stall the event loop)."""
    _validator(False)
    _validator(True)


@functools.cache
def _validator(uploads: bool) -> Any:
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    checker.checks("port-range")(is_port_range)
    checker.checks("mount-path")(is_mount_path)
    schema = TASK_WITH_UPLOADS if uploads else TASK
    return jsonschema.Draft202012Validator(schema, format_checker=checker)


def check_wire_task(task: Any, source: str = "<request>", *, uploads: bool = False) -> None:
    """Raise TaskValidationError naming the field when ``task`` does not match TASK (or,
    with ``uploads``, TASK_WITH_UPLOADS)."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(uploads).iter_errors(task))
    if error is None:
        return
    field = "task" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    message = error.message if len(error.message) < 300 else error.message[:297] + "..."
    raise TaskValidationError(
        f"{source}: invalid {field}: {message}. Send the task in its canonical form "
        "(the SDK's Task.to_yaml_config(); see GET /api/openapi.json).",
        source=source,
        field=field,
        value=repr(error.instance)[:200],
    )
