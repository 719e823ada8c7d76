"""Cluster operations: launch, exec, start, stop, down, autostop, status."""

from __future__ import annotations

import time
from typing import Any

import attrs
import trio

from skyhop_core.exceptions import NotSupportedError
from skyhop_core.models.records import ClusterHandle, ClusterRecord, Feature, NodeState
from skyhop_core.models.status import ClusterStatus, OptimizeTarget, StatusRefreshMode
from skyhop_core.models.task_schema import check_wire_task
from skyhop_core.ops import params as P
from skyhop_core.ops.autostopping import autostopping
from skyhop_core.ops.common import (
    backend_ctx,
    build_job_spec,
    check_name_free,
    check_no_client_paths,
    check_sources,
    find_cluster,
    generate_cluster_name,
    get_cluster,
    parse_task,
    require_all_users_allowed,
    require_feature,
    require_up,
    sync_files,
)
from skyhop_core.ops.health import check_runtime, settle_interrupted
from skyhop_core.ops.locking import cluster_lock
from skyhop_core.ops.provisioning import (
    mark_cluster_up,
    matching_resources,
    node_less_handle,
    plan,
    provision_with_failover,
    set_phase,
    start_stopped,
)
from skyhop_core.ops.taskcheck import check_runnable
from skyhop_core.optimizer import table_rows
from skyhop_core.requests.context import RequestContext
from skyhop_core.state import clusters as cl
from skyhop_core.state import requests as rq
from skyhop_core.storage.mounting import apply_storage_mounts, delete_cluster_buckets


def validate_task(p: P.LaunchParams | P.ExecParams | P.OptimizeParams) -> None:
    """At submission: the task must match its wire schema and parse (the params classes
    check the other fields); a launch or exec names uploads, never client paths."""
    uploads = not isinstance(p, P.OptimizeParams)
    if uploads:  # a client path gets its own explanation, before the schema's pattern
        try:
            task = parse_task(p.task)[0]
        except Exception:
            task = None  # the schema below names what is wrong
        if task is not None:
            check_no_client_paths(task)
    check_wire_task(p.task, uploads=uploads)
    parse_task(p.task)


async def launch(ctx: RequestContext, p: P.LaunchParams) -> dict[str, Any]:
    """Provision (or reuse) a cluster and run the task on it; returns the job ID and handle."""
    task, per_rank = parse_task(p.task)
    name = p.cluster_name or generate_cluster_name(ctx.user.name)
    if p.dryrun:
        candidates = await plan(ctx, task, p.optimize_target)
        for row in table_rows(ctx.services.backends, candidates):
            ctx.log(f"{'✔' if row['chosen'] else ' '} {row['infra']} {row['instance_type']}")
        ctx.log("Dry run: nothing was launched.")
        return {"job_id": None, "handle": None}
    check_runnable(task)
    await check_sources(ctx, task)
    sync = not (p.fast and p.no_setup)
    async with cluster_lock(ctx, name):
        handle, brought_up = await _ensure_up(ctx, name, task, p)
        bctx = backend_ctx(ctx, handle.backend)
        if brought_up:
            # The cluster is UP only once it has the task's files: a launch that dies
            # while syncing leaves it INIT, saying so.
            if sync:
                await set_phase(ctx, name, "syncing files")
                await sync_files(ctx, bctx, handle, task, mounts=True)
                await apply_storage_mounts(ctx, bctx, handle, task, name)
            await mark_cluster_up(ctx, name, handle)
    resources = matching_resources(task, handle)
    if sync and not brought_up:
        await sync_files(ctx, bctx, handle, task, mounts=True)
        await apply_storage_mounts(ctx, bctx, handle, task, name)
    job_id = None
    if task.run is not None or per_rank is not None or (task.setup and not p.no_setup):
        spec = build_job_spec(ctx, task, per_rank, resources, with_setup=not p.no_setup)
        job_id = await ctx.services.backends.call(
            handle.backend, "skyhop_submit_job", ctx=bctx, handle=handle, job=spec
        )
        ctx.log(f"Job submitted, ID: {job_id}")
    await _apply_autostop(ctx, name, handle, task, p.idle_minutes_to_autostop, p.down)
    await ctx.services.store.run(lambda c: cl.update(c, name, last_use=f"launch {name}"))
    return {"job_id": job_id, "handle": handle}


async def _ensure_up(
    ctx: RequestContext, name: str, task: Any, p: P.LaunchParams
) -> tuple[ClusterHandle, bool]:
    """The cluster's handle, and whether this launch brought it up (it is still INIT)."""
    record = await find_cluster(ctx, name)
    if record is not None:
        check_name_free(ctx, record)
        if record.status is ClusterStatus.UP and record.handle is not None:
            matching_resources(task, record.handle)
            ctx.log(f"Cluster {name!r} is UP; reusing it.")
            return record.handle, False
        if record.status is ClusterStatus.STOPPED and record.handle is not None:
            return await start_stopped(ctx, record, mark_up=False), True
    else:
        ctx.log(f"Launching a new cluster {name!r}.")
    handle = await provision_with_failover(
        ctx, name, task, target=p.optimize_target, retry_until_up=p.retry_until_up,
        previous=record, mark_up=False,
    )
    return handle, True


async def _apply_autostop(
    ctx: RequestContext,
    name: str,
    handle: ClusterHandle,
    task: Any,
    idle_minutes: int | None,
    down: bool,
) -> None:
    options: dict[str, Any] = {}
    for resources in task.resources:
        if isinstance(resources.autostop, dict):
            options = {k: resources.autostop.get(k) for k in ("wait_for", "hook", "hook_timeout")}
            break
    if idle_minutes is None and not down:
        for resources in task.resources:
            minutes, to_down = resources.autostop_config()
            if minutes is not None:
                idle_minutes, down = minutes, to_down
                break
    if idle_minutes is None and down:
        idle_minutes = 0
    if idle_minutes is None:
        return
    require_feature(ctx, handle.backend, Feature.AUTOSTOP, "autostop")
    minutes = idle_minutes
    await ctx.services.store.run(lambda c: cl.set_autostop(c, name, minutes, down, options))
    verb = "torn down" if down else "stopped"
    ctx.log(f"Cluster {name!r} will be {verb} after {idle_minutes} idle minute(s).")


async def exec_(ctx: RequestContext, p: P.ExecParams) -> dict[str, Any]:
    """Run a task on an existing UP cluster (workdir synced, setup skipped)."""
    task, per_rank = parse_task(p.task)
    record = await get_cluster(ctx, p.cluster_name)
    handle = require_up(record)
    resources = matching_resources(task, handle)
    if p.dryrun:
        return {"job_id": None, "handle": handle}
    check_runnable(task)
    bctx = backend_ctx(ctx, handle.backend)
    await sync_files(ctx, bctx, handle, task, mounts=False)
    spec = build_job_spec(ctx, task, per_rank, resources, with_setup=False)
    job_id = await ctx.services.backends.call(
        handle.backend, "skyhop_submit_job", ctx=bctx, handle=handle, job=spec
    )
    ctx.log(f"Job submitted, ID: {job_id}")
    if p.down:
        await _apply_autostop(ctx, p.cluster_name, handle, task, 0, True)
    await ctx.services.store.run(lambda c: cl.update(c, p.cluster_name, last_use="exec"))
    return {"job_id": job_id, "handle": handle}


async def stop(ctx: RequestContext, p: P.ClusterParams) -> None:
    """Stop a cluster, keeping its disks; cancels the cluster's other requests first."""
    record = await get_cluster(ctx, p.cluster_name)
    require_feature(ctx, record.backend, Feature.STOP, "stopping clusters (use `skyhop down`)")
    if not await _clear_others(ctx, record, p):
        return
    async with cluster_lock(ctx, p.cluster_name):
        record = await get_cluster(ctx, p.cluster_name)
        if record.status is ClusterStatus.STOPPED:
            ctx.log(f"Cluster {p.cluster_name!r} is already STOPPED.")
            return
        if p.from_autostop and not await autostopping(ctx, record):
            return
        await _flush_mounts(ctx, record)
        await set_phase(ctx, p.cluster_name, "stopping the nodes", ClusterStatus.INIT)
        await _backend_step(ctx, record, "skyhop_stop", p.purge)
        await ctx.services.store.run(
            lambda c: cl.end_operation(c, p.cluster_name, ClusterStatus.STOPPED, last_use="stop")
        )
        ctx.log(f"Cluster {p.cluster_name!r} is STOPPED.")


async def down(ctx: RequestContext, p: P.ClusterParams, *, delete_buckets: bool = True) -> None:
    """Tear a cluster down; cancels the cluster's other requests first. Its
    ``persistent: false`` buckets go too, unless ``delete_buckets`` is False (a managed
    job recovering onto a new cluster keeps them until the job ends)."""
    if not await _clear_others(ctx, await get_cluster(ctx, p.cluster_name), p):
        return
    async with cluster_lock(ctx, p.cluster_name):
        record = await get_cluster(ctx, p.cluster_name)
        if p.from_autostop and not await autostopping(ctx, record):
            return
        # INIT from here on: a down that dies half-way leaves a cluster that is neither UP
        # nor gone, and the next down finishes it.
        await _flush_mounts(ctx, record)
        await set_phase(ctx, p.cluster_name, "tearing down", ClusterStatus.INIT)
        await _backend_step(ctx, record, "skyhop_down", p.purge)
        await ctx.services.store.run(cl.delete, p.cluster_name)
        ctx.log(f"Cluster {p.cluster_name!r} is terminated.")
    if delete_buckets:
        await delete_cluster_buckets(ctx, p.cluster_name)  # its `persistent: false` buckets


async def _flush_mounts(ctx: RequestContext, record: ClusterRecord) -> None:
    """Mounts write back what they cached before their nodes stop (an UP cluster's)."""
    if record.status is ClusterStatus.UP and record.metadata.get("live_mounts"):
        from skyhop_core.storage.livemounts import flush

        await set_phase(ctx, record.name, "writing back mounted storage")
        await flush(ctx, backend_ctx(ctx, record.backend), record)


async def _clear_others(ctx: RequestContext, record: ClusterRecord, p: P.ClusterParams) -> bool:
    """Before a stop or down: cancel the cluster's other requests — unless the autostop
    loop asks and the cluster became busy since it looked (a request started, e.g. a
    ``launch --down`` still streaming its job's end): then autostop waits for its next
    pass, and this returns False. With ``--wait-for none`` it stops regardless."""
    if p.from_autostop:
        wait_for = (record.metadata.get("autostop_options") or {}).get("wait_for")
        if wait_for != "none":
            busy = await ctx.services.store.run(
                lambda c: rq.unfinished_ids(c, cluster_name=p.cluster_name)
            )
            if [i for i in busy if i != ctx.request_id]:
                ctx.log(f"Cluster {p.cluster_name!r} is busy again; autostop waits.")
                return False
    await _cancel_others(ctx, p.cluster_name)
    return True


async def _cancel_others(ctx: RequestContext, name: str) -> None:
    engine = ctx.services.engine
    if engine is not None:
        cancelled = await engine.cancel_cluster_requests(name, ctx.request_id)
        if cancelled:
            ctx.log(f"Cancelled {len(cancelled)} other request(s) on {name!r}.")


async def _backend_step(ctx: RequestContext, record: ClusterRecord, hook: str, purge: bool) -> None:
    handle = record.handle
    if handle is None:
        if hook != "skyhop_down":
            return  # nothing was provisioned, so there is nothing to stop
        # A launch that was cancelled or died (server killed) before the backend returned
        # a handle may have created nodes already: the backend removes whatever it made
        # for this cluster name, given a handle with no nodes.
        handle = provisional_handle(record)
    bctx = backend_ctx(ctx, record.backend)
    try:
        await ctx.services.backends.call(record.backend, hook, ctx=bctx, handle=handle)
    except Exception as exc:
        if not purge:
            raise
        ctx.log(f"Warning: {hook.removeprefix('skyhop_')} failed ({exc}); --purge: continuing.")


def provisional_handle(record: ClusterRecord) -> ClusterHandle:
    """A handle without nodes for a cluster whose provisioning never returned one."""
    placement = record.metadata.get("placement") or {}
    return node_less_handle(
        record.name, record.backend, placement.get("region"), placement.get("zone")
    )



async def start(ctx: RequestContext, p: P.StartParams) -> None:
    """Start a STOPPED cluster, or retry provisioning an INIT one."""
    if p.down and p.idle_minutes_to_autostop is None:
        raise ValueError("down=True needs idle_minutes_to_autostop (-i MINUTES).")
    record = await get_cluster(ctx, p.cluster_name)
    async with cluster_lock(ctx, p.cluster_name):
        record = await get_cluster(ctx, p.cluster_name)
        if record.status is ClusterStatus.UP and not p.force:
            ctx.log(f"Cluster {p.cluster_name!r} is already UP.")
            handle = record.handle
        elif record.status is ClusterStatus.STOPPED and record.handle is not None:
            handle = await start_stopped(ctx, record)
        else:
            task = await _relaunch_task(ctx, record)
            handle = await provision_with_failover(
                ctx, p.cluster_name, task, target=OptimizeTarget.COST,
                retry_until_up=p.retry_until_up, previous=record,
            )
    minutes = p.idle_minutes_to_autostop
    if minutes is not None and handle is not None:
        require_feature(ctx, handle.backend, Feature.AUTOSTOP, "autostop")
        await ctx.services.store.run(lambda c: cl.set_autostop(c, p.cluster_name, minutes, p.down))


async def autostop(ctx: RequestContext, p: P.AutostopParams) -> None:
    """Set (or, with negative minutes, cancel) autostop/autodown for a cluster."""
    record = await get_cluster(ctx, p.cluster_name)
    require_up(record)
    require_feature(ctx, record.backend, Feature.AUTOSTOP, "autostop")
    if p.down is False and p.idle_minutes >= 0:
        require_feature(ctx, record.backend, Feature.STOP, "autostop (use --down for autodown)")
    options = {"wait_for": p.wait_for}
    await ctx.services.store.run(
        lambda c: cl.set_autostop(c, p.cluster_name, p.idle_minutes, p.down, options)
    )
    if p.idle_minutes < 0:
        ctx.log(f"Autostop cancelled for {p.cluster_name!r}.")
    else:
        verb = "torn down" if p.down else "stopped"
        ctx.log(f"Cluster {p.cluster_name!r} will be {verb} after {p.idle_minutes} idle minute(s).")


async def status(ctx: RequestContext, p: P.StatusParams) -> list[ClusterRecord]:
    """List clusters (the caller's unless all_users), optionally refreshed from backends.
    Live managed jobs' clusters are listed only when named or with include_managed_jobs.

    On a deployed server only an admin may pass all_users (PermissionDeniedError
    otherwise), and a user naming someone else's cluster simply does not get it back.
    """
    if p.all_users:
        require_all_users_allowed(ctx, "list clusters of")
    records = await ctx.services.store.read(  # no hop when quiet, batched when not
        lambda c: cl.list_visible(
            c,
            names=list(p.cluster_names) if p.cluster_names else None,
            user_hash=None if p.all_users else ctx.user.hash,
            include_managed_jobs=p.include_managed_jobs,
        )
    )
    records = await settle_interrupted(ctx.services, records)
    if p.refresh is StatusRefreshMode.NONE:
        return records
    refreshed: list[ClusterRecord | None] = [None] * len(records)

    async def one(i: int, record: ClusterRecord) -> None:
        refreshed[i] = await _refresh(ctx, record)

    async with trio.open_nursery() as nursery:
        for i, record in enumerate(records):
            nursery.start_soon(one, i, record)
    return [r for r in refreshed if r is not None]


async def cost_report(ctx: RequestContext, p: P.CostReportParams) -> list[dict[str, Any]]:
    """What the caller's clusters cost: every existing one (its cost so far), then the
    torn-down ones of the last ``days`` days, newest first (``status`` None, as
    SkyPilot's report has it). Each: name, status, launched_at, terminated_at, duration
    (seconds UP), num_nodes, resources_str, price_per_hour, total_cost, user_name,
    user_hash."""
    if p.all_users:
        require_all_users_allowed(ctx, "report the cost of")
    user = None if p.all_users else ctx.user.hash
    since = time.time() - p.days * 86400

    def read(conn: Any) -> tuple[list[ClusterRecord], list[dict[str, Any]]]:
        live = cl.list_visible(conn, names=None, user_hash=user, include_managed_jobs=True)
        return live, cl.history(conn, since, user)

    live, gone = await ctx.services.store.run(read)
    now = time.time()
    rows = []
    for record in live:
        meta = record.metadata
        rows.append({
            "name": record.name, "status": record.status, "launched_at": record.launched_at,
            "terminated_at": None, "duration": cl.uptime_so_far(meta, now),
            "num_nodes": len(record.handle.nodes) if record.handle is not None else 0,
            "resources_str": record.resources_str,
            "price_per_hour": float(meta.get("price_per_hour") or 0.0),
            "total_cost": record.cost, "user_name": record.user_name,
            "user_hash": record.user_hash,
        })  # fmt: skip
    for row in gone:
        rows.append({
            "name": row["name"], "status": None, "launched_at": row["launched_at"],
            "terminated_at": row["terminated_at"], "duration": row["uptime_s"],
            "num_nodes": row["num_nodes"], "resources_str": row["resources_str"],
            "price_per_hour": row["price_per_hour"], "total_cost": row["cost"],
            "user_name": row["user_name"], "user_hash": row["user_hash"],
        })  # fmt: skip
    return rows


async def _refresh(ctx: RequestContext, record: ClusterRecord) -> ClusterRecord | None:
    """Ask the backend for the real node states and update the record to match."""
    if record.handle is None:
        return record
    bctx = backend_ctx(ctx, record.backend)
    try:
        nodes = await ctx.services.backends.call(
            record.backend, "skyhop_query", ctx=bctx, handle=record.handle
        )
    except NotSupportedError:
        return record
    states = {n.state for n in nodes}
    store = ctx.services.store
    if not nodes or states == {NodeState.TERMINATED}:
        await store.run(cl.delete, record.name)
        return None
    gone = [n for n in nodes if n.state is NodeState.TERMINATED]
    if gone and not record.metadata.get("operation"):
        # Some nodes are gone for good (deleted behind our back, preempted): the cluster
        # cannot work as it is, and `start` cannot bring them back.
        detail = "; ".join(f"node {n.rank}: {n.detail or 'terminated'}" for n in gone)
        reason = f"{detail}. Run `skyhop down {record.name}` and launch it again."
        await store.run(lambda c: cl.mark_init(c, record.name, reason))
        meta = {**record.metadata, "status_reason": reason}
        return attrs.evolve(record, status=ClusterStatus.INIT, metadata=meta)
    if states == {NodeState.RUNNING}:
        new = ClusterStatus.UP if record.status is not ClusterStatus.STOPPED else ClusterStatus.INIT
        if record.status is ClusterStatus.INIT:
            new = ClusterStatus.INIT
    elif states <= {NodeState.STOPPED, NodeState.STOPPING}:
        new = ClusterStatus.STOPPED
    else:
        new = ClusterStatus.INIT
    if new is not record.status:
        await store.run(lambda c: cl.update(c, record.name, status=new))
        record = attrs.evolve(record, status=new)
    # The nodes run; whether the runtime that drives their jobs does is another question.
    return await check_runtime(ctx.services, record)


async def _relaunch_task(ctx: RequestContext, record: ClusterRecord) -> Any:
    """A task with the resources the INIT cluster was launched with."""
    from skyhop_core.models.resources import Resources
    from skyhop_core.models.task import Task

    resources, num_nodes = await ctx.services.store.run(cl.launch_spec, record.name)
    task = Task(num_nodes=num_nodes)
    task.set_resources(Resources.from_yaml_config(resources or {"infra": record.backend}))
    return task
