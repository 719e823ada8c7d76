"""The skyhop Python SDK: every call is a request to the API server.

Most functions submit a request and return its ID at once; :func:`get` waits for the
result and :func:`stream_and_get` streams the request's log while it waits. Results and
errors come back as the server produced them: the same exception types, records as
objects (``status`` and ``queue`` records as dicts, like SkyPilot's SDK).

Exceptions: :func:`tail_logs` and :func:`download_logs` are synchronous, as are the
``api_*`` functions that manage the server and its requests.

Tasks whose ``run`` is a Python callable ``run(node_rank, node_ips) -> str | None``
cannot travel over HTTP. :func:`launch` and :func:`exec` resolve them on the client: the
cluster is launched (or looked up) first, the callable is evaluated for each rank with
the cluster's node IPs, and an ``exec`` request whose ``run`` holds one command per rank
(``None`` runs nothing on that rank) is submitted. Its request ID is the one returned, so
``get()`` gives the same ``{"job_id", "handle"}`` result a plain launch does. These calls
block until the cluster is up (and its setup job, if any, has finished).

A task's ``workdir`` and local ``file_mounts`` sources are paths on this machine (relative
ones resolved against the current directory): :func:`launch` and :func:`exec` upload
them to the API server before submitting, and the request names the uploads (see
:mod:`skyhop.uploads`).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO

from skyhop.api import (
    api_cancel,
    api_info,
    api_start,
    api_status,
    api_stop,
    get,
    stream_and_get,
)
from skyhop.client import current_client
from skyhop_core import exceptions
from skyhop_core.models.status import JobStatus, OptimizeTarget, StatusRefreshMode

if TYPE_CHECKING:
    from skyhop_core.models import Task


class _Captured(BaseException):
    """Raised by :func:`_submit` under :func:`build_request`: the request, not sent."""

    def __init__(self, operation: str, body: dict[str, Any]) -> None:
        super().__init__(operation)
        self.operation = operation
        self.body = body


_capturing: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "skyhop_capture_requests", default=False
)


def _submit(operation: str, body: dict[str, Any]) -> str:
    if _capturing.get():
        raise _Captured(operation, body)
    return current_client().submit(operation, body)


def build_request(
    function: Callable[..., Any], *args: Any, **kwargs: Any
) -> tuple[str, dict[str, Any]]:
    """``(operation, body)`` of the first request ``function(*args, **kwargs)`` submits.

    The function runs (validating its arguments and building the body) up to its first
    submission, which is returned instead of sent. :mod:`skyhop.aio` uses it so both
    SDKs send the same bodies.
    """
    token = _capturing.set(True)
    try:
        function(*args, **kwargs)
    except _Captured as captured:
        return captured.operation, captured.body
    finally:
        _capturing.reset(token)
    raise RuntimeError(f"{getattr(function, '__name__', function)!r} submitted no request")


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


# --- tasks ---------------------------------------------------------------------------


def _task_mapping(task: Task | dict[str, Any], *, without_run: bool = False) -> dict[str, Any]:
    """The task-YAML mapping sent over the wire (envs and secrets included).

    ``Task.to_yaml_config`` already leaves a callable ``run`` out.
    """
    config = dict(task) if isinstance(task, dict) else dict(task.to_yaml_config())
    if without_run:
        config.pop("run", None)
    return config


def _has_callable_run(task: Task | dict[str, Any]) -> bool:
    return not isinstance(task, dict) and callable(task.run)


def _per_rank_commands(
    run: Callable[[int, list[str]], str | None], node_ips: list[str]
) -> list[str | None]:
    commands: list[str | None] = []
    for rank in range(len(node_ips)):
        command = run(rank, list(node_ips))
        if command is not None and not isinstance(command, str):
            raise exceptions.TaskValidationError(
                f"The task's run callable returned {type(command).__name__} for rank {rank}; "
                "it must return a command string or None.",
                source="<task>",
                field="run",
                value=repr(command),
            )
        commands.append(command)
    return commands


def _wait_for_job(cluster_name: str, job_id: int, poll: float = 0.5) -> JobStatus | None:
    while True:
        status = get(job_status(cluster_name, [job_id])).get(str(job_id))
        if status is None or status.is_terminal():
            return status
        time.sleep(poll)


def _exec_per_rank(
    task: Task, cluster_name: str, node_ips: list[str], dryrun: bool, down: bool
) -> str:
    config = _task_mapping(task, without_run=True)
    config.pop("setup", None)
    config["run"] = _per_rank_commands(task.run, node_ips)  # type: ignore[arg-type]
    body = {"task": config, "cluster_name": cluster_name, "dryrun": dryrun, "down": down}
    return _submit("exec", body)


# --- clusters ------------------------------------------------------------------------


def launch(
    task: Task | dict[str, Any],
    cluster_name: str | None = None,
    retry_until_up: bool = False,
    idle_minutes_to_autostop: int | None = None,
    dryrun: bool = False,
    down: bool = False,
    optimize_target: OptimizeTarget = OptimizeTarget.COST,
    no_setup: bool = False,
    fast: bool = False,
) -> str:
    """Launch a cluster (or reuse an existing one) and run the task on it.

    Args:
        task: the :class:`~skyhop.Task` (or its task-YAML mapping) to run.
        cluster_name: the cluster to create or reuse; ``None`` lets the server pick one.
        retry_until_up: keep retrying until some candidate provisions.
        idle_minutes_to_autostop: stop the cluster after this many idle minutes.
        dryrun: plan only; nothing is provisioned.
        down: tear the cluster down (instead of stopping it) when it goes idle.
        optimize_target: ``OptimizeTarget.COST`` or ``OptimizeTarget.TIME``.
        no_setup: skip the task's setup commands.
        fast: skip provisioning and file syncing when the cluster is already up.

    Returns:
        The request ID. Its result is ``{"job_id": int | None, "handle": ClusterHandle |
        None}``. With a callable ``run`` this call waits for the cluster first (see the
        module docs) and returns the ID of the ``exec`` request that runs it.
    """
    callable_run = _has_callable_run(task) and not dryrun
    # With a callable run, autodown must not fire between the launch and the exec that
    # runs the job: the launch sets no autodown, the exec (or a later autostop) does.
    deferred_down = callable_run and down
    body = {
        "task": _task_mapping(task, without_run=callable_run),
        "cluster_name": cluster_name,
        "retry_until_up": retry_until_up,
        "idle_minutes_to_autostop": None if deferred_down else idle_minutes_to_autostop,
        "dryrun": dryrun,
        "down": down and not deferred_down,
        "optimize_target": _enum_value(optimize_target),
        "no_setup": no_setup,
        "fast": fast,
    }
    request_id = _submit("launch", body)
    if not callable_run:
        return request_id
    return _run_callable_after_launch(task, request_id, down, idle_minutes_to_autostop)  # type: ignore[arg-type]


def _run_callable_after_launch(
    task: Task, launch_id: str, down: bool, idle_minutes: int | None
) -> str:
    result = get(launch_id)
    handle = result["handle"]
    name = handle.cluster_name
    setup_job = result.get("job_id")
    if setup_job is not None and _wait_for_job(name, setup_job) is not JobStatus.SUCCEEDED:
        return launch_id  # setup failed: its job (in the result) shows why
    exec_id = _exec_per_rank(task, name, handle.node_ips, False, down and idle_minutes is None)
    if down and idle_minutes is not None:
        get(autostop(name, idle_minutes, down=True))
    return exec_id


def exec(  # noqa: A001 - the SDK's public name
    task: Task | dict[str, Any],
    cluster_name: str,
    dryrun: bool = False,
    down: bool = False,
) -> str:
    """Run a task as a new job on an existing UP cluster (no provisioning, no setup).

    The task's workdir is synced first. ``down`` tears the cluster down once it is idle.

    Returns:
        The request ID; its result is ``{"job_id": int | None, "handle": ClusterHandle}``.
    """
    if _has_callable_run(task):
        records = get(status([cluster_name]))
        if not records or records[0].get("handle") is None:
            raise exceptions.ClusterNotUpError(
                f"Cluster {cluster_name!r} is not UP, so its node IPs for the task's run "
                f"callable are unknown. Launch it first: skyhop launch -c {cluster_name}"
            )
        node_ips = records[0]["handle"].node_ips
        return _exec_per_rank(task, cluster_name, node_ips, dryrun, down)  # type: ignore[arg-type]
    body = {
        "task": _task_mapping(task),
        "cluster_name": cluster_name,
        "dryrun": dryrun,
        "down": down,
    }
    return _submit("exec", body)


def stop(cluster_name: str, purge: bool = False) -> str:
    """Stop a cluster; its disks are kept. ``purge`` marks it STOPPED even if stopping fails.

    Returns the request ID (result ``None``).
    """
    return _submit("stop", {"cluster_name": cluster_name, "purge": purge})


def start(
    cluster_name: str,
    idle_minutes_to_autostop: int | None = None,
    retry_until_up: bool = False,
    down: bool = False,
    force: bool = False,
) -> str:
    """Start a STOPPED (or restart an INIT) cluster where it was.

    Raises:
        ValueError: ``down`` without ``idle_minutes_to_autostop`` (checked before sending).

    Returns the request ID (result ``None``).
    """
    if down and idle_minutes_to_autostop is None:
        raise ValueError(
            "down=True needs idle_minutes_to_autostop (minutes of idleness before autodown)."
        )
    body = {
        "cluster_name": cluster_name,
        "idle_minutes_to_autostop": idle_minutes_to_autostop,
        "retry_until_up": retry_until_up,
        "down": down,
        "force": force,
    }
    return _submit("start", body)


def down(cluster_name: str, purge: bool = False) -> str:
    """Tear a cluster down; ``purge`` forgets it even if teardown fails.

    Returns the request ID (result ``None``).
    """
    return _submit("down", {"cluster_name": cluster_name, "purge": purge})


def status(
    cluster_names: Iterable[str] | None = None,
    refresh: StatusRefreshMode = StatusRefreshMode.NONE,
    all_users: bool = False,
    include_managed_jobs: bool = False,
) -> str:
    """List clusters (all of yours, or the named ones).

    The clusters of running managed jobs are left out (as SkyPilot's live on its jobs
    controller) unless named or ``include_managed_jobs``; ``skyhop jobs queue`` lists
    the jobs.

    Returns the request ID; its result is a list of dicts with the ``ClusterRecord``
    fields (name, status, backend, launched_at, autostop, to_down, handle, ...).
    """
    names = list(cluster_names) if cluster_names is not None else None
    body = {"cluster_names": names, "refresh": _enum_value(refresh), "all_users": all_users}
    if include_managed_jobs:
        body["include_managed_jobs"] = True
    return _submit("status", body)


def cost_report(days: int | None = None, all_users: bool = False) -> str:
    """What your clusters cost: each existing one so far, and those torn down in the
    last ``days`` days (None: 30, as SkyPilot). The result is a list of dicts with name,
    status (None once torn down), launched_at, terminated_at, duration (seconds UP),
    num_nodes, resources_str, price_per_hour, total_cost, user_name, user_hash."""
    return _submit("cost_report", {"days": 30 if days is None else days, "all_users": all_users})


def autostop(
    cluster_name: str, idle_minutes: int, down: bool = False, wait_for: str | None = None
) -> str:
    """Stop (``down=True``: tear down) the cluster after ``idle_minutes`` without jobs.

    A negative ``idle_minutes`` cancels autostop. ``wait_for``: ``"jobs_and_ssh"`` (the
    default) waits for running jobs and for interactive SSH sessions on the head node
    (of a backend reached over SSH) to end, ``"jobs"`` only for jobs; ``"none"`` stops
    ``idle_minutes`` after this call whatever runs. Returns the request ID (result
    ``None``).
    """
    body: dict[str, Any] = {"cluster_name": cluster_name, "idle_minutes": idle_minutes, "down": down}
    if wait_for is not None:
        body["wait_for"] = wait_for
    return _submit("autostop", body)


def optimize(
    task: Task | dict[str, Any],
    cluster_name: str | None = None,
    optimize_target: OptimizeTarget = OptimizeTarget.COST,
) -> str:
    """Plan where the task would run, without launching anything.

    Returns the request ID; its result is the rows of the "Considered resources" table
    (dicts with infra, instance_type, cpus, memory_gb, gpus, cost, chosen), or ``[]``
    when ``cluster_name`` already exists. ``optimize_target`` ranks as ``launch`` does.
    """
    body = {
        "task": _task_mapping(task, without_run=_has_callable_run(task)),
        "cluster_name": cluster_name,
        "optimize_target": _enum_value(optimize_target),
    }
    return _submit("optimize", body)


def check() -> str:
    """Check which backends are usable. The result is a list of ``CheckResult``."""
    return _submit("check", {})


def storage_ls(all_users: bool = False) -> str:
    """Your storage buckets. The result is a list of dicts with name, store, persistent,
    cluster_name (a temporary bucket's cluster), source, created_at, last_use, user_name."""
    return _submit("storage_ls", {"all_users": all_users})


def storage_delete(name: str | list[str] | None = None, *, all: bool = False) -> str:
    """Delete your storage bucket(s) ``name`` (or all with ``all=True``) and their
    contents. The result is the list of names deleted."""
    names = [name] if isinstance(name, str) else (list(name) if name is not None else None)
    return _submit("storage_delete", {"names": names, "all": all})


def volumes_apply(name: str, type: str = "local", size: str | None = None) -> str:
    """Create a volume (``local``: a directory on the API server's machine, bound into
    local nodes at a task's ``volumes:`` path). The result is its record."""
    return _submit("volumes_apply", {"name": name, "type": type, "size": size})


def volumes_ls() -> str:
    """Your volumes. The result is a list of dicts with name, type, user_name, created_at,
    last_use."""
    return _submit("volumes_ls", {})


def volumes_delete(names: str | list[str] | None = None, *, all: bool = False) -> str:
    """Delete your volumes (and their contents). The result is the names deleted."""
    listed = [names] if isinstance(names, str) else (list(names) if names is not None else None)
    return _submit("volumes_delete", {"names": listed, "all": all})


def show_gpus(name: str | None = None, infra: str | None = None) -> str:
    """Accelerators the enabled backends offer. The result is a list of dicts with
    accelerator, count, backend, instance_type, cpus, memory_gb, price, spot_price, region.
    """
    return _submit("show_gpus", {"name": name, "infra": infra})


# --- jobs ----------------------------------------------------------------------------


def queue(cluster_name: str, skip_finished: bool = False, all_users: bool = False) -> str:
    """The cluster's job queue; the result is a list of dicts with ``JobRecord`` fields."""
    body = {"cluster_name": cluster_name, "skip_finished": skip_finished, "all_users": all_users}
    return _submit("queue", body)


def job_status(cluster_name: str, job_ids: list[int] | None = None) -> str:
    """Statuses of jobs; the result maps ``str(job_id)`` to a ``JobStatus`` or ``None``.

    Without ``job_ids``, the latest job (``{"None": None}`` when there is none).
    """
    return _submit("job_status", {"cluster_name": cluster_name, "job_ids": job_ids})


def cancel(
    cluster_name: str,
    all: bool = False,  # noqa: A002 - the SDK's public name
    all_users: bool = False,
    job_ids: list[int] | None = None,
) -> str:
    """Cancel jobs on a cluster: ``job_ids``, or ``all`` of yours (``all_users``: everyone's).

    Returns the request ID; its result is the list of cancelled job IDs.
    """
    body = {"cluster_name": cluster_name, "all": all, "all_users": all_users, "job_ids": job_ids}
    return _submit("cancel", body)


def submit_logs(cluster_name: str, job_id: int | None, follow: bool = True, tail: int = 0) -> str:
    """Submit the ``logs`` request behind :func:`tail_logs`; returns its request ID."""
    body = {"cluster_name": cluster_name, "job_id": job_id, "follow": follow, "tail": tail}
    return _submit("logs", body)


def tail_logs(
    cluster_name: str,
    job_id: int | None,
    follow: bool = True,
    tail: int = 0,
    output_stream: TextIO | None = None,
) -> int:
    """Print a job's log (``job_id=None``: the latest job). Synchronous.

    Args:
        follow: keep printing until the job finishes.
        tail: if > 0, start with the last ``tail`` lines only.
        output_stream: where to write (default: stdout).

    Returns:
        The job's exit code (``JobExitCode``): 0 succeeded, 100 failed, 101 not finished,
        102 not found, 103 cancelled.
    """
    request_id = submit_logs(cluster_name, job_id, follow=follow, tail=tail)
    return int(stream_and_get(request_id, output_stream=output_stream))


def download_logs(cluster_name: str, job_ids: list[int] | None) -> dict[str, str]:
    """Download jobs' logs under the persistent path. Synchronous.

    Returns ``{str(job_id): local path}`` (all jobs when ``job_ids`` is empty).
    """
    return dict(get(_submit("download_logs", {"cluster_name": cluster_name, "job_ids": job_ids})))


__all__ = [
    "api_cancel",
    "api_info",
    "api_start",
    "api_status",
    "api_stop",
    "autostop",
    "cancel",
    "check",
    "cost_report",
    "down",
    "download_logs",
    "exec",
    "get",
    "job_status",
    "launch",
    "optimize",
    "queue",
    "start",
    "status",
    "stop",
    "stream_and_get",
    "submit_logs",
    "tail_logs",
]
