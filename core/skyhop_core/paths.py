"""The one persistent path under which skyhop keeps all of its state.

Resolution: ``SKYHOP_PERSISTENT_PATH``, else ``persistent_path:`` in the user's config file
(``SKYHOP_CONFIG``, else ``~/.skyhop/config.yaml``), else ``~/.skyhop``. ``~`` and
relative paths are expanded. Layout below it::

    skyhop.db            the state store (SQLite) unless SKYHOP_DB_URL is set
    server/<host>-<port>/  each API server replica's pid file and log
    requests/<id>.log    request logs
    backends/<name>/     each backend's own state (local node directories, keys, ...)
    logs/<cluster>/      job logs downloaded from clusters
    keys/                the key that seals request secrets (see requests/secrets.py)
    uploads/<user>/      (server) the files clients uploaded for their tasks
    client/              (client) the upload hash cache

Everything below it is private to the user running skyhop, whatever the umask:
directories are created 0700 and files 0600 through :func:`private_dir`,
:func:`open_private` and :func:`write_private`, and the API server runs with umask 077
(:func:`restrict_umask`) so that whatever else it or its children create is private too.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import IO, Any

#: The modes of everything under the persistent path.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def restrict_umask() -> int:
    """Set the process umask to 077 (nothing for group or others); returns the old one."""
    return os.umask(0o077)


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and its missing parents) with mode 0700 whatever the umask, and
    make an existing ``path`` of ours 0700 too."""
    path = Path(path)
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        os.chmod(directory, PRIVATE_DIR_MODE)
    if not missing and path.stat().st_uid == os.geteuid():
        os.chmod(path, PRIVATE_DIR_MODE)
    return path


def open_private(path: str | os.PathLike[str], mode: str = "ab", buffering: int = -1) -> IO[Any]:
    """Open ``path`` for writing (``mode`` "ab", "wb", "a" or "w"), created 0600 whatever
    the umask (an existing file is made 0600 as well)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        return os.fdopen(fd, mode, buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to ``path`` (replacing it) as a 0600 file."""
    with open_private(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


class PersistentPathError(Exception):
    """The persistent path cannot be created or written."""


def config_file() -> Path:
    explicit = os.environ.get("SKYHOP_CONFIG")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return Path("~/.skyhop/config.yaml").expanduser()


#: A JSON mapping merged over the config file (the CLI's ``--config`` sets it).
CONFIG_OVERRIDES_ENV = "SKYHOP_CONFIG_OVERRIDES"


def merge_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: nested mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


#: (path, its stat signature) -> the file's parsed mapping: every SDK call resolves the
#: endpoint and token from the config, and parsing YAML costs about a millisecond.
_CONFIG_CACHE: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}


def _parsed_config(path: Path) -> dict[str, Any]:
    """The config file's mapping, parsed again only when the file changed."""
    try:
        st = path.stat()
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        _CONFIG_CACHE.pop(path, None)
        return {}
    cached = _CONFIG_CACHE.get(path)
    # A file changed in the last second may change again within the clock's granularity
    # with the same signature ("racy" like git's index): only an older one is trusted.
    if cached is not None and cached[0] == signature and time.time_ns() - st.st_mtime_ns > 10**9:
        return cached[1]
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        text = ""
    data: Any = {}
    if text:
        import yaml

        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise PersistentPathError(f"{path}: the config file must be a mapping, not {type(data).__name__}.")
    _CONFIG_CACHE[path] = (signature, data)
    return data


def load_config(*, overrides: bool = True) -> dict[str, Any]:
    """The user's config file as a dict ({} when there is none), with the overrides of
    ``SKYHOP_CONFIG_OVERRIDES`` (a JSON mapping) merged over it unless ``overrides`` is
    False (code that rewrites the file reads it that way)."""
    import copy

    path = config_file()
    data = copy.deepcopy(_parsed_config(path))
    raw_overrides = os.environ.get(CONFIG_OVERRIDES_ENV) if overrides else None
    if raw_overrides:
        import json

        extra = json.loads(raw_overrides)
        if isinstance(extra, dict):
            data = merge_config(data, extra)
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
        private_dir(path)
        probe = path / ".write-test"
        write_private(probe, "ok")
        probe.unlink()
    except OSError as exc:
        raise PersistentPathError(
            f"The persistent path {path} cannot be used: {exc.strerror or exc}. "
            "Set SKYHOP_PERSISTENT_PATH (or persistent_path: in the config file) "
            "to a writable directory."
        ) from exc
    return path


def subdir(*parts: str) -> Path:
    """A directory under the persistent path, created on demand (0700)."""
    return private_dir(persistent_path().joinpath(*parts))


def replica_dir(port: int, root: Path | None = None) -> Path:
    """This machine's API server on ``port``: its pid file and log.

    Several replicas may share one persistent path (a shared volume), so each keeps its
    own files under ``server/<hostname>-<port>/``; ``skyhop api stop`` finds the one of
    this machine there and stops only it.
    """
    import socket

    base = root if root is not None else persistent_path()
    path = base / "server" / f"{socket.gethostname()}-{port}"
    return private_dir(path)
