"""The async HTTP client behind :mod:`skyhop.aio`: one ``httpx.AsyncClient``.

It speaks the same protocol as the sync :class:`skyhop.client.ApiClient` (same endpoint,
identity headers, bearer token, version check, error decoding via
:class:`~skyhop.client.ClientBase`) and runs under trio and asyncio alike: httpx's async
client goes through anyio, and the few other awaits here are anyio's.

Unless a client is installed with :func:`using`, each :mod:`skyhop.aio` call opens a
client for its duration (:func:`session`): an ``httpx.AsyncClient`` belongs to the event
loop it was first used in, and a program may run several loops (``asyncio.run`` then
``trio.run``). The version check is still made once per endpoint per process.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx

from skyhop.client import (
    _CALL_TIMEOUT,
    _HEALTH_TIMEOUT,
    _WAIT_TIMEOUT,
    SERVER_START_TIMEOUT,
    STREAM_BROKEN,
    ClientBase,
    LogCursor,
    _tls_verify,
    is_loopback,
)
from skyhop.localserver import start_local_server

#: Endpoints whose version was checked by a client of this process (per-call clients).
_verified: set[str] = set()


class _FromThread:
    """A blocking ``call`` for a worker thread, made on the async client's event loop."""

    def __init__(self, client: AsyncApiClient) -> None:
        self.client = client

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return anyio.from_thread.run(functools.partial(self.client.call, method, path, **kwargs))


class AsyncApiClient(ClientBase):
    """An async client of one API server; ``async with`` closes it.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests);
    ``auto_start=False`` never starts a local server; ``token`` overrides
    :func:`~skyhop.client.resolve_token` (``""`` sends none).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        auto_start: bool = True,
        start_timeout: float = SERVER_START_TIMEOUT,
        token: str | None = None,
    ) -> None:
        headers = self._configure(
            endpoint, own_transport=transport is not None, auto_start=auto_start,
            start_timeout=start_timeout, token=token,
        )  # fmt: skip
        self._shared_check = transport is None
        self._checked = self._shared_check and self.endpoint in _verified
        self._http = httpx.AsyncClient(
            base_url=self.endpoint,
            transport=transport,
            timeout=_CALL_TIMEOUT,
            headers=headers,
            verify=_tls_verify(self.endpoint),
        )

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):  # close even when the caller was cancelled
            await self._http.aclose()

    async def __aenter__(self) -> AsyncApiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- health and the local server -------------------------------------------------

    async def health(self, timeout: float = _HEALTH_TIMEOUT) -> dict[str, Any]:
        """``GET /api/health`` without any checks; raises httpx errors as they are."""
        response = await self._http.get("/api/health", timeout=timeout)
        self._raise_for_error(response)
        return dict(response.json())

    async def ensure_server(self) -> dict[str, Any]:
        """Make sure a compatible server answers (starting a local one if needed)."""
        try:
            info = await self.health()
        except httpx.TransportError as exc:
            if not (is_loopback(self.endpoint) and self.auto_start):
                raise self._unreachable(exc) from None
            start = functools.partial(start_local_server, self.endpoint, timeout=self.start_timeout)
            await anyio.to_thread.run_sync(start)
            info = await self.health()
        self.check_version(info)
        self._checked = True
        if self._shared_check:
            _verified.add(self.endpoint)
        return info

    # --- calls -----------------------------------------------------------------------

    async def call(self, method: str, path: str, *, wait: bool = False, **kwargs: Any) -> Any:
        """One JSON call; returns the decoded body, raises the decoded error."""
        if not self._checked:
            await self.ensure_server()
        timeout = _WAIT_TIMEOUT if wait else _CALL_TIMEOUT
        try:
            try:
                response = await self._http.request(method, path, timeout=timeout, **kwargs)
            except httpx.ConnectError:
                # The local server went away (``api stop``): the call never reached it,
                # so starting a new one and retrying once is safe.
                if not (self.auto_start and is_loopback(self.endpoint)):
                    raise
                await self.ensure_server()
                response = await self._http.request(method, path, timeout=timeout, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        self._raise_for_error(response)
        return response.json()

    async def submit(self, operation: str, body: dict[str, Any]) -> str:
        """``POST /api/v1/<operation>``; returns the new request's ID.

        Local workdir and file-mount sources are uploaded first (see
        :mod:`skyhop.uploads`): scanning and hashing run in a worker thread, whose HTTP
        calls come back to this client.
        """
        from skyhop.uploads import needs_upload, prepare_body

        if needs_upload(operation, body):
            caller = _FromThread(self)
            body = await anyio.to_thread.run_sync(prepare_body, caller, operation, body)
        return self._accepted(await self.call("POST", self._submit_path(operation), json=body))

    async def get(self, request_id: str) -> dict[str, Any]:
        """``GET /api/get``: waits for the request to finish; returns the raw body (a
        request that finished while its submission waited needs no call)."""
        if (done := self._inline_result(request_id)) is not None:
            return done
        params = {"request_id": request_id}
        return dict(await self.call("GET", "/api/get", wait=True, params=params))

    async def stream(
        self,
        request_id: str,
        write: Callable[[str], object],
        *,
        follow: bool = True,
        tail: int | None = None,
        offset: int = 0,
    ) -> None:
        """``GET /api/stream``: passes the request's log to ``write`` in text chunks.

        As in the sync client, NUL heartbeats are dropped and a stream broken midway
        resumes from the last byte received, for as long as the server can be reached.
        """
        if self._nothing_logged(request_id):
            return
        if not self._checked:
            await self.ensure_server()
        cursor = LogCursor(request_id, follow=follow, tail=tail, offset=offset)
        try:
            while True:
                try:
                    async with self._http.stream(
                        "GET", "/api/stream", params=cursor.params, timeout=_WAIT_TIMEOUT
                    ) as r:
                        if r.status_code >= 400:
                            await r.aread()
                            self._raise_for_error(r)
                        cursor.started(r.headers)
                        async for chunk in r.aiter_bytes():
                            if text := cursor.text(chunk):
                                write(text)
                    if rest := cursor.rest():
                        write(rest)
                    return
                except STREAM_BROKEN as exc:
                    delay = cursor.retry_delay(exc)
                    if delay is None:
                        raise
                    await anyio.sleep(delay)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None


# --- the client the aio functions use ------------------------------------------------

_installed: contextvars.ContextVar[AsyncApiClient | None] = contextvars.ContextVar(
    "skyhop_aio_client", default=None
)


@contextlib.contextmanager
def using(client: AsyncApiClient) -> Iterator[AsyncApiClient]:
    """Make the :mod:`skyhop.aio` functions use ``client`` inside the ``with`` block.

    Tasks started inside the block (nursery children, ``asyncio`` tasks) inherit it.
    The caller keeps ownership: close it with ``await client.aclose()``.
    """
    token = _installed.set(client)
    try:
        yield client
    finally:
        _installed.reset(token)


@contextlib.asynccontextmanager
async def session() -> AsyncIterator[AsyncApiClient]:
    """The installed client, else a fresh one for the endpoint, closed on exit."""
    installed = _installed.get()
    if installed is not None:
        yield installed
        return
    client = AsyncApiClient()
    try:
        yield client
    finally:
        await client.aclose()
