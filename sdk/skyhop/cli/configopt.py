"""The global ``--config`` option: config-file overrides for one command.

As SkyPilot's ``--config``: each value is a YAML file (a mapping) or ``key=value`` pairs
with dotted keys for nesting (``api_server.endpoint=http://h:46590``), several pairs
comma-separated; values are parsed as YAML scalars (``5`` is a number, ``true`` a bool).
Later values win. The result is merged over the config file through
``SKYHOP_CONFIG_OVERRIDES`` for this process only: the config file is not changed, and a
server this command starts does not inherit it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click


def _pairs(text: str) -> dict[str, Any]:
    import yaml

    result: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise click.BadParameter(
                f"{item!r} is neither an existing YAML file nor key=value "
                "(dotted keys for nesting, e.g. api_server.endpoint=http://host:46590).",
                param_hint="--config",
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise click.BadParameter(f"{key!r} sets inside a value.", param_hint="--config")
        node[leaf] = value
    return result


def _file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--config") from None
    if not isinstance(data, dict):
        raise click.BadParameter(
            f"{path}: a config file must be a mapping, not {type(data).__name__}.",
            param_hint="--config",
        )
    return data


def parse_overrides(values: Sequence[str]) -> dict[str, Any]:
    """The merged overrides of every ``--config`` value, later ones winning."""
    from skyhop_core.paths import merge_config

    merged: dict[str, Any] = {}
    for value in values:
        path = Path(value).expanduser()
        layer = _file(path) if "=" not in value and path.is_file() else _pairs(value)
        merged = merge_config(merged, layer)
    return merged


def apply_overrides(values: Sequence[str]) -> None:
    """Make this process's config reads see the overrides."""
    from skyhop_core.paths import CONFIG_OVERRIDES_ENV

    os.environ[CONFIG_OVERRIDES_ENV] = json.dumps(parse_overrides(values))
