"""Signing in to the dashboard, and the guards every page and action goes through.

On a deployed server the dashboard needs the same bearer token as the API. The login
form checks it and keeps it in a session cookie (no expiry: it lasts as long as the
browser session; ``HttpOnly`` so page scripts cannot read it; ``SameSite=Strict`` and
``Path=/dashboard``, so it is sent only by the dashboard's own pages, and only to the
dashboard: the JSON API never accepts it). :mod:`skyhop_core.server.auth` turns the
cookie back into the token's user.

Actions are POSTs that must carry htmx's ``HX-Request`` header (a cross-site form
cannot set it, and a cross-site script would need a CORS preflight this server never
grants) and, when the browser sends ``Origin``, come from this server's own origin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from skyhop_core.dashboard import PREFIX
from skyhop_core.dashboard.context import Dashboard
from skyhop_core.requests.context import User
from skyhop_core.server.auth import SESSION_COOKIE
from skyhop_core.state import tokens

PageHandler = Callable[[Request, User], Awaitable[Response]]


def login_url(next_path: str | None = None) -> str:
    return f"{PREFIX}/login" + (f"?next={quote(next_path)}" if next_path else "")


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    if value and value.startswith(f"{PREFIX}/") and not value.startswith("//"):
        return value
    return f"{PREFIX}/"


def guarded(dash: Dashboard, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """``handler(request, user)`` for a signed-in viewer; others go to the login form
    (an htmx fragment request is told to redirect the whole page)."""

    async def route(request: Request) -> Response:
        user = dash.viewer(request)
        if user is None:
            query = request.url.query
            target = login_url(request.url.path + (f"?{query}" if query else ""))
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        return await handler(request, user)

    return route


def action(dash: Dashboard, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """A guarded POST that also refuses cross-site submissions (see the module doc)."""

    async def checked(request: Request, user: User) -> Response:
        problem = cross_site_problem(request)
        if problem:
            return HTMLResponse(f'<div class="flash bad">{problem}</div>', status_code=403)
        return await handler(request, user)

    return guarded(dash, checked)


def cross_site_problem(request: Request) -> str | None:
    if request.headers.get("hx-request") != "true":
        return "Actions are taken from the dashboard's own buttons (HX-Request is missing)."
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin and origin != own:
        return "Refused: this action came from another site."
    return None


async def form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the first value of each field)."""
    body = (await request.body())[:65536].decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def routes(dash: Dashboard) -> list[Route]:
    async def login_form(request: Request) -> Response:
        return dash.render(
            request, "login.html", next=_safe_next(request.query_params.get("next")),
            error=None,
        )

    async def login(request: Request) -> Response:
        fields = await form(request)
        next_path = _safe_next(fields.get("next"))
        token = fields.get("token", "").strip()
        if not dash.deploy:
            return RedirectResponse(next_path, status_code=303)
        record = await dash.services.store.run(tokens.authenticate, token) if token else None
        if record is None:
            error = "That token is not valid (unknown or revoked)." if token else "Enter a token."
            return dash.render(
                request, "login.html", status_code=401, next=next_path, error=error, user=None
            )
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            SESSION_COOKIE, token, path=PREFIX, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse(login_url(), status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]


def flash(message: str, kind: str = "ok", request_id: str | None = None) -> HTMLResponse:
    """The line an action answers with (into the page's flash area); the tables
    refresh at once (``HX-Trigger: refresh``)."""
    from markupsafe import escape

    link = (
        f' <a href="{PREFIX}/requests/{escape(request_id)}">request {escape(request_id[:8])}</a>'
        if request_id
        else ""
    )
    html = f'<div class="flash {escape(kind)}">{escape(message)}{link}</div>'
    return HTMLResponse(html, headers={"HX-Trigger": "refresh"})


def any_value(query: Any, name: str) -> str:
    """A query parameter, stripped, '' when absent."""
    return str(query.get(name) or "").strip()
