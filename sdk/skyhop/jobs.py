"""Managed jobs: ``skyhop.jobs.launch / queue / cancel / tail_logs``.

A managed job runs on its own cluster (``<name>-<job_id>``) that the API server launches,
watches, recovers after a preemption (or a failure, within
``resources.job_recovery.max_restarts_on_errors``) and tears down when the job ends.
Its output is kept, so :func:`tail_logs` replays it after the end.

::

    import skyhop as sky

    task = sky.Task(run="python train.py", resources=sky.Resources(infra="local"))
    job_id = sky.get(sky.jobs.launch(task, name="train"))["job_id"]
    sky.get(sky.jobs.queue(refresh=False))        # list of dicts, newest first
    code = sky.jobs.tail_logs(job_id=job_id)      # synchronous: the job's exit code

As in the rest of the SDK, every function but :func:`tail_logs` returns a request ID.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from skyhop import sdk as _sdk
from skyhop_core import exceptions

if TYPE_CHECKING:
    from skyhop.dag import Dag
    from skyhop_core.models import Task


def launch(task: Task | Dag | dict[str, Any], name: str | None = None) -> str:
    """Submit a managed job.

    Args:
        task: the :class:`~skyhop.Task` (or its task-YAML mapping), or a
            :class:`~skyhop.Dag`: a pipeline whose tasks run in order, each on its own
            cluster (a failure stops it; the rest are CANCELLED). ``resources.priority``
            (-1000…1000) orders waiting jobs, ``resources.job_recovery`` chooses the
            recovery strategy (``EAGER_NEXT_REGION`` by default, or ``FAILOVER``),
            ``max_restarts_on_errors`` and ``recover_on_exit_codes``.
        name: the job's name (default: the Dag's or the task's name, else ``sky-cmd``).

    Returns:
        The request ID. Its result is SkyPilot's ``(job_id, controller_handle)`` — the
        handle is always None: the controller runs inside the API server — also readable
        as ``result["job_id"]``. The job is PENDING until the scheduler starts it.

    Request raises:
        TaskValidationError / ValueError: the task or the name is invalid.
    """
    from skyhop.dag import Dag

    tasks = list(task.tasks) if isinstance(task, Dag) else [task]
    if not tasks:
        raise ValueError("The Dag has no tasks: add at least one before launching it.")
    for one in tasks:
        if _sdk._has_callable_run(one):
            raise exceptions.TaskValidationError(
                "A managed job's run must be a command string: a callable run needs the "
                "cluster's node IPs before the cluster exists.",
                source="<task>", field="run", value=repr(getattr(one, "run", None)),
            )
    if isinstance(task, Dag) and len(tasks) > 1:
        body = {"tasks": [_sdk._task_mapping(t) for t in tasks], "name": name or task.name}
        return _sdk._submit("jobs_launch", body)
    if isinstance(task, Dag):
        name = name or task.name
    return _sdk._submit("jobs_launch", {"task": _sdk._task_mapping(tasks[0]), "name": name})


def queue(
    refresh: bool = False,
    skip_finished: bool = False,
    all_users: bool = False,
    job_ids: list[int] | None = None,
) -> str:
    """List managed jobs (yours unless ``all_users``), newest first.

    Returns the request ID; its result is a list of dicts with SkyPilot's keys:
    ``job_id, job_name, resources, submitted_at, start_at, end_at, duration,
    job_duration`` (excluding time spent recovering), ``recovery_count, status`` (a
    ``ManagedJobStatus``), ``failure_reason, cluster_name, infra, region, priority``.
    ``refresh`` is accepted for SkyPilot compatibility (the server has no controller to
    start).
    """
    body = {
        "refresh": refresh,
        "skip_finished": skip_finished,
        "all_users": all_users,
        "job_ids": job_ids,
    }
    return _sdk._submit("jobs_queue", body)


def cancel(
    name: str | None = None,
    job_ids: list[int] | None = None,
    all: bool = False,  # noqa: A002 - the SDK's public name
    all_users: bool = False,
) -> str:
    """Cancel managed jobs by ``job_ids``, by ``name``, or ``all`` of yours (``all_users``:
    everyone's). PENDING jobs are CANCELLED at once; the others are CANCELLING until
    their clusters are torn down, which the request waits for.

    Returns the request ID; its result is the list of cancelled job IDs.
    """
    if sum(bool(x) for x in (name, job_ids, all)) != 1:
        raise ValueError("Cancel by job_ids, by name, or all=True: exactly one of them.")
    body = {"name": name, "job_ids": job_ids, "all": all, "all_users": all_users}
    return _sdk._submit("jobs_cancel", body)


def submit_logs(
    name: str | None = None,
    job_id: int | None = None,
    follow: bool = True,
    controller: bool = False,
) -> str:
    """Submit the ``jobs_logs`` request behind :func:`tail_logs`; returns its ID."""
    body = {"name": name, "job_id": job_id, "follow": follow, "controller": controller}
    return _sdk._submit("jobs_logs", body)


def tail_logs(
    name: str | None = None,
    job_id: int | None = None,
    follow: bool = True,
    controller: bool = False,
    refresh: bool = False,
    output_stream: TextIO | None = None,
) -> int:
    """Print a managed job's output (the latest job when neither ``name`` nor
    ``job_id`` is given; ``controller=True``: what its controller did). Synchronous.

    Returns:
        The job's exit code (``JobExitCode``): 0 succeeded, 100 failed, 101 not
        finished, 103 cancelled.

    Raises:
        JobNotFoundError: no such managed job of yours.
    """
    del refresh  # SkyPilot's: restart a stopped controller; the server is the controller
    request_id = submit_logs(name, job_id, follow=follow, controller=controller)
    return int(_sdk.stream_and_get(request_id, output_stream=output_stream))


def download_logs(
    name: str | None = None,
    job_id: int | None = None,
    refresh: bool = False,
    controller: bool = False,
    local_dir: str = "~/sky_logs",
) -> dict[int, str]:
    """Save managed jobs' output (``controller=True``: their controllers' logs) under
    ``local_dir``; the jobs named ``name``, or ``job_id``, or your latest. Synchronous.

    Returns ``{job_id: local path}``.

    Raises:
        JobNotFoundError: no such managed job of yours.
    """
    import os

    del refresh
    if job_id is not None:
        ids = [job_id]
    else:
        records = _sdk.get(queue(refresh=False))
        ids = [r["job_id"] for r in records if name is None or r["job_name"] == name]
        if not ids:
            raise exceptions.JobNotFoundError(
                f"No managed job {f'named {name!r} ' if name else ''}of yours. "
                "Run `skyhop jobs queue` to list them."
            )
        if name is None:
            ids = ids[:1]
    target = os.path.join(os.path.expanduser(local_dir), "managed_jobs")
    os.makedirs(target, exist_ok=True)
    paths: dict[int, str] = {}
    for one in ids:
        path = os.path.join(target, f"job-{one}{'-controller' if controller else ''}.log")
        with open(path, "w") as f:
            tail_logs(job_id=one, follow=False, controller=controller, output_stream=f)
        paths[one] = path
    return paths


__all__ = ["cancel", "download_logs", "launch", "queue", "submit_logs", "tail_logs"]
