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

from skyhop_core.exceptions import ResourcesMismatchError, ResourcesUnavailableError
from skyhop_core.failover import Attempt, Failover, try_candidates
from skyhop_core.models.records import ClusterHandle, ClusterRecord, Feature, ProvisionRequest
from skyhop_core.models.status import ClusterStatus, OptimizeTarget
from skyhop_core.ops.common import backend_ctx, require_feature
from skyhop_core.optimizer import Candidate, Optimizer, infra_label
from skyhop_core.requests.context import RequestContext
from skyhop_core.state import clusters as cl

RETRY_BACKOFF = (5.0, 10.0, 20.0, 40.0, 60.0)


def optimizer_for(ctx: RequestContext) -> Optimizer:
    return Optimizer(
        ctx.services.backends, lambda name: backend_ctx(ctx, name),
        getattr(ctx.services, "check_cache", None),
    )


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
    failover: Failover | None = None,
    planned: list[Candidate] | None = None,
) -> ClusterHandle:
    """Try candidates best first; a capacity/quota error blocks that place and moves on.

    ``avoid`` places (backend, region, zone) are blocked from the start (a managed job
    recovering elsewhere than where it was preempted). ``failover`` carries what an
    earlier call of the same launch learned (see :mod:`skyhop_core.failover`). When
    every candidate refused, nothing the launch made is left: each refused attempt's
    leftovers are removed through ``skyhop_down`` of a node-less handle, and a cluster
    record this launch created is deleted (an INIT cluster with nodes gets its previous
    description back). ``planned`` is the caller's own fresh plan of the same task
    (a managed job's precheck): the first round uses it instead of planning again.
    """
    optimizer = optimizer_for(ctx)
    options = task.resources
    if previous is not None:
        # Relaunching an INIT cluster stays on its backend.
        options = tuple(
            r.copy(infra=previous.backend) if r.backend is None else r for r in options
        )
    failover = failover if failover is not None else Failover()
    failover.avoid = avoid  # this call's own; what refused stays blocked across calls
    # An INIT cluster with nodes keeps them: a refused attempt must not down the cluster.
    has_nodes = previous is not None and previous.handle is not None
    restore = await _snapshot(ctx, name) if has_nodes else None
    clean = True  # every refused attempt was cleaned up

    async def attempt(candidate: Candidate) -> ClusterHandle:
        return await _provision_one(ctx, name, task, candidate, previous)

    async def refused(candidate: Candidate, refusal: Attempt) -> None:
        nonlocal clean
        ctx.log(f"✗ {infra_label(ctx.services.backends, candidate.offer)} "
                f"{refusal.instance_type}: {refusal.error}: {refusal.reason} "
                "— trying the next candidate.")  # fmt: skip
        if not has_nodes:
            clean = await _remove_leftovers(ctx, name, candidate) and clean

    round_no = 0
    while True:
        if planned is not None and previous is None and not failover.all_blocked():
            candidates, planned = planned, None  # the caller's plan, made just now
        else:
            try:
                candidates = await optimizer.candidates(
                    options, task.num_nodes or 1, ordered=task.resources_ordered,
                    target=target, blocked=failover.all_blocked(),
                )
            except ResourcesUnavailableError:
                if not failover.attempts:
                    raise
                candidates = []  # every candidate is blocked: fall through to the summary
        handle = await try_candidates(failover, candidates, attempt, on_refused=refused)
        if handle is not None:
            await start_runtime(ctx, name, handle, mark_up=mark_up)
            return handle
        if not retry_until_up:
            error = failover.error(name)
            await _forget_failed(ctx, name, previous, restore, clean)
            raise error
        delay = RETRY_BACKOFF[min(round_no, len(RETRY_BACKOFF) - 1)]
        round_no += 1
        ctx.log(f"Retrying in {delay:g}s (retry_until_up) ...")
        failover.new_round()
        await trio.sleep(delay)


async def _snapshot(ctx: RequestContext, name: str) -> dict[str, Any] | None:
    """What the record says about an INIT cluster's resources, to put back after a failure."""
    def read(conn: Any) -> dict[str, Any] | None:
        record = cl.get(conn, name)
        if record is None:
            return None
        resources, _ = cl.launch_spec(conn, name)
        return {
            "backend": record.backend, "resources": resources,
            "resources_str": record.resources_str,
            "placement": record.metadata.get("placement") or {},
        }  # fmt: skip

    return await ctx.services.store.run(read)


async def _remove_leftovers(ctx: RequestContext, name: str, candidate: Candidate) -> bool:
    """Down whatever a refused attempt may have made (a backend can fail after creating
    some nodes); True when that worked."""
    offer = candidate.offer
    handle = node_less_handle(name, offer.backend, offer.region, offer.zone)
    try:
        await ctx.services.backends.call(
            offer.backend, "skyhop_down", ctx=backend_ctx(ctx, offer.backend), handle=handle
        )
    except Exception as exc:  # keep failing over; the record stays for `down` to retry
        ctx.log(f"Warning: cleaning up after the refused attempt failed ({exc}); the "
                f"cluster stays INIT: run `skyhop down {name}`.")  # fmt: skip
        return False
    return True


async def _forget_failed(
    ctx: RequestContext, name: str, previous: ClusterRecord | None,
    restore: dict[str, Any] | None, clean: bool,
) -> None:  # fmt: skip
    """After every candidate refused: no INIT cluster described as the last candidate."""
    store = ctx.services.store
    if restore is not None:
        placement = restore["placement"]

        def put_back(conn: Any) -> None:
            cl.update(conn, name, backend=restore["backend"], resources=restore["resources"],
                      resources_str=restore["resources_str"])  # fmt: skip
            cl.set_placement(conn, name, placement.get("region"), placement.get("zone"))

        await store.run(put_back)
        return
    if clean:
        await store.run(cl.delete, name)
        if previous is None:
            ctx.log(f"Nothing was created; cluster {name!r} is not kept.")
        else:
            ctx.log(f"Nothing exists for cluster {name!r}; it is removed from status.")


async def _provision_one(
    ctx: RequestContext,
    name: str,
    task: Any,
    candidate: Candidate,
    previous: ClusterRecord | None,
) -> ClusterHandle:
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
    handle: ClusterHandle = await backends.call(
        offer.backend, "skyhop_provision", ctx=bctx, request=request
    )
    await store.run(lambda conn: cl.update(conn, name, handle=handle))
    ctx.log(f"└── Nodes are up: {', '.join(n.ip for n in handle.nodes)}.")
    for port, where in sorted(handle.ports.items()):
        ctx.log(f"    Port {port} is reachable at {where}.")
    return handle


def node_less_handle(
    name: str, backend: str, region: str | None, zone: str | None
) -> ClusterHandle:
    """The handle ``skyhop_down`` gets for a cluster that may exist only in part: no
    nodes, only its name and where it was being made (see docs/plugin_hooks.md)."""
    return ClusterHandle(cluster_name=name, backend=backend, nodes=(), region=region, zone=zone)


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
    if record.metadata.get("live_mounts"):
        from skyhop_core.storage.livemounts import remount

        await set_phase(ctx, record.name, "mounting storage again", ClusterStatus.INIT)
        await remount(ctx, bctx, handle, record)
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
