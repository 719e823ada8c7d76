"""The one persistent path under which skyhop keeps all of its state.

Resolution: ``SKYHOP_PERSISTENT_PATH``, else ``persistent_path:`` in the user's config file
(``SKYHOP_CONFIG``, else ``~/.skyhop/config.yaml``), else ``~/.skyhop``. ``~`` and
relative paths are expanded. Layout below it::

    skyhop.db            the state store (SQLite) unless SKYHOP_DB_URL is set
    server/              the local API server's pid file and log
    requests/<id>.log    request logs
    backends/<name>/     each backend's own state (local node directories, keys, ...)
    logs/<cluster>/      job logs downloaded from clusters
    uploads/<user>/      (server) the files clients uploaded for their tasks
    client/              (client) the upload hash cache
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class PersistentPathError(Exception):
    """The persistent path cannot be created or written."""


def config_file() -> Path:
    explicit = os.environ.get("SKYHOP_CONFIG")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return Path("~/.skyhop/config.yaml").expanduser()


def load_config() -> dict[str, Any]:
    """The user's config file as a dict ({} when there is none)."""
    path = config_file()
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}
    import yaml

    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise PersistentPathError(f"{path}: the config file must be a mapping, not {type(data).__name__}.")
    return data


def persistent_path() -> Path:
    """Resolve the persistent path (does not create it)."""
    raw = os.environ.get("SKYHOP_PERSISTENT_PATH")
    if not raw:
        raw = load_config().get("persistent_path")
    if not raw:
        raw = "~/.skyhop"
    return Path(str(raw)).expanduser().resolve()


def ensure_persistent_path() -> Path:
    """Resolve the persistent path and make sure it exists and is writable."""
    path = persistent_path()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise PersistentPathError(
            f"The persistent path {path} cannot be used: {exc.strerror or exc}. "
            "Set SKYHOP_PERSISTENT_PATH (or persistent_path: in the config file) "
            "to a writable directory."
        ) from exc
    return path


def subdir(*parts: str) -> Path:
    """A directory under the persistent path, created on demand."""
    path = persistent_path().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
