"""Validation plumbing shared by the Task and Resources models.

Validators raise :class:`FieldError`, which knows the bad field's path *relative* to
whatever is being validated (``cpus``, ``labels.team``, ``ports[2]``). The boundary that
knows the file and the enclosing path (``resources.any_of[1]``) turns it into the one
error users see, :class:`~skyhop_core.exceptions.TaskValidationError`, whose message
names the source, the dotted field path, the bad value, what was expected and, for a
typo, the closest valid name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from skyhop_core.exceptions import TaskValidationError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_VALUE_REPR = 80
_NAME_EXPECTED = "an environment variable name"


class FieldError(Exception):
    """A field failed validation; ``field`` is relative to the thing being validated."""

    def __init__(
        self,
        field: str,
        value: Any,
        expected: str,
        *,
        suggestion: str | None = None,
        unknown: bool = False,
    ) -> None:
        super().__init__(field, expected)
        self.field = field
        self.value = value
        self.expected = expected
        self.suggestion = suggestion
        self.unknown = unknown

    def within(self, prefix: str) -> FieldError:
        """The same error with ``prefix`` prepended to its path."""
        self.field = join_path(prefix, self.field) if prefix else self.field
        return self

    def to_task_error(self, source: str) -> TaskValidationError:
        """The user-facing error for this field of ``source``."""
        return task_error(
            source,
            self.field,
            self.value,
            self.expected,
            suggestion=self.suggestion,
            unknown=self.unknown,
        )


def short_repr(value: Any) -> str:
    """``repr(value)``, cut to a readable length."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    if len(text) > _MAX_VALUE_REPR:
        text = text[: _MAX_VALUE_REPR - 3] + "..."
    return text


def task_error(
    source: str,
    field: str,
    value: Any,
    expected: str,
    *,
    suggestion: str | None = None,
    unknown: bool = False,
) -> TaskValidationError:
    """Build the TaskValidationError for ``field`` (dotted path) of ``source``."""
    shown = short_repr(value)
    where = f"'{field}'" if field else "the top level"
    if unknown:
        message = f"{source}: unknown field {where} (value {shown})"
    else:
        message = f"{source}: invalid value for {where}: {shown}"
    message += f"; expected {expected}."
    if suggestion:
        message += f" Did you mean '{suggestion}'?"
    return TaskValidationError(
        message, source=source, field=field, value=shown, suggestion=suggestion
    )


def join_path(prefix: str, key: Any) -> str:
    """``prefix.key`` for identifier-like keys, ``prefix[<repr>]`` otherwise.

    A ``key`` that is already a path (``cpus``, ``labels.x``, ``[3]``) is appended as is.
    """
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{prefix}[{key}]"
    text = str(key)
    if text.startswith("["):
        return f"{prefix}{text}"
    if not prefix:
        return text if _is_path(text) else f"[{short_repr(key)}]"
    return f"{prefix}.{text}" if _is_path(text) else f"{prefix}[{short_repr(key)}]"


def _is_path(text: str) -> bool:
    head = re.split(r"[.\[]", text, maxsplit=1)[0]
    return bool(_IDENTIFIER.match(head))


def closest(name: Any, choices: Iterable[str]) -> str | None:
    """The valid name closest to a misspelt ``name``, if any is close enough."""
    matches = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def check_mapping(value: Any, field: str, what: str) -> Mapping[Any, Any]:
    """``value`` as a mapping, or a FieldError saying a mapping of ``what`` is needed."""
    if not isinstance(value, Mapping):
        raise FieldError(field, value, f"a mapping of {what}")
    return value


def check_keys(mapping: Mapping[Any, Any], allowed: Iterable[str], prefix: str = "") -> None:
    """Reject the first key not in ``allowed``, suggesting the closest valid one."""
    allowed = list(allowed)
    for key in mapping:
        if key not in allowed:
            hint = closest(key, allowed)
            expected = "one of " + ", ".join(repr(a) for a in allowed)
            raise FieldError(
                join_path(prefix, key), mapping[key], expected, suggestion=hint, unknown=True
            )


def check_str(value: Any, field: str, what: str = "a string") -> str:
    """``value`` if it is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError(field, value, what)
    return value


def scalar_to_str(value: Any, field: str, what: str) -> str:
    """A string, number or boolean as the string SkyPilot would make of it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise FieldError(field, value, what)


def env_mapping(
    value: Any, field: str, *, allow_missing: bool, flag: str, redact: bool = False
) -> dict[str, str | None]:
    """Validate an ``envs``/``secrets`` mapping: names are env names, values strings.

    Numbers and booleans become strings. ``None`` values (to be supplied with ``flag``)
    are kept when ``allow_missing``; otherwise they are an error. With ``redact``, a bad
    value is not shown in the error (secrets).
    """
    try:
        return _env_mapping(value, field, allow_missing=allow_missing, flag=flag)
    except FieldError as err:
        if redact and err.value is not None and not err.expected.startswith(_NAME_EXPECTED):
            err.value = "<redacted>"
        raise


def _env_mapping(
    value: Any, field: str, *, allow_missing: bool, flag: str
) -> dict[str, str | None]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        items: Iterable[Any] = list(value.items())
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise FieldError(field, value, "a mapping of NAME: value")
    result: dict[str, str | None] = {}
    for index, item in enumerate(items):
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise FieldError(join_path(field, index), item, "a (NAME, value) pair")
        name, raw = item
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise FieldError(
                join_path(field, name if isinstance(name, str) else index),
                name,
                _NAME_EXPECTED + " (letters, digits and '_', not starting with a digit)",
            )
        path = join_path(field, name)
        if raw is None:
            if not allow_missing:
                raise FieldError(
                    path, raw, f"a value; pass one with `{flag} {name}=VALUE`"
                )
            result[name] = None
        else:
            result[name] = scalar_to_str(raw, path, "a string, number or boolean")
    return result
