"""Managed jobs (``skyhop jobs queue``): status, recoveries, durations; a job's live
output and its controller's log; cancel."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from skyhop_core import wire
from skyhop_core.dashboard import queries
from skyhop_core.dashboard.context import Dashboard
from skyhop_core.dashboard.registry import Page
from skyhop_core.dashboard.session import action, flash, guarded
from skyhop_core.models.status import ManagedJobStatus
from skyhop_core.requests.context import User

STATUSES = [s.value for s in ManagedJobStatus]


def _view(record: dict[str, Any]) -> dict[str, Any]:
    """The fields the table shows."""
    status = ManagedJobStatus(record["status"])
    return {
        "job_id": record["job_id"],
        "name": record["job_name"],
        "user": record["user_name"],
        "resources": record["resources"],
        "submitted_at": record["submitted_at"],
        "duration": record["duration"],
        "job_duration": record["job_duration"],
        "recoveries": record["recovery_count"],
        "restarts": record["restart_count"],
        "status": status.value,
        "finished": status.is_terminal(),
        "cluster": record["cluster_name"],
        "infra": record["infra"] or "-",
        "details": record["failure_reason"] or record["details"] or "",
    }


async def managed_table(dash: Dashboard, request: Request, user: User) -> dict[str, Any]:
    from skyhop_core.ops.managed_jobs import _record

    q = request.query_params
    all_users = q.get("all_users") == "true" and dash.may_see_all(user)
    statuses = [s for s in q.getlist("status") if s in STATUSES]
    paging, rows = await dash.services.store.run(
        lambda c: queries.managed_page(
            c, user_hash=None if all_users else user.hash, statuses=statuses, query=q
        )
    )
    now = time.time()
    return {
        "rows": [_view(_record(r, now)) for r in rows],
        "paging": paging,
        "all_users": all_users,
        "statuses": STATUSES,
        "chosen": statuses,
    }


def routes(dash: Dashboard) -> list[Route]:
    async def page(request: Request, user: User) -> Response:
        """Managed jobs (``?fragment=table``: only the table)."""
        table = await managed_table(dash, request, user)
        fragment = request.query_params.get("fragment") == "table"
        return dash.render(request, "managed_table.html" if fragment else "managed.html",
                           **table)

    async def job_page(request: Request, user: User) -> Response:
        from skyhop_core.ops.managed_jobs import _record

        job_id = request.path_params["job_id"]
        view = None
        rows = await dash.services.store.run(
            lambda c: queries.managed_page(
                c, user_hash=None if dash.may_see_all(user) else user.hash, statuses=[],
                query={}, job_id=job_id,
            )
        )
        if rows[1]:
            view = _view(_record(rows[1][0], time.time()))
        fragment = request.query_params.get("fragment") == "status"
        return dash.render(request, "managed_status.html" if fragment else "managed_job.html",
                           job_id=job_id, job=view)

    async def cancel(request: Request, user: User) -> Response:
        job_id = request.path_params["job_id"]
        try:
            request_id = await dash.submit(user, "jobs_cancel", {"job_ids": [job_id]})
        except Exception as exc:
            return flash(wire.encode_error(exc)["message"], "bad")
        row = await dash.outcome(request_id, 2.0)
        if row is not None and row.status != "SUCCEEDED":
            message = (row.error or {}).get("message") or row.status
            return flash(f"Cancelling managed job {job_id} {row.status}: {message}", "bad",
                         request_id)
        return flash(f"Cancelling managed job {job_id}:", "ok", request_id)

    return [
        Route("/jobs", guarded(dash, page), methods=["GET"]),
        Route("/jobs/{job_id:int}", guarded(dash, job_page), methods=["GET"]),
        Route("/jobs/{job_id:int}/cancel", action(dash, cancel), methods=["POST"]),
    ]


PAGE = Page("jobs", "Managed jobs", routes)
