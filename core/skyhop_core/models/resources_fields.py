"""Normalisers for each field of :class:`~skyhop_core.models.resources.Resources`.

Every function takes what a user may write (in Python or in a task YAML, following
SkyPilot's schema) and returns the one canonical form the Resources stores, or raises
:class:`~skyhop_core.models.validate.FieldError`. Canonical forms re-normalise to
themselves, so ``Resources.copy`` and YAML round trips are stable:

- ``infra``: ``backend[/region[/zone]]`` with ``*`` for a wildcard region, aliases
  resolved (``k8s`` -> ``kubernetes``), no trailing wildcards; ``None`` = anywhere.
- ``cpus``/``memory``: a string, ``"4"`` (exactly) or ``"4+"`` (at least); memory in GB.
- ``accelerators``: ``{name: count}`` with one entry; the count is an int, or a float
  for a fraction (``0.5``: a share of one device, scheduled as such by the agent).
- ``infra``: ``*/region[/zone]`` is a region (or zone) on any backend.
- ``ports``: a tuple of strings, each ``"8080"`` or ``"10000-10010"``.
- ``autostop``: ``False`` (disabled) or a dict with ``idle_minutes`` (and ``down`` only
  when true, plus ``wait_for``/``hook``/``hook_timeout`` when given).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from skyhop_core.models.validate import (
    FieldError,
    check_keys,
    check_mapping,
    check_str,
    join_path,
    scalar_to_str,
)

#: Backend names accepted in ``infra`` besides the canonical plugin names.
BACKEND_ALIASES = {"k8s": "kubernetes"}
#: Backends whose second ``infra`` part is one name that may contain ``/``.
SINGLE_PLACE_BACKENDS = frozenset({"kubernetes", "ssh"})
_BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_ACCELERATOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SIZE_UNITS = {"": 1.0, "k": 2**-20, "kb": 2**-20, "m": 2**-10, "mb": 2**-10, "g": 1.0,
               "gb": 1.0, "t": 2**10, "tb": 2**10, "p": 2**20, "pb": 2**20}
_TIME_UNITS = {"": 1, "m": 1, "h": 60, "d": 60 * 24, "w": 60 * 24 * 7}
DISK_TIERS = ("low", "medium", "high", "ultra", "best")
NETWORK_TIERS = ("standard", "best")
RECOVERY_STRATEGIES = ("FAILOVER", "EAGER_NEXT_REGION", "NONE")
AUTOSTOP_WAIT_FOR = ("jobs_and_ssh", "jobs", "none")
DEFAULT_AUTOSTOP_MINUTES = 5


def fmt_number(value: float) -> str:
    """A number as the shortest string that parses back to it."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def split_infra(infra: str | None) -> tuple[str | None, str | None, str | None]:
    """``(backend, region, zone)`` of a canonical infra string (``*`` -> ``None``)."""
    if infra is None:
        return None, None, None
    backend, _, rest = infra.partition("/")
    if backend == "*":
        parts = rest.split("/")
        region = parts[0] if parts[0] != "*" else None
        zone = parts[1] if len(parts) > 1 and parts[1] != "*" else None
        return None, region, zone
    if backend in SINGLE_PLACE_BACKENDS:
        return backend, rest or None, None
    parts = rest.split("/") if rest else []
    region = parts[0] if parts and parts[0] != "*" else None
    zone = parts[1] if len(parts) > 1 and parts[1] != "*" else None
    return backend, region, zone


def join_infra(backend: str | None, region: str | None, zone: str | None) -> str | None:
    """The canonical infra string for a place (``None`` for anywhere; ``*/region`` for a
    region on any backend)."""
    if backend is None or (backend == "*" and not region and not zone):
        return None
    parts = [backend, region or "*", zone or "*"]
    while parts[-1] == "*":
        parts.pop()
    return "/".join(parts)


def normalise_infra(value: Any, field: str = "infra") -> str | None:
    """``'aws/us-east-1'``, ``'k8s/ctx'``, ``'ssh/pool'``, ``'*'`` or None."""
    if value is None:
        return None
    expected = ("'<backend>[/<region>[/<zone>]]' such as 'local', 'aws/us-east-1', "
                "'k8s/<context>', 'ssh/<pool>', or '*' for anywhere")
    if not isinstance(value, str) or not value.strip():
        raise FieldError(field, value, expected)
    text = value.strip()
    if text == "*":
        return None
    backend, _, rest = text.partition("/")
    backend = BACKEND_ALIASES.get(backend.lower(), backend.lower())
    if backend == "*":  # '*/us-east-1': that region on any backend
        parts = rest.split("/")
        if len(parts) > 2 or any(not p or p != p.strip() for p in parts):
            raise FieldError(field, value, expected)
        return join_infra("*", *(parts + ["*"])[:2])
    if not _BACKEND_NAME.match(backend):
        raise FieldError(field, value, expected)
    if backend in SINGLE_PLACE_BACKENDS:
        if rest != rest.strip() or rest.startswith("/") or rest.endswith("/"):
            raise FieldError(field, value, expected)
        return join_infra(backend, None if rest in ("", "*") else rest, None)
    parts = rest.split("/") if rest else []
    if len(parts) > 2 or any(not p or p != p.strip() for p in parts):
        raise FieldError(field, value, expected)
    region = parts[0] if parts and parts[0] != "*" else None
    zone = parts[1] if len(parts) > 1 and parts[1] != "*" else None
    return join_infra(backend, region, zone)


def location_to_infra(cloud: Any, region: Any, zone: Any, infra: Any) -> str | None:
    """Combine the legacy ``cloud``/``region``/``zone`` with ``infra`` (only one style).

    ``cloud`` may be a cloud object (``sky.AWS()``): its name is used."""
    from skyhop_core.models.clouds import Cloud

    if isinstance(cloud, Cloud):
        cloud = cloud.NAME
    legacy = {"cloud": cloud, "region": region, "zone": zone}
    given = {k: v for k, v in legacy.items() if v is not None}
    if infra is not None and given:
        key = next(iter(given))
        raise FieldError(key, given[key], f"no '{key}' together with 'infra' "
                         f"(write it into infra, e.g. 'aws/us-east-1/us-east-1a')")
    if not given:
        return normalise_infra(infra)
    if cloud is None:
        key = "region" if region is not None else "zone"
        raise FieldError(key, given[key], f"a '{key}' only together with a cloud; "
                         "use infra: '<backend>/<region>[/<zone>]'")
    for key, part in given.items():
        if not isinstance(part, str) or not part.strip() or "/" in part.strip():
            raise FieldError(key, part, f"a {key} name without '/'")
    backend = normalise_infra(cloud.strip(), "cloud")
    if backend is None:
        return None
    if backend in SINGLE_PLACE_BACKENDS and zone is not None:
        raise FieldError("zone", zone, f"no zone for the {backend} backend")
    return join_infra(backend, region.strip() if region else None, zone.strip() if zone else None)


def _parse_amount(value: Any, field: str, what: str, units: Mapping[str, float]) -> tuple[float, bool]:
    """``(amount, at_least)`` from ``4``, ``'4'``, ``'4+'``, ``'64GB'``, ``'32GB+'``."""
    expected = f"a positive {what} such as 4, '4' (exactly) or '4+' (at least)"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FieldError(field, value, expected)
    at_least = False
    unit = ""
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text.endswith("+"):
            at_least, text = True, text[:-1]
        match = re.fullmatch(r"(.*?)([A-Za-z]*)", text)
        number, unit = (match.group(1), match.group(2).lower()) if match else (text, "")
        if unit not in units or not re.fullmatch(r"[0-9.]+(e[+-]?[0-9]+)?", number, re.I):
            raise FieldError(field, value, expected)
        try:
            amount = float(number)
        except ValueError:
            raise FieldError(field, value, expected) from None
    else:
        try:
            amount = float(value)
        except OverflowError:
            raise FieldError(field, value, expected) from None
    amount *= units.get(unit, 1.0)
    if not math.isfinite(amount) or amount <= 0:
        raise FieldError(field, value, expected)
    return amount, at_least


def normalise_cpus(value: Any, field: str = "cpus") -> str | None:
    if value is None:
        return None
    amount, at_least = _parse_amount(value, field, "number of vCPUs", {"": 1.0})
    return fmt_number(amount) + ("+" if at_least else "")


def normalise_memory(value: Any, field: str = "memory") -> str | None:
    if value is None:
        return None
    amount, at_least = _parse_amount(value, field, "memory size in GB (units KB/MB/GB/TB)",
                                     _SIZE_UNITS)
    return fmt_number(amount) + ("+" if at_least else "")


def parse_requirement(canonical: str | None) -> tuple[float | None, bool]:
    """``(amount, at_least)`` of a canonical cpus/memory string."""
    if canonical is None:
        return None, False
    at_least = canonical.endswith("+")
    return float(canonical.rstrip("+")), at_least


def _count(value: Any, field: str) -> int | float:
    """A count of accelerators: a whole number, or a fraction (``0.5``: a share of one)."""
    expected = "a positive number of accelerators (a whole number, or a share such as 0.5)"
    if isinstance(value, bool):
        raise FieldError(field, value, expected)
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,6})?|\.[0-9]{1,6}", text):
            raise FieldError(field, value, expected)
        value = float(text)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, float):
        # Shares are kept to a thousandth (what the wire's canonical 'T4:0.5' form spells).
        if not math.isfinite(value) or round(value, 3) <= 0 or value > 1e6:
            raise FieldError(field, value, expected)
        value = round(value, 3)
        return int(value) if value.is_integer() else value
    if not isinstance(value, int) or value <= 0 or value > 10**6:
        raise FieldError(field, value, expected)
    return value


def whole_count(count: float) -> int:
    """The number of devices a (possibly fractional) count occupies: ``0.5`` -> 1."""
    return max(1, math.ceil(count - 1e-9))


def literal_accelerators(value: Any) -> Any:
    """SkyPilot's quoted forms ``"{'L4:1', 'H100:1'}"`` / ``"['L4:1', 'H100:1']"`` as the
    set/list they spell; anything else unchanged."""
    if not isinstance(value, str) or value.strip()[:1] not in ("{", "["):
        return value
    import ast

    try:
        parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value
    return parsed if isinstance(parsed, set | list | dict) else value


def accelerator_spec(value: Any, field: str) -> tuple[str, int | float]:
    """One accelerator spec (``'H100'``, ``'H100:8'``, ``{'H100': 8}``) as (name, count)."""
    expected = "an accelerator such as 'H100', 'H100:8' or {'H100': 8}"
    if isinstance(value, Mapping) and len(value) == 1:
        ((name, count),) = value.items()
        if count is None:  # YAML `{A100:1}` reads as {'A100:1': None}
            return accelerator_spec(name, field)
        if not isinstance(name, str) or not _ACCELERATOR_NAME.match(name):
            raise FieldError(field, value, expected)
        return name, _count(count, join_path(field, name))
    if not isinstance(value, str):
        raise FieldError(field, value, expected)
    name, sep, count_text = value.strip().partition(":")
    if not _ACCELERATOR_NAME.match(name) or (sep and not count_text.strip()):
        raise FieldError(field, value, expected)
    if not sep:
        return name, 1
    try:
        return name, _count(count_text, field)
    except FieldError as err:
        err.value = value  # show the whole spec, not just its count
        raise


def normalise_accelerators(
    value: Any, field: str = "accelerators"
) -> dict[str, int | float] | None:
    """One accelerator type and count per Resources; several types need several Resources."""
    value = literal_accelerators(value)
    if value is None:
        return None
    if isinstance(value, list | tuple | set | frozenset) or (
        isinstance(value, Mapping) and len(value) > 1
    ):
        items = list(value)
        if not items:
            return None
        if len(items) == 1 and not isinstance(value, Mapping):
            return normalise_accelerators(items[0], field)
        raise FieldError(field, value, "one accelerator type; to choose between types give a "
                         "list or set of Resources (YAML: a list/set of accelerators, any_of)")
    if isinstance(value, Mapping) and not value:
        return None
    name, count = accelerator_spec(value, field)
    return {name: count}


def normalise_ports(value: Any, field: str = "ports") -> tuple[str, ...] | None:
    """A port, a range ``'10000-10010'``, or a list of them -> tuple of strings."""
    if value is None:
        return None
    items = list(value) if isinstance(value, list | tuple) else [value]
    result: list[str] = []
    for index, item in enumerate(items):
        path = join_path(field, index) if isinstance(value, list | tuple) else field
        canonical = _port_or_range(item, path)
        if canonical not in result:
            result.append(canonical)
    return tuple(result) or None


def _port_or_range(item: Any, field: str) -> str:
    expected = "a port 1-65535 or a range such as '10000-10010'"
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise FieldError(field, item, expected)
    text = str(item).strip()
    match = re.fullmatch(r"(\d{1,5})(?:\s*-\s*(\d{1,5}))?", text)
    if not match:
        raise FieldError(field, item, expected)
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) else low
    if not 1 <= low <= high <= 65535:
        raise FieldError(field, item, expected)
    return str(low) if low == high else f"{low}-{high}"


def expand_ports(ports: tuple[str, ...] | None) -> tuple[int, ...]:
    """Every port number named by canonical ``ports`` (ranges expanded)."""
    numbers: list[int] = []
    for entry in ports or ():
        low, _, high = entry.partition("-")
        numbers.extend(range(int(low), int(high or low) + 1))
    return tuple(dict.fromkeys(numbers))


def normalise_labels(value: Any, field: str = "labels") -> dict[str, str] | None:
    if value is None:
        return None
    mapping = check_mapping(value, field, "label names to strings")
    labels: dict[str, str] = {}
    for key, raw in mapping.items():
        if isinstance(key, bool) or not isinstance(key, str | int) or not str(key).strip():
            raise FieldError(join_path(field, str(key)), key, "a non-empty label name")
        path = join_path(field, str(key))
        raw = str(raw).lower() if isinstance(raw, bool) else raw
        labels[str(key)] = scalar_to_str(raw, path, "a string label value")
    return labels or None


def normalise_image_id(value: Any, field: str = "image_id") -> str | dict[str, str] | None:
    """An image ID, or ``{region: image ID}``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        images = {}
        for region, image in value.items():
            check_str(region, join_path(field, str(region)), "a region name")
            images[region] = check_str(image, join_path(field, region), "an image ID")
        return images or None
    return check_str(value, field, "an image ID or a mapping of region to image ID")


def normalise_disk_size(value: Any, field: str = "disk_size") -> int | None:
    """Disk size in GB: ``256``, ``'256'``, ``'256GB'``, ``'1TB'`` (floored to whole GB)."""
    if value is None:
        return None
    expected = "a positive disk size in GB such as 256 or '256GB'"
    if isinstance(value, str) and value.strip().endswith("+"):
        raise FieldError(field, value, expected)
    amount, _ = _parse_amount(value, field, "disk size in GB", _SIZE_UNITS)
    if amount < 1:
        raise FieldError(field, value, expected)
    return int(amount)


def normalise_choice(value: Any, field: str, choices: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    expected = "one of " + ", ".join(repr(c) for c in choices)
    if not isinstance(value, str) or value.strip().lower() not in [c.lower() for c in choices]:
        raise FieldError(field, value, expected)
    return next(c for c in choices if c.lower() == value.strip().lower())


def normalise_job_recovery(value: Any, field: str = "job_recovery") -> str | dict[str, Any] | None:
    """A strategy name, or ``{strategy, max_restarts_on_errors, recover_on_exit_codes}``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return normalise_choice(value, field, RECOVERY_STRATEGIES)
    check_keys(value, ("strategy", "max_restarts_on_errors", "recover_on_exit_codes"), field)
    result: dict[str, Any] = {}
    strategy = normalise_choice(value.get("strategy"), join_path(field, "strategy"),
                                RECOVERY_STRATEGIES)
    if strategy is not None:
        result["strategy"] = strategy
    restarts = value.get("max_restarts_on_errors")
    if restarts is not None:
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
            raise FieldError(join_path(field, "max_restarts_on_errors"), restarts,
                             "a whole number >= 0")
        result["max_restarts_on_errors"] = restarts
    codes = value.get("recover_on_exit_codes")
    if codes is not None:
        items = codes if isinstance(codes, list) else [codes]
        path = join_path(field, "recover_on_exit_codes")
        if not items or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= 255
                            for c in items):
            raise FieldError(path, codes, "an exit code 0-255 or a list of them")
        result["recover_on_exit_codes"] = list(items)
    return result or None


def normalise_priority(value: Any, field: str = "priority") -> int | None:
    """A managed job's priority: a whole number from -1000 to 1000."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -1000 <= value <= 1000:
        raise FieldError(field, value, "a whole number from -1000 to 1000 (higher starts first)")
    return value


def _minutes(value: Any, field: str) -> int:
    expected = "idle minutes such as 10, or a time such as '30m', '2h', '1d', '1w'"
    if isinstance(value, bool):
        raise FieldError(field, value, expected)
    if isinstance(value, int):
        if value < 0:
            raise FieldError(field, value, expected)
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,9})\s*([a-zA-Z]?)", value.strip())
        if match and match.group(2).lower() in _TIME_UNITS:
            return int(match.group(1)) * _TIME_UNITS[match.group(2).lower()]
    raise FieldError(field, value, expected)


def normalise_autostop(value: Any, field: str = "autostop") -> bool | dict[str, Any] | None:
    """``true``, ``false``, minutes, ``'2h'``, or ``{idle_minutes, down, wait_for, hook, ...}``."""
    if value is None:
        return None
    if value is False:
        return False
    if value is True:
        return {"idle_minutes": DEFAULT_AUTOSTOP_MINUTES}
    if not isinstance(value, Mapping):
        return {"idle_minutes": _minutes(value, field)}
    check_keys(value, ("idle_minutes", "down", "wait_for", "hook", "hook_timeout"), field)
    idle = value.get("idle_minutes")
    result: dict[str, Any] = {
        "idle_minutes": DEFAULT_AUTOSTOP_MINUTES
        if idle is None
        else _minutes(idle, join_path(field, "idle_minutes"))
    }
    down = value.get("down")
    if down is not None and not isinstance(down, bool):
        raise FieldError(join_path(field, "down"), down, "true or false")
    if down:
        result["down"] = True
    wait_for = normalise_choice(value.get("wait_for"), join_path(field, "wait_for"),
                                AUTOSTOP_WAIT_FOR)
    if wait_for is not None:
        result["wait_for"] = wait_for
    if value.get("hook") is not None:
        result["hook"] = check_str(value["hook"], join_path(field, "hook"), "a shell script")
    timeout = value.get("hook_timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
            raise FieldError(join_path(field, "hook_timeout"), timeout, "seconds > 0")
        result["hook_timeout"] = timeout
    return result


def normalise_accelerator_args(value: Any, field: str = "accelerator_args") -> dict[str, Any] | None:
    if value is None:
        return None
    mapping = check_mapping(value, field, "accelerator options")
    for key in mapping:
        check_str(key, join_path(field, str(key)), "an option name")
    return dict(mapping) or None


def normalise_instance_type(value: Any, field: str = "instance_type") -> str | None:
    if value is None:
        return None
    text = check_str(value, field, "an instance type name such as 'p3.8xlarge'")
    if any(c.isspace() for c in text.strip()):
        raise FieldError(field, value, "an instance type name without spaces")
    return text.strip()


def normalise_bool(value: Any, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise FieldError(field, value, "true or false")
    return value
