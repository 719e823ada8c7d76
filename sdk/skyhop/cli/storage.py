"""``skyhop storage ls`` and ``skyhop storage delete``: your storage buckets."""

from __future__ import annotations

import click


@click.group()
def storage() -> None:
    """Storage buckets made for `file_mounts` storage entries."""


@storage.command("ls")
@click.option("-u", "--all-users", is_flag=True, help="Every user's buckets (an admin token on a deployed server).")
def ls(all_users: bool) -> None:
    """List your storage buckets."""
    from skyhop import sdk
    from skyhop.cli.render import table

    rows = sdk.get(sdk.storage_ls(all_users=all_users))
    if not rows:
        click.echo("No existing storage.")
        return
    columns = ["NAME", "STORE", "PERSISTENT", "CLUSTER", "SOURCE", "LAST_USE"]
    if all_users:
        columns.append("USER")
    click.echo(table(columns, [
        [r["name"], r["store"], "yes" if r["persistent"] else "no", r["cluster_name"] or "-",
         r["source"] or "-", r["last_use"] or "-", *([r["user_name"]] if all_users else [])]
        for r in rows
    ]))  # fmt: skip


@storage.command("delete")
@click.argument("names", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Delete all of your storage.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(names: tuple[str, ...], all_: bool, yes: bool) -> None:
    """Delete storage buckets NAMES (and everything in them)."""
    from skyhop import sdk

    if not names and not all_:
        raise click.UsageError("Name the storage to delete, or pass --all.")
    if names and all_:
        raise click.UsageError("Give NAMES or --all, not both.")
    what = "all of your storage" if all_ else ", ".join(names)
    if not yes:
        click.confirm(f"Delete {what} and everything in it?", default=False, abort=True)
    deleted = sdk.get(sdk.storage_delete(list(names) or None, all=all_))
    for name in deleted:
        click.echo(f"Deleted storage {name}.")
    if not deleted:
        click.echo("No storage to delete.")
