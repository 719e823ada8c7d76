"""The HTTP client between the SDK and the API server (docs/http-api.md).

:class:`ApiClient` wraps one ``httpx.Client``; it takes an injectable ``transport=`` so
tests drive it with ``httpx.MockTransport``. It finds the endpoint
(``SKYHOP_API_SERVER_ENDPOINT``, else ``api_server.endpoint`` in the config file, else
``http://127.0.0.1:46590``), sends the caller's identity with every call — the
``X-Skyhop-User`` headers a local server trusts, plus ``Authorization: Bearer <token>``
when a token is configured (``SKYHOP_API_TOKEN``, else ``api_server.token`` in the config
file; a deployed server accepts only that) — and on its first call makes sure a
compatible server answers:

- a loopback endpoint where nothing answers gets a local server started
  (:mod:`skyhop.localserver`);
- a server whose API version differs in the major part raises
  :class:`~skyhop_core.exceptions.ApiVersionMismatchError`;
- an unreachable remote server raises :class:`~skyhop_core.exceptions.ApiServerError`.

Error bodies (``{"error": {...}}``) are raised as the exception type the server raised.

The SDK functions use :func:`current_client`: the client installed by :func:`using`
(tests, embedding applications), else one cached client per endpoint.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import functools
import getpass
import hashlib
import ipaddress
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

import httpx

import skyhop_core
import skyhop_core.paths as paths
import skyhop_core.wire as wire
from skyhop_core import exceptions

DEFAULT_PORT = 46590
DEFAULT_ENDPOINT = f"http://127.0.0.1:{DEFAULT_PORT}"
#: How long to wait for a freshly started local server to answer /api/health.
SERVER_START_TIMEOUT = 20.0
_HEALTH_TIMEOUT = 3.0
_CALL_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
#: /api/get and /api/stream wait for the request to finish: no read timeout.
_WAIT_TIMEOUT = httpx.Timeout(None, connect=10.0)
#: How long a submission waits on the server for a short request to finish, so a read
#: is one round trip (``SKYHOP_SUBMIT_WAIT_SECONDS``; 0 turns it off).
DEFAULT_SUBMIT_WAIT = 0.25
#: Finished requests whose results came back with their submission, until ``get``.
_INLINE_RESULTS = 256


def submit_wait() -> float:
    """Seconds a submission asks the server to wait for the result (``?wait=``)."""
    value = os.environ.get("SKYHOP_SUBMIT_WAIT_SECONDS", "")
    try:
        seconds = float(value) if value else DEFAULT_SUBMIT_WAIT
    except ValueError:
        seconds = DEFAULT_SUBMIT_WAIT
    return min(max(seconds, 0.0), 60.0)


class RequestInterrupted(KeyboardInterrupt):
    """Ctrl+C while the client waited on a request; the request keeps running.

    It is a ``KeyboardInterrupt``, so code that does not care behaves as usual; the CLI
    uses ``request_id`` and ``endpoint`` to tell the user how to reattach or cancel.
    """

    def __init__(self, request_id: str, endpoint: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id
        self.endpoint = endpoint


def resolve_endpoint() -> str:
    """The API server endpoint: environment, then config file, then the local default."""
    endpoint = os.environ.get("SKYHOP_API_SERVER_ENDPOINT")
    if not endpoint:
        section = paths.load_config().get("api_server") or {}
        if isinstance(section, dict):
            endpoint = section.get("endpoint")
    return str(endpoint or DEFAULT_ENDPOINT).rstrip("/")


def endpoint_source() -> str:
    """Where :func:`resolve_endpoint` found the endpoint, for ``skyhop api info``:
    ``env SKYHOP_API_SERVER_ENDPOINT``, ``config <file>`` or ``default``."""
    if os.environ.get("SKYHOP_API_SERVER_ENDPOINT"):
        return "env SKYHOP_API_SERVER_ENDPOINT"
    section = paths.load_config().get("api_server") or {}
    if isinstance(section, dict) and section.get("endpoint"):
        if os.environ.get(paths.CONFIG_OVERRIDES_ENV):
            return f"config {paths.config_file()} with --config overrides"
        return f"config {paths.config_file()}"
    return "default"


def resolve_token() -> str | None:
    """The bearer token for a deployed server: ``SKYHOP_API_TOKEN``, then the config file."""
    token = os.environ.get("SKYHOP_API_TOKEN")
    if not token:
        section = paths.load_config().get("api_server") or {}
        if isinstance(section, dict):
            token = section.get("token")
    return str(token).strip() if token else None


def is_loopback(endpoint: str) -> bool:
    """Whether the endpoint's host is this machine (so the client may start a server)."""
    host = urlparse(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def identity() -> tuple[str, str]:
    """The caller's user name and a stable 8-hex-digit hash of ``user@hostname``."""
    user = getpass.getuser()
    digest = hashlib.sha256(f"{user}@{socket.gethostname()}".encode()).hexdigest()
    return user, digest[:8]


def _major(version: str) -> str:
    return str(version).split(".", 1)[0]


#: What breaks a log stream the client reconnects after (see :class:`LogCursor`).
STREAM_BROKEN = (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError, httpx.ConnectTimeout)


class LogCursor:
    """Where a stream of a request's log stands, for the sync and async clients alike.

    ``params`` is what to ask ``/api/stream`` for next: after a broken connection the
    stream resumes from the last byte received (the server resolves ``tail`` to a byte
    offset and says which in ``X-Skyhop-Log-Offset``). :meth:`text` turns chunks into
    text, dropping the NUL bytes the server sends as heartbeats and decoding UTF-8 across
    chunk boundaries.

    Reconnecting (:meth:`retry_delay`): a stream that broke after it started is resumed
    for as long as the server can be reached — a proxy that drops long connections every
    minute costs a reconnect each time, never the stream — with a backoff from
    :data:`FIRST_DELAY` doubling to :data:`MAX_DELAY`, reset whenever bytes arrive. Once
    the server refuses connections for :data:`UNREACHABLE_AFTER` seconds in a row, the
    error is raised. A first connection that fails is raised at once.
    """

    FIRST_DELAY = 0.1
    MAX_DELAY = 5.0
    UNREACHABLE_AFTER = 30.0

    def __init__(self, request_id: str, *, follow: bool, tail: int | None, offset: int) -> None:
        self.params: dict[str, Any] = {
            "request_id": request_id,
            "follow": "true" if follow else "false",
            "offset": offset,
        }
        if tail is not None:
            self.params["tail"] = tail
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._ever_started = False
        self._failures = 0
        self._unreachable_since: float | None = None
        self.reconnects = 0

    def started(self, headers: Mapping[str, str]) -> None:
        """A response began: continue from where the server says it started."""
        self.params["offset"] = int(headers.get("x-skyhop-log-offset", self.params["offset"]))
        self.params.pop("tail", None)
        self._ever_started = True
        self._unreachable_since = None

    def text(self, chunk: bytes) -> str:
        if chunk:
            self._failures = 0
        self.params["offset"] += len(chunk)
        return self._decoder.decode(chunk.replace(b"\0", b""))

    def rest(self) -> str:
        return self._decoder.decode(b"", final=True)

    def retry_delay(self, exc: Exception) -> float | None:
        """Seconds to wait before reconnecting after ``exc``; None: raise it."""
        if not self._ever_started:
            return None
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            now = time.monotonic()
            if self._unreachable_since is None:
                self._unreachable_since = now
            elif now - self._unreachable_since > self.UNREACHABLE_AFTER:
                return None
        delay = min(self.MAX_DELAY, self.FIRST_DELAY * (2**self._failures))
        self._failures += 1
        self.reconnects += 1
        return delay


class ClientBase:
    """What the sync :class:`ApiClient` and the async client share: no I/O here."""

    endpoint: str
    user_name: str
    user_hash: str
    token: str | None
    auto_start: bool
    start_timeout: float

    def _configure(
        self,
        endpoint: str | None,
        *,
        own_transport: bool,
        auto_start: bool,
        start_timeout: float,
        token: str | None,
    ) -> dict[str, str]:
        """Set the endpoint, identity and token; return the headers every call sends.

        A client given its own transport (tests) never starts a local server.
        """
        self.endpoint = (endpoint or resolve_endpoint()).rstrip("/")
        self.user_name, self.user_hash = identity()
        self.token = resolve_token() if token is None else (token or None)
        headers = {"X-Skyhop-User": self.user_name, "X-Skyhop-User-Hash": self.user_hash}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.auto_start = auto_start and not own_transport
        self.start_timeout = start_timeout
        self.submit_wait = submit_wait()
        self._inline: OrderedDict[str, dict[str, Any]] = OrderedDict()
        #: What identifies the caller (identity headers, the token): every call sends it.
        self.call_headers = headers
        return headers

    def _submit_path(self, operation: str) -> str:
        if self.submit_wait > 0:
            return f"/api/v1/{operation}?wait={self.submit_wait:g}"
        return f"/api/v1/{operation}"

    def _accepted(self, data: dict[str, Any]) -> str:
        """The request ID of a submission's answer; a finished request's outcome (a
        server that honoured ``?wait=``) is kept for :meth:`_inline_result`."""
        request_id = str(data["request_id"])
        if "status" in data:
            self._inline[request_id] = dict(data)
            while len(self._inline) > _INLINE_RESULTS:
                self._inline.popitem(last=False)
        return request_id

    def _inline_result(self, request_id: str) -> dict[str, Any] | None:
        """The outcome that came back with the submission, once (None: ask the server)."""
        return self._inline.pop(request_id, None)

    def _nothing_logged(self, request_id: str) -> bool:
        """Whether the request finished with its submission and logged nothing (so a
        stream of its log has nothing to show)."""
        done = self._inline.get(request_id)
        return done is not None and done.get("log_bytes") == 0

    def check_version(self, info: dict[str, Any]) -> None:
        """Raise ApiVersionMismatchError if the server's API major version differs."""
        server = str(info.get("api_version", "?"))
        client = skyhop_core.API_VERSION
        if _major(server) == _major(client):
            return
        raise exceptions.ApiVersionMismatchError(
            f"The API server at {self.endpoint} speaks API version {server} "
            f"(skyhop {info.get('version', '?')}), but this client speaks API version "
            f"{client} (skyhop {skyhop_core.__version__}). Install the same skyhop version "
            "as the server (pip install -U skyhop), or, for a local server, restart it "
            "with this client's version: skyhop api stop; skyhop api start"
        )

    def _unreachable(self, exc: Exception) -> exceptions.ApiServerError:
        return exceptions.ApiServerError(
            f"Could not reach the API server at {self.endpoint} ({type(exc).__name__}: "
            f"{exc}). Check that it is running and that the endpoint is right "
            f"(SKYHOP_API_SERVER_ENDPOINT, or api_server.endpoint in {paths.config_file()})."
        )

    def _raise_for_error(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        if isinstance(error, dict):
            raise wire.decode_error(error)
        raise exceptions.ApiServerError(
            f"The API server at {self.endpoint} answered {response.request.method} "
            f"{response.request.url.path} with HTTP {response.status_code}: "
            f"{response.text[:200]!r}"
        )


class ApiClient(ClientBase):
    """A synchronous client of one API server.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests);
    ``auto_start=False`` never starts a local server; ``token`` overrides
    :func:`resolve_token` (pass ``""`` to send none).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        auto_start: bool = True,
        start_timeout: float = SERVER_START_TIMEOUT,
        token: str | None = None,
    ) -> None:
        headers = self._configure(
            endpoint, own_transport=transport is not None, auto_start=auto_start,
            start_timeout=start_timeout, token=token,
        )  # fmt: skip
        self._checked = False
        self._http = httpx.Client(
            base_url=self.endpoint,
            transport=transport,
            timeout=_CALL_TIMEOUT,
            headers=headers,
            verify=_tls_verify(self.endpoint),
        )

    def close(self) -> None:
        self._http.close()

    # --- health and the local server -------------------------------------------------

    def health(self, timeout: float = _HEALTH_TIMEOUT) -> dict[str, Any]:
        """``GET /api/health`` without any checks; raises httpx errors as they are."""
        response = self._http.get("/api/health", timeout=timeout)
        self._raise_for_error(response)
        return dict(response.json())

    def is_up(self) -> bool:
        try:
            self.health()
        except (httpx.TransportError, exceptions.ApiServerError):
            return False
        return True

    def ensure_server(self) -> dict[str, Any]:
        """Make sure a compatible server answers (starting a local one if needed)."""
        try:
            info = self.health()
        except httpx.TransportError as exc:
            if not (is_loopback(self.endpoint) and self.auto_start):
                raise self._unreachable(exc) from None
            from skyhop.localserver import start_local_server

            start_local_server(self.endpoint, timeout=self.start_timeout)
            info = self.health()
        self.check_version(info)
        self._checked = True
        return info

    # --- calls -----------------------------------------------------------------------

    def call(self, method: str, path: str, *, wait: bool = False, **kwargs: Any) -> Any:
        """One JSON call; returns the decoded body, raises the decoded error."""
        if not self._checked:
            self.ensure_server()
        timeout = _WAIT_TIMEOUT if wait else _CALL_TIMEOUT
        try:
            try:
                response = self._http.request(method, path, timeout=timeout, **kwargs)
            except httpx.ConnectError:
                # The local server went away since the last call (``api stop``): the call
                # never reached it, so starting a new one and retrying once is safe.
                if not (self.auto_start and is_loopback(self.endpoint)):
                    raise
                self.ensure_server()
                response = self._http.request(method, path, timeout=timeout, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        self._raise_for_error(response)
        return response.json()

    def submit(self, operation: str, body: dict[str, Any]) -> str:
        """``POST /api/v1/<operation>``; returns the new request's ID.

        A task's local workdir and file-mount sources are uploaded first and the body
        names the uploads instead (see :mod:`skyhop.uploads`).
        """
        from skyhop.uploads import prepare_body

        body = prepare_body(self, operation, body)
        return self._accepted(self.call("POST", self._submit_path(operation), json=body))

    def get(self, request_id: str) -> dict[str, Any]:
        """``GET /api/get``: waits for the request to finish; returns the raw body (a
        request that finished while its submission waited needs no call)."""
        if (done := self._inline_result(request_id)) is not None:
            return done
        try:
            return dict(self.call("GET", "/api/get", wait=True, params={"request_id": request_id}))
        except KeyboardInterrupt:
            raise RequestInterrupted(request_id, self.endpoint) from None

    def stream(
        self,
        request_id: str,
        *,
        follow: bool = True,
        tail: int | None = None,
        offset: int = 0,
    ) -> Iterator[str]:
        """``GET /api/stream``: yields the request's log as text chunks.

        The server sends a NUL byte as a heartbeat on quiet streams; it is dropped here.
        If the connection breaks mid-stream, the stream resumes from the last byte
        received, for as long as the server can be reached (see :class:`LogCursor`).
        """
        if self._nothing_logged(request_id):
            return
        if not self._checked:
            self.ensure_server()
        cursor = LogCursor(request_id, follow=follow, tail=tail, offset=offset)
        try:
            while True:
                try:
                    with self._http.stream(
                        "GET", "/api/stream", params=cursor.params, timeout=_WAIT_TIMEOUT
                    ) as r:
                        if r.status_code >= 400:
                            r.read()
                            self._raise_for_error(r)
                        cursor.started(r.headers)
                        for chunk in r.iter_bytes():
                            if text := cursor.text(chunk):
                                yield text
                    if rest := cursor.rest():
                        yield rest
                    return
                except STREAM_BROKEN as exc:
                    delay = cursor.retry_delay(exc)
                    if delay is None:
                        raise
                    time.sleep(delay)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        except KeyboardInterrupt:
            raise RequestInterrupted(request_id, self.endpoint) from None

    def shutdown(self) -> None:
        """``POST /api/shutdown`` (a local server stops); a dropped connection is fine."""
        with contextlib.suppress(httpx.TransportError):
            response = self._http.post("/api/shutdown", timeout=5.0)
            self._raise_for_error(response)


# --- the client the SDK functions use ------------------------------------------------

_installed: contextvars.ContextVar[ApiClient | None] = contextvars.ContextVar(
    "skyhop_client", default=None
)


@functools.lru_cache(maxsize=8)
def _client_for(endpoint: str) -> ApiClient:
    return ApiClient(endpoint)


def current_client() -> ApiClient:
    """The client installed by :func:`using`, else the cached client for the endpoint."""
    installed = _installed.get()
    if installed is not None:
        return installed
    return _client_for(resolve_endpoint())


@contextlib.contextmanager
def using(client: ApiClient) -> Iterator[ApiClient]:
    """Make the SDK functions use ``client`` inside the ``with`` block."""
    token = _installed.set(client)
    try:
        yield client
    finally:
        _installed.reset(token)


def _tls_verify(endpoint: str) -> bool:
    """Verify certificates for https endpoints; a plain-http endpoint never uses TLS, and
    skipping the certificate store there saves ~0.1 s of every CLI command's start."""
    return endpoint.lower().startswith("https://")
