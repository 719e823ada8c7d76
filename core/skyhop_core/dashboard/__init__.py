"""The web dashboard the API server serves under ``/dashboard``.

Server-rendered HTML (Jinja2, autoescaped) plus htmx (vendored in ``static/`` with its
licence) for the live parts: tables re-fetch their own fragment every few seconds, pages
and filters are links htmx swaps in place, actions are ``hx-post`` buttons behind a
confirmation. Logs stream as server-sent events (``sse``), read in the browser by a small
script (``static/dashboard.js``) that appends text nodes, never HTML.

Every page is a module in :mod:`skyhop_core.dashboard.pages` registered in
:data:`skyhop_core.dashboard.registry.PAGE_MODULES`. Nothing here is imported when the server starts; the server's
:class:`~skyhop_core.server.app.LazyDashboard` imports :func:`build_dashboard` on the
first ``/dashboard`` request.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from skyhop_core.requests.engine import Engine

#: Where the server mounts the dashboard.
PREFIX = "/dashboard"


def build_dashboard(engine: Engine, *, deploy: bool) -> Starlette:
    """The dashboard's ASGI app (mounted at :data:`PREFIX`)."""
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from skyhop_core.dashboard import registry, session, sse
    from skyhop_core.dashboard.context import Dashboard

    dash = Dashboard(engine, deploy=deploy)
    dash.templates.globals["pages"] = registry.pages()

    async def home(request: Any) -> Any:
        return RedirectResponse(f"{PREFIX}/{registry.pages()[0].slug}", status_code=303)

    static = str(Path(__file__).parent / "static")
    routes: list[Any] = [
        Route("/", home, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=static), name="static"),
        *session.routes(dash),
        *sse.routes(dash),
    ]
    for page in registry.pages():
        routes.extend(page.routes(dash))
    return Starlette(routes=routes)
