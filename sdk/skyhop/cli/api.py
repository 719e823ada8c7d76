"""``skyhop api``: the API server and its requests (start, stop, status, logs, cancel, info)."""

from __future__ import annotations

import sys

import click


@click.group()
def api() -> None:
    """Manage the API server and its requests.

    Request IDs accept any unique prefix (the first 8 characters are shown in hints).
    """


@api.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind (0.0.0.0 for remote clients).",
)
@click.option("--port", type=int, help="Port (default: the configured endpoint's, 46590).")
def start(host: str, port: int | None) -> None:
    """Start a local API server unless one is running."""
    from skyhop import sdk

    endpoint = sdk.api_start(host=host, port=port)
    click.echo(f"API server is running at {endpoint}.")


@api.command()
def stop() -> None:
    """Stop the local API server (its running requests are interrupted)."""
    from skyhop import sdk
    from skyhop.client import current_client

    endpoint = current_client().endpoint
    if sdk.api_stop():
        click.echo(f"API server at {endpoint} stopped.")
    else:
        click.echo(f"No API server is running at {endpoint}.")


@api.command()
@click.argument("request_ids", nargs=-1)
@click.option("-a", "--all-status", is_flag=True, help="Include finished requests.")
@click.option("-u", "--all-users", is_flag=True, help="Include other users' requests.")
@click.option("-l", "--limit", type=click.IntRange(min=1), help="Show at most N requests.")
def status(
    request_ids: tuple[str, ...], all_status: bool, all_users: bool, limit: int | None
) -> None:
    """List requests: your unfinished ones, or those named."""
    from skyhop import sdk
    from skyhop.cli import render

    records = sdk.api_status(
        list(request_ids) or None, all_status=all_status, all_users=all_users, limit=limit
    )
    click.echo(render.requests(records))


@api.command()
@click.argument("request_id")
@click.option("--no-follow", is_flag=True, help="Print what is there and return.")
@click.option("--tail", type=click.IntRange(min=0), help="Start with the last N lines.")
def logs(request_id: str, no_follow: bool, tail: int | None) -> None:
    """Stream a request's log until it finishes."""
    from skyhop.client import RequestInterrupted, current_client

    client = current_client()
    try:
        for chunk in client.stream(request_id, follow=not no_follow, tail=tail):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    except RequestInterrupted:
        raise
    except KeyboardInterrupt:
        raise RequestInterrupted(request_id, client.endpoint) from None


@api.command()
@click.argument("request_ids", nargs=-1)
@click.option(
    "-a", "--all", "all_requests", is_flag=True, help="Cancel all of your unfinished requests."
)
@click.option("-u", "--all-users", is_flag=True, help="Cancel everyone's unfinished requests.")
def cancel(request_ids: tuple[str, ...], all_requests: bool, all_users: bool) -> None:
    """Cancel requests (running work stops; cleanup leaves records consistent)."""
    from skyhop import sdk

    if not request_ids and not all_requests and not all_users:
        raise click.UsageError(
            "Name the request IDs to cancel, or pass -a/--all or -u/--all-users."
        )
    cancelled = sdk.api_cancel(list(request_ids) or None, all_users=all_users, all=all_requests)
    if cancelled:
        click.echo(f"Cancelled {len(cancelled)} request(s): {', '.join(cancelled)}")
    else:
        click.echo("No unfinished request matched; nothing was cancelled.")


@api.command()
def info() -> None:
    """Show the API server this client uses, its version, and who you are to it."""
    from skyhop import sdk

    data = sdk.api_info()
    user = data.get("user", {})
    click.echo(f"Using the API server at {data['endpoint']}")
    click.echo(
        f"├── Status: {data.get('status', '?')}, version {data.get('version', '?')}, API version {data.get('api_version', '?')}"
    )
    click.echo(f"├── Persistent path: {data.get('persistent_path', '?')}")
    click.echo(f"└── User: {user.get('name', '?')} ({user.get('hash', '?')})")
