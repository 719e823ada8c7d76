"""Cluster job operations: queue, job_status, cancel, logs, download_logs.

They work on UP clusters and on INIT ones that have nodes (see ``require_nodes``).
"""

from __future__ import annotations

from skyhop_core.exceptions import JobNotFoundError
from skyhop_core.models.records import JobRecord
from skyhop_core.models.status import JobExitCode, JobStatus
from skyhop_core.ops import params as P
from skyhop_core.ops.common import (
    backend_ctx,
    get_cluster,
    require_all_users_allowed,
    require_nodes,
)
from skyhop_core.paths import open_private, private_dir
from skyhop_core.requests.context import RequestContext


async def _queue(ctx: RequestContext, cluster_name: str, skip_finished: bool) -> list[JobRecord]:
    record = await get_cluster(ctx, cluster_name)
    handle = require_nodes(record)
    return await ctx.services.backends.call(
        handle.backend,
        "skyhop_queue",
        ctx=backend_ctx(ctx, handle.backend),
        handle=handle,
        skip_finished=skip_finished,
    )


async def queue(ctx: RequestContext, p: P.QueueParams) -> list[JobRecord]:
    """A cluster's job queue (the caller's jobs unless all_users; on a deployed server
    all_users needs an admin, like every -u)."""
    if p.all_users:
        require_all_users_allowed(ctx, "list jobs of")
    jobs = await _queue(ctx, p.cluster_name, p.skip_finished)
    if not p.all_users:
        jobs = [j for j in jobs if j.user_hash == ctx.user.hash]
    return jobs


async def job_status(ctx: RequestContext, p: P.JobStatusParams) -> dict[str, JobStatus | None]:
    """Statuses of jobs on a cluster (the latest job when no IDs are given)."""
    jobs = await _queue(ctx, p.cluster_name, False)
    by_id = {j.job_id: j.status for j in jobs}
    if p.job_ids is None:
        if not jobs:
            return {"None": None}
        latest = max(by_id)
        return {str(latest): by_id[latest]}
    return {str(i): by_id.get(i) for i in p.job_ids}


async def cancel(ctx: RequestContext, p: P.CancelParams) -> list[int]:
    """Cancel jobs on a cluster, killing their process trees."""
    if p.all_users:
        require_all_users_allowed(ctx, "cancel jobs of")
    record = await get_cluster(ctx, p.cluster_name)
    handle = require_nodes(record)
    user_hash = None if (p.all_users or p.job_ids) else ctx.user.hash
    cancelled: list[int] = await ctx.services.backends.call(
        handle.backend,
        "skyhop_cancel_jobs",
        ctx=backend_ctx(ctx, handle.backend),
        handle=handle,
        job_ids=None if p.all else list(p.job_ids or []),
        user_hash=user_hash,
    )
    if cancelled:
        ctx.log(f"Cancelled job(s): {', '.join(map(str, cancelled))}.")
    else:
        ctx.log("No unfinished job matched; nothing was cancelled.")
    return cancelled


async def logs(ctx: RequestContext, p: P.LogsParams) -> int:
    """Relay a job's log to the client's stream; the result is the JobExitCode.

    The bytes go through the request's live log: the cluster keeps the job's log, so the
    request does not store another copy on every read."""
    record = await get_cluster(ctx, p.cluster_name)
    handle = require_nodes(record)

    async def on_output(data: bytes) -> None:
        await ctx.send(data)

    status = await ctx.services.backends.call(
        handle.backend,
        "skyhop_tail_logs",
        ctx=backend_ctx(ctx, handle.backend),
        handle=handle,
        job_id=p.job_id,
        follow=p.follow,
        tail=p.tail,
        on_output=on_output,
    )
    if status is not None and status.is_terminal():
        mark = "✓" if status is JobStatus.SUCCEEDED else "✗"
        await ctx.send(f"{mark} Job finished (status: {status.value}).\n".encode())
    return int(JobExitCode.from_job_status(status))


async def download_logs(ctx: RequestContext, p: P.DownloadLogsParams) -> dict[str, str]:
    """Copy job logs from a cluster under the persistent path; returns their paths."""
    record = await get_cluster(ctx, p.cluster_name)
    handle = require_nodes(record)
    bctx = backend_ctx(ctx, handle.backend)
    job_ids = p.job_ids
    if not job_ids:
        jobs = await _queue(ctx, p.cluster_name, False)
        job_ids = [j.job_id for j in jobs]
    target = private_dir(ctx.services.persistent_path / "logs" / p.cluster_name)
    paths: dict[str, str] = {}
    for job_id in job_ids:
        path = target / f"job-{job_id}.log"
        with open_private(path, "wb") as f:

            async def on_output(data: bytes, f=f) -> None:  # type: ignore[no-untyped-def]
                f.write(data)

            status = await ctx.services.backends.call(
                handle.backend, "skyhop_tail_logs", ctx=bctx, handle=handle,
                job_id=job_id, follow=False, tail=0, on_output=on_output,
            )
        if status is None:
            path.unlink(missing_ok=True)
            raise JobNotFoundError(f"Job {job_id} does not exist on cluster {p.cluster_name!r}.")
        paths[str(job_id)] = str(path)
        ctx.log(f"Job {job_id}: {path}")
    return paths
