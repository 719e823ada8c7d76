"""``skyhop volumes apply|ls|delete``: your volumes (a ``local`` volume is a directory)."""

from __future__ import annotations

import click


@click.group()
def volumes() -> None:
    """Volumes that tasks mount with `volumes: {PATH: NAME}`."""


@volumes.command("apply")
@click.argument("name")
@click.option("--type", "type_", default="local", show_default=True, type=click.Choice(["local"]))
@click.option("--size", default=None, help="A size hint such as 10Gi (local volumes ignore it).")
def apply(name: str, type_: str, size: str | None) -> None:
    """Create volume NAME (an existing one of yours is kept)."""
    from skyhop import sdk

    record = sdk.get(sdk.volumes_apply(name, type_, size))
    click.echo(f"Volume {record['name']} ({record['type']}) is ready.")


@volumes.command("ls")
def ls() -> None:
    """List your volumes."""
    from skyhop import sdk
    from skyhop.cli.render import table

    rows = sdk.get(sdk.volumes_ls())
    if not rows:
        click.echo("No existing volumes.")
        return
    click.echo(table(["NAME", "TYPE", "LAST_USE"],
                     [[r["name"], r["type"], r["last_use"] or "-"] for r in rows]))  # fmt: skip


@volumes.command("delete")
@click.argument("names", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Delete all of your volumes.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(names: tuple[str, ...], all_: bool, yes: bool) -> None:
    """Delete volumes NAMES and everything in them."""
    from skyhop import sdk

    if bool(names) == all_:
        raise click.UsageError("Give NAMES or --all.")
    if not yes:
        what = "all of your volumes" if all_ else ", ".join(names)
        click.confirm(f"Delete {what} and everything in them?", default=False, abort=True)
    for name in sdk.get(sdk.volumes_delete(list(names) or None, all=all_)):
        click.echo(f"Deleted volume {name}.")
