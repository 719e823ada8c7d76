"""The task YAML: loading it and validating every field of SkyPilot's schema.

Top-level fields: ``name``, ``workdir``, ``num_nodes``, ``resources``, ``envs``,
``secrets``, ``file_mounts``, ``volumes``, ``setup``, ``run``, ``service``, ``pool``,
``config``, ``inputs``, ``outputs``, ``event_callback``. Everything SkyPilot's schema
accepts parses and is kept; what cannot run here is refused at launch
(:func:`skyhop_core.ops.common.check_runnable`), never at parse time.

Semantics that follow SkyPilot:

- An ``envs``/``secrets`` entry whose value is null must be supplied by the caller
  (``--env NAME=VALUE`` / ``--secret NAME=VALUE``); overrides may also add new names.
  Numbers and booleans become strings.
- ``$VAR``/``${VAR}`` naming an env (after overrides) is substituted into ``workdir``
  (a path, or a git ``{url, ref}``), into the keys and values of ``file_mounts``
  (a storage entry's ``name`` and ``source``, each path of a list ``source``), of
  ``volumes``, and into every string of ``service`` (a readiness probe's path, headers
  or ``post_data``, as SkyPilot does). Other references are
  left alone; ``setup`` and ``run`` are never substituted here (the shell expands them
  on the node). Secrets are never substituted anywhere.
- ``file_mounts`` maps a remote path to a local path or bucket URI (neither may end
  with ``/``), or to a storage entry ``{name, source, store, mode, persistent, config}``
  (:class:`~skyhop_core.models.storage.Storage`); those become the task's
  ``storage_mounts``.
- ``volumes`` maps a mount path to a volume name (or to an ephemeral volume's settings);
  ``inputs``/``outputs`` are ``{path: size in GB}`` hints (one entry each); ``pool`` is
  kept as given (and refused at launch); ``service`` and ``pool`` exclude each other.

Every problem becomes one :class:`~skyhop_core.exceptions.TaskValidationError` naming the
source, the dotted field, the value and what was expected; no other exception escapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from skyhop_core.exceptions import TaskValidationError
from skyhop_core.models.resources import Resources
from skyhop_core.models.resources_yaml import resources_options_from_yaml
from skyhop_core.models.storage import Storage
from skyhop_core.models.validate import (
    FieldError,
    check_keys,
    check_mapping,
    env_mapping,
    join_path,
    task_error,
)
from skyhop_core.models.yamlsafe import MAX_YAML_BYTES, YamlLimitError, load_all

TASK_KEYS = (
    "name", "workdir", "num_nodes", "resources", "envs", "secrets", "file_mounts",
    "volumes", "setup", "run", "service", "pool", "config", "inputs", "outputs",
    "event_callback",
)
#: The keys of a git ``workdir``.
GIT_WORKDIR_KEYS = ("url", "ref")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_MAX_PLAIN_DEPTH = 50

EnvInput = Mapping[str, Any] | Iterable[tuple[str, Any]] | None


def read_yaml_file(path: str) -> str:
    """The text of a task YAML file; an unreadable file is a TaskValidationError.

    Reads at most one byte past :data:`~skyhop_core.models.yamlsafe.MAX_YAML_BYTES`, so a
    huge file is refused by :func:`load_yaml` without being read whole."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(MAX_YAML_BYTES + 1)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise TaskValidationError(
            f"{path}: cannot read the task YAML: {reason}.", source=str(path)
        ) from None


def load_yaml(text: Any, source: str) -> dict[str, Any]:
    """Parse one YAML document into a task mapping (empty document -> ``{}``)."""
    if not isinstance(text, str):
        raise task_error(source, "", text, "YAML text")
    try:
        documents = [d for d in load_all(text) if d is not None]
    except YamlLimitError as err:
        raise TaskValidationError(f"{source}: {err}.", source=source) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = err.problem or err.context or "invalid YAML"
        raise TaskValidationError(
            f"{source}: YAML syntax error{where}: {problem}. Fix the YAML and try again.",
            source=source,
        ) from None
    except Exception as err:  # PyYAML raises ValueError etc. for some bad scalars
        raise TaskValidationError(
            f"{source}: the file is not valid YAML: {type(err).__name__}: {err}.",
            source=source,
        ) from None
    if len(documents) > 1:
        raise TaskValidationError(
            f"{source}: holds {len(documents)} YAML documents; a task is one document "
            "(pipelines of several tasks are not supported).",
            source=source,
        )
    config = documents[0] if documents else {}
    if not isinstance(config, dict):
        raise task_error(source, "", config, "a mapping of task fields (name, resources, run, ...)")
    return config


def interpolate(text: str, envs: Mapping[str, str | None]) -> str:
    """``$VAR``/``${VAR}`` replaced by the value of env VAR; unknown names left alone."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        value = envs.get(name)
        return value if value is not None else match.group(0)

    return _ENV_REFERENCE.sub(replace, text)


def interpolate_strings(value: Any, envs: Mapping[str, str | None]) -> Any:
    """:func:`interpolate` applied to every string (keys too) of a plain YAML value, as
    SkyPilot fills envs into its ``service`` section; other values are kept as they are."""
    if isinstance(value, str):
        return interpolate(value, envs)
    if isinstance(value, list):
        return [interpolate_strings(v, envs) for v in value]
    if isinstance(value, dict):
        return {interpolate(k, envs): interpolate_strings(v, envs) for k, v in value.items()}
    return value


def validate_optional_str(value: Any, field: str, what: str) -> str | None:
    """A string (numbers are turned into one, as YAML users expect), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError(field, value, what)
    return str(value)


def validate_num_nodes(value: Any, field: str = "num_nodes") -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FieldError(field, value, "a whole number of nodes >= 1")
    return value


def validate_workdir(
    value: Any, field: str = "workdir", envs: Mapping[str, str | None] | None = None
) -> str | dict[str, str] | None:
    """A local directory path, or a git repository ``{url, ref}`` cloned on the nodes."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        check_keys(value, GIT_WORKDIR_KEYS, field)
        repo: dict[str, str] = {}
        for key in GIT_WORKDIR_KEYS:
            item = value.get(key)
            if item is None and key == "ref":
                continue
            if not isinstance(item, str) or not item.strip():
                what = "a git repository URL" if key == "url" else "a branch, tag or commit"
                raise FieldError(join_path(field, key), item, what)
            repo[key] = interpolate(item, envs or {})
        return repo
    if not isinstance(value, str) or not value.strip():
        raise FieldError(field, value, "a local directory path, or a git repository {url, ref}")
    return interpolate(value, envs or {})


def is_git_workdir(workdir: Any) -> bool:
    """Whether ``workdir`` is a git repository (``{url, ref}``) rather than a path."""
    return isinstance(workdir, Mapping)


def validate_file_mounts(
    value: Any, field: str = "file_mounts", envs: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """``{remote path: local path or bucket URI}``, env references substituted."""
    if value is None:
        return {}
    mapping = check_mapping(value, field, "remote paths to local paths")
    mounts: dict[str, str] = {}
    for remote, local in mapping.items():
        path = join_path(field, remote)
        if not isinstance(remote, str) or not remote.strip():
            raise FieldError(path, remote, "a remote path such as '/data' or '~/data'")
        if isinstance(local, Mapping):
            raise FieldError(path, local, "a local path or bucket URI (a storage entry "
                             "with name/source/mode is a storage mount: set_storage_mounts)")
        if not isinstance(local, str) or not local.strip():
            raise FieldError(path, local, "a local path or bucket URI")
        target = interpolate(remote, envs or {})
        source = interpolate(local, envs or {})
        if target.endswith("/"):
            raise FieldError(path, target, "a remote path that does not end with '/'")
        if source.endswith("/"):
            raise FieldError(path, source, "a local path that does not end with '/'")
        if target in mounts:
            raise FieldError(path, target, "a remote path not already mounted")
        mounts[target] = source
    return mounts


def split_file_mounts(
    value: Any, field: str = "file_mounts", envs: Mapping[str, str | None] | None = None
) -> tuple[dict[str, str], dict[str, Storage]]:
    """``file_mounts`` of a YAML: plain ``{remote: source}`` entries, and storage entries
    (mappings) as :class:`Storage`, env references substituted in both."""
    if value is None:
        return {}, {}
    mapping = check_mapping(value, field, "remote paths to local paths, bucket URIs or "
                            "storage entries")
    plain = {k: v for k, v in mapping.items() if not isinstance(v, Mapping)}
    mounts = validate_file_mounts(plain, field, envs)
    storages = validate_storage_mounts(
        {k: v for k, v in mapping.items() if isinstance(v, Mapping)}, field, envs
    )
    for remote in storages:
        if remote in mounts:
            raise FieldError(join_path(field, remote), remote, "a remote path not already "
                             "mounted")
    return mounts, storages


def validate_storage_mounts(
    value: Any, field: str = "storage_mounts", envs: Mapping[str, str | None] | None = None
) -> dict[str, Storage]:
    """``{remote path: Storage or storage mapping}``; ``name``/``source`` interpolated."""
    if value is None:
        return {}
    mapping = check_mapping(value, field, "remote paths to Storage objects")
    result: dict[str, Storage] = {}
    for remote, raw in mapping.items():
        path = join_path(field, remote)
        target = _mount_path(remote, path, envs)
        if isinstance(raw, Storage):
            storage = raw
        elif isinstance(raw, Mapping):
            storage = Storage.from_yaml_config(raw, path)
        else:
            raise FieldError(path, raw, "a Storage (or a mapping of name, source, store, "
                             "mode, persistent)")
        changes: dict[str, Any] = {}
        if storage.name is not None:
            changes["name"] = interpolate(storage.name, envs or {})
        if isinstance(storage.source, str):
            changes["source"] = interpolate(storage.source, envs or {})
        elif storage.source is not None:  # a list of local paths, as SkyPilot's docs show
            changes["source"] = tuple(interpolate(str(s), envs or {}) for s in storage.source)
        if changes and any(getattr(storage, k) != v for k, v in changes.items()):
            if isinstance(changes.get("source"), tuple):
                changes["source"] = list(changes["source"])
            storage = Storage.from_yaml_config({**storage.to_yaml_config(), **changes}, path)
        if target in result:
            raise FieldError(path, target, "a remote path not already mounted")
        result[target] = storage
    return result


def _mount_path(remote: Any, field: str, envs: Mapping[str, str | None] | None) -> str:
    if not isinstance(remote, str) or not remote.strip():
        raise FieldError(field, remote, "a remote path such as '/data' or '~/data'")
    target = interpolate(remote, envs or {})
    if target.endswith("/") and target != "/":
        target = target.rstrip("/")
    if not target or target == "/":
        raise FieldError(field, remote, "a remote path other than '/'")
    return target


def validate_volumes(
    value: Any, field: str = "volumes", envs: Mapping[str, str | None] | None = None
) -> dict[str, Any]:
    """``{mount path: volume name}`` (or ``{mount path: ephemeral volume settings}``)."""
    if value is None:
        return {}
    mapping = check_mapping(value, field, "mount paths to volume names")
    volumes: dict[str, Any] = {}
    for remote, raw in mapping.items():
        path = join_path(field, remote)
        target = _mount_path(remote, path, envs)
        if isinstance(raw, str) and raw.strip():
            volumes[target] = interpolate(raw.strip(), envs or {})
        elif isinstance(raw, Mapping) and raw:
            volumes[target] = validate_plain(raw, path)
        else:
            raise FieldError(path, raw, "a volume name, or a mapping of volume settings")
    return volumes


def validate_size_hint(value: Any, field: str) -> dict[str, float] | None:
    """``inputs``/``outputs``: ``{path or bucket URI: estimated size in GB}``, one entry."""
    if value is None:
        return None
    mapping = check_mapping(value, field, "one path to its estimated size in GB")
    if len(mapping) != 1:
        raise FieldError(field, value, "exactly one entry {path: size in GB}")
    ((where, size),) = mapping.items()
    if not isinstance(where, str) or not where.strip():
        raise FieldError(field, where, "a path or bucket URI")
    if isinstance(size, bool) or not isinstance(size, int | float) or not 0 <= size < 1e15:
        raise FieldError(join_path(field, where), size, "a size in GB (a number >= 0)")
    return {where: size}


def validate_run(value: Any, field: str = "run") -> Any:
    """A shell command, a ``(node_rank, node_ips) -> str | None`` callable, or None."""
    if value is None or isinstance(value, str) or callable(value):
        return value
    raise FieldError(field, value, "a shell command (string)")


def validate_plain(value: Any, field: str, depth: int = 0) -> Any:
    """A deep copy of JSON-like data (str keys; str/number/bool/None/list/dict values)."""
    if depth > _MAX_PLAIN_DEPTH:
        raise FieldError(field, value, "less deeply nested data")
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [validate_plain(v, join_path(field, i), depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise FieldError(join_path(field, str(key)), key, "a string key")
            result[key] = validate_plain(item, join_path(field, key), depth + 1)
        return result
    raise FieldError(field, value, "strings, numbers, booleans, lists and mappings")


def validate_section(value: Any, field: str, what: str) -> dict[str, Any] | None:
    """An optional mapping section (``service``, ``config``), deep-copied."""
    if value is None:
        return None
    check_mapping(value, field, what)
    return validate_plain(value, field)


def merge_env_overrides(
    envs: dict[str, str | None], overrides: EnvInput, section: str, flag: str
) -> dict[str, str]:
    """``envs`` (the YAML's ``section``) updated with ``overrides``; all must be set."""
    merged = dict(envs)
    merged.update(env_mapping(overrides, section, allow_missing=False, flag=flag,
                              redact=section == "secrets"))
    for name, value in merged.items():
        if value is None:
            raise FieldError(
                join_path(section, name), None,
                f"a value: it is null in the YAML, so pass one with `{flag} {name}=VALUE`",
            )
    return {k: v for k, v in merged.items() if v is not None}


def parse_task_config(
    config: Any,
    source: str,
    env_overrides: EnvInput = None,
    secrets_overrides: EnvInput = None,
) -> dict[str, Any]:
    """The validated constructor arguments of a Task from its YAML mapping.

    Returns keyword arguments for ``Task`` plus ``resources`` (a tuple of Resources)
    and ``resources_ordered``.

    Raises:
        TaskValidationError: the first invalid field, with source and dotted path.
    """
    try:
        return _parse(config, source, env_overrides, secrets_overrides)
    except FieldError as err:
        raise err.to_task_error(source) from None


def _parse(
    config: Any, source: str, env_overrides: EnvInput, secrets_overrides: EnvInput
) -> dict[str, Any]:
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise FieldError("", config, "a mapping of task fields (name, resources, run, ...)")
    check_keys(config, TASK_KEYS)
    envs = env_mapping(config.get("envs"), "envs", allow_missing=True, flag="--env")
    envs_final = merge_env_overrides(envs, env_overrides, "envs", "--env")
    secrets = env_mapping(config.get("secrets"), "secrets", allow_missing=True,
                          flag="--secret", redact=True)
    secrets_final = merge_env_overrides(secrets, secrets_overrides, "secrets", "--secret")
    workdir = validate_workdir(config.get("workdir"), envs=envs_final)
    options: tuple[Resources, ...]
    options, ordered = resources_options_from_yaml(config.get("resources"), source)
    file_mounts, storage_mounts = split_file_mounts(config.get("file_mounts"), envs=envs_final)
    service = validate_section(config.get("service"), "service", "service settings")
    if service is not None:
        service = interpolate_strings(service, envs_final)
    pool = validate_section(config.get("pool"), "pool", "pool settings")
    if service is not None and pool is not None:
        raise FieldError("pool", config.get("pool"), "no 'pool' together with 'service' "
                         "(a task is a service or a pool worker, not both)")
    return {
        "name": validate_optional_str(config.get("name"), "name", "a task name (string)"),
        "setup": validate_optional_str(config.get("setup"), "setup", "a shell script (string)"),
        "run": validate_optional_str(config.get("run"), "run", "a shell command (string)"),
        "envs": envs_final,
        "secrets": secrets_final,
        "workdir": workdir,
        "num_nodes": validate_num_nodes(config.get("num_nodes")),
        "file_mounts": file_mounts,
        "storage_mounts": storage_mounts,
        "volumes": validate_volumes(config.get("volumes"), envs=envs_final),
        "service": service,
        "pool": pool,
        "config": validate_section(config.get("config"), "config", "config overrides"),
        "inputs": validate_size_hint(config.get("inputs"), "inputs"),
        "outputs": validate_size_hint(config.get("outputs"), "outputs"),
        "event_callback": validate_optional_str(
            config.get("event_callback"), "event_callback", "a shell script (string)"
        ),
        "resources": options,
        "resources_ordered": ordered,
    }
