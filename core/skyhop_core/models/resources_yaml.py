"""The ``resources:`` section of a task YAML: one or several candidate Resources.

Fields outside ``any_of``/``ordered`` are defaults each entry may override; a list of
accelerators is an ordered choice, a set (or a mapping of several) an unordered one.
Legacy ``cloud``/``region``/``zone`` mix with ``infra`` the way SkyPilot users expect:
an entry's ``infra`` replaces the default place, an entry's ``region`` refines the
default backend. Errors name the YAML path the bad value came from, e.g.
``resources.any_of[1].accelerators``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skyhop_core.models import resources_fields as rf
from skyhop_core.models.resources import _ALIASES, _LOCATION, YAML_KEYS, Resources
from skyhop_core.models.validate import FieldError, check_keys, join_path


def resources_options_from_yaml(
    value: Any, source: str, prefix: str = "resources"
) -> tuple[tuple[Resources, ...], bool]:
    """The candidate Resources a ``resources:`` section describes, and whether ordered.

    ``any_of`` entries (and a set/mapping of accelerators) are unordered candidates;
    ``ordered`` entries (and a list of accelerators) are tried in order. Fields outside
    the list are defaults that each entry may override.

    Raises:
        TaskValidationError: naming ``source`` and the dotted path of the bad field.
    """
    try:
        return _options(value, prefix)
    except FieldError as err:
        raise err.to_task_error(source) from None


def _options(value: Any, prefix: str) -> tuple[tuple[Resources, ...], bool]:
    if value is None:
        return (Resources(),), False
    if not isinstance(value, Mapping):
        raise FieldError(prefix, value, "a mapping of resource fields (infra, cpus, ...)")
    check_keys(value, (*YAML_KEYS, "any_of", "ordered"), prefix)
    base, origins = _prepare(value, prefix)
    lists = [k for k in ("any_of", "ordered") if value.get(k) is not None]
    if len(lists) == 2:
        raise FieldError(join_path(prefix, "ordered"), value["ordered"],
                         "either 'any_of' or 'ordered', not both")
    expanded = _expand_accelerators(base, origins, prefix)
    if expanded is not None and lists:
        raise FieldError(origins["accelerators"], base["accelerators"],
                         f"a single accelerator when '{lists[0]}' is given")
    if expanded is not None:
        candidates, ordered = expanded
    elif lists:
        ordered = lists[0] == "ordered"
        candidates = _entries(base, origins, value[lists[0]], join_path(prefix, lists[0]))
    else:
        candidates, ordered = [(base, origins)], False
    built = [_build(fields, paths, prefix) for fields, paths in candidates]
    unique = tuple(dict.fromkeys(built))
    return unique, ordered and len(unique) > 1


Origins = dict[str, str]


def _prepare(mapping: Mapping[Any, Any], prefix: str) -> tuple[dict[str, Any], Origins]:
    """Raw fields with aliases resolved, and the YAML path each came from."""
    fields: dict[str, Any] = {}
    origins: Origins = {}
    for key, raw in mapping.items():
        if key in ("any_of", "ordered"):
            continue
        name = _ALIASES.get(key, key)
        if name in fields:
            raise FieldError(join_path(prefix, key), raw, f"either '{key}' or '{name}', not both")
        fields[name] = raw
        origins[name] = join_path(prefix, key)
    return fields, origins


def _entries(
    base: dict[str, Any], origins: Origins, entries: Any, path: str
) -> list[tuple[dict[str, Any], Origins]]:
    if not isinstance(entries, list) or not entries:
        raise FieldError(path, entries, "a non-empty list of resource mappings")
    merged_all = []
    for index, entry in enumerate(entries):
        entry_path = join_path(path, index)
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise FieldError(entry_path, entry, "a mapping of resource fields")
        check_keys(entry, YAML_KEYS, entry_path)
        fields, paths = _prepare(entry, entry_path)
        merged, merged_paths = dict(base), dict(origins)
        if "infra" in fields:
            for key in _LOCATION:
                merged.pop(key, None)
        elif any(k in fields for k in _LOCATION) and merged.get("infra") is not None:
            if "cloud" not in fields:
                merged["cloud"] = rf.split_infra(_infra_or_fail(merged, origins))[0]
                merged_paths["cloud"] = origins["infra"]
            merged.pop("infra")
        merged.update(fields)
        merged_paths.update(paths)
        merged_all.append((merged, merged_paths))
    return merged_all


def _infra_or_fail(fields: Mapping[str, Any], origins: Origins) -> str | None:
    try:
        return rf.normalise_infra(fields.get("infra"))
    except FieldError as err:
        err.field = origins["infra"]
        raise


def _expand_accelerators(
    base: dict[str, Any], origins: Origins, prefix: str
) -> tuple[list[tuple[dict[str, Any], Origins]], bool] | None:
    """Candidates for a list (ordered) or set/mapping (any-of) of accelerators."""
    value = rf.literal_accelerators(base.get("accelerators"))
    path = origins.get("accelerators", join_path(prefix, "accelerators"))
    if isinstance(value, list | tuple):
        specs = [(item, join_path(path, i)) for i, item in enumerate(value)]
        ordered = True
    elif isinstance(value, set | frozenset):
        specs = [(item, path) for item in sorted(value, key=str)]
        ordered = False
    elif isinstance(value, Mapping) and len(value) > 1:
        specs = [({k: v} if v is not None else k, join_path(path, str(k))) for k, v in value.items()]
        ordered = False
    else:
        return None
    if not specs:
        raise FieldError(path, value, "at least one accelerator")
    candidates = []
    for spec, spec_path in specs:
        name, count = rf.accelerator_spec(spec, spec_path)
        fields = dict(base, accelerators={name: count})
        candidates.append((fields, dict(origins, accelerators=spec_path)))
    return candidates, ordered


def _build(fields: Mapping[str, Any], origins: Origins, prefix: str) -> Resources:
    try:
        return Resources._from_raw(fields)
    except FieldError as err:
        head, rest = _split_head(err.field)
        err.field = origins.get(head, join_path(prefix, head)) + rest
        raise


def _split_head(path: str) -> tuple[str, str]:
    for i, char in enumerate(path):
        if char in ".[":
            return path[:i], path[i:]
    return path, ""
