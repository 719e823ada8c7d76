"""``skyhop api login``: check an endpoint (and token), then remember them.

The endpoint and token go to the user's config file (:func:`skyhop_core.paths.config_file`)
as ``api_server.endpoint`` and ``api_server.token``; other keys are kept. The file holds a
credential, so it is written with mode 600 (its directory is created with mode 700).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import skyhop_core.paths as paths
from skyhop.client import ApiClient
from skyhop_core import exceptions


def verify(endpoint: str, token: str | None) -> dict[str, Any]:
    """Check that ``endpoint`` answers, speaks our API and accepts ``token``.

    Returns the server's health document. Raises ApiServerError (unreachable),
    ApiVersionMismatchError, or NotAuthenticatedError (the server needs a token and
    ``token`` is missing or not valid).
    """
    client = ApiClient(endpoint, token=token or "", auto_start=False)
    try:
        info = client.ensure_server()
        if info.get("auth_required") and not info.get("user"):
            what = "a token (--token)" if not token else "a valid token; this one is not"
            raise exceptions.NotAuthenticatedError(
                f"The API server at {client.endpoint} requires {what}. Ask its administrator "
                f"for one, then run: skyhop api login -e {client.endpoint} --token <TOKEN>"
            )
        # One authenticated call, so a token that health accepts also works for real calls.
        client.call("GET", "/api/status", params={"limit": 1})
        return info
    finally:
        client.close()


def save(endpoint: str, token: str | None) -> Path:
    """Write ``api_server.endpoint`` (and ``token``, or drop a stale one) to the config."""
    config = paths.load_config(overrides=False)
    section = config.get("api_server")
    section = dict(section) if isinstance(section, dict) else {}
    section["endpoint"] = endpoint.rstrip("/")
    if token:
        section["token"] = token
    else:
        section.pop("token", None)
    config["api_server"] = section
    return _write(config)


def logout() -> tuple[Path, str | None]:
    """Drop ``api_server.endpoint`` and ``token`` from the config; other keys stay.

    Returns (the config file, the endpoint that was saved or None).
    """
    path = paths.config_file()
    config = paths.load_config(overrides=False)
    section = config.get("api_server")
    if not isinstance(section, dict) or not (section.get("endpoint") or section.get("token")):
        return path, None
    section = dict(section)
    endpoint = section.pop("endpoint", None)
    section.pop("token", None)
    if section:
        config["api_server"] = section
    else:
        config.pop("api_server")
    _write(config)
    return path, str(endpoint) if endpoint else "(a saved token)"


def _write(config: dict[str, Any]) -> Path:
    import yaml

    path = paths.config_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = yaml.safe_dump(config, sort_keys=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def login(endpoint: str, token: str | None) -> tuple[dict[str, Any], Path]:
    """Verify, then save; returns (the server's health document, the config file)."""
    info = verify(endpoint, token)
    return info, save(endpoint, token)
