"""Task secrets in stored request bodies: sealed while a request may run, then dropped.

The requests table keeps each request's body, because a PENDING request runs again from
it after a restart or on another replica (see :mod:`skyhop_core.requests.replicas`).
Secrets must survive that, but must never be stored in plain text, so before a body is
stored every ``secrets`` mapping in it (a task's ``secrets:``, including ``--secret``
values) is replaced by ``{"$sealed": TOKEN, "$names": [NAME, ...]}``, TOKEN being the
mapping as JSON encrypted with Fernet (AES-128-CBC plus HMAC-SHA256, from the maintained ``cryptography`` package).

The key is ``<persistent path>/keys/secrets.key`` (0600, created on first use). It is
never in the database, so a database dump or a PostgreSQL row reveals nothing; replicas
of one deployment share the persistent path and so the key. When a request finishes it
can never run again, and its stored body keeps only the secret *names*
(``{"$redacted": [NAME, ...]}``). Only the handler's parsed parameters, in memory,
carry the values, on their way to the job's environment.
"""

from __future__ import annotations

import json
import os
import secrets as _random
from pathlib import Path
from typing import Any

SEALED = "$sealed"
NAMES = "$names"
REDACTED = "$redacted"
KEY_FILE = Path("keys") / "secrets.key"


class SecretsUnavailableError(Exception):
    """A stored request's secrets cannot be decrypted (its key is gone or different)."""


def _transform(body: Any, fn: Any) -> tuple[Any, bool]:
    """``body`` with ``fn(mapping)`` applied to every ``secrets`` mapping; and whether
    there was one."""
    if isinstance(body, list):
        items = [_transform(item, fn) for item in body]
        return [i for i, _ in items], any(found for _, found in items)
    if not isinstance(body, dict):
        return body, False
    out: dict[str, Any] = {}
    found = False
    for key, value in body.items():
        if key == "secrets" and isinstance(value, dict) and value:
            out[key] = fn(value)
            found = True
        else:
            out[key], inner = _transform(value, fn)
            found = found or inner
    return out, found


def has_secrets(body: Any) -> bool:
    return _transform(body, lambda m: m)[1]


def redact(body: Any) -> Any:
    """``body`` with every secrets mapping (sealed or not) reduced to its names."""

    def names(mapping: dict[str, Any]) -> dict[str, Any]:
        if REDACTED in mapping:
            return mapping
        if SEALED in mapping:
            return {REDACTED: list(mapping.get(NAMES) or [])}
        return {REDACTED: sorted(mapping)}

    return _transform(body, names)[0]


class SecretBox:
    """Seals and opens the secrets in request bodies with the persistent path's key."""

    def __init__(self, persistent_path: Path) -> None:
        self.path = persistent_path / KEY_FILE
        self._fernet: Any = None

    def _key(self) -> Any:
        if self._fernet is None:
            from cryptography.fernet import Fernet

            self._fernet = Fernet(self._load_or_create())
        return self._fernet

    def _load_or_create(self) -> bytes:
        from cryptography.fernet import Fernet

        from skyhop_core.paths import private_dir, write_private

        try:
            return self.path.read_bytes().strip()
        except FileNotFoundError:
            pass
        private_dir(self.path.parent)
        tmp = self.path.with_name(f".{self.path.name}.{_random.token_hex(4)}")
        write_private(tmp, Fernet.generate_key())
        try:
            os.link(tmp, self.path)  # atomic and exclusive: racing replicas agree on one key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return self.path.read_bytes().strip()

    def seal(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as it may be stored: its secrets encrypted."""

        def seal_one(mapping: dict[str, Any]) -> dict[str, Any]:
            token = self._key().encrypt(json.dumps(mapping).encode())
            return {SEALED: token.decode(), NAMES: sorted(mapping)}

        sealed, _ = _transform(body, seal_one)
        return dict(sealed)

    def open(self, body: dict[str, Any]) -> dict[str, Any]:
        """A stored ``body`` with its secrets decrypted (for running it again)."""
        from cryptography.fernet import InvalidToken

        def open_one(mapping: dict[str, Any]) -> dict[str, Any]:
            if SEALED not in mapping:
                return mapping
            try:
                return dict(json.loads(self._key().decrypt(str(mapping[SEALED]).encode())))
            except (InvalidToken, ValueError) as exc:
                raise SecretsUnavailableError(
                    f"The request's secrets cannot be decrypted with {self.path} (was the "
                    "key replaced?); submit the request again."
                ) from exc

        opened, _ = _transform(body, open_one)
        return dict(opened)
