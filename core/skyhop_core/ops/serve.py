"""Service operations: serve_up, serve_update, serve_down, serve_terminate_replica,
serve_status, serve_logs.

The work is done by each service's controller (:mod:`skyhop_core.serve`); these
handlers check the task, write the rows and wake the controller. ``serve_up`` picks the
load balancer's port and starts the controller on this replica (which owns the service
from then on) and returns once the endpoint listens. A service's version rows keep its
task without secret values (those are in a 0600 file).
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from typing import Any

import trio

from skyhop_core.exceptions import ServiceNotFoundError
from skyhop_core.models.service_spec import ServiceSpec, check_task_service
from skyhop_core.models.status import ReplicaStatus, ServiceComponent, ServiceStatus
from skyhop_core.models.task_schema import check_wire_task
from skyhop_core.ops import params as P
from skyhop_core.ops.common import check_no_client_paths, check_sources, parse_task
from skyhop_core.requests.context import RequestContext
from skyhop_core.serve import state as ss

R = ReplicaStatus
#: How long ``serve down`` waits for the controllers to finish.
DOWN_WAIT_SECONDS = 600.0
SOURCE = "<request>"


def _service(ctx: RequestContext) -> Any:
    service = getattr(ctx.services, "serve", None)
    if service is None:
        raise RuntimeError("This API server runs no serve service.")
    return service


def _check(task_config: dict[str, Any]) -> tuple[Any, ServiceSpec]:
    from skyhop_core.serve.replicas import service_port

    task, _ = parse_task(task_config)
    spec = check_task_service(task_config, SOURCE)
    if callable(task.run) or isinstance(task_config.get("run"), list):
        raise ValueError("A service's run must be one command string.")
    service_port(spec, task)
    return task, spec


def validate_serve_task(p: P.ServeUpParams | P.ServeUpdateParams) -> None:
    """At submission: the task matches its wire schema and names uploads, not paths.
    (The ``service:`` section is checked when the request runs: the wire schema cannot
    say all of its rules.)"""
    check_wire_task(p.task, uploads=True)
    check_no_client_paths(parse_task(dict(p.task))[0])
    service = p.task.get("service")
    tls = service.get("tls") if isinstance(service, dict) else None
    if isinstance(tls, dict) and all(isinstance(tls.get(k), str) for k in ("keyfile", "certfile")):
        from skyhop_core.models.service_spec import TlsConfig
        from skyhop_core.serve.tls import check_refs

        check_refs(TlsConfig(keyfile=tls["keyfile"], certfile=tls["certfile"]))


async def _tls_files(ctx: RequestContext, spec: ServiceSpec) -> Any:
    """The version's uploaded TLS pair, checked (None without ``service.tls``)."""
    if spec.tls is None:
        return None
    from skyhop_core.serve import tls
    from skyhop_core.storage.uploads import UploadStore

    store = UploadStore(ctx.services.persistent_path)
    return await store.run(tls.load, lambda upload_id: store.resolve(ctx.user.hash, upload_id),
                           spec.tls)


def _split_secrets(task: Any, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    config = dict(config)
    secrets = {k: str(v) for k, v in (task.secrets or {}).items()}
    if "secrets" in config:
        config["secrets"] = {k: None for k in secrets}
    return config, secrets


def _resources_str(task: Any) -> str:
    return f"{task.num_nodes or 1}x[{', '.join(str(r) for r in task.resources)}]"


def _default_name(task: Any) -> str:
    safe = re.sub(r"[^-a-zA-Z0-9]+", "-", task.name or "")
    safe = re.sub(r"^[^a-zA-Z]+", "", safe)[: P.MAX_SERVICE_NAME]
    safe = re.sub(r"[^a-zA-Z0-9]+$", "", safe)
    return safe or f"sky-service-{uuid.uuid4().hex[:4]}"


async def _owned_row(ctx: RequestContext, name: str) -> Any:
    row = await ctx.services.store.run(ss.get, name)
    if row is None or (row.user_hash != ctx.user.hash and not ctx.user.is_admin):
        raise ServiceNotFoundError(
            f"No service named {name!r} of yours. Run `skyhop serve status` to list them."
        )
    return row


async def serve_up(ctx: RequestContext, p: P.ServeUpParams) -> list[Any]:
    """Start a service; returns ``[service_name, endpoint]`` once the endpoint listens."""
    from skyhop_core.ops.common import validate_cluster_name

    task, spec = _check(p.task)
    await check_sources(ctx, task)
    service = _service(ctx)
    name = p.service_name or _default_name(task)
    validate_cluster_name(f"{name}-1")
    config, secrets = _split_secrets(task, p.task)
    tls_files = await _tls_files(ctx, spec)

    def insert(conn: Any) -> str:
        if ss.get(conn, name) is not None:
            raise ValueError(
                f"Service {name!r} already exists. Update it with `skyhop serve update "
                f"{name} YAML`, or pick another name (-n)."
            )
        port = service.free_port(ss.used_ports(conn))
        endpoint = service.endpoint(port, tls=tls_files is not None)
        ss.insert(conn, name=name, user_name=ctx.user.name, user_hash=ctx.user.hash,
                  task=config, resources_str=_resources_str(task), lb_port=port,
                  endpoint=endpoint, owner=service.owner, lease=service.lease)
        # Before the commit, so no controller can see the version without its secrets.
        service.save_secrets(name, 1, secrets)
        if tls_files is not None:
            service.save_tls(name, 1, tls_files)
        return endpoint

    for stale in (f"{name}.controller", f"{name}.load_balancer"):
        service.hub.path(stale).unlink(missing_ok=True)
    endpoint = await ctx.services.store.run(insert)
    service.start(name)
    controller = service.controllers.get(name)
    if controller is not None:
        with trio.move_on_after(30):
            await controller.started.wait()
    ctx.log(f"Service {name!r} is starting: {spec.replica_policy.describe()}.")
    ctx.log(f"Endpoint: {endpoint}")
    return [name, endpoint]


async def serve_update(ctx: RequestContext, p: P.ServeUpdateParams) -> None:
    """Add a version of the service's task; its controller replaces the replicas by
    ``mode``."""
    task, spec = _check(p.task)
    await check_sources(ctx, task)
    service = _service(ctx)
    row = await _owned_row(ctx, p.service_name)
    if row.down_requested or row.status in (ServiceStatus.SHUTTING_DOWN.value,
                                            ServiceStatus.FAILED_CLEANUP.value):
        raise ValueError(f"Service {p.service_name!r} is shutting down; it cannot be updated.")
    if (spec.tls is None) != row.endpoint.startswith("http://"):
        raise ValueError(
            f"Service {p.service_name!r} serves {row.endpoint.partition(':')[0].upper()}: an "
            "update cannot add or remove service.tls. Take the service down and up again "
            "to change its scheme.")
    config, secrets = _split_secrets(task, p.task)
    tls_files = await _tls_files(ctx, spec)

    def add(conn: Any) -> int:
        number = ss.get(conn, p.service_name).version + 1
        service.save_secrets(p.service_name, number, secrets)
        if tls_files is not None:
            service.save_tls(p.service_name, number, tls_files)
        return ss.begin_update(conn, p.service_name, config, p.mode.value, _resources_str(task))

    number = await ctx.services.store.run(add)
    if row.owner == service.owner and not service.wake(p.service_name):
        service.start(p.service_name)  # a controller that failed too often: a new try
    ctx.log(f"Service {p.service_name!r} is updating to version {number} ({p.mode.value}).")


async def serve_down(ctx: RequestContext, p: P.ServeDownParams) -> None:
    """Take services down (replicas, load balancer, records); waits for it."""
    service = _service(ctx)
    if not p.all and not p.service_names:
        raise ValueError("Name the services to take down, or pass all=True (-a).")
    store = ctx.services.store
    if p.all:
        rows = await store.run(lambda c: ss.list_rows(
            c, user_hash=None if ctx.user.is_admin else ctx.user.hash))
        names = [r.name for r in rows]
    else:
        names = list(dict.fromkeys(p.service_names or []))
        for name in names:
            await _owned_row(ctx, name)
    for name in names:
        await store.run(lambda c, n=name: ss.update(c, n, down_requested=True, purge=p.purge,
                                                     controller_restarts=0))
        row = await store.run(ss.get, name)
        if row is not None and row.owner == service.owner and not service.wake(name):
            service.start(name)
        ctx.log(f"Taking service {name!r} down.")
    left = set(names)
    with trio.move_on_after(DOWN_WAIT_SECONDS):
        while left:
            for name in sorted(left):
                row = await store.run(ss.get, name)
                if row is None:
                    ctx.log(f"Service {name!r} is down.")
                    left.discard(name)
                elif row.status == ServiceStatus.FAILED_CLEANUP.value and not row.down_requested:
                    left.discard(name)
                    raise RuntimeError(f"Service {name!r}: {row.failure_reason}")
            if left:
                await trio.sleep(0.2)
    if left:
        ctx.log(f"Still shutting down: {', '.join(sorted(left))}.")
    if not names:
        ctx.log("No service to take down.")


async def serve_terminate_replica(ctx: RequestContext, p: P.ServeTerminateReplicaParams) -> None:
    """Drain one replica (``SKYHOP_SERVE_DRAIN_SECONDS``) and tear it down; a failed one
    needs ``purge`` (its record goes too)."""
    service = _service(ctx)
    await _owned_row(ctx, p.service_name)
    store = ctx.services.store
    replica = await store.run(ss.replica, p.service_name, p.replica_id)
    if replica is None:
        raise ServiceNotFoundError(
            f"Service {p.service_name!r} has no replica {p.replica_id}; see "
            f"`skyhop serve status {p.service_name}`."
        )
    status = R(replica.status)
    if status.is_failed() or status is R.PREEMPTED:
        if not p.purge:
            raise ValueError(
                f"Replica {p.replica_id} is {status.value}; its record is kept so you can "
                "look at it. Pass --purge to remove it (and any cluster it left)."
            )
        from skyhop_core.exceptions import ClusterDoesNotExist
        from skyhop_core.ops import clusters as ops_clusters

        with contextlib.suppress(ClusterDoesNotExist):
            await ops_clusters.down(ctx, P.ClusterParams(replica.cluster_name, purge=True))
        await store.run(lambda c: ss.delete_replica(c, p.service_name, p.replica_id))
        ctx.log(f"Replica {p.replica_id} is purged.")
        return
    if replica.terminate_requested:
        ctx.log(f"Replica {p.replica_id} is already being terminated.")
        return
    drain_until = time.time() + service.settings.drain_seconds
    await store.run(lambda c: ss.update_replica(
        c, p.service_name, p.replica_id, status=R.SHUTTING_DOWN.value,
        terminate_requested=True, drain_until=drain_until))
    service.wake(p.service_name)
    ctx.log(f"Replica {p.replica_id} of {p.service_name!r} is draining, then terminated.")


def _replica_info(r: Any, handle: Any) -> dict[str, Any]:
    return {
        "replica_id": r.replica_id,
        "name": r.cluster_name,
        "status": r.status,
        "version": r.version,
        "launched_at": int(r.launched_at),
        "handle": handle,
        "endpoint": f"http://{r.endpoint}" if r.endpoint and r.endpoint != "-" else None,
        "is_spot": bool(r.is_spot),
        "failure_reason": r.failure_reason,
    }


async def serve_status(ctx: RequestContext, p: P.ServeStatusParams) -> list[dict[str, Any]]:
    """Service records with SkyPilot's fields (``replica_info`` included)."""
    from skyhop_core import wire
    from skyhop_core.models.service_spec import parse_service
    from skyhop_core.state import clusters as cl

    store = ctx.services.store
    rows = await store.run(lambda c: ss.list_rows(
        c, user_hash=None if ctx.user.is_admin else ctx.user.hash, names=p.service_names))
    now = time.time()
    records = []
    for row in rows:
        replicas = await store.run(ss.replicas, row.name)
        version = await store.run(ss.version, row.name, row.version)
        spec = parse_service(version.task["service"])
        info = []
        for r in replicas:
            record = await store.run(cl.get, r.cluster_name)
            handle = wire.unstructure(record.handle) if record and record.handle else None
            info.append(_replica_info(r, handle))
        alive = sorted({r.version for r in replicas if R(r.status).is_alive()})
        records.append({
            "name": row.name,
            "active_versions": alive or [row.version],
            "version": row.version,
            "controller_job_id": None,
            "uptime": int(now - row.created_at),
            "status": row.status,
            "controller_port": None,
            "load_balancer_port": row.lb_port,
            "endpoint": row.endpoint,
            "policy": spec.replica_policy.describe(),
            "requested_resources_str": version.resources_str,
            "load_balancing_policy": spec.load_balancing_policy,
            "replica_info": info,
            "user_name": row.user_name,
            "failure_reason": row.failure_reason,
            "autoscaler": dict(row.autoscaler or {}),
        })
    return records


async def serve_logs(ctx: RequestContext, p: P.ServeLogsParams) -> int:
    """Stream a service's controller or load-balancer log, or a replica's job log."""
    from skyhop_core.requests.logs import follow

    service = _service(ctx)
    await _owned_row(ctx, p.service_name)
    store = ctx.services.store
    if p.target is ServiceComponent.REPLICA:
        assert p.replica_id is not None
        replica = await store.run(ss.replica, p.service_name, p.replica_id)
        if replica is None:
            raise ServiceNotFoundError(
                f"Service {p.service_name!r} has no replica {p.replica_id}.")
        from skyhop_core.ops import jobs as ops_jobs

        return await ops_jobs.logs(ctx, P.LogsParams(replica.cluster_name, None, p.follow))
    name = f"{p.service_name}.{p.target.value}"

    async def finished() -> bool:
        return await store.run(ss.get, p.service_name) is None \
            or p.service_name not in service.controllers

    async for chunk in follow(service.hub, name, offset=0, is_finished=finished,
                              follow=p.follow, poll=1.0):
        ctx.write(chunk)
    return 0
