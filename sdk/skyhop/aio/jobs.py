"""The async managed-jobs functions: ``skyhop.aio.jobs.launch / queue / cancel /
tail_logs``.

Each builds the sync function's request body (:mod:`skyhop.jobs`) and awaits its
result, streaming the request's log unless ``stream_logs=False``; :func:`tail_logs`
always streams and returns the job's exit code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

import skyhop.jobs as _jobs
from skyhop.aio.sdk import _run

if TYPE_CHECKING:
    from skyhop.dag import Dag
    from skyhop_core.models import Task
    from skyhop_core.models.records import JobSubmission


async def launch(
    task: Task | Dag | dict[str, Any],
    name: str | None = None,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> JobSubmission:
    """Submit a managed job; returns ``(job_id, None)``, also readable as
    ``result["job_id"]`` (see :func:`skyhop.jobs.launch`)."""
    result: JobSubmission = await _run(
        _jobs.launch, task, name, stream_logs=stream_logs, output_stream=output_stream
    )
    return result


async def queue(
    refresh: bool = False,
    skip_finished: bool = False,
    all_users: bool = False,
    job_ids: list[int] | None = None,
    *,
    stream_logs: bool = False,
    output_stream: TextIO | None = None,
) -> list[dict[str, Any]]:
    """Managed-job records, newest first (see :func:`skyhop.jobs.queue`)."""
    records: list[dict[str, Any]] = await _run(
        _jobs.queue, refresh, skip_finished, all_users, job_ids,
        stream_logs=stream_logs, output_stream=output_stream,
    )
    return records


async def cancel(
    name: str | None = None,
    job_ids: list[int] | None = None,
    all: bool = False,  # noqa: A002 - the SDK's public name
    all_users: bool = False,
    *,
    stream_logs: bool = True,
    output_stream: TextIO | None = None,
) -> list[int]:
    """Cancel managed jobs; returns the cancelled IDs once they are cleaned up."""
    cancelled: list[int] = await _run(
        _jobs.cancel, name, job_ids, all, all_users,
        stream_logs=stream_logs, output_stream=output_stream,
    )
    return cancelled


async def tail_logs(
    name: str | None = None,
    job_id: int | None = None,
    follow: bool = True,
    controller: bool = False,
    refresh: bool = False,
    output_stream: TextIO | None = None,
) -> int:
    """Print a managed job's output (or its controller's log); returns the exit code."""
    del refresh
    return int(
        await _run(
            _jobs.submit_logs, name, job_id, follow, controller,
            stream_logs=True, output_stream=output_stream,
        )
    )


__all__ = ["cancel", "launch", "queue", "tail_logs"]
