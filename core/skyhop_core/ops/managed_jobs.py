"""Managed-job operations: jobs_launch, jobs_queue, jobs_cancel, jobs_logs.

The work itself is done by the jobs service (:mod:`skyhop_core.jobs`); these handlers
write and read its rows. A job's row keeps its task without secret values (those are in
a 0600 file beside its logs); ``resources.priority`` is copied into the row, where the
scheduler orders by it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import trio

from skyhop_core.exceptions import JobNotFoundError
from skyhop_core.jobs import pipeline
from skyhop_core.jobs import state as js
from skyhop_core.models.status import ManagedJobStatus
from skyhop_core.models.task_schema import check_wire_task
from skyhop_core.ops import params as P
from skyhop_core.ops.common import (
    MAX_CLUSTER_NAME,
    check_no_client_paths,
    check_sources,
    may_act_for_all,
    parse_task,
    require_all_users_allowed,
    validate_cluster_name,
)
from skyhop_core.requests.context import RequestContext

S = ManagedJobStatus
DEFAULT_NAME = "sky-cmd"
DEFAULT_STRATEGY = "EAGER_NEXT_REGION"
#: Room for ``-<job_id>`` in the cluster name.
MAX_JOB_NAME = MAX_CLUSTER_NAME - 10
#: How long ``jobs cancel`` waits for the controllers to clean up.
CANCEL_WAIT_SECONDS = 300.0


def _service(ctx: RequestContext) -> Any:
    service = getattr(ctx.services, "jobs", None)
    if service is None:
        raise RuntimeError("This API server runs no managed-jobs service.")
    return service


def _cluster_safe(name: str) -> str:
    """A task's free-form name as the base of the job's cluster name (``<name>-<id>``):
    other characters become '-', it starts with a letter and fits (SkyPilot does alike)."""
    safe = re.sub(r"[^-_.a-zA-Z0-9]+", "-", name)
    safe = re.sub(r"^[^a-zA-Z]+", "", safe)[:MAX_JOB_NAME]
    return re.sub(r"[^a-zA-Z0-9]+$", "", safe)


def _task_values(config: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """One task's parsed form, its row values and its secret values (apart)."""
    config = dict(config)
    task, _ = parse_task(config)
    priority = next((r.priority for r in task.resources if r.priority is not None), 0)
    recovery: Any = next(
        (r.job_recovery for r in task.resources if r.job_recovery is not None), None
    )
    strategy, max_restarts, codes = DEFAULT_STRATEGY, 0, []
    if isinstance(recovery, str):
        strategy = recovery
    elif isinstance(recovery, dict):
        strategy = recovery.get("strategy") or DEFAULT_STRATEGY
        max_restarts = int(recovery.get("max_restarts_on_errors") or 0)
        raw = recovery.get("recover_on_exit_codes")
        codes = [int(c) for c in ([raw] if isinstance(raw, int) else raw or [])]
    secrets = {k: str(v) for k, v in (task.secrets or {}).items()}
    if "secrets" in config:
        config["secrets"] = {k: None for k in secrets}
    nodes = task.num_nodes or 1
    values = dict(
        task=config,
        resources_str=f"{nodes}x[{', '.join(str(r) for r in task.resources)}]",
        priority=priority,
        strategy=strategy,
        max_restarts_on_errors=max_restarts,
        recover_on_exit_codes=codes,
    )
    return task, values, secrets


def _prepare(p: P.JobsLaunchParams) -> dict[str, Any]:
    """Validate the task (or every task of a pipeline); the row's values (and the
    secrets, apart: a dict, or a list of them for a pipeline)."""
    configs = p.tasks if p.tasks is not None else [p.task or {}]
    parsed = [_task_values(c) for c in configs]
    first_task, first_values, _ = parsed[0]
    name = p.name or _cluster_safe(first_task.name or "") or DEFAULT_NAME
    room = MAX_JOB_NAME - (3 if p.tasks is not None else 0)  # "-<index>" for a pipeline
    if len(name) > room:
        raise ValueError(f"Managed job name {name!r} is too long: use up to {room} "
                         "characters (the job's cluster is named <name>-<job_id>).")
    validate_cluster_name(f"{name}-1")
    if p.tasks is None:
        return {"row": dict(name=name, **first_values), "secrets": parsed[0][2]}
    entries = [
        pipeline.new_entry(task.name or f"task-{i}", values)
        for i, (task, values, _) in enumerate(parsed)
    ]
    return {
        "row": dict(name=name, tasks=entries, **first_values),
        "secrets": [secrets for _, _, secrets in parsed],
    }


def validate_jobs_launch(p: P.JobsLaunchParams) -> None:
    """At submission: the task matches its wire schema, names its files by upload (the
    client uploaded them, as for launch), and makes a valid job."""
    for config in p.tasks if p.tasks is not None else [p.task or {}]:
        check_no_client_paths(parse_task(dict(config))[0])
        check_wire_task(config, uploads=True)
    _prepare(p)


async def jobs_launch(ctx: RequestContext, p: P.JobsLaunchParams) -> dict[str, Any]:
    """Queue a managed job; returns ``{"job_id": N}`` at once (the scheduler starts it)."""
    from skyhop_core.ops.taskcheck import check_runnable

    for config in p.tasks if p.tasks is not None else [p.task or {}]:
        task = parse_task(dict(config))[0]
        check_runnable(task)  # what cannot run fails before queueing
        await check_sources(ctx, task)
    prepared = _prepare(p)
    service = _service(ctx)

    def insert(conn: Any) -> int:
        job_id = js.insert(
            conn, user_name=ctx.user.name, user_hash=ctx.user.hash, **prepared["row"]
        )
        # Before the commit, so no controller can see the row without its secrets.
        service.save_secrets(job_id, prepared["secrets"])
        return job_id

    job_id = await ctx.services.store.run(insert)
    service.wake()
    ctx.log(f"Managed job {prepared['row']['name']!r} submitted: ID {job_id}.")
    return {"job_id": job_id}


def _record(row: Any, now: float) -> dict[str, Any]:
    """A queue row, with SkyPilot's field names."""
    end = row.end_at or now
    recovering = row.recovering_seconds + (
        max(0.0, now - row.recovering_since) if row.recovering_since else 0.0
    )
    job_duration = max(0.0, end - row.start_at - recovering) if row.start_at else 0.0
    return {
        "job_id": row.job_id,
        "task_id": 0,
        "job_name": row.name,
        "task_name": row.name,
        "user_name": row.user_name,
        "user_hash": row.user_hash,
        "resources": row.resources_str,
        "submitted_at": row.submitted_at,
        "start_at": row.start_at,
        "end_at": row.end_at,
        "duration": max(0.0, end - row.submitted_at),
        "job_duration": job_duration,
        "recovery_count": row.recovery_count,
        "restart_count": row.restart_count,
        "status": row.status,
        "schedule_state": row.schedule_state,
        "failure_reason": row.failure_reason,
        "cluster_name": row.cluster_name,
        "infra": row.infra,
        "region": row.region,
        "priority": row.priority,
        "strategy": row.strategy,
        "details": None if S(row.status).is_terminal() else _details(row),
    }


def _details(row: Any) -> str | None:
    if row.schedule_state == js.WAITING:
        return "Waiting for a launch slot."
    if row.schedule_state == js.ALIVE_WAITING:
        return "Waiting for a launch slot to recover."
    return None


async def jobs_queue(ctx: RequestContext, p: P.JobsQueueParams) -> list[dict[str, Any]]:
    """Managed jobs (the caller's unless all_users), newest first."""
    if p.all_users:
        require_all_users_allowed(ctx, "list managed jobs of")
    rows = await ctx.services.store.run(
        lambda c: js.list_rows(
            c,
            user_hash=None if p.all_users else ctx.user.hash,
            job_ids=p.job_ids,
            skip_finished=p.skip_finished,
        )
    )
    now = time.time()
    records: list[dict[str, Any]] = []
    for row in rows:
        record = _record(row, now)
        # A pipeline: one record per task (SkyPilot's), the CLI groups them under the job.
        records.extend(pipeline.task_records(row, now, record) if row.tasks else [record])
    return records


async def _targets(ctx: RequestContext, p: P.JobsCancelParams) -> list[int]:
    chosen = sum(bool(x) for x in (p.name, p.job_ids, p.all))
    if chosen != 1:
        raise ValueError("Cancel managed jobs by job IDs, by name (-n), or all (-a): one of them.")
    if p.all_users:
        require_all_users_allowed(ctx, "cancel managed jobs of")
    user_hash = None if p.all_users else ctx.user.hash
    rows = await ctx.services.store.run(
        lambda c: js.list_rows(
            c, user_hash=user_hash, job_ids=p.job_ids, name=p.name, skip_finished=True
        )
    )
    if p.job_ids:
        mine = await ctx.services.store.run(
            lambda c: js.list_rows(c, user_hash=user_hash, job_ids=p.job_ids)
        )
        missing = sorted(set(p.job_ids) - {r.job_id for r in mine})
        if missing:
            raise JobNotFoundError(
                f"No managed job {', '.join(map(str, missing))} of yours. "
                "Run `skyhop jobs queue` to list them."
            )
    return [r.job_id for r in rows]


async def _cancel_queued_launches(ctx: RequestContext, all_users: bool) -> None:
    """``cancel -a``: ``jobs_launch`` requests still waiting to run become no jobs."""
    import sqlalchemy as sa

    from skyhop_core.state.db import requests as table

    def queued(conn: Any) -> list[str]:
        query = sa.select(table.c.request_id).where(
            table.c.name == "jobs_launch", table.c.status == "PENDING"
        )
        if not all_users:
            query = query.where(table.c.user_hash == ctx.user.hash)
        return [r.request_id for r in conn.execute(query)]

    ids = [i for i in await ctx.services.store.run(queued) if i != ctx.request_id]
    engine = ctx.services.engine
    if ids and engine is not None:
        cancelled, _ = await engine.cancel(ids)
        if cancelled:
            ctx.log(f"Cancelled {len(cancelled)} queued jobs launch request(s).")


def _rows_of(conn: Any, job_ids: list[int]) -> list[Any]:
    return js.list_rows(conn, job_ids=job_ids)


async def jobs_cancel(ctx: RequestContext, p: P.JobsCancelParams) -> list[int]:
    """Cancel managed jobs: PENDING ones at once, others CANCELLING until their
    controllers have torn their clusters down (this waits for that)."""
    service = _service(ctx)
    if p.all:
        await _cancel_queued_launches(ctx, p.all_users)
    ids = await _targets(ctx, p)
    pending, cancelling = await ctx.services.store.run(js.request_cancel, ids)
    for job_id in cancelling:
        service.cancel_local(job_id)
    service.wake()
    if pending:
        ctx.log(f"Cancelled pending job(s): {', '.join(map(str, pending))}.")
    if cancelling:
        ctx.log(f"Cancelling job(s) {', '.join(map(str, cancelling))}; cleaning up.")
    left = set(cancelling)
    with trio.move_on_after(CANCEL_WAIT_SECONDS):
        while left:
            rows = await ctx.services.store.run(_rows_of, sorted(left))
            left = {r.job_id for r in rows if not S(r.status).is_terminal()}
            if left:
                await trio.sleep(0.2)
    if left:
        ctx.log(f"Still cleaning up: {', '.join(map(str, sorted(left)))}.")
    if not ids:
        ctx.log("No unfinished managed job matched; nothing was cancelled.")
    return sorted(pending + cancelling)


async def _find(ctx: RequestContext, p: P.JobsLogsParams) -> Any:
    # A job named by ID may be anyone's for an admin (or on a local server), as every
    # other -u read; by name or "the latest", it is always the caller's own.
    owner = None if p.job_id is not None and may_act_for_all(ctx) else ctx.user.hash
    rows = await ctx.services.store.run(
        lambda c: js.list_rows(
            c,
            user_hash=owner,
            job_ids=[p.job_id] if p.job_id is not None else None,
            name=p.name,
        )
    )
    if not rows:
        what = (
            f"{p.job_id}" if p.job_id is not None else f"named {p.name!r}" if p.name else "at all"
        )
        raise JobNotFoundError(
            f"No managed job {what} of yours. Run `skyhop jobs queue` to list them."
        )
    return rows[0]


async def jobs_logs(ctx: RequestContext, p: P.JobsLogsParams) -> int:
    """Stream a managed job's saved output (or its controller's log); the result is the
    job's exit code (0, 100 failed, 101 not finished, 103 cancelled)."""
    from skyhop_core.requests.logs import follow

    service = _service(ctx)
    row = await _find(ctx, p)
    job_id = row.job_id
    store = ctx.services.store

    async def finished() -> bool:
        current = await store.run(js.get, job_id)
        return S(current.status).is_terminal() and job_id not in service.controllers

    name = f"{job_id}.controller" if p.controller else f"{job_id}.output"
    async for chunk in follow(
        service.hub, name, offset=0, is_finished=finished, follow=p.follow, poll=1.0
    ):
        ctx.write(chunk)
    row = await store.run(js.get, job_id)
    return int(S(row.status).exit_code())
