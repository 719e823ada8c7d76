"""Clusters (``skyhop status``), a cluster's jobs (``queue``) and a job's live log.

Cost so far is an estimate: the backend's hourly price for the cluster's instance type
and place (asked once per kind and cached) times its nodes times the hours since it was
launched, for an UP cluster.
"""

from __future__ import annotations

import time
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from skyhop_core import wire
from skyhop_core.dashboard import fmt
from skyhop_core.dashboard.context import Dashboard
from skyhop_core.dashboard.registry import Page
from skyhop_core.dashboard.session import action, flash, guarded
from skyhop_core.models.records import ClusterRecord, JobRecord
from skyhop_core.requests.context import User

#: How long a stop/down/cancel action waits for its request before answering.
ACTION_WAIT_SECONDS = 10.0


def _infra(record: ClusterRecord) -> str:
    handle = record.handle
    place = [p for p in (getattr(handle, "region", None), getattr(handle, "zone", None)) if p]
    return f"{record.backend} ({', '.join(place)})" if place else record.backend


def _reason(record: ClusterRecord) -> str:
    meta = record.metadata or {}
    operation = meta.get("operation")
    if operation:
        return f"{operation.get('op')} in progress: {operation.get('phase')}"
    return str(meta.get("status_reason") or "")


async def _hourly_price(dash: Dashboard, record: ClusterRecord) -> float | None:
    """The cluster's price per node-hour, from its backend's offers (cached)."""
    handle = record.handle
    if handle is None:
        return None
    key = (record.backend, handle.instance_type, handle.region, handle.use_spot)
    prices: dict[Any, float | None] = dash.cache.setdefault("prices", {})
    if key in prices:
        return prices[key]
    from skyhop_core.models.resources import Resources

    price = None
    with trio.move_on_after(3):
        try:
            resources = Resources(
                infra="/".join(p for p in (record.backend, handle.region) if p),
                instance_type=handle.instance_type or None,
            )
            offers = await dash.services.backends.call(
                record.backend, "skyhop_offers",
                ctx=dash.services.backend_ctx(record.backend), resources=resources,
            )
            if offers:
                price = offers[0].hourly_cost(handle.use_spot)
        except Exception:
            price = None
    prices[key] = price
    return price


async def _row(dash: Dashboard, record: ClusterRecord, now: float) -> dict[str, Any]:
    """The fields the table shows, and nothing else."""
    nodes = len(record.handle.nodes) if record.handle is not None else 0
    price = await _hourly_price(dash, record)
    up_hours = max(0.0, now - record.launched_at) / 3600 if record.launched_at else 0.0
    cost = None
    if price is not None:
        cost = price * nodes * up_hours if record.status.value == "UP" else 0.0
    autostop = "-"
    if record.autostop is not None and record.autostop >= 0:
        autostop = f"{record.autostop}m" + (" (down)" if record.to_down else "")
    return {
        "name": record.name,
        "user": record.user_name,
        "infra": _infra(record),
        "resources": record.resources_str or "-",
        "nodes": nodes,
        "status": record.status.value,
        "reason": _reason(record),
        "autostop": autostop,
        "launched_at": record.launched_at,
        "hourly": None if price is None else price * nodes,
        "cost": cost,
    }


def _all_users(request: Request, dash: Dashboard, user: User) -> bool:
    return request.query_params.get("all_users") == "true" and dash.may_see_all(user)


async def clusters_table(dash: Dashboard, request: Request, user: User) -> dict[str, Any]:
    all_users = _all_users(request, dash, user)
    error = None
    records: list[ClusterRecord] = []
    try:
        records = await dash.read(user, "status", {"all_users": all_users})
    except Exception as exc:
        error = wire.encode_error(exc)["message"]
    paging = fmt.Paging.from_query(request.query_params, len(records))
    now = time.time()
    rows = [await _row(dash, r, now) for r in paging.slice(records)]
    return {"rows": rows, "paging": paging, "all_users": all_users, "error": error}


def _job_row(job: JobRecord, now: float) -> dict[str, Any]:
    started, ended = job.start_at, job.end_at
    return {
        "job_id": job.job_id,
        "name": job.job_name or "-",
        "user": job.username,
        "submitted_at": job.submitted_at,
        "duration": None if not started else (ended or now) - started,
        "resources": job.resources or "-",
        "status": job.status.value,
        "finished": job.status.is_terminal(),
    }


async def jobs_table(dash: Dashboard, request: Request, user: User) -> dict[str, Any]:
    cluster = request.path_params["name"]
    all_users = _all_users(request, dash, user)
    error = None
    jobs: list[JobRecord] = []
    try:
        jobs = await dash.read(user, "queue", {"cluster_name": cluster, "all_users": all_users})
    except Exception as exc:
        error = wire.encode_error(exc)["message"]
    jobs.sort(key=lambda j: -j.job_id)
    paging = fmt.Paging.from_query(request.query_params, len(jobs))
    now = time.time()
    rows = [_job_row(j, now) for j in paging.slice(jobs)]
    return {
        "cluster": cluster, "rows": rows, "paging": paging, "all_users": all_users,
        "error": error,
    }


async def _act(dash: Dashboard, user: User, operation: str, body: dict[str, Any],
               done: str) -> Response:
    """Submit an action's request; say how it went (or that it still runs)."""
    try:
        request_id = await dash.submit(user, operation, body)
    except Exception as exc:
        return flash(wire.encode_error(exc)["message"], "bad")
    row = await dash.outcome(request_id, ACTION_WAIT_SECONDS)
    if row is None:
        return flash(f"{operation} is running:", "run", request_id)
    if row.status != "SUCCEEDED":
        message = (row.error or {}).get("message") or row.status
        return flash(f"{operation} {row.status}: {message}", "bad", request_id)
    return flash(done, "ok", request_id)


def routes(dash: Dashboard) -> list[Route]:
    async def page(request: Request, user: User) -> Response:
        """The clusters page (``?fragment=table``: only its table, for refreshes)."""
        table = await clusters_table(dash, request, user)
        fragment = request.query_params.get("fragment") == "table"
        return dash.render(request, "clusters_table.html" if fragment else "clusters.html",
                           **table)

    async def cluster_page(request: Request, user: User) -> Response:
        """A cluster's jobs (``?fragment=table``: only the table)."""
        table = await jobs_table(dash, request, user)
        fragment = request.query_params.get("fragment") == "table"
        return dash.render(request, "jobs_table.html" if fragment else "cluster.html", **table)

    async def job_page(request: Request, user: User) -> Response:
        cluster, job_id = request.path_params["name"], request.path_params["job_id"]
        # Its row comes from the cluster's queue: everyone's, for a viewer who may see
        # everyone's (whose log stream the API allows too).
        return dash.render(request, "job.html", cluster=cluster, job_id=job_id,
                           all_users=dash.may_see_all(user))

    async def stop(request: Request, user: User) -> Response:
        name = request.path_params["name"]
        return await _act(dash, user, "stop", {"cluster_name": name}, f"Cluster {name} is STOPPED.")

    async def down(request: Request, user: User) -> Response:
        name = request.path_params["name"]
        return await _act(dash, user, "down", {"cluster_name": name},
                          f"Cluster {name} is terminated.")

    async def cancel_job(request: Request, user: User) -> Response:
        name, job_id = request.path_params["name"], request.path_params["job_id"]
        return await _act(dash, user, "cancel", {"cluster_name": name, "job_ids": [job_id]},
                          f"Cancelled job {job_id} on {name}.")

    return [
        Route("/clusters", guarded(dash, page), methods=["GET"]),
        Route("/clusters/{name}", guarded(dash, cluster_page), methods=["GET"]),
        Route("/clusters/{name}/jobs/{job_id:int}", guarded(dash, job_page), methods=["GET"]),
        Route("/clusters/{name}/stop", action(dash, stop), methods=["POST"]),
        Route("/clusters/{name}/down", action(dash, down), methods=["POST"]),
        Route("/clusters/{name}/jobs/{job_id:int}/cancel", action(dash, cancel_job),
              methods=["POST"]),
    ]


PAGE = Page("clusters", "Clusters", routes)
