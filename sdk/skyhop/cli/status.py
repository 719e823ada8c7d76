"""``skyhop status`` (the cluster table, ``--ip``, ``--endpoint(s)``) and ``cost-report``."""

from __future__ import annotations

from typing import Any

import click


@click.command()
@click.argument("cluster_names", nargs=-1)
@click.option(
    "-r", "--refresh", is_flag=True, help="Ask the backends for the clusters' real state."
)
@click.option(
    "-u",
    "--all-users",
    is_flag=True,
    help="Include other users' clusters (an admin token on a deployed server).",
)
@click.option(
    "-a", "-v", "--all", "--verbose", "verbose", is_flag=True,
    help="Show everything: nodes, head IP, cost per hour.",
)  # fmt: skip
@click.option("--ip", is_flag=True, help="Print the head node's IP of one cluster only.")
@click.option(
    "--endpoints", is_flag=True, help="Print where each exposed port of one cluster is reachable."
)
@click.option("--endpoint", type=int, metavar="PORT", help="Print where PORT of one cluster is.")
@click.option(
    "--include-managed-jobs", is_flag=True,
    help="Also show the clusters of running managed jobs (see `skyhop jobs queue`).",
)  # fmt: skip
def status(
    cluster_names: tuple[str, ...],
    refresh: bool,
    all_users: bool,
    verbose: bool,
    ip: bool,
    endpoints: bool,
    endpoint: int | None,
    include_managed_jobs: bool,
) -> None:
    """Show clusters: all of yours, or the named ones (running managed jobs' clusters
    only when named or with --include-managed-jobs)."""
    from skyhop import sdk
    from skyhop.cli import render
    from skyhop_core.models.status import StatusRefreshMode

    mode = StatusRefreshMode.FORCE if refresh else StatusRefreshMode.NONE
    one_value = ip or endpoints or endpoint is not None
    if one_value and len(cluster_names) != 1:
        raise click.UsageError("--ip, --endpoints and --endpoint take exactly one cluster name.")
    records = sdk.get(sdk.status(
        list(cluster_names) or None, refresh=mode, all_users=all_users,
        include_managed_jobs=include_managed_jobs,
    ))  # fmt: skip
    if one_value:
        click.echo(_one_value(cluster_names[0], records, ip=ip, port=endpoint))
        return
    click.echo(render.clusters(records, show_user=all_users, verbose=verbose))


def _one_value(name: str, records: list[dict[str, Any]], *, ip: bool, port: int | None) -> str:
    """``status --ip`` / ``--endpoint PORT`` / ``--endpoints`` of one cluster."""
    from skyhop_core import exceptions

    handle = records[0].get("handle") if records else None
    if not records:
        raise exceptions.ClusterDoesNotExist(f"Cluster {name!r} does not exist.")
    if handle is None or _status_name(records[0]) != "UP":
        raise exceptions.ClusterNotUpError(
            f"Cluster {name!r} is {_status_name(records[0])}, not UP: it has no IP or "
            f"endpoints. Start it first: skyhop start {name}"
        )
    if ip:
        return str(handle.head_ip)
    ports: dict[int, str] = {int(k): v for k, v in (handle.ports or {}).items()}
    if port is not None:
        if port not in ports:
            raise click.UsageError(
                f"Port {port} is not exposed on cluster {name!r}; exposed: "
                f"{', '.join(map(str, sorted(ports))) or 'none'} (launch with --ports)."
            )
        return ports[port]
    if not ports:
        return f"No exposed ports on cluster {name!r} (launch with --ports)."
    return "\n".join(f"{p}: {ports[p]}" for p in sorted(ports))


def _status_name(record: dict[str, Any]) -> str:
    return str(getattr(record["status"], "value", record["status"]))


@click.command("cost-report")
@click.option(
    "-u", "--all-users", is_flag=True, help="Include other users' clusters (an admin token)."
)
@click.option("--days", type=click.IntRange(0, 36500), default=30, show_default=True,
              help="Also list the clusters torn down in the last DAYS days.")  # fmt: skip
def cost_report(all_users: bool, days: int) -> None:
    """Show what each cluster has cost: its offer's hourly price (all nodes) times the
    time it has been UP, for existing clusters and those torn down in the last DAYS."""
    from skyhop import sdk
    from skyhop.cli import render

    click.echo(render.cost_report(sdk.get(sdk.cost_report(days, all_users=all_users)), days))
