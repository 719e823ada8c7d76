"""The ``skyhop jobs`` group: managed jobs (launch, queue, cancel, logs).

A managed job runs on its own cluster, which the API server recovers after a preemption
and tears down at the end. ``skyhop jobs launch`` without ``-d`` streams the job's
output and exits with its code (0 succeeded, 100 failed, 103 cancelled), as
``skyhop jobs logs`` does.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from skyhop.cli.taskopts import build_task, task_kwargs, task_options

QUEUE_COLUMNS = [
    "ID", "TASK", "NAME", "REQUESTED", "SUBMITTED", "TOT. DURATION", "JOB DURATION",
    "#RECOVERIES", "STATUS",
]
VERBOSE_COLUMNS = ["INFRA", "CLUSTER", "DETAILS", "FAILURE"]


def render_queue(
    records: Sequence[dict[str, Any]], *, verbose: bool = False, show_user: bool = False,
    now: float | None = None,
) -> str:
    """The ``skyhop jobs queue`` table (SkyPilot's columns; ``-v`` adds four)."""
    from skyhop.cli.render import table

    if not records:
        return "No managed jobs."
    now = now if now is not None else time.time()
    header = list(QUEUE_COLUMNS)
    if show_user:
        header.insert(3, "USER")
    if verbose:
        header += VERBOSE_COLUMNS
    rows = []
    tasks_of: dict[Any, list[dict[str, Any]]] = {}
    for r in records:
        tasks_of.setdefault(r["job_id"], []).append(r)
    seen: set[Any] = set()
    for r in records:
        pipeline = len(tasks_of[r["job_id"]]) > 1
        if pipeline and r["job_id"] not in seen:
            seen.add(r["job_id"])
            rows.append(
                _pipeline_row(tasks_of[r["job_id"]], now, verbose=verbose, show_user=show_user)
            )
        rows.append(_row(r, now, verbose=verbose, show_user=show_user, task_row=pipeline))
    return table(header, rows)


def _row(
    r: dict[str, Any], now: float, *, verbose: bool, show_user: bool, task_row: bool
) -> list[Any]:
    from skyhop.cli.render import ago, duration

    status = getattr(r["status"], "value", r["status"])
    row = [
        "" if task_row else r["job_id"],
        r.get("task_id", 0) if task_row else "-",
        f"↳ {r.get('task_name') or '-'}" if task_row else r.get("job_name") or "-",
        r.get("resources") or "-",
        "" if task_row else ago(r.get("submitted_at"), now),
        duration(r.get("duration")),
        duration(r.get("job_duration")) if r.get("start_at") else "-",
        r.get("recovery_count", 0),
        status,
    ]
    if show_user:
        row.insert(3, "" if task_row else r.get("user_name") or "-")
    if verbose:
        row += [
            r.get("infra") or "-",
            r.get("cluster_name") or "-",
            r.get("details") or "-",
            " ".join(str(r.get("failure_reason") or "-").split()),
        ]
    return row


def _pipeline_row(
    tasks: list[dict[str, Any]], now: float, *, verbose: bool, show_user: bool
) -> list[Any]:
    """A pipeline's own row: its status is its first task that did not succeed (as
    SkyPilot shows it), its job duration and recoveries the sum over its tasks."""
    status = tasks[-1]["status"]
    for t in tasks:
        if getattr(t["status"], "value", t["status"]) != "SUCCEEDED":
            status = t["status"]
            break
    head = dict(
        tasks[0], status=status,
        job_duration=sum(t.get("job_duration") or 0.0 for t in tasks),
        recovery_count=sum(t.get("recovery_count") or 0 for t in tasks),
        resources="-", infra=None, cluster_name=None, details=None,
        failure_reason=next((t.get("failure_reason") for t in tasks
                             if t.get("failure_reason")), None),
    )  # fmt: skip
    return _row(head, now, verbose=verbose, show_user=show_user, task_row=False)


@click.group()
def jobs() -> None:
    """Managed jobs: each on its own cluster, recovered from preemption, torn down after."""


@jobs.command("launch")
@click.option("-n", "--name", help="The job's name (default: the task's name).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@task_options
@click.option("--async", "async_", is_flag=True, help="Submit the job and return at once.")
@click.option(
    "-d", "--detach-run", is_flag=True, help="Return once the job is queued; do not stream it."
)
@click.argument("entrypoint", nargs=-1, required=True)
@click.pass_context
def launch(
    ctx: click.Context, name: str | None, yes: bool, entrypoint: tuple[str, ...], **params: Any
) -> None:
    """Launch a managed job.

    ENTRYPOINT is a task YAML file, or a command to run (its words are joined).
    """
    from skyhop import jobs as sdk_jobs
    from skyhop.cli.waiting import submit_or_follow

    options = task_kwargs(params)
    task = _build_dag(entrypoint, options) or build_task(entrypoint, **options)
    shown = name or getattr(task, "name", None) or "sky-cmd"
    if not yes:
        click.confirm(f"Launching a managed job '{shown}'. Proceed?", default=True, abort=True)
    request_id = sdk_jobs.launch(task, name=name)
    result = submit_or_follow(
        "jobs_launch", request_id, f"Submitting managed job '{shown}'", params["async_"]
    )
    if result is None:
        return
    job_id = result["job_id"]
    if params["detach_run"]:
        click.echo(_hints(job_id))
        return
    ctx.exit(_follow(None, job_id, follow=True, controller=False))


def _build_dag(entrypoint: tuple[str, ...], options: dict[str, Any]) -> Any:
    """A pipeline from a multi-document YAML (the task options apply to every task);
    None for anything else (one task)."""
    from skyhop.cli.taskopts import parse_pairs, yaml_entrypoint
    from skyhop.dag import Dag

    path = yaml_entrypoint(entrypoint)
    if path is None:
        return None
    dag = Dag.from_yaml(
        str(path),
        env_overrides=parse_pairs(options["envs"], "env"),
        secrets_overrides=parse_pairs(options["secrets"], "secret"),
    )
    if len(dag.tasks) < 2:
        return None
    for task in dag.tasks:
        if options["num_nodes"] is not None:
            task.num_nodes = options["num_nodes"]
        if options["workdir"] is not None:
            task.workdir = options["workdir"]
        task.set_resources_override({
            "infra": options["infra"], "cpus": options["cpus"], "memory": options["memory"],
            "accelerators": options["gpus"],
        })  # fmt: skip
    return dag


def _hints(job_id: int) -> str:
    return "\n".join(
        [
            f"Managed job ID: {job_id}",
            f"├── To stream its logs: skyhop jobs logs {job_id}",
            "├── To see its status: skyhop jobs queue",
            f"└── To cancel it: skyhop jobs cancel {job_id}",
        ]
    )


def _follow(name: str | None, job_id: int | None, *, follow: bool, controller: bool) -> int:
    from skyhop import jobs as sdk_jobs
    from skyhop.cli.waiting import stream_then_get

    request_id = sdk_jobs.submit_logs(name, job_id, follow=follow, controller=controller)
    return int(stream_then_get(request_id, sys.stdout))


@jobs.command("queue")
@click.option("-a", "--all", "all_", is_flag=True, help="Show every job (the default).")
@click.option("-u", "--all-users", is_flag=True, help="Include other users' jobs.")
@click.option("-s", "--skip-finished", is_flag=True, help="Show only unfinished jobs.")
@click.option("-v", "--verbose", is_flag=True, help="Add the infra, cluster, details and failure reason.")
def queue(all_: bool, all_users: bool, skip_finished: bool, verbose: bool) -> None:
    """Show managed jobs, newest first."""
    from skyhop import jobs as sdk_jobs
    from skyhop import sdk

    del all_  # every job is shown unless -s
    records = sdk.get(
        sdk_jobs.queue(refresh=False, skip_finished=skip_finished, all_users=all_users)
    )
    click.echo(render_queue(records, verbose=verbose, show_user=all_users))


@jobs.command("cancel")
@click.argument("job_ids", type=int, nargs=-1)
@click.option("-n", "--name", help="Cancel the unfinished jobs with this name.")
@click.option("-a", "--all", "all_jobs", is_flag=True, help="Cancel all of your jobs.")
@click.option("-u", "--all-users", is_flag=True, help="Cancel everyone's jobs.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def cancel(
    job_ids: tuple[int, ...], name: str | None, all_jobs: bool, all_users: bool, yes: bool
) -> None:
    """Cancel managed jobs: the given IDs, -n NAME, -a (yours) or -u (everyone's)."""
    from skyhop import jobs as sdk_jobs
    from skyhop import sdk

    every = all_jobs or all_users
    if sum(bool(x) for x in (job_ids, name, every)) != 1:
        raise click.UsageError("Name job IDs, or pass -n NAME, or -a/--all (-u: all users).")
    what = (
        f"managed job(s) {', '.join(map(str, job_ids))}" if job_ids
        else f"managed job(s) named '{name}'" if name
        else "all users' managed jobs" if all_users else "all of your managed jobs"
    )
    if not yes:
        click.confirm(f"Cancelling {what}. Proceed?", default=True, abort=True)
    request_id = sdk_jobs.cancel(
        name=name, job_ids=list(job_ids) or None, all=every, all_users=all_users
    )
    cancelled = sdk.get(request_id)
    if cancelled:
        click.echo(f"Cancelled managed job(s): {', '.join(map(str, cancelled))}.")
    else:
        click.echo("No unfinished managed job matched; nothing was cancelled.")


@jobs.command("logs")
@click.argument("job_id", type=int, required=False)
@click.option("-n", "--name", help="The job's name (its latest job).")
@click.option("--controller", is_flag=True, help="Show what the controller did instead.")
@click.option("--follow/--no-follow", default=True, help="Keep printing until the job ends.")
@click.pass_context
def logs(
    ctx: click.Context, job_id: int | None, name: str | None, controller: bool, follow: bool
) -> None:
    """Print a managed job's output (default: your latest job); exit with its code."""
    from skyhop_core.exceptions import JobNotFoundError
    from skyhop_core.models.status import JobExitCode

    if job_id is not None and name:
        raise click.UsageError("Pass a JOB_ID or -n NAME, not both.")
    try:
        code = _follow(name, job_id, follow=follow, controller=controller)
    except JobNotFoundError as exc:
        click.echo(f"Error: JobNotFoundError: {exc}", err=True)
        code = int(JobExitCode.NOT_FOUND)
    ctx.exit(code)
