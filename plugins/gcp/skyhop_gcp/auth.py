"""GCP credentials and the project, through google-auth, from trio.

Where credentials come from, in order (Application Default Credentials without the
network guesswork): ``gcp: credentials_file`` in the config, ``GOOGLE_APPLICATION_CREDENTIALS``,
gcloud's ADC file (``gcloud auth application-default login``), and — only with
``gcp: use_metadata_server: true``, on a GCE VM — the metadata server. The project is
``gcp: project_id``, else the credentials' project, else ``GOOGLE_CLOUD_PROJECT`` /
``CLOUDSDK_CORE_PROJECT``.

google-auth is synchronous: a token refresh (for a service account, a JWT grant against
the key file's ``token_uri``) runs in a worker thread over an httpx transport of our own
(:class:`HttpxRequest`), never ``requests``. google-auth is imported only inside functions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from skyhop_core.exceptions import CredentialsError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
CREDENTIALS_FIX = (
    "Run `gcloud auth application-default login`, or point GOOGLE_APPLICATION_CREDENTIALS at "
    "a service-account key file (or set gcp: credentials_file in the config)."
)
_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar(
    "skyhop_gcp_auth_limiter"
)


def _limiter() -> trio.CapacityLimiter:
    try:
        return _LIMITER.get()
    except LookupError:
        created = trio.CapacityLimiter(4)
        _LIMITER.set(created)
        return created


class HttpxRequest:
    """A ``google.auth.transport.Request`` made on a synchronous httpx client."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    def __call__(self, url: str, method: str = "GET", body: Any = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> Any:  # fmt: skip
        import httpx
        from google.auth import exceptions

        try:
            response = httpx.request(method, url, content=body, headers=dict(headers or {}),
                                     timeout=timeout or self.timeout)  # fmt: skip
        except httpx.HTTPError as exc:
            raise exceptions.TransportError(f"{method} {url}: {exc}") from exc
        return _Response(response.status_code, dict(response.headers), response.content)


@attrs.frozen
class _Response:
    status: int
    headers: dict[str, str]
    data: bytes


def credentials_path(config: Mapping[str, Any]) -> str | None:
    """The key or ADC file to use, or None when there is none on this machine."""
    for candidate in (
        config.get("credentials_file"),
        os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"),
    ):
        if candidate:
            return str(os.path.expanduser(str(candidate)))
    gcloud_dir = os.environ.get("CLOUDSDK_CONFIG") or os.path.expanduser("~/.config/gcloud")
    adc = os.path.join(gcloud_dir, "application_default_credentials.json")
    return adc if os.path.exists(adc) else None


def _from_file(path: str) -> tuple[Any, str | None]:
    """Credentials of a key or ADC file, by its ``type`` (only the two kinds we know)."""
    import json

    try:
        with open(path) as f:
            info = json.load(f)
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"The GCP credentials file {path} cannot be read: {exc}. "
                               + CREDENTIALS_FIX) from exc  # fmt: skip
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            creds = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            return creds, info.get("project_id")
        if kind == "authorized_user":  # gcloud auth application-default login
            from google.oauth2 import credentials

            user = credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES)
            return user, info.get("quota_project_id")
    except ValueError as exc:
        raise CredentialsError(f"The GCP credentials in {path} are incomplete: {exc}. "
                               + CREDENTIALS_FIX) from exc  # fmt: skip
    raise CredentialsError(f"The GCP credentials file {path} has type {kind!r}; skyhop uses "
                           "'service_account' key files and gcloud's 'authorized_user' ADC "
                           "file. " + CREDENTIALS_FIX)  # fmt: skip


def load(config: Mapping[str, Any]) -> tuple[Any, str]:
    """Credentials (scoped for Compute) and the project; :class:`CredentialsError` if not."""
    path = credentials_path(config)
    project: str | None = None
    if path is not None:
        if not os.path.exists(path):
            raise CredentialsError(f"The GCP credentials file {path} does not exist. "
                                   + CREDENTIALS_FIX)  # fmt: skip
        creds, project = _from_file(path)
    elif config.get("use_metadata_server"):
        from google.auth import compute_engine

        creds = compute_engine.Credentials(scopes=list(SCOPES))
    else:
        raise CredentialsError("No GCP credentials found. " + CREDENTIALS_FIX)
    project = (str(config.get("project_id") or "") or project or os.environ.get("GOOGLE_CLOUD_PROJECT")
               or os.environ.get("CLOUDSDK_CORE_PROJECT"))  # fmt: skip
    if not project:
        raise CredentialsError("No GCP project: set gcp: project_id in the config (or "
                               "GOOGLE_CLOUD_PROJECT), or use credentials that name one.")  # fmt: skip
    return creds, project


class TokenSource:
    """Access tokens of one set of credentials, refreshed in a worker thread when due."""

    def __init__(self, credentials: Any) -> None:
        self.credentials = credentials
        self._lock: trio.Lock | None = None

    async def token(self) -> str:
        if self._lock is None:
            self._lock = trio.Lock()
        async with self._lock:
            if not self.credentials.valid:
                await self.refresh()
            return str(self.credentials.token)

    async def refresh(self) -> None:
        from google.auth import exceptions

        try:
            await trio.to_thread.run_sync(self.credentials.refresh, HttpxRequest(),
                                          limiter=_limiter())  # fmt: skip
        except exceptions.RefreshError as exc:
            raise CredentialsError(
                f"GCP rejected the credentials: {exc}. {CREDENTIALS_FIX}"
            ) from exc
        except exceptions.TransportError as exc:
            raise CredentialsError(f"Could not reach the GCP token endpoint: {exc}") from exc

    def account(self) -> str:
        return str(getattr(self.credentials, "service_account_email", "") or "application default")
