"""A small async client of the Cloud Storage JSON API (v1), on httpx under trio.

:class:`Gcs` sends requests below ``<root>storage/v1/`` with a bearer token from
:class:`~skyhop_gcp.auth.TokenSource` (the same credentials as Compute) and turns error
responses into :class:`~skyhop_gcp.compute.GcpApiError`. Objects go up through
``<root>upload/storage/v1/``: a ``multipart`` upload (metadata and bytes in one request)
below :data:`RESUMABLE_THRESHOLD`, a ``resumable`` session in :data:`CHUNK` pieces above
it, so a large file is never held in memory whole. Downloads stream ``alt=media`` to disk.

The root is ``https://storage.googleapis.com/`` unless ``stores: {gcs: {endpoint: ...}}``
or ``SKYHOP_GCP_STORAGE_ENDPOINT`` says otherwise (the tests' fake).
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from skyhop_gcp.auth import TokenSource
from skyhop_gcp.compute import GcpApiError, _api_error

DEFAULT_ENDPOINT = "https://storage.googleapis.com/"
REQUEST_TIMEOUT = 120.0
#: Files of this size or more are sent as a resumable upload, in CHUNK pieces.
RESUMABLE_THRESHOLD = 8 * 1024 * 1024
CHUNK = 8 * 1024 * 1024  # a multiple of 256 KiB, as resumable uploads require


def endpoint(config: Mapping[str, Any]) -> str:
    url = str(config.get("endpoint") or os.environ.get("SKYHOP_GCP_STORAGE_ENDPOINT")
              or DEFAULT_ENDPOINT)  # fmt: skip
    return url if url.endswith("/") else url + "/"


def quote(name: str) -> str:
    """An object or bucket name as one path segment (``/`` in an object name too)."""
    return urllib.parse.quote(name, safe="")


class Gcs:
    """Cloud Storage for one project."""

    def __init__(
        self, client: httpx.AsyncClient, root: str, project: str, tokens: TokenSource
    ) -> None:
        self.client, self.root, self.project, self.tokens = client, root, project, tokens

    async def request(self, method: str, url: str, *, ok: tuple[int, ...] = (200, 204),
                      **kwargs: Any) -> httpx.Response:  # fmt: skip
        headers = {"Authorization": f"Bearer {await self.tokens.token()}",
                   **kwargs.pop("headers", {})}  # fmt: skip
        try:
            response = await self.client.request(method, url, headers=headers,
                                                 timeout=REQUEST_TIMEOUT, **kwargs)  # fmt: skip
        except httpx.HTTPError as exc:
            raise GcpApiError(0, "unreachable", f"{method} {url}: {exc}") from exc
        if response.status_code not in ok:
            raise _api_error(response)
        return response

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A JSON API call on ``path`` below ``storage/v1/``; its JSON answer (or ``{}``)."""
        response = await self.request(method, f"{self.root}storage/v1/{path}", **kwargs)
        return dict(response.json()) if response.content else {}

    # --- buckets -------------------------------------------------------------------------

    async def create_bucket(self, name: str, location: str | None = None) -> bool:
        """Create bucket ``name``; False when this project already has it."""
        body: dict[str, Any] = {"name": name}
        if location:
            body["location"] = location
        try:
            await self.call("POST", "b", params={"project": self.project}, json=body)
        except GcpApiError as exc:
            if exc.status != 409:
                raise
            try:
                if await self.bucket_exists(name):
                    return False  # ours already
            except GcpApiError:
                pass  # another project's bucket (403): the 409 says what happened
            raise exc from None
        return True

    async def bucket_exists(self, name: str) -> bool:
        try:
            await self.call("GET", f"b/{quote(name)}")
        except GcpApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def delete_bucket(self, name: str) -> None:
        await self.call("DELETE", f"b/{quote(name)}")

    async def list_buckets(self) -> list[str]:
        names: list[str] = []
        params = {"project": self.project}
        while True:
            page = await self.call("GET", "b", params=params)
            names.extend(str(b["name"]) for b in page.get("items", ()))
            if not page.get("nextPageToken"):
                return names
            params["pageToken"] = str(page["nextPageToken"])

    # --- objects -------------------------------------------------------------------------

    async def list_objects(self, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
        """Every object of ``bucket`` whose name starts with ``prefix``."""
        items: list[dict[str, Any]] = []
        params = {"prefix": prefix} if prefix else {}
        while True:
            page = await self.call("GET", f"b/{quote(bucket)}/o", params=params)
            items.extend(page.get("items", ()))
            if not page.get("nextPageToken"):
                return items
            params["pageToken"] = str(page["nextPageToken"])

    async def delete_object(self, bucket: str, name: str) -> None:
        try:
            await self.call("DELETE", f"b/{quote(bucket)}/o/{quote(name)}")
        except GcpApiError as exc:
            if exc.status != 404:  # deleted already: what we wanted
                raise

    async def upload_file(self, bucket: str, name: str, path: str) -> None:
        """Upload the local file ``path`` as object ``name``."""
        size = await trio.to_thread.run_sync(os.path.getsize, path)
        url = f"{self.root}upload/storage/v1/b/{quote(bucket)}/o"
        if size < RESUMABLE_THRESHOLD:
            data = await trio.Path(path).read_bytes()
            boundary = "skyhop-" + secrets.token_hex(12)
            body = b"".join([
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                json.dumps({"name": name}).encode(),
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                data, f"\r\n--{boundary}--\r\n".encode(),
            ])  # fmt: skip
            await self.request("POST", url, params={"uploadType": "multipart"}, content=body,
                               headers={"Content-Type": f"multipart/related; boundary={boundary}"})
            return
        start = await self.request("POST", url, params={"uploadType": "resumable"},
                                   json={"name": name},
                                   headers={"X-Upload-Content-Length": str(size)})  # fmt: skip
        session = start.headers["Location"]
        async with await trio.open_file(path, "rb") as f:
            sent = 0
            while sent < size:
                chunk = await f.read(CHUNK)
                if not chunk:
                    raise GcpApiError(0, "changed", f"{path} shrank while being uploaded")
                end = sent + len(chunk) - 1
                await self.request("PUT", session, content=chunk, ok=(200, 201, 308),
                                   headers={"Content-Range": f"bytes {sent}-{end}/{size}"})
                sent += len(chunk)

    async def download_file(self, bucket: str, name: str, dest: str) -> None:
        """Stream object ``name`` into the local file ``dest``."""
        url = f"{self.root}storage/v1/b/{quote(bucket)}/o/{quote(name)}"
        headers = {"Authorization": f"Bearer {await self.tokens.token()}"}
        try:
            async with self.client.stream("GET", url, params={"alt": "media"}, headers=headers,
                                          timeout=REQUEST_TIMEOUT) as response:  # fmt: skip
                if response.status_code != 200:
                    await response.aread()
                    raise _api_error(response)
                async with await trio.open_file(dest, "wb") as f:
                    async for piece in response.aiter_bytes(1024 * 1024):
                        await f.write(piece)
        except httpx.HTTPError as exc:
            raise GcpApiError(0, "unreachable", f"GET {url}: {exc}") from exc


@asynccontextmanager
async def open_gcs(config: Mapping[str, Any], credentials: Any, project: str) -> AsyncIterator[Gcs]:
    """A :class:`Gcs` for the duration of a hook call (one connection pool)."""
    async with httpx.AsyncClient() as client:
        yield Gcs(client, endpoint(config), project, TokenSource(credentials))
