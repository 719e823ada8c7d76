"""Services (``skyhop serve status``): status, endpoint, replicas with their versions
and endpoints, recent QPS; a service's controller, load-balancer and replica logs
streaming live; Down.

The list pages over service names in SQL under the API's ownership rule (an admin sees
every user's, others their own), then reads that page's records through the
``serve_status`` handler as the viewer, so the page shows what ``serve status`` shows.
Recent QPS is the load balancer's rate over its sliding window
(``SKYHOP_SERVE_QPS_WINDOW_SECONDS``) as of the controller's last pass.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from skyhop_core import wire
from skyhop_core.dashboard import fmt
from skyhop_core.dashboard.context import Dashboard
from skyhop_core.dashboard.registry import Page
from skyhop_core.dashboard.session import action, flash, guarded
from skyhop_core.models.status import ReplicaStatus, ServiceStatus
from skyhop_core.requests.context import User

#: How long a Down waits for the service to be gone before answering "running".
DOWN_WAIT_SECONDS = 10.0


def _value(status: Any) -> str:
    return str(getattr(status, "value", status))


def _replica(info: dict[str, Any]) -> dict[str, Any]:
    status = ReplicaStatus(_value(info["status"]))
    return {
        "replica_id": info["replica_id"],
        "cluster": info["name"],
        "version": info["version"],
        "status": status.value,
        "endpoint": info.get("endpoint"),
        "launched_at": info.get("launched_at"),
        "spot": info.get("is_spot"),
        "reason": info.get("failure_reason") or "",
    }


def _view(record: dict[str, Any]) -> dict[str, Any]:
    """The fields the pages show, from a ``serve status`` record."""
    replicas = [_replica(i) for i in record["replica_info"]]
    replicas.sort(key=lambda r: r["replica_id"])
    status = ServiceStatus(_value(record["status"]))
    return {
        "name": record["name"],
        "user": record["user_name"],
        "status": status.value,
        "down": status in (ServiceStatus.SHUTTING_DOWN,),
        "endpoint": record["endpoint"],
        "version": record["version"],
        "active_versions": record["active_versions"],
        "policy": record["policy"],
        "lb_policy": record["load_balancing_policy"],
        "resources": record["requested_resources_str"],
        "uptime": record["uptime"],
        "qps": float((record.get("autoscaler") or {}).get("qps") or 0.0),
        "replicas": replicas,
        "ready": sum(r["status"] == ReplicaStatus.READY.value for r in replicas),
        "reason": record.get("failure_reason") or "",
    }


def _qps_window(dash: Dashboard) -> float:
    serve = getattr(dash.services, "serve", None)
    return float(serve.settings.qps_window) if serve is not None else 60.0


async def _records(dash: Dashboard, user: User, names: list[str]) -> list[dict[str, Any]]:
    if not names:
        return []
    records = await dash.read(user, "serve_status", {"service_names": names})
    order = {name: i for i, name in enumerate(names)}
    return sorted((_view(r) for r in records), key=lambda v: order.get(v["name"], 0))


async def services_table(dash: Dashboard, request: Request, user: User) -> dict[str, Any]:
    from skyhop_core.serve import state as ss

    error = None
    rows: list[dict[str, Any]] = []
    # The API's rule (ops.serve.serve_status): an admin sees every user's services.
    owner = None if user.is_admin else user.hash
    names = [r.name for r in await dash.services.store.run(
        lambda c: ss.list_rows(c, user_hash=owner))]
    paging = fmt.Paging.from_query(request.query_params, len(names))
    try:
        rows = await _records(dash, user, paging.slice(names))
    except Exception as exc:
        error = wire.encode_error(exc)["message"]
    return {"rows": rows, "paging": paging, "error": error, "all_users": user.is_admin,
            "window": _qps_window(dash)}


def routes(dash: Dashboard) -> list[Route]:
    async def page(request: Request, user: User) -> Response:
        """The services page (``?fragment=table``: only its table, for refreshes)."""
        table = await services_table(dash, request, user)
        fragment = request.query_params.get("fragment") == "table"
        return dash.render(request, "services_table.html" if fragment else "services.html",
                           **table)

    async def service_page(request: Request, user: User) -> Response:
        """A service: facts, replicas (``?fragment=status``: only those, for refreshes)
        and its logs; ``?replica=N`` picks the replica whose log is shown."""
        name = request.path_params["name"]
        service, error = None, None
        try:
            found = await _records(dash, user, [name])
            service = found[0] if found else None
        except Exception as exc:
            error = wire.encode_error(exc)["message"]
        chosen = fmt.positive_int(request.query_params.get("replica"))
        if service is not None and chosen is None and service["replicas"]:
            chosen = service["replicas"][0]["replica_id"]
        fragment = request.query_params.get("fragment") == "status"
        return dash.render(
            request, "service_status.html" if fragment else "service.html",
            name=name, service=service, error=error, replica=chosen,
            window=_qps_window(dash), now=time.time(),
        )

    async def down(request: Request, user: User) -> Response:
        name = request.path_params["name"]
        try:
            request_id = await dash.submit(user, "serve_down", {"service_names": [name]})
        except Exception as exc:
            return flash(wire.encode_error(exc)["message"], "bad")
        row = await dash.outcome(request_id, DOWN_WAIT_SECONDS)
        if row is None:
            return flash(f"Service {name} is shutting down:", "run", request_id)
        if row.status != "SUCCEEDED":
            message = (row.error or {}).get("message") or row.status
            return flash(f"serve down {row.status}: {message}", "bad", request_id)
        return flash(f"Service {name} is down.", "ok", request_id)

    return [
        Route("/services", guarded(dash, page), methods=["GET"]),
        Route("/services/{name}", guarded(dash, service_page), methods=["GET"]),
        Route("/services/{name}/down", action(dash, down), methods=["POST"]),
    ]


PAGE = Page("services", "Services", routes)
