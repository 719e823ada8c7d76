"""The enabled backends (``skyhop check``): which can be used, and how to fix the rest."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from skyhop_core import wire
from skyhop_core.dashboard.context import Dashboard
from skyhop_core.dashboard.registry import Page
from skyhop_core.dashboard.session import guarded
from skyhop_core.requests.context import User


def routes(dash: Dashboard) -> list[Route]:
    async def page(request: Request, user: User) -> Response:
        results, error = [], None
        try:
            results = await dash.read(user, "check", {})
        except Exception as exc:
            error = wire.encode_error(exc)["message"]
        return dash.render(request, "backends.html", results=results, error=error)

    return [Route("/backends", guarded(dash, page), methods=["GET"])]


PAGE = Page("backends", "Backends", routes)
