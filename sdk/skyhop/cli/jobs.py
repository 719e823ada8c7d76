"""Cluster job commands: queue, logs, cancel.

``skyhop logs`` exits with the job's code: 0 succeeded, 100 failed, 101 not finished,
102 not found, 103 cancelled (``JobExitCode``); ``--status`` prints the status only.
"""

from __future__ import annotations

import click

from skyhop.cli.waiting import follow_job


@click.command()
@click.argument("cluster_name")
@click.option("-s", "--skip-finished", is_flag=True, help="Show only unfinished jobs.")
@click.option("-u", "--all-users", is_flag=True, help="Include other users' jobs (an admin token on a deployed server).")
def queue(cluster_name: str, skip_finished: bool, all_users: bool) -> None:
    """Show a cluster's job queue."""
    from skyhop import sdk
    from skyhop.cli import render

    records = sdk.get(sdk.queue(cluster_name, skip_finished=skip_finished, all_users=all_users))
    click.echo(f"Job queue of cluster {cluster_name}")
    click.echo(render.jobs(records))


@click.command()
@click.argument("cluster_name")
@click.argument("job_id", type=int, required=False)
@click.option("--no-follow", is_flag=True, help="Print what is there and return.")
@click.option(
    "--status", "status_only", is_flag=True, help="Print the job's status; exit with its code."
)
@click.option("--tail", type=click.IntRange(min=0), default=0, help="Start with the last N lines.")
@click.pass_context
def logs(
    ctx: click.Context,
    cluster_name: str,
    job_id: int | None,
    no_follow: bool,
    status_only: bool,
    tail: int,
) -> None:
    """Print a job's log (default: the latest job) and exit with the job's code."""
    from skyhop_core.exceptions import JobNotFoundError
    from skyhop_core.models.status import JobExitCode

    if status_only:
        from skyhop import sdk

        statuses = sdk.get(sdk.job_status(cluster_name, [job_id] if job_id is not None else None))
        key, status = next(iter(statuses.items()), (str(job_id), None))
        shown = "not found" if status is None else status.value
        click.echo(f"Job {key if key != 'None' else '-'}: {shown}")
        ctx.exit(int(JobExitCode.from_job_status(status)))
    try:
        code = follow_job(cluster_name, job_id, follow=not no_follow, tail=tail)
    except JobNotFoundError as exc:
        click.echo(f"Error: JobNotFoundError: {exc}", err=True)
        code = int(JobExitCode.NOT_FOUND)
    ctx.exit(code)


@click.command()
@click.argument("cluster_name")
@click.argument("job_ids", type=int, nargs=-1)
@click.option(
    "-a", "--all", "all_jobs", is_flag=True, help="Cancel all of your jobs on the cluster."
)
@click.option("-u", "--all-users", is_flag=True, help="With --all: everyone's jobs (an admin token on a deployed server).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def cancel(
    cluster_name: str, job_ids: tuple[int, ...], all_jobs: bool, all_users: bool, yes: bool
) -> None:
    """Cancel jobs on a cluster: the given IDs, or --all."""
    from skyhop import sdk

    if not job_ids and not all_jobs:
        raise click.UsageError("Name the job IDs to cancel, or pass -a/--all.")
    if job_ids and all_jobs:
        raise click.UsageError("Pass either job IDs or -a/--all, not both.")
    what = (
        f"job(s) {', '.join(map(str, job_ids))}"
        if job_ids
        else ("all users' jobs" if all_users else "all of your jobs")
    )
    if not yes:
        click.confirm(
            f"Cancelling {what} on cluster '{cluster_name}'. Proceed?", default=True, abort=True
        )
    request_id = sdk.cancel(
        cluster_name, all=all_jobs, all_users=all_users, job_ids=list(job_ids) or None
    )
    cancelled = sdk.get(request_id)
    if cancelled:
        click.echo(f"Cancelled job(s): {', '.join(map(str, cancelled))}.")
    else:
        click.echo("No unfinished job matched; nothing was cancelled.")
