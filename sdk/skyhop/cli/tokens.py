"""``skyhop api tokens``: service-account tokens of a deployed API server.

These commands run on the server machine, against the state store of this persistent
path (or ``SKYHOP_DB_URL``) directly — not through the API, since they are how an
administrator lets the first user in. A token is printed once; only its hash is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

T = TypeVar("T")


class _Tokens:
    """The state store, opened synchronously and without trio (the CLI never loads it)."""

    def __init__(self) -> None:
        from skyhop_core.paths import ensure_persistent_path
        from skyhop_core.state.db import create_engine
        from skyhop_core.state.migrate import upgrade

        self.engine = create_engine(ensure_persistent_path())
        upgrade(self.engine)

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` in one transaction."""
        try:
            with self.engine.begin() as conn:
                return fn(conn, *args)
        finally:
            self.engine.dispose()


def _store() -> _Tokens:
    return _Tokens()


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


@click.group()
def tokens() -> None:
    """Manage service-account tokens (run on the deployed server's machine)."""


@tokens.command()
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["user", "admin"]),
    default="user",
    show_default=True,
    help="admin: sees and cancels every user's requests and clusters (-u); "
    "user: only its own.",
)
def create(name: str, role: str) -> None:
    """Create a token for NAME (the user name the server will know the caller by)."""
    from skyhop_core.state import tokens as tk

    try:
        token, record = _store().run_sync(tk.create, name, role)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Created a{'n' if role == 'admin' else ''} {role} token for {record.name} "
        f"(id {record.token_id}, user hash {record.user_hash})."
    )
    click.echo("It is shown only this once; hand it to its user:")
    click.echo(f"  {token}")
    click.echo("They log in with: skyhop api login -e http://<this server>:<port> --token <TOKEN>")


@tokens.command(name="list")
@click.option("-a", "--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
def list_(include_revoked: bool) -> None:
    """List tokens (never their secret part)."""
    from skyhop_core.state import tokens as tk

    records = _store().run_sync(lambda c: tk.list_tokens(c, include_revoked=include_revoked))
    if not records:
        click.echo("No tokens. Create one with: skyhop api tokens create NAME")
        return
    rows = [("NAME", "ROLE", "TOKEN ID", "USER HASH", "CREATED", "LAST USED", "STATUS")]
    for r in records:
        state = "active" if r.active else f"revoked {_when(r.revoked_at)}"
        rows.append(
            (
                r.name, r.role, r.token_id, r.user_hash,
                _when(r.created_at), _when(r.last_used_at), state,
            )
        )
    from skyhop.cli.render import table

    click.echo(table(rows[0], rows[1:]))


@tokens.command()
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke NAME's token: the server refuses it from its next call on."""
    from skyhop_core.state import tokens as tk

    count = _store().run_sync(tk.revoke, name)
    if not count:
        raise click.ClickException(f"{name!r} has no active token.")
    click.echo(f"Revoked {count} token(s) of {name}.")
