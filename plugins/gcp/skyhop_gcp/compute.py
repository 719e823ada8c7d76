"""A small async client of the Compute Engine REST API (v1), on httpx under trio.

:class:`Compute` sends JSON requests below ``projects/<project>/`` with a bearer token
from :class:`~skyhop_gcp.auth.TokenSource` and turns error responses into
:class:`GcpApiError`. A mutating call returns an Operation; :meth:`Compute.wait` waits on
it with ``zoneOperations.wait`` / ``globalOperations.wait`` (the server holds the request
up to two minutes; we ask again until DONE) and raises :class:`GcpApiError` with the
operation's error code (``ZONE_RESOURCE_POOL_EXHAUSTED``, ``QUOTA_EXCEEDED``, …) when it
failed. Everything is cancellable: a cancelled wait leaves the operation running on
Google's side, and every resource the backend creates is labelled so ``down`` finds it.

The endpoint is ``https://compute.googleapis.com/compute/v1/`` unless ``gcp:
compute_endpoint`` or ``SKYHOP_GCP_COMPUTE_ENDPOINT`` says otherwise (the tests' fake).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from skyhop_gcp.auth import TokenSource

DEFAULT_ENDPOINT = "https://compute.googleapis.com/compute/v1/"
#: How long one request may take (``operations.wait`` is held up to two minutes).
REQUEST_TIMEOUT = 150.0


class GcpApiError(Exception):
    """An error from the Compute API: HTTP ``status``, Google's ``reason`` or an operation's
    error ``code``, and the message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.status, self.code, self.message = status, code, message


def endpoint(config: Mapping[str, Any]) -> str:
    url = str(config.get("compute_endpoint") or os.environ.get("SKYHOP_GCP_COMPUTE_ENDPOINT")
              or DEFAULT_ENDPOINT)  # fmt: skip
    return url if url.endswith("/") else url + "/"


def _api_error(response: httpx.Response) -> GcpApiError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return GcpApiError(response.status_code, "", response.text[:500] or response.reason_phrase)
    reasons = [e.get("reason", "") for e in error.get("errors", ()) if isinstance(e, dict)]
    code = next((r for r in reasons if r), str(error.get("status", "")))
    return GcpApiError(response.status_code, code, str(error.get("message", response.text[:500])))


class Compute:
    """The Compute API of one project."""

    def __init__(
        self, client: httpx.AsyncClient, base: str, project: str, tokens: TokenSource
    ) -> None:
        self.client, self.base, self.project, self.tokens = client, base, project, tokens

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base}projects/{self.project}/{path}".rstrip("/")

    async def call(self, method: str, path: str, *, json: Any = None,
                   params: Mapping[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        headers = {"Authorization": f"Bearer {await self.tokens.token()}"}
        try:
            response = await self.client.request(method, self.url(path), json=json, params=params,
                                                 headers=headers, timeout=REQUEST_TIMEOUT)  # fmt: skip
        except httpx.HTTPError as exc:
            raise GcpApiError(0, "unreachable", f"{method} {self.url(path)}: {exc}") from exc
        if response.status_code >= 400:
            raise _api_error(response)
        return dict(response.json()) if response.content else {}

    async def list(self, path: str, filter: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
        """Every item of a ``list`` method, following ``nextPageToken``."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"filter": filter} if filter else {}
        while True:
            page = await self.call("GET", path, params=params)
            items.extend(page.get("items", ()))
            token = page.get("nextPageToken")
            if not token:
                return items
            params["pageToken"] = str(token)

    async def wait(self, op: Mapping[str, Any]) -> dict[str, Any]:
        """Wait until ``op`` is DONE; raise :class:`GcpApiError` if it failed."""
        zone = str(op.get("zone", "")).rsplit("/", 1)[-1]
        where = f"zones/{zone}" if zone else "global"
        current = dict(op)
        while current.get("status") != "DONE":
            current = await self.call("POST", f"{where}/operations/{current['name']}/wait")
        errors = (current.get("error") or {}).get("errors") or []
        if errors:
            first = errors[0]
            raise GcpApiError(int(current.get("httpErrorStatusCode") or 400),
                              str(first.get("code", "")), str(first.get("message", "")))  # fmt: skip
        return current


@asynccontextmanager
async def open_compute(
    config: Mapping[str, Any], credentials: Any, project: str
) -> AsyncIterator[Compute]:
    """A :class:`Compute` for the duration of a hook call (one connection pool)."""
    async with httpx.AsyncClient() as client:
        yield Compute(client, endpoint(config), project, TokenSource(credentials))
