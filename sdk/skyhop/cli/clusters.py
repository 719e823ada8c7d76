"""Cluster commands: launch, exec, status, stop, start, down, autostop, check."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import click

from skyhop.cli.taskopts import build_task, task_kwargs, task_options
from skyhop.cli.waiting import follow_job, follow_request, job_hints, submit_or_follow


def _default_cluster_name() -> str:
    import getpass

    user = re.sub(r"[^a-z0-9]", "", getpass.getuser().lower())[:16] or "user"
    return f"skyhop-{secrets.token_hex(2)}-{user}"


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _run_job(ctx: click.Context, result: Any, cluster_name: str, detach_run: bool) -> None:
    """After launch/exec: tail the job and exit with its code, or print how to follow it."""
    job_id = (result or {}).get("job_id")
    if job_id is None:
        return
    if detach_run:
        click.echo(job_hints(cluster_name, job_id))
        return
    code = follow_job(cluster_name, job_id)
    click.echo()
    click.echo(job_hints(cluster_name, job_id))
    ctx.exit(code)


def _launch_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--async", "async_", is_flag=True, help="Submit the request and return at once."
        ),
        click.option(
            "-d",
            "--detach-run",
            is_flag=True,
            help="Do not stream the job's log; return once it is submitted.",
        ),
        click.option("-n", "--name", help="The task's name (shown in the job queue)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command()
@click.option(
    "-c",
    "--cluster",
    "cluster_name",
    help="Cluster to create or reuse (default: a generated name).",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@task_options
@click.option(
    "-i",
    "--idle-minutes-to-autostop",
    type=int,
    help="Stop the cluster after this many idle minutes.",
)
@click.option(
    "--down", is_flag=True, help="Tear the cluster down (not stop) when idle, by default at once."
)
@click.option(
    "--ports",
    multiple=True,
    metavar="PORT[-PORT]",
    help="Ports to expose (repeatable, e.g. --ports 8080 --ports 9000-9010).",
)
@click.option("--retry-until-up", is_flag=True, help="Keep retrying until the cluster is up.")
@click.option("--dryrun", is_flag=True, help="Plan only; launch nothing.")
@click.option(
    "--optimize-target",
    type=click.Choice(["COST", "TIME"], case_sensitive=False),
    default="COST",
    help="Choose the cheapest resources (COST) or the fastest (TIME: most GPUs/vCPUs).",
)
@click.option("--no-setup", is_flag=True, help="Skip the task's setup commands.")
@click.option(
    "--fast", is_flag=True, help="Skip provisioning and syncing if the cluster is already up."
)
@_launch_options
@click.argument("entrypoint", nargs=-1)
@click.pass_context
def launch(
    ctx: click.Context,
    cluster_name: str | None,
    yes: bool,
    entrypoint: tuple[str, ...],
    **params: Any,
) -> None:
    """Launch a cluster (or reuse one) and run a task on it.

    ENTRYPOINT is a task YAML file, or a command to run (its words are joined).
    """
    from skyhop import sdk

    task = build_task(entrypoint, **task_kwargs(params))
    name = cluster_name or _default_cluster_name()
    target = sdk.OptimizeTarget(params["optimize_target"].upper())
    rows = sdk.get(sdk.optimize(task, name, optimize_target=target))
    if rows:
        from skyhop.cli import render

        click.echo(render.considered_resources(rows, int(getattr(task, "num_nodes", 1) or 1)))
        prompt = f"Launching a new cluster '{name}'. Proceed?"
    else:
        prompt = f"Running on existing cluster '{name}'. Proceed?"
    if not yes and not params["dryrun"]:
        click.confirm(prompt, default=True, abort=True)
    request_id = sdk.launch(
        task,
        cluster_name=name,
        retry_until_up=params["retry_until_up"],
        idle_minutes_to_autostop=params["idle_minutes_to_autostop"],
        dryrun=params["dryrun"],
        down=params["down"],
        no_setup=params["no_setup"],
        fast=params["fast"],
        optimize_target=target,
    )
    result = submit_or_follow("launch", request_id, f"Launching cluster '{name}'", params["async_"])
    if not params["async_"] and not params["dryrun"]:
        _run_job(ctx, result, name, params["detach_run"])


@click.command("exec")
@click.option(
    "-c", "--cluster", "cluster_option", help="The cluster (instead of the first argument)."
)
@task_options
@_launch_options
@click.argument("args", nargs=-1, required=True, metavar="[CLUSTER] ENTRYPOINT...")
@click.pass_context
def exec_(
    ctx: click.Context, cluster_option: str | None, args: tuple[str, ...], **params: Any
) -> None:
    """Run a task as a new job on an existing cluster (no provisioning, no setup).

    The cluster is the first argument, or -c CLUSTER. ENTRYPOINT is a task YAML file, or
    a command to run (its words are joined).
    """
    from skyhop import sdk

    if cluster_option is not None:
        cluster_name, entrypoint = cluster_option, args
    else:
        cluster_name, entrypoint = args[0], args[1:]
    if not entrypoint:
        raise click.UsageError("Name the task YAML or the command to run after the cluster.")
    task = build_task(entrypoint, **task_kwargs(params))
    request_id = sdk.exec(task, cluster_name=cluster_name)
    result = submit_or_follow(
        "exec", request_id, f"Submitting job to '{cluster_name}'", params["async_"]
    )
    if not params["async_"]:
        _run_job(ctx, result, cluster_name, params["detach_run"])


def _own_cluster_names(what: str) -> list[str]:
    """Every cluster of the caller, for ``stop -a`` / ``down -a``."""
    from skyhop import sdk

    names = [r["name"] for r in sdk.get(sdk.status(None))]
    if not names:
        click.echo(f"No existing clusters to {what}.")
    return names


def _resolve_names(names: tuple[str, ...], all_clusters: bool, what: str) -> list[str]:
    if all_clusters and names:
        raise click.UsageError("Pass either cluster names or -a/--all, not both.")
    if all_clusters:
        return _own_cluster_names(what)
    if not names:
        raise click.UsageError("Name the clusters, or pass -a/--all for all of yours.")
    return list(names)


def _on_each(
    ctx: click.Context,
    names: Sequence[str],
    operation: str,
    submit: Callable[[str], str],
    async_: bool,
    verb: str,
) -> None:
    """Submit one request per cluster, then follow each; any failure exits 1 at the end."""
    from skyhop.cli import error_line

    submitted = [(name, submit(name)) for name in names]
    failed = False
    for name, request_id in submitted:
        try:
            submit_or_follow(operation, request_id, f"{verb} cluster '{name}'", async_)
        except (KeyboardInterrupt, click.exceptions.Exit):
            raise
        except Exception as exc:
            if len(submitted) == 1:
                raise
            click.echo(error_line(exc), err=True)
            failed = True
    if failed:
        ctx.exit(1)


def _confirm(yes: bool, verb: str, names: Sequence[str]) -> None:
    if not yes:
        click.confirm(f"{verb} cluster(s) {_quoted(names)}. Proceed?", default=True, abort=True)


_names = click.argument("cluster_names", nargs=-1, required=True)
_any_names = click.argument("cluster_names", nargs=-1)
_all = click.option("-a", "--all", "all_clusters", is_flag=True, help="All of your clusters.")
_yes = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
_async = click.option(
    "--async", "async_", is_flag=True, help="Submit the request(s) and return at once."
)
_purge = click.option(
    "--purge", is_flag=True, help="Forget the cluster even if the backend call fails."
)


@click.command()
@_any_names
@_all
@_yes
@_purge
@_async
@click.pass_context
def stop(
    ctx: click.Context,
    cluster_names: tuple[str, ...],
    all_clusters: bool,
    yes: bool,
    purge: bool,
    async_: bool,
) -> None:
    """Stop clusters; their disks are kept and 'skyhop start' resumes them."""
    from skyhop import sdk

    names = _resolve_names(cluster_names, all_clusters, "stop")
    if not names:
        return
    _confirm(yes, "Stopping", names)
    _on_each(ctx, names, "stop", lambda n: sdk.stop(n, purge=purge), async_, "Stopping")


@click.command()
@_names
@_yes
@click.option(
    "-i",
    "--idle-minutes-to-autostop",
    type=int,
    help="Stop the cluster after this many idle minutes.",
)
@click.option("--down", is_flag=True, help="With -i: tear down instead of stopping.")
@click.option("--retry-until-up", is_flag=True, help="Keep retrying until the cluster is up.")
@click.option("--force", is_flag=True, help="Start even if the cluster is already up.")
@_async
@click.pass_context
def start(
    ctx: click.Context,
    cluster_names: tuple[str, ...],
    yes: bool,
    idle_minutes_to_autostop: int | None,
    down: bool,
    retry_until_up: bool,
    force: bool,
    async_: bool,
) -> None:
    """Start stopped clusters where they were."""
    from skyhop import sdk

    if down and idle_minutes_to_autostop is None:
        raise click.UsageError("--down needs -i/--idle-minutes-to-autostop.")
    _confirm(yes, "Starting", cluster_names)
    _on_each(
        ctx,
        cluster_names,
        "start",
        lambda n: sdk.start(
            n, idle_minutes_to_autostop, retry_until_up=retry_until_up, down=down, force=force
        ),
        async_,
        "Starting",
    )


@click.command()
@_any_names
@_all
@_yes
@_purge
@_async
@click.pass_context
def down(
    ctx: click.Context,
    cluster_names: tuple[str, ...],
    all_clusters: bool,
    yes: bool,
    purge: bool,
    async_: bool,
) -> None:
    """Tear clusters down; everything on them is deleted."""
    from skyhop import sdk

    names = _resolve_names(cluster_names, all_clusters, "tear down")
    if not names:
        return
    _confirm(yes, "Terminating", names)
    _on_each(ctx, names, "down", lambda n: sdk.down(n, purge=purge), async_, "Terminating")


@click.command()
@_names
@click.option(
    "-i", "--idle-minutes", type=int, help="Minutes of idleness before the cluster stops."
)
@click.option("--down", is_flag=True, help="Tear down instead of stopping.")
@click.option("--cancel", is_flag=True, help="Cancel any autostop/autodown.")
@click.option(
    "--wait-for",
    type=click.Choice(["jobs_and_ssh", "jobs", "none"]),
    help="What counts as activity: jobs_and_ssh (the default): jobs and an interactive "
    "SSH session on the head node; jobs: only jobs; none: stop N minutes from now "
    "whatever runs.",
)
@_yes
@_async
@click.pass_context
def autostop(
    ctx: click.Context,
    cluster_names: tuple[str, ...],
    idle_minutes: int | None,
    down: bool,
    cancel: bool,
    wait_for: str | None,
    yes: bool,
    async_: bool,
) -> None:
    """Stop (or, with --down, tear down) clusters after some idle minutes.

    While an autostop stops a cluster its status is AUTOSTOPPING (its autostop hook, set
    in the task's resources.autostop, runs first). -y is accepted for SkyPilot's scripts;
    this command never asks.
    """
    del yes
    from skyhop import sdk

    if cancel and idle_minutes is not None:
        raise click.UsageError("Pass either -i/--idle-minutes or --cancel, not both.")
    if cancel:
        idle_minutes = -1
    elif idle_minutes is None:
        raise click.UsageError("Pass -i/--idle-minutes MINUTES (or --cancel).")
    minutes = idle_minutes
    _on_each(
        ctx,
        cluster_names,
        "autostop",
        lambda n: sdk.autostop(n, minutes, down=down, wait_for=wait_for),
        async_,
        "Setting autostop on",
    )


@click.command()
def check() -> None:
    """Show which backends are usable, and how to enable the others."""
    from skyhop import sdk
    from skyhop.cli import render

    click.echo(render.checks(sdk.get(sdk.check())))


__all__ = [
    "autostop",
    "check",
    "down",
    "exec_",
    "launch",
    "start",
    "stop",
    "follow_request",
]
