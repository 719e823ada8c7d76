"""The ``skyhop serve`` group: services (up, update, status, logs, down).

A service runs its task on replicas (clusters ``<service>-<id>``) behind one endpoint on
the API server's host; the YAML's ``service:`` section says how replicas are probed and
scaled. ``serve up`` returns once the endpoint listens (replicas come up after it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from skyhop.cli.taskopts import task_kwargs, task_options

SERVICE_COLUMNS = ["NAME", "VERSION", "UPTIME", "STATUS", "REPLICAS", "ENDPOINT"]
REPLICA_COLUMNS = ["SERVICE_NAME", "ID", "VERSION", "ENDPOINT", "LAUNCHED", "STATUS"]


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def render_status(records: Sequence[dict[str, Any]], *, verbose: bool = False,
                  now: float | None = None) -> str:
    """The ``skyhop serve status`` tables (services, then replicas)."""
    from skyhop.cli.render import ago, duration, table

    if not records:
        return "No existing services."
    now = now if now is not None else time.time()
    header = list(SERVICE_COLUMNS) + (["POLICY", "REQUESTED_RESOURCES"] if verbose else [])
    rows = []
    for r in records:
        info = r.get("replica_info") or []
        ready = sum(_value(i["status"]) == "READY" for i in info)
        row = [r["name"], ",".join(map(str, r.get("active_versions") or [])) or "-",
               duration(r.get("uptime")), _value(r["status"]), f"{ready}/{len(info)}",
               r.get("endpoint") or "-"]
        if verbose:
            row += [r.get("policy") or "-", r.get("requested_resources_str") or "-"]
        rows.append(row)
    out = ["Services", table(header, rows)]
    replicas = [
        [r["name"], i["replica_id"], i["version"], i.get("endpoint") or "-",
         ago(i.get("launched_at"), now), _value(i["status"])]
        for r in records for i in (r.get("replica_info") or [])
    ]
    if replicas:
        out += ["", "Service Replicas", table(REPLICA_COLUMNS, replicas)]
    failures = [f"{r['name']}: {r['failure_reason']}" for r in records if r.get("failure_reason")]
    if verbose and failures:
        out += ["", *failures]
    return "\n".join(out)


def _task(entrypoint: tuple[str, ...], params: dict[str, Any]) -> Any:
    from skyhop.cli.taskopts import build_task, yaml_entrypoint
    from skyhop_core.models.service_spec import check_task_service

    path = yaml_entrypoint(entrypoint)
    if path is None:
        raise click.UsageError("SERVICE_YAML must be a task YAML file with a service: section.")
    task = build_task(entrypoint, **task_kwargs(params))
    # Precise errors naming the file before anything is sent.
    check_task_service(task.to_yaml_config(), str(path))
    return task


@click.group()
def serve() -> None:
    """Services: replicas behind a load-balanced endpoint, autoscaled and updated."""


@serve.command("up")
@click.argument("service_yaml", nargs=-1, required=True)
@click.option("-n", "--service-name", help="The service's name (default: the task's name).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--async", "async_", is_flag=True, help="Submit and return at once.")
@task_options
def up(service_yaml: tuple[str, ...], service_name: str | None, yes: bool,
       async_: bool, **params: Any) -> None:
    """Start a service from SERVICE_YAML (a task YAML with a service: section)."""
    from skyhop import serve as sdk_serve
    from skyhop.cli.waiting import submit_or_follow

    task = _task(service_yaml, params)
    shown = service_name or task.name or "(generated)"
    if not yes:
        click.confirm(f"Launching a new service '{shown}'. Proceed?", default=True, abort=True)
    request_id = sdk_serve.up(task, service_name=service_name)
    result = submit_or_follow("serve_up", request_id, f"Starting service '{shown}'", async_)
    if result is None:
        return
    name, endpoint = result
    click.echo("\n".join([
        f"Service name: {name}",
        f"Endpoint: {endpoint}",
        f"├── To see its status: skyhop serve status {name}",
        f"├── To follow its controller: skyhop serve logs {name} --controller",
        f"├── To try it: curl {endpoint}",
        f"└── To take it down: skyhop serve down {name}",
    ]))


@serve.command("update")
@click.argument("service_name")
@click.argument("service_yaml", nargs=-1, required=True)
@click.option("--mode", type=click.Choice(["rolling", "blue_green"]), default="rolling",
              show_default=True, help="rolling: traffic may mix; blue_green: switch at once.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--async", "async_", is_flag=True, help="Submit and return at once.")
@task_options
def update(service_name: str, service_yaml: tuple[str, ...], mode: str, yes: bool,
           async_: bool, **params: Any) -> None:
    """Update SERVICE_NAME to a new version from SERVICE_YAML."""
    from skyhop import serve as sdk_serve
    from skyhop.cli.waiting import submit_or_follow

    task = _task(service_yaml, params)
    if not yes:
        click.confirm(f"Updating service '{service_name}' ({mode}). Proceed?", default=True,
                      abort=True)
    request_id = sdk_serve.update(task, service_name, mode=mode)
    submit_or_follow("serve_update", request_id, f"Updating service '{service_name}'", async_)


@serve.command("status")
@click.argument("service_names", nargs=-1)
@click.option("-v", "--verbose", is_flag=True, help="Add the policy and resources.")
@click.option("--endpoint", "endpoint_only", is_flag=True,
              help="Print only the endpoint of the (one) service.")
def status(service_names: tuple[str, ...], verbose: bool, endpoint_only: bool) -> None:
    """Show services and their replicas."""
    from skyhop import sdk
    from skyhop import serve as sdk_serve

    records = sdk.get(sdk_serve.status(list(service_names) or None))
    if endpoint_only:
        if len(records) != 1:
            raise click.UsageError("--endpoint needs exactly one service (name it).")
        click.echo(records[0]["endpoint"])
        return
    click.echo(render_status(records, verbose=verbose))


@serve.command("logs")
@click.argument("service_name")
@click.argument("replica_id", type=int, required=False)
@click.option("--controller", is_flag=True, help="The controller's log.")
@click.option("--load-balancer", is_flag=True, help="The load balancer's log.")
@click.option("--follow/--no-follow", default=True, help="Keep printing as it grows.")
def logs(service_name: str, replica_id: int | None, controller: bool, load_balancer: bool,
         follow: bool) -> None:
    """Print a replica's log (REPLICA_ID), or the --controller / --load-balancer log."""
    from skyhop import serve as sdk_serve
    from skyhop.cli.waiting import stream_then_get

    if sum((replica_id is not None, controller, load_balancer)) != 1:
        raise click.UsageError("Pass one of REPLICA_ID, --controller or --load-balancer.")
    target = ("replica" if replica_id is not None else
              "controller" if controller else "load_balancer")
    request_id = sdk_serve.submit_logs(service_name, target, replica_id, follow=follow)
    stream_then_get(request_id, sys.stdout)


@serve.command("down")
@click.argument("service_names", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Take all of your services down.")
@click.option("-p", "--purge", is_flag=True,
              help="Forget failed services/replicas even if a teardown fails.")
@click.option("--replica-id", type=int, help="Terminate only this replica (drained first).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def down(service_names: tuple[str, ...], all_: bool, purge: bool, replica_id: int | None,
         yes: bool) -> None:
    """Take services down (or, with --replica-id, one replica)."""
    from skyhop import sdk
    from skyhop import serve as sdk_serve

    if replica_id is not None:
        if len(service_names) != 1 or all_:
            raise click.UsageError("--replica-id needs exactly one SERVICE_NAME (and no -a).")
        if not yes:
            click.confirm(f"Terminating replica {replica_id} of '{service_names[0]}'. Proceed?",
                          default=True, abort=True)
        sdk.stream_and_get(sdk_serve.terminate_replica(service_names[0], replica_id, purge))
        return
    if bool(service_names) == all_:
        raise click.UsageError("Name the services, or pass -a/--all (not both).")
    what = "all of your services" if all_ else f"service(s) {', '.join(service_names)}"
    if not yes:
        click.confirm(f"Terminating {what}. Proceed?", default=True, abort=True)
    sdk.stream_and_get(sdk_serve.down(list(service_names) or None, all=all_, purge=purge))
