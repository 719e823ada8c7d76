"""Bringing a cluster UP: choose candidates, provision with failover, start the runtime.

The cluster's record is written (INIT) before anything is provisioned and its handle as
soon as a backend returns one, so a cancelled or crashed launch leaves a cluster that the
state knows about and that ``down`` removes completely. Each step is recorded as the
request's phase (``metadata["operation"]``, see :mod:`skyhop_core.ops.health`), so a
launch that died says where. ``mark_up=False`` leaves the cluster INIT for the caller
to mark UP when its own work (``launch``: the file sync) is done.
"""

from __future__ import annotations

from typing import Any

import trio

from skyhop_core.exceptions import (
    CapacityError,
    QuotaError,
    ResourcesMismatchError,
    ResourcesUnavailableError,
)
from skyhop_core.models.records import ClusterHandle, ClusterRecord, Feature, ProvisionRequest
from skyhop_core.models.status import ClusterStatus, OptimizeTarget
from skyhop_core.ops.common import backend_ctx, require_feature
from skyhop_core.optimizer import Candidate, Optimizer, infra_label
from skyhop_core.requests.context import RequestContext
from skyhop_core.state import clusters as cl

RETRY_BACKOFF = (5.0, 10.0, 20.0, 40.0, 60.0)


def optimizer_for(ctx: RequestContext) -> Optimizer:
    return Optimizer(ctx.services.backends, lambda name: backend_ctx(ctx, name))


async def plan(ctx: RequestContext, task: Any, target: OptimizeTarget) -> list[Candidate]:
    return await optimizer_for(ctx).candidates(
        task.resources, task.num_nodes or 1, ordered=task.resources_ordered, target=target
    )


def matching_resources(task: Any, handle: ClusterHandle) -> Any:
    """The first of the task's resource options the existing cluster satisfies."""
    if (task.num_nodes or 1) > len(handle.nodes):
        raise ResourcesMismatchError(
            f"The task needs {task.num_nodes} nodes but cluster {handle.cluster_name!r} has "
            f"{len(handle.nodes)}. Launch it on a new cluster (-c NEW_NAME)."
        )
    head = handle.head
    for resources in task.resources:
        if resources.backend and resources.backend != handle.backend:
            continue
        cpus = resources.cpus_requirement()[0]
        if cpus and cpus > head.cpus:
            continue
        wanted = {k.lower(): v for k, v in (resources.accelerators or {}).items()}
        have = {k.lower(): v for k, v in head.gpus.items()}
        if any(have.get(k, 0) < v for k, v in wanted.items()):
            continue
        return resources
    asked = "; ".join(str(r) for r in task.resources)
    raise ResourcesMismatchError(
        f"Cluster {handle.cluster_name!r} ({handle.backend}, {head.cpus:g} vCPUs, "
        f"GPUs: {head.gpus or 'none'}) cannot satisfy {asked}. "
        "Launch on a new cluster (-c NEW_NAME) or ask for less."
    )


async def provision_with_failover(
    ctx: RequestContext,
    name: str,
    task: Any,
    *,
    target: OptimizeTarget,
    retry_until_up: bool,
    previous: ClusterRecord | None,
    mark_up: bool = True,
    avoid: frozenset[tuple[str, str | None, str | None]] = frozenset(),
) -> ClusterHandle:
    """Try candidates best first; a capacity/quota error blocks that place and moves on.

    ``avoid`` places (backend, region, zone) are blocked from the start (a managed job
    recovering elsewhere than where it was preempted).
    """
    optimizer = optimizer_for(ctx)
    options = task.resources
    if previous is not None:
        # Relaunching an INIT cluster stays on its backend.
        options = tuple(
            r.copy(infra=previous.backend) if r.backend is None else r for r in options
        )
    blocked: set[tuple[str, str | None, str | None]] = set(avoid)
    history: list[str] = []
    attempt = 0
    while True:
        try:
            candidates = await optimizer.candidates(
                options, task.num_nodes or 1, ordered=task.resources_ordered,
                target=target, blocked=frozenset(blocked),
            )
        except ResourcesUnavailableError:
            if not history:
                raise
            candidates = []  # every candidate is blocked: fall through to the summary
        for candidate in candidates:
            handle = await _provision_one(ctx, name, task, candidate, previous, history, blocked)
            if handle is not None:
                await start_runtime(ctx, name, handle, mark_up=mark_up)
                return handle
        if not retry_until_up:
            raise ResourcesUnavailableError(
                f"Failed to provision cluster {name!r} after {len(history)} attempt(s): "
                + " | ".join(history),
                failover_history=history,
            )
        delay = RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)]
        attempt += 1
        ctx.log(f"Retrying in {delay:g}s (retry_until_up) ...")
        blocked.clear()
        await trio.sleep(delay)


async def _provision_one(
    ctx: RequestContext,
    name: str,
    task: Any,
    candidate: Candidate,
    previous: ClusterRecord | None,
    history: list[str],
    blocked: set[tuple[str, str | None, str | None]],
) -> ClusterHandle | None:
    store = ctx.services.store
    backends = ctx.services.backends
    offer = candidate.offer
    label = infra_label(backends, offer)
    resources = candidate.resources
    if previous is None and await store.run(cl.get, name) is None:

        def record(conn: Any) -> None:
            cl.create(
                conn,
                name=name,
                backend=offer.backend,
                user_name=ctx.user.name,
                user_hash=ctx.user.hash,
                resources=resources.to_yaml_config(),
                resources_str=_resources_str(task, offer),
                num_nodes=task.num_nodes or 1,
                last_use=f"launch {name}",
            )
            cl.set_placement(conn, name, offer.region, offer.zone)
    else:

        def record(conn: Any) -> None:
            cl.update(
                conn, name, backend=offer.backend, resources=resources.to_yaml_config(),
                resources_str=_resources_str(task, offer), status=ClusterStatus.INIT,
            )
            cl.set_placement(conn, name, offer.region, offer.zone)

    await store.run(record)
    price = offer.hourly_cost(candidate.use_spot) * (task.num_nodes or 1)
    await store.run(lambda conn: cl.set_price(conn, name, price))
    await set_phase(ctx, name, f"provisioning on {label}")
    ctx.log(f"⚙︎ Launching on {label}: {offer.instance_type} x{task.num_nodes or 1}.")
    bctx = backend_ctx(ctx, offer.backend)
    request = ProvisionRequest(
        cluster_name=name,
        num_nodes=task.num_nodes or 1,
        resources=resources,
        offer=offer,
        ports=tuple(_ports(resources)),
        use_spot=candidate.use_spot,
        previous=previous.handle if previous is not None else None,
    )
    try:
        handle: ClusterHandle = await backends.call(
            offer.backend, "skyhop_provision", ctx=bctx, request=request
        )
    except (CapacityError, QuotaError) as exc:
        place = (exc.backend or offer.backend, exc.region, exc.zone)
        if exc.region is None and exc.zone is None:
            place = (offer.backend, offer.region, offer.zone)
        blocked.add(place)
        history.append(f"{label}: {exc}")
        ctx.log(f"✗ {label}: {exc} — trying the next candidate.")
        return None
    await store.run(lambda conn: cl.update(conn, name, handle=handle))
    ctx.log(f"└── Nodes are up: {', '.join(n.ip for n in handle.nodes)}.")
    for port, where in sorted(handle.ports.items()):
        ctx.log(f"    Port {port} is reachable at {where}.")
    return handle


async def set_phase(
    ctx: RequestContext, name: str, phase: str, status: ClusterStatus | None = None
) -> None:
    """Record that this request is in ``phase`` of its operation on cluster ``name``."""
    await ctx.services.store.run(
        lambda c: cl.begin_operation(c, name, ctx.name, ctx.request_id, phase, status=status)
    )


async def mark_cluster_up(ctx: RequestContext, name: str, handle: ClusterHandle) -> None:
    """The operation bringing the cluster up is done: it is UP, with nothing to explain."""
    await ctx.services.store.run(
        lambda c: cl.end_operation(c, name, ClusterStatus.UP, handle=handle)
    )
    # SkyPilot's wording after a launch, which scripts look for (docs/cli-output.md).
    verb = "launched" if ctx.name == "launch" else "started"
    ctx.log(f"✔ Cluster {verb}: {name}. Cluster {name!r} is UP.")


async def start_runtime(
    ctx: RequestContext, name: str, handle: ClusterHandle, *, mark_up: bool = True
) -> None:
    bctx = backend_ctx(ctx, handle.backend)
    await set_phase(ctx, name, "starting the skyhop runtime")
    ctx.log("⚙︎ Starting the skyhop runtime on the head node.")
    await ctx.services.backends.call(handle.backend, "skyhop_setup_runtime", ctx=bctx, handle=handle)
    if mark_up:
        await mark_cluster_up(ctx, name, handle)


async def start_stopped(
    ctx: RequestContext, record: ClusterRecord, *, mark_up: bool = True
) -> ClusterHandle:
    assert record.handle is not None
    require_feature(ctx, record.backend, Feature.STOP, "stopping and starting clusters")
    bctx = backend_ctx(ctx, record.backend)
    ctx.log(f"⚙︎ Starting cluster {record.name!r}.")
    await set_phase(ctx, record.name, "starting the nodes", ClusterStatus.INIT)
    handle: ClusterHandle = await ctx.services.backends.call(
        record.backend, "skyhop_start", ctx=bctx, handle=record.handle
    )
    await ctx.services.store.run(lambda conn: cl.update(conn, record.name, handle=handle))
    await start_runtime(ctx, record.name, handle, mark_up=mark_up)
    return handle


def _ports(resources: Any) -> list[int]:
    ports: list[int] = []
    for spec in getattr(resources, "ports", None) or ():
        text = str(spec)
        if "-" in text:
            lo, hi = text.split("-", 1)
            ports.extend(range(int(lo), int(hi) + 1))
        else:
            ports.append(int(text))
    return ports


def _resources_str(task: Any, offer: Any) -> str:
    gpus = ", ".join(f"{k}:{v}" for k, v in offer.accelerators.items())
    nodes = task.num_nodes or 1
    spec = f"{offer.instance_type}: {offer.cpus:g} vCPUs, {offer.memory_gb:g} GB" + (
        f", {gpus}" if gpus else ""
    )
    return f"{nodes}x({spec})"
