"""``skyhop api``: the API server and its requests (start, stop, status, logs, cancel,
login, logout, info) and, for a deployed server, its service-account tokens (``api tokens``)."""

from __future__ import annotations

import os
import sys

import click

from skyhop.cli.tokens import tokens


@click.group()
def api() -> None:
    """Manage the API server and its requests.

    Request IDs accept any unique prefix (the first 8 characters are shown in hints).
    """


api.add_command(tokens)


@api.command()
@click.option(
    "--host",
    help="Address to bind (default 127.0.0.1; 0.0.0.0 with --deploy, for remote clients).",
)
@click.option("--port", type=int, help="Port (default: the configured endpoint's, 46590).")
@click.option(
    "--deploy",
    is_flag=True,
    help="Serve a team: require service-account tokens (skyhop api tokens create NAME).",
)
@click.option(
    "--foreground",
    is_flag=True,
    help="Run the server in this process (for systemd, containers) instead of detached.",
)
def start(host: str | None, port: int | None, deploy: bool, foreground: bool) -> None:
    """Start an API server unless one is running.

    Without --deploy: a local server for you alone, bound to loopback (the CLI also starts
    it on first use). With --deploy: a shared server on 0.0.0.0 that requires a bearer
    token from every caller; it runs detached (log in <persistent path>/server/<hostname>-<port>/server.log)
    unless --foreground. Create tokens on this machine with 'skyhop api tokens create'.
    """
    from skyhop.cli import deploy as deploy_cli

    host = host or ("0.0.0.0" if deploy else "127.0.0.1")
    if foreground:
        deploy_cli.exec_server(host, port, deploy=deploy)
    if deploy:
        endpoint = deploy_cli.start_deployed(host, port)
        click.echo(f"Deployed API server is running at {endpoint} (bound to {host}).")
        click.echo("Create a token per user: skyhop api tokens create NAME")
        return
    from skyhop import sdk

    endpoint = sdk.api_start(host=host, port=port)
    click.echo(f"API server is running at {endpoint}.")


@api.command()
def stop() -> None:
    """Stop the API server running on this machine (its running requests are interrupted).

    A deployed server refuses shutdown over the API; on its own machine it is stopped
    through its pid file instead.
    """
    from skyhop import sdk
    from skyhop.cli import deploy as deploy_cli
    from skyhop.client import current_client
    from skyhop_core import exceptions

    endpoint = current_client().endpoint
    try:
        stopped = sdk.api_stop()
    except (exceptions.NotAuthenticatedError, exceptions.PermissionDeniedError):
        stopped = deploy_cli.stop_by_pid_file(endpoint)
    if stopped:
        click.echo(f"API server at {endpoint} stopped.")
    else:
        click.echo(f"No API server is running at {endpoint}.")


#: How many finished requests ``api status`` shows when nothing is running.
RECENT_FINISHED = 10


def _limit(value: str | None) -> int | None:
    """``-l N`` or ``-l all`` (no limit)."""
    if value is None or value.lower() == "all":
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise click.BadParameter(f"{value!r}: expected a positive number or 'all'.", param_hint="-l/--limit")
    return number


@api.command()
@click.argument("request_ids", nargs=-1)
@click.option("-a", "--all-status", is_flag=True, help="Include finished requests.")
@click.option("-u", "--all-users", is_flag=True, help="Include other users' requests (an admin token on a deployed server).")
@click.option("-l", "--limit", metavar="N|all", help="Show at most N requests ('all': no limit).")
def status(
    request_ids: tuple[str, ...], all_status: bool, all_users: bool, limit: str | None
) -> None:
    """List requests: your unfinished ones (or, when none is, the recent finished
    ones), or those named."""
    from skyhop import sdk
    from skyhop.cli import render

    most = _limit(limit)
    records = sdk.api_status(
        list(request_ids) or None, all_status=all_status, all_users=all_users, limit=most
    )
    if not records and not all_status and not request_ids:
        recent = sdk.api_status(
            None, all_status=True, all_users=all_users, limit=most or RECENT_FINISHED
        )
        if not recent:
            click.echo("No unfinished requests. Run `skyhop api status -a` to list finished ones too.")
            return
        click.echo("No unfinished requests. Recent finished ones (skyhop api status -a for all):")
        records = recent
    click.echo(render.requests(records))


@api.command()
@click.argument("request_id")
@click.option("--no-follow", is_flag=True, help="Print what is there and return.")
@click.option("--tail", type=click.IntRange(min=0), help="Start with the last N lines.")
@click.pass_context
def logs(ctx: click.Context, request_id: str, no_follow: bool, tail: int | None) -> None:
    """Stream a request's log until it finishes.

    Exits 1 when the request failed or was cancelled (its log ends with the error), so
    scripts can tell; 0 when it succeeded or, with --no-follow, is still running.
    """
    from skyhop import sdk
    from skyhop.client import RequestInterrupted, current_client
    from skyhop_core.models.status import RequestStatus

    client = current_client()
    try:
        for chunk in client.stream(request_id, follow=not no_follow, tail=tail):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    except RequestInterrupted:
        raise
    except KeyboardInterrupt:
        raise RequestInterrupted(request_id, client.endpoint) from None
    records = sdk.api_status([request_id])
    if records and records[0].status in (RequestStatus.FAILED, RequestStatus.CANCELLED):
        ctx.exit(1)


@api.command()
@click.argument("request_ids", nargs=-1)
@click.option(
    "-a", "--all", "all_requests", is_flag=True, help="Cancel all of your unfinished requests."
)
@click.option(
    "-u",
    "--all-users",
    is_flag=True,
    help="Cancel everyone's unfinished requests (an admin token on a deployed server).",
)
def cancel(request_ids: tuple[str, ...], all_requests: bool, all_users: bool) -> None:
    """Cancel requests (running work stops; cleanup leaves records consistent).

    Another user's request is cancelled only with --all-users, and never on a deployed
    server.
    """
    from skyhop import sdk

    if not request_ids and not all_requests and not all_users:
        raise click.UsageError(
            "Name the request IDs to cancel, or pass -a/--all or -u/--all-users."
        )
    cancelled = sdk.get(
        sdk.api_cancel(list(request_ids) or None, all_users=all_users, all=all_requests)
    )
    if cancelled:
        click.echo(f"Cancelled {len(cancelled)} request(s): {', '.join(cancelled)}")
    else:
        click.echo("No unfinished request matched; nothing was cancelled.")


@api.command()
def info() -> None:
    """Show the API server this client uses, its version, and who you are to it."""
    from skyhop import sdk
    from skyhop.cli.render import safe

    data = sdk.api_info()
    user = data.get("user")
    auth = "token required" if data.get("auth_required") else "local (identity headers)"
    role = f", {user['role']}" if isinstance(user, dict) and user.get("role") else ""
    who = (
        f"{user.get('name', '?')} ({user.get('hash', '?')}{role})"
        if isinstance(user, dict)
        else f"not authenticated (run: skyhop api login -e {data['endpoint']} --token <TOKEN>)"
    )
    from skyhop.client import endpoint_source

    click.echo(f"Using the API server at {data['endpoint']} (from {endpoint_source()})")
    click.echo(
        f"├── Status: {data.get('status', '?')}, version {data.get('version', '?')}, "
        f"API version {data.get('api_version', '?')}"
    )
    click.echo(f"├── Authentication: {auth}")
    click.echo(f"├── Persistent path: {data.get('persistent_path', '?')}")
    click.echo(f"└── User: {safe(who, one_line=True)}")


@api.command()
@click.option("-e", "--endpoint", required=True, help="The API server's URL, e.g. http://host:46590.")
@click.option(
    "--token",
    envvar="SKYHOP_API_TOKEN",
    help="Your service-account token (prompted for when the server requires one).",
)
def login(endpoint: str, token: str | None) -> None:
    """Use the API server at ENDPOINT from now on (saved in the config file, mode 600)."""
    from skyhop import login as login_mod
    from skyhop.client import ApiClient

    env_endpoint = os.environ.get("SKYHOP_API_SERVER_ENDPOINT")
    if env_endpoint:
        raise click.UsageError(
            f"SKYHOP_API_SERVER_ENDPOINT={env_endpoint} is set in this shell and would "
            "override a login (which is saved in the config file). Unset it first "
            "(unset SKYHOP_API_SERVER_ENDPOINT), or keep using it and set SKYHOP_API_TOKEN."
        )
    endpoint = endpoint.rstrip("/")
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    if not token:
        probe = ApiClient(endpoint, token="", auto_start=False)
        try:
            needs_token = bool(probe.ensure_server().get("auth_required"))
        finally:
            probe.close()
        if needs_token:
            token = click.prompt("Token", hide_input=True).strip()
    info, path = login_mod.login(endpoint, token)
    user = info.get("user") or {}
    click.echo(f"Logged in to {endpoint} as {user.get('name', '?')}; saved to {path}.")


@api.command()
def logout() -> None:
    """Forget the saved API server endpoint and token (back to the local server)."""
    from skyhop import login as login_mod

    path, endpoint = login_mod.logout()
    if endpoint is None:
        click.echo(f"Not logged in to any API server (nothing saved in {path}).")
    else:
        click.echo(f"Logged out of {endpoint}; removed it and its token from {path}.")
    env_endpoint = os.environ.get("SKYHOP_API_SERVER_ENDPOINT")
    if env_endpoint:
        click.echo(
            f"Note: SKYHOP_API_SERVER_ENDPOINT={env_endpoint} is still set in this shell "
            "and still chooses the server.",
            err=True,
        )
