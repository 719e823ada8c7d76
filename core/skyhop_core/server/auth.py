"""Who is calling: bearer tokens on a deployed server, identity headers on a local one.

:class:`AuthMiddleware` (pure ASGI, so streamed responses pass through untouched) puts
the caller's :class:`~skyhop_core.requests.context.User` in the ASGI scope; routes read
it with :func:`current_user`.

- A **local** server (the default) trusts ``X-Skyhop-User`` / ``X-Skyhop-User-Hash``: it
  binds loopback and serves the one person on this machine.
- A **deployed** server (``--deploy``) ignores those headers. Identity comes only from
  ``Authorization: Bearer <token>`` (a service-account token, see
  :mod:`skyhop_core.state.tokens`): the user name is the token's name and the user hash
  the token row's, and the role (``user``/``admin``) the token's. A missing, unknown or
  revoked token gets ``401`` with a NotAuthenticatedError body. ``/api/health`` stays
  open (saying only that the server is up and its version), and names the caller when
  a valid token comes with it.
- The **dashboard** (``/dashboard/...``) on a deployed server also takes the token from
  its session cookie (:data:`SESSION_COOKIE`, set by its login form), and is never
  refused here: its pages send an anonymous browser to the login form themselves. The
  cookie counts for nothing outside ``/dashboard``.
"""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from typing import Any

from skyhop_core import exceptions, wire
from skyhop_core.requests.context import User
from skyhop_core.state import tokens
from skyhop_core.state.db import Store

Scope = dict[str, Any]
Receive = Any
Send = Any

#: Where the caller goes in the ASGI scope.
USER_KEY = "skyhop.user"
#: Routes a deployed server answers without a token.
OPEN_PATHS = frozenset({"/api/health", "/api/openapi.json"})

#: The dashboard's pages (see :mod:`skyhop_core.dashboard.session`).
DASHBOARD_PREFIX = "/dashboard"
#: The dashboard's session cookie: the bearer token, for ``/dashboard`` paths only.
SESSION_COOKIE = "skyhop_dashboard_token"

LOGIN_HINT = "skyhop api login -e {endpoint} --token <TOKEN>"


def current_user(scope_or_request: Any) -> User | None:
    """The caller the middleware found (None: anonymous, only on open routes)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    user = scope.get(USER_KEY)
    return user if isinstance(user, User) else None


def header_user(headers: dict[str, str]) -> User | None:
    """The identity a local client claims in its headers (None if it sent none)."""
    name = headers.get("x-skyhop-user")
    user_hash = headers.get("x-skyhop-user-hash")
    if not name and not user_hash:
        return None
    return User((name or "unknown")[:128], (user_hash or "unknown")[:64])


def bearer_token(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def cookie_token(headers: dict[str, str]) -> str | None:
    """The dashboard's session token from the Cookie header, if any."""
    raw = headers.get("cookie")
    if not raw:
        return None
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(raw)
    except Exception:  # a malformed header is no session
        return None
    morsel = cookies.get(SESSION_COOKIE)
    if morsel is None:
        return None
    return morsel.value.strip() or None


def _is_dashboard(path: str) -> bool:
    return path == DASHBOARD_PREFIX or path.startswith(DASHBOARD_PREFIX + "/")


def _endpoint(scope: Scope, headers: dict[str, str]) -> str:
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("<server>", None)
        host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
    return f"{scope.get('scheme', 'http')}://{host}"


class AuthMiddleware:
    """Resolve the caller of every HTTP request; refuse anonymous ones when deployed."""

    def __init__(self, app: Any, *, store: Store, deploy: bool) -> None:
        self.app = app
        self.store = store
        self.deploy = deploy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or await self.identify(scope, send):
            await self.app(scope, receive, send)

    async def identify(self, scope: Scope, send: Send) -> bool:
        """Put the caller in ``scope``; False if refused (the 401 is sent already)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.deploy:
            scope[USER_KEY] = header_user(headers) or User("unknown", "unknown")
            return True
        dashboard = _is_dashboard(scope.get("path", ""))
        token = bearer_token(headers) or (cookie_token(headers) if dashboard else None)
        # The request path's writer: a quick lookup with no thread hop on a quiet server.
        record = await self.store.write(tokens.authenticate, token) if token else None
        if record is not None:
            scope[USER_KEY] = User(record.name, record.user_hash, record.role)
        elif not dashboard and scope.get("path") not in OPEN_PATHS:
            await self._refuse(scope, headers, send, has_token=token is not None)
            return False
        return True

    async def _refuse(
        self, scope: Scope, headers: dict[str, str], send: Send, *, has_token: bool
    ) -> None:
        endpoint = _endpoint(scope, headers)
        what = "The token you sent is invalid or revoked" if has_token else "No token was sent"
        error = exceptions.NotAuthenticatedError(
            f"This API server ({endpoint}) requires authentication: {what}. Ask its "
            f"administrator for a token (skyhop api tokens create NAME), then run: "
            + LOGIN_HINT.format(endpoint=endpoint)
        )
        body = json.dumps({"error": wire.encode_error(error)}).encode()
        # A WebSocket is refused before its upgrade with the same answer (ASGI's
        # websocket.http.response extension, which hypercorn has).
        kind = "websocket.http.response" if scope["type"] == "websocket" else "http.response"
        await send(
            {
                "type": f"{kind}.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="skyhop"'),
                ],
            }
        )
        await send({"type": f"{kind}.body", "body": body})
