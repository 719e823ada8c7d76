"""Requests (``skyhop api status -a``) filtered by status, user and name; a request's
live log; cancel."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from skyhop_core import wire
from skyhop_core.dashboard import queries
from skyhop_core.dashboard.context import Dashboard
from skyhop_core.dashboard.registry import Page
from skyhop_core.dashboard.session import action, any_value, flash, guarded
from skyhop_core.models.status import RequestStatus
from skyhop_core.requests.context import User

STATUSES = [s.value for s in RequestStatus]


def _view(row: Any) -> dict[str, Any]:
    """The fields the table shows."""
    end = row.finished_at
    error = row.error or None
    return {
        "request_id": row.request_id,
        "name": row.name,
        "user": row.user_name,
        "cluster": row.cluster_name or "-",
        "status": row.status,
        "finished": RequestStatus(row.status).is_terminal(),
        "created_at": row.created_at,
        "duration": (end - row.started_at) if end and row.started_at else None,
        "error": f"{error['type']}: {error['message']}" if error else "",
    }


async def requests_table(dash: Dashboard, request: Request, user: User) -> dict[str, Any]:
    q = request.query_params
    user_name = any_value(q, "user")
    name = any_value(q, "name")
    statuses = [s for s in q.getlist("status") if s in STATUSES]
    all_users = dash.may_see_all(user) and (q.get("all_users") == "true" or bool(user_name))
    paging, rows = await dash.services.store.run(
        lambda c: queries.requests_page(
            c, user_hash=None if all_users else user.hash, statuses=statuses,
            user_name=user_name, name=name, query=q,
        )
    )
    return {
        "rows": [_view(r) for r in rows],
        "paging": paging,
        "statuses": STATUSES,
        "chosen": statuses,
        "filter_user": user_name,
        "filter_name": name,
        "all_users": all_users,
    }


def routes(dash: Dashboard) -> list[Route]:
    async def page(request: Request, user: User) -> Response:
        """Requests (``?fragment=table``: only the table)."""
        table = await requests_table(dash, request, user)
        fragment = request.query_params.get("fragment") == "table"
        return dash.render(request, "requests_table.html" if fragment else "requests.html",
                           **table)

    async def request_page(request: Request, user: User) -> Response:
        view, error = None, None
        try:
            request_id = await dash.engine.resolve(
                request.path_params["request_id"], dash.owner_scope(user)
            )
            row = await dash.services.store.run(queries.request_row, request_id)
            view = _view(row) if row is not None else None
        except Exception as exc:
            error = wire.encode_error(exc)["message"]
        fragment = request.query_params.get("fragment") == "status"
        return dash.render(
            request, "request_status.html" if fragment else "request.html",
            req=view, error=error, status_code=200 if view else 404,
        )

    async def cancel(request: Request, user: User) -> Response:
        from skyhop_core.ops.requests_cancel import check_foreign

        engine = dash.engine
        try:
            request_id = await engine.resolve(
                request.path_params["request_id"], dash.owner_scope(user)
            )
            if not dash.deploy:
                await check_foreign(engine, [request_id], user)
            cancelled, _ = await engine.cancel([request_id])
        except Exception as exc:
            return flash(wire.encode_error(exc)["message"], "bad")
        if cancelled:
            return flash(f"Cancelled request {request_id[:8]}.", "ok", request_id)
        return flash(f"Request {request_id[:8]} had already finished.", "off", request_id)

    return [
        Route("/requests", guarded(dash, page), methods=["GET"]),
        Route("/requests/{request_id}", guarded(dash, request_page), methods=["GET"]),
        Route("/requests/{request_id}/cancel", action(dash, cancel), methods=["POST"]),
    ]


PAGE = Page("requests", "Requests", routes)
