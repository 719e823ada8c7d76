"""Cluster job commands: queue, logs, cancel.

``skyhop logs`` exits with the job's code: 0 succeeded, 100 failed, 101 not finished,
102 not found, 103 cancelled (``JobExitCode``); ``--status`` prints the status only.
"""

from __future__ import annotations

import click

from skyhop.cli.waiting import follow_job


@click.command()
@click.argument("cluster_names", nargs=-1)
@click.option("-s", "--skip-finished", is_flag=True, help="Show only unfinished jobs.")
@click.option(
    "-u",
    "-a",
    "--all-users",
    is_flag=True,
    help="Include other users' jobs (an admin token on a deployed server).",
)
def queue(cluster_names: tuple[str, ...], skip_finished: bool, all_users: bool) -> None:
    """Show job queues: of the named clusters, or of all your UP clusters."""
    from skyhop import sdk
    from skyhop.cli import render

    names = list(cluster_names)
    if not names:
        records = sdk.get(sdk.status(None, all_users=all_users))
        names = [r["name"] for r in records if getattr(r["status"], "value", "") == "UP"]
        if not names:
            click.echo("No UP clusters.")
            return
    submitted = [
        (n, sdk.queue(n, skip_finished=skip_finished, all_users=all_users)) for n in names
    ]
    for index, (name, request_id) in enumerate(submitted):
        if index:
            click.echo()
        click.echo(f"Job queue of cluster {name}")
        click.echo(render.jobs(sdk.get(request_id)))


def _sync_down(cluster_name: str, job_ids: list[int | None]) -> int:
    """``logs --sync-down``: each job's log into a local file; prints where."""
    from skyhop import sdk
    from skyhop.cli.waiting import stream_then_get
    from skyhop_core import paths

    root = paths.persistent_path() / "job_logs" / cluster_name
    worst = 0
    for job_id in job_ids:
        path = root / f"job-{job_id if job_id is not None else 'latest'}.log"
        root.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            request_id = sdk.submit_logs(cluster_name, job_id, follow=False)
            code = int(stream_then_get(request_id, out))
        if job_id is None:
            job_id = _latest_job_id(cluster_name)
            final = root / f"job-{job_id}.log"
            path.replace(final)
            path = final
        click.echo(f"Job {job_id} logs: {path}")
        worst = max(worst, code)
    return worst


def _latest_job_id(cluster_name: str) -> int | None:
    from skyhop import sdk

    records = sdk.get(sdk.queue(cluster_name, all_users=True))
    return max((r["job_id"] for r in records), default=None)


@click.command()
@click.argument("cluster_name")
@click.argument("job_ids", type=int, nargs=-1)
@click.option("--no-follow", is_flag=True, help="Print what is there and return.")
@click.option(
    "--status", "status_only", is_flag=True, help="Print the jobs' statuses; exit with the code."
)
@click.option(
    "--sync-down",
    is_flag=True,
    help="Save the logs to local files (under the persistent path) and print where.",
)
@click.option("--tail", type=click.IntRange(min=0), default=0, help="Start with the last N lines.")
@click.pass_context
def logs(
    ctx: click.Context,
    cluster_name: str,
    job_ids: tuple[int, ...],
    no_follow: bool,
    status_only: bool,
    sync_down: bool,
    tail: int,
) -> None:
    """Print jobs' logs (default: the latest job) and exit with the job's code.

    With several JOB_IDS the logs are printed one job after another, each under a
    ``=== Job N ===`` line; the exit code is the worst job's (the highest).
    """
    from skyhop_core.exceptions import JobNotFoundError
    from skyhop_core.models.status import JobExitCode

    wanted: list[int | None] = list(job_ids) or [None]
    if status_only:
        from skyhop import sdk

        statuses = sdk.get(sdk.job_status(cluster_name, list(job_ids) or None))
        worst = 0
        for key, status in statuses.items():
            shown = "not found" if status is None else status.value
            click.echo(f"Job {key if key != 'None' else '-'}: {shown}")
            worst = max(worst, int(JobExitCode.from_job_status(status)))
        ctx.exit(worst)
    if sync_down:
        ctx.exit(_sync_down(cluster_name, wanted))
    worst = 0
    for job_id in wanted:
        if len(wanted) > 1:
            click.echo(f"=== Job {job_id} ===")
        try:
            code = follow_job(cluster_name, job_id, follow=not no_follow, tail=tail)
        except JobNotFoundError as exc:
            click.echo(f"Error: JobNotFoundError: {exc}", err=True)
            code = int(JobExitCode.NOT_FOUND)
        worst = max(worst, code)
    ctx.exit(worst)


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
