"""``skyhop ssh``: an interactive shell, or one command, on a node of a cluster."""

from __future__ import annotations

import os
import sys

import click


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("cluster")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-n", "--node", type=click.IntRange(0), default=0, show_default=True,
              help="The node's rank (0 is the head).")  # fmt: skip
@click.option("-t", "tty", flag_value=True, default=None,
              help="Give the session a terminal even with a command.")  # fmt: skip
@click.option("-T", "tty", flag_value=False, help="Never give the session a terminal.")
def ssh(cluster: str, command: tuple[str, ...], node: int, tty: bool | None) -> None:
    """Open a shell on a node of CLUSTER, or run COMMAND there, as `ssh` would.

    The session goes through the API server, which holds the way to the nodes: it works
    from any machine that reaches the server, and the nodes' keys never leave it. Like
    ssh, COMMAND's words are joined by spaces into one shell line (put it after -- when
    it has options of its own), and the session has a terminal when
    there is no COMMAND and stdin is one (-t, -T to choose). Every key goes to the node,
    Ctrl+C included; the exit code is COMMAND's (or the shell's). The cluster must be UP.

    \b
    Examples:
      skyhop ssh dev
      skyhop ssh dev -- nvidia-smi
      skyhop ssh dev --node 1 'cat /proc/loadavg'
      skyhop ssh dev -- python train.py < inputs.txt
    """
    from skyhop.client import current_client

    # The one command that runs an event loop: undo console_main's marking of trio as
    # unavailable (httpcore has looked already).
    if "trio" in sys.modules and sys.modules["trio"] is None:
        del sys.modules["trio"]
    from skyhop.shell import run_session

    line = " ".join(command) or None
    if tty is None:
        tty = line is None and os.isatty(0)
    client = current_client()
    client.ensure_server()
    sys.stdout.flush()
    code = run_session(client, cluster, node=node, command=line, tty=tty)
    raise SystemExit(code)
