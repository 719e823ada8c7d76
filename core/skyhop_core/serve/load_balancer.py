"""A service's load balancer: an ASGI reverse proxy served by hypercorn in the API server.

- One endpoint per service, on a port from ``SKYHOP_SERVE_PORTS``; hypercorn (under
  trio, in the service's nursery) speaks HTTP to clients, httpx to the replicas. Every
  method is proxied; request and response bodies stream both ways (chunked and SSE
  responses arrive as the replica produces them); WebSocket upgrades pass through
  (:mod:`.websocket`).
- The ready set is set in-process by the controller the moment a probe changes it
  (:meth:`LoadBalancer.set_ready`), so a dead replica stops getting traffic at once.
- A replica that refuses the connection (before any byte of a response) is reported to
  the controller, which probes it at once, and the request goes to another ready
  replica; any later failure is a 502 (the request may have had effects). With no ready
  replica the answer is a 503 saying so.
- Each request's arrival time is kept for a sliding window: the autoscaler's QPS. The
  controller saves the window in the service's row each round as counts per
  1/:data:`WINDOW_STEPS` of it (:meth:`LoadBalancer.saved_window`), and a restarted or new
  owner starts from it (:meth:`LoadBalancer.restore_window`): a loaded service is not
  scaled down because its server restarted.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import trio

from skyhop_core.serve.policies import make_policy

#: Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus those the
#: proxy's own HTTP stacks set.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "host", "date", "server",
})
#: How long connecting to a replica may take before another one is tried.
CONNECT_TIMEOUT = 5.0
#: The saved QPS window is this many counts.
WINDOW_STEPS = 30


def _headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in raw if k.decode("latin-1").lower() not in HOP_BY_HOP]


class LoadBalancer:
    """The proxy of one service; call :meth:`set_ready` as readiness changes."""

    def __init__(
        self,
        service_name: str,
        policy: str,
        *,
        qps_window: float = 60.0,
        on_connect_failure: Callable[[int], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.service_name = service_name
        self.policy = make_policy(policy)
        self.qps_window = qps_window
        self.on_connect_failure = on_connect_failure or (lambda _rid: None)
        self.log = log or (lambda _m: None)
        #: replica ID -> "host:port", READY and not draining.
        self.ready: dict[int, str] = {}
        self._ready_ids: list[int] = []
        self.arrivals: collections.deque[float] = collections.deque()
        # One connection pool per replica: a pooled connection never outlives its
        # replica, so a new replica at a reused address gets fresh connections.
        self._clients: dict[int, httpx.AsyncClient] = {}
        #: The SSL context every new TLS connection is wrapped with (None: plain HTTP).
        self.tls_context: Any = None

    # --- what the controller sees and sets ---------------------------------------------

    def use_certificate(self, certfile: str, keyfile: str) -> None:
        """Serve new TLS connections with this certificate and key (connections already
        open keep theirs). Check the pair first (:func:`.tls.load`): a pair that fails
        here half-way could leave the context with a certificate and the old key."""
        if self.tls_context is None:
            raise RuntimeError(f"the load balancer of {self.service_name!r} does not speak TLS")
        self.tls_context.load_cert_chain(certfile=certfile, keyfile=keyfile)

    def set_ready(self, ready: dict[int, str]) -> None:
        if ready != self.ready:
            self.log(f"Ready replicas: {sorted(ready) or 'none'}.")
        self.ready = dict(ready)
        self._ready_ids = sorted(ready)

    def qps(self, now: float | None = None) -> float:
        """Requests per second over the sliding window."""
        now = time.monotonic() if now is None else now
        cutoff = now - self.qps_window
        while self.arrivals and self.arrivals[0] < cutoff:
            self.arrivals.popleft()
        return len(self.arrivals) / self.qps_window

    def saved_window(self) -> dict[str, Any]:
        """The window as ``{"at": wall time, "step": s, "counts": [...]}``, where
        ``counts[i]`` requests arrived between ``i`` and ``i + 1`` steps before ``at``."""
        now = time.monotonic()
        self.qps(now)  # drops what left the window
        step = self.qps_window / WINDOW_STEPS
        counts = [0] * WINDOW_STEPS
        for arrival in self.arrivals:
            counts[min(WINDOW_STEPS - 1, int((now - arrival) / step))] += 1
        while counts and not counts[-1]:
            counts.pop()
        return {"at": time.time(), "step": step, "counts": counts}

    def restore_window(self, saved: Any) -> None:
        """Start from a window :meth:`saved_window` returned (perhaps in another process:
        wall-clock ages); what has left the window since is dropped."""
        if not isinstance(saved, dict) or not isinstance(saved.get("counts"), list):
            return
        try:
            now, age0, step = time.monotonic(), time.time() - float(saved["at"]), \
                float(saved["step"])
        except (KeyError, TypeError, ValueError):
            return
        restored: list[float] = []
        for i in range(len(saved["counts"]) - 1, -1, -1):  # oldest first
            age = age0 + (i + 0.5) * step
            count = saved["counts"][i]
            if 0 <= age < self.qps_window and isinstance(count, int) and count > 0:
                restored.extend([now - age] * count)
        self.arrivals = collections.deque(restored + list(self.arrivals))

    def in_flight(self, replica_id: int) -> int:
        return self.policy.load(replica_id)

    def _client(self, replica_id: int) -> httpx.AsyncClient:
        client = self._clients.get(replica_id)
        if client is None:
            client = self._clients[replica_id] = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
                trust_env=False,
                follow_redirects=False,
            )
        return client

    async def _close_gone(self) -> None:
        """Close the pools of replicas that left the ready set and have no request left."""
        for replica_id in [r for r in self._clients
                           if r not in self.ready and not self.policy.load(r)]:
            client = self._clients.pop(replica_id)
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            for client in self._clients.values():
                await client.aclose()
            self._clients.clear()

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            from skyhop_core.serve.websocket import proxy_websocket

            self.arrivals.append(time.monotonic())
            await proxy_websocket(self, scope, receive, send)
        elif scope["type"] == "http":
            self.arrivals.append(time.monotonic())
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def error(self, send: Any, status: int, message: str) -> None:
        body = json.dumps({"error": message, "service": self.service_name}).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})

    def no_ready_message(self) -> str:
        return (f"Service {self.service_name!r} has no ready replica right now; "
                f"see `skyhop serve status {self.service_name}`.")

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = _headers(scope["headers"])
        names = {k.lower() for k, _ in scope["headers"]}
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", client[0].encode()))
        content: Any
        if b"content-length" in names or b"transfer-encoding" in names:
            content = _body(receive)
        else:
            content = b""  # no body: do not send an empty chunked one
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        tried: set[int] = set()
        while True:
            replica_id = self.policy.choose(self._ready_ids, tried)
            if replica_id is None:
                if tried:
                    await self.error(send, 502, f"Could not connect to any ready replica of "
                                     f"service {self.service_name!r}.")
                else:
                    await self.error(send, 503, self.no_ready_message())
                return
            tried.add(replica_id)
            endpoint = self.ready.get(replica_id)
            if endpoint is None:
                continue
            self.policy.acquire(replica_id)
            client = self._client(replica_id)
            try:
                request = client.build_request(
                    scope["method"], f"http://{endpoint}{target.decode('latin-1')}",
                    headers=headers, content=content,
                )
                try:
                    response = await client.send(request, stream=True)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    # Nothing reached the replica: another one may take the request.
                    self.log(f"Replica {replica_id} ({endpoint}) refused a connection: {exc}.")
                    self.on_connect_failure(replica_id)
                    continue
                except httpx.HTTPError as exc:
                    self.log(f"Replica {replica_id} ({endpoint}) failed a request: {exc!r}.")
                    await self.error(send, 502, f"Replica {replica_id} of service "
                                     f"{self.service_name!r} failed: {type(exc).__name__}.")
                    return
                try:
                    await self._relay(response, send)
                finally:
                    await response.aclose()
                return
            finally:
                self.policy.release(replica_id)
                if len(self._clients) > len(self.ready):
                    await self._close_gone()

    async def _relay(self, response: httpx.Response, send: Any) -> None:
        raw = [(k.lower(), v) for k, v in response.headers.raw]
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": _headers(raw)})
        try:
            async for chunk in response.aiter_raw():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
        except httpx.HTTPError as exc:
            # The replica broke off mid-body: end the response (the client sees it short).
            self.log(f"A replica broke off a response: {exc!r}.")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _body(receive: Any) -> AsyncIterator[bytes]:
    """The request's body as it arrives (streamed to the replica)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _tls_config() -> Any:
    """hypercorn's Config whose SSL context is made once and kept: hypercorn's listener
    wraps every new connection with it, so a certificate loaded into it later
    (:meth:`LoadBalancer.use_certificate`) serves every new handshake."""
    from hypercorn.config import Config

    class KeptContext(Config):  # type: ignore[misc]
        _context: Any = None

        def create_ssl_context(self) -> Any:
            if self._context is None:
                self._context = super().create_ssl_context()
            return self._context

    return KeptContext()


async def serve_load_balancer(
    lb: LoadBalancer, host: str, port: int, *, tls: Any = None,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``lb`` on ``host:port`` with hypercorn until cancelled."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    from skyhop_core.server.connguard import guard_connections

    guard_connections()  # a client's broken connection must not stop the service
    config = _tls_config() if tls is not None else Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.include_server_header = False
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = 75.0
    if tls is not None:
        config.certfile = tls.certfile
        config.keyfile = tls.keyfile
        lb.tls_context = config.create_ssl_context()
    try:
        await serve(lb, config, task_status=task_status)  # type: ignore[arg-type]
    finally:
        await lb.aclose()
