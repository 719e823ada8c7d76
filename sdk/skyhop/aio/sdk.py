"""The async cluster and job functions of :mod:`skyhop.aio`.

Each takes the sync function's parameters (see :mod:`skyhop.sdk` for their meaning) and
builds the very same request body with :func:`skyhop.sdk.build_request`; the keyword-only
``stream_logs`` and ``output_stream`` choose whether the request's log is streamed
while the result is awaited.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

import anyio

import skyhop.sdk as _sdk
from skyhop.aio.api import follow_request, submit_and_follow
from skyhop.aio.client import session
from skyhop_core import exceptions
from skyhop_core.models.status import JobStatus, OptimizeTarget, StatusRefreshMode

if TYPE_CHECKING:
    from skyhop_core.models import Task


async def _run(
    function: Any, *args: Any, stream_logs: bool, output_stream: TextIO | None, **kwargs: Any
) -> Any:
    operation, body = _sdk.build_request(function, *args, **kwargs)
    return await submit_and_follow(
        operation, body, stream_logs=stream_logs, output_stream=output_stream
    )


# --- clusters ------------------------------------------------------------------------


async def launch(
    task: Task | dict[str, Any],
    cluster_name: str | None = None,
    retry_until_up: bool = False,
    idle_minutes_to_autostop: int | None = None,
    dryrun: bool = False,
    down: bool = False,
    optimize_target: OptimizeTarget = OptimizeTarget.COST,
    no_setup: bool = False,
    fast: bool = False,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> dict[str, Any]:
    """Launch a cluster and run the task; returns ``{"job_id", "handle"}``.

    A callable ``run`` takes the sync SDK's two steps (launch without ``run``, then an
    ``exec`` with one command per rank); with ``stream_logs`` both logs are streamed.
    """
    result: dict[str, Any] = await _run(
        _sdk.launch,
        task,
        cluster_name,
        retry_until_up,
        idle_minutes_to_autostop,
        dryrun,
        down,
        optimize_target,
        no_setup,
        fast,
        stream_logs=stream_logs,
        output_stream=output_stream,
    )
    if not _sdk._has_callable_run(task) or dryrun:
        return result
    # Mirrors skyhop.sdk._run_callable_after_launch.
    handle = result["handle"]
    name = handle.cluster_name
    setup_job = result.get("job_id")
    if setup_job is not None and await _wait_for_job(name, setup_job) is not JobStatus.SUCCEEDED:
        return result  # setup failed: its job shows why
    immediate_down = down and idle_minutes_to_autostop is None
    operation, body = _sdk.build_request(
        _sdk._exec_per_rank, task, name, handle.node_ips, False, immediate_down
    )
    async with session() as client:
        exec_id = await client.submit(operation, body)
        if down and idle_minutes_to_autostop is not None:
            await autostop(name, idle_minutes_to_autostop, down=True, stream_logs=False)
        return dict(
            await follow_request(
                client, exec_id, stream_logs=stream_logs, output_stream=output_stream
            )
        )


async def _wait_for_job(cluster_name: str, job_id: int, poll: float = 0.5) -> JobStatus | None:
    while True:
        statuses = await job_status(cluster_name, [job_id], stream_logs=False)
        found = statuses.get(str(job_id))
        if found is None or found.is_terminal():
            return found
        await anyio.sleep(poll)


async def exec(  # noqa: A001 - the SDK's public name
    task: Task | dict[str, Any],
    cluster_name: str,
    dryrun: bool = False,
    down: bool = False,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> dict[str, Any]:
    """Run a task as a new job on an UP cluster; returns ``{"job_id", "handle"}``."""
    opts: dict[str, Any] = {"stream_logs": stream_logs, "output_stream": output_stream}
    if not _sdk._has_callable_run(task):
        return dict(await _run(_sdk.exec, task, cluster_name, dryrun, down, **opts))
    records = await status([cluster_name], stream_logs=False)
    if not records or records[0].get("handle") is None:
        raise exceptions.ClusterNotUpError(
            f"Cluster {cluster_name!r} is not UP, so its node IPs for the task's run "
            f"callable are unknown. Launch it first: skyhop launch -c {cluster_name}"
        )
    node_ips = records[0]["handle"].node_ips
    return dict(await _run(_sdk._exec_per_rank, task, cluster_name, node_ips, dryrun, down, **opts))


async def stop(
    cluster_name: str,
    purge: bool = False,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> None:
    """Stop a cluster (its disks are kept)."""
    await _run(_sdk.stop, cluster_name, purge, stream_logs=stream_logs, output_stream=output_stream)


async def start(
    cluster_name: str,
    idle_minutes_to_autostop: int | None = None,
    retry_until_up: bool = False,
    down: bool = False,
    force: bool = False,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> None:
    """Start a STOPPED cluster; ``down`` without ``idle_minutes_to_autostop`` is a ValueError."""
    await _run(
        _sdk.start,
        cluster_name,
        idle_minutes_to_autostop,
        retry_until_up,
        down,
        force,
        stream_logs=stream_logs,
        output_stream=output_stream,
    )


async def down(
    cluster_name: str,
    purge: bool = False,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> None:
    """Tear a cluster down."""
    await _run(_sdk.down, cluster_name, purge, stream_logs=stream_logs, output_stream=output_stream)


async def status(
    cluster_names: Iterable[str] | None = None,
    refresh: StatusRefreshMode = StatusRefreshMode.NONE,
    all_users: bool = False,
    include_managed_jobs: bool = False,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> list[dict[str, Any]]:
    """Clusters as dicts with the ``ClusterRecord`` fields (see :func:`skyhop.status`)."""
    return list(
        await _run(
            _sdk.status,
            cluster_names,
            refresh,
            all_users,
            include_managed_jobs,
            stream_logs=stream_logs,
            output_stream=output_stream,
        )
    )


async def autostop(
    cluster_name: str,
    idle_minutes: int,
    down: bool = False,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> None:
    """Stop (``down=True``: tear down) the cluster after ``idle_minutes`` without jobs."""
    await _run(
        _sdk.autostop,
        cluster_name,
        idle_minutes,
        down,
        stream_logs=stream_logs,
        output_stream=output_stream,
    )


async def optimize(
    task: Task | dict[str, Any],
    cluster_name: str | None = None,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> list[dict[str, Any]]:
    """The "Considered resources" rows (``[]`` when ``cluster_name`` exists)."""
    return list(
        await _run(
            _sdk.optimize,
            task,
            cluster_name,
            stream_logs=stream_logs,
            output_stream=output_stream,
        )
    )


async def check(*, stream_logs: bool = True, output_stream: TextIO | None = None) -> list[Any]:
    """Which backends are usable: a list of ``CheckResult``."""
    return list(await _run(_sdk.check, stream_logs=stream_logs, output_stream=output_stream))


# --- jobs ----------------------------------------------------------------------------


async def queue(
    cluster_name: str,
    skip_finished: bool = False,
    all_users: bool = False,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> list[dict[str, Any]]:
    """The cluster's job queue as dicts with the ``JobRecord`` fields."""
    return list(
        await _run(
            _sdk.queue,
            cluster_name,
            skip_finished,
            all_users,
            stream_logs=stream_logs,
            output_stream=output_stream,
        )
    )


async def job_status(
    cluster_name: str,
    job_ids: list[int] | None = None,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> dict[str, JobStatus | None]:
    """``{str(job_id): JobStatus | None}`` (the latest job without ``job_ids``)."""
    return dict(
        await _run(
            _sdk.job_status,
            cluster_name,
            job_ids,
            stream_logs=stream_logs,
            output_stream=output_stream,
        )
    )


async def cancel(
    cluster_name: str,
    all: bool = False,  # noqa: A002 - the SDK's public name
    all_users: bool = False,
    job_ids: list[int] | None = None,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> list[int]:
    """Cancel jobs; returns the cancelled job IDs."""
    return list(
        await _run(
            _sdk.cancel,
            cluster_name,
            all,
            all_users,
            job_ids,
            stream_logs=stream_logs,
            output_stream=output_stream,
        )
    )


async def tail_logs(
    cluster_name: str,
    job_id: int | None,
    follow: bool = True,
    tail: int = 0,
    output_stream: TextIO | None = None,
) -> int:
    """Print a job's log (``job_id=None``: the latest job); returns its exit code.

    The exit code is a ``JobExitCode``: 0 succeeded, 100 failed, 101 not finished,
    102 not found, 103 cancelled. The log is always streamed (it is the point).
    """
    return int(
        await _run(
            _sdk.submit_logs,
            cluster_name,
            job_id,
            follow=follow,
            tail=tail,
            stream_logs=True,
            output_stream=output_stream,
        )
    )


async def download_logs(
    cluster_name: str,
    job_ids: list[int] | None,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> dict[str, str]:
    """Download jobs' logs under the persistent path; ``{str(job_id): local path}``."""
    return dict(
        await _run(
            _sdk.download_logs,
            cluster_name,
            job_ids,
            stream_logs=stream_logs,
            output_stream=output_stream,
        )
    )
