"""The ``skyhop`` command line: a thin layer over the SDK (``skyhop.sdk``).

Startup stays fast: this package imports only click; the SDK (and with it httpx) is
imported inside the commands that talk to the server, and the server stack (trio,
hypercorn, starlette, SQLAlchemy) never.

Errors print one line, ``Error: <ExceptionType>: <message>``, on stderr and exit 1
(``SKYHOP_DEBUG=1`` shows the traceback instead). Ctrl+C while waiting on a request
leaves it running, prints how to reattach or cancel it, and exits 130.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from skyhop.cli import (
    api,
    clusters,
    gpus,
    jobs,
    managed_jobs,
    serve,
    ssh,
    status,
    storage,
    volumes,
)

#: Exit code after Ctrl+C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class SkyhopGroup(click.Group):
    """The top-level group: turns exceptions into one-line errors and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:
            request_id = getattr(exc, "request_id", None)
            if request_id is None:
                click.echo("\nAborted.", err=True)
            else:
                from skyhop.cli.waiting import detached_message

                click.echo()
                click.echo(detached_message(request_id, exc.endpoint))  # type: ignore[attr-defined]
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if os.environ.get("SKYHOP_DEBUG") == "1":
                raise
            click.echo(error_line(exc), err=True)
            ctx.exit(1)


def error_line(exc: BaseException) -> str:
    """``Error: <ExceptionType>: <message>`` on one line; a failed launch's attempts
    (``failover_history``) follow, one line each."""
    from skyhop.cli.render import safe

    if getattr(exc, "failover_history", None):
        first, *attempts = str(exc).splitlines() or [""]
        lines = [f"Error: {type(exc).__name__}: {first}", *attempts]
        return "\n".join(safe(line, one_line=True) for line in lines)
    message = " ".join(str(exc).split()) or "(no message)"
    return safe(f"Error: {type(exc).__name__}: {message}", one_line=True)


@click.group(cls=SkyhopGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="skyhop", prog_name="skyhop")
@click.option(
    "--config",
    "config_overrides",
    multiple=True,
    metavar="FILE|KEY=VALUE",
    help="Override the config file for this command: a YAML file, or nested.key=value "
    "pairs (comma-separated, repeatable).",
)
def cli(config_overrides: tuple[str, ...]) -> None:
    """Run AI and batch workloads on any infrastructure through one API server.

    Every command is a request to the API server (started locally on first use). Ctrl+C
    leaves a request running in the background; see 'skyhop api --help'.
    """
    if config_overrides:
        from skyhop.cli.configopt import apply_overrides

        apply_overrides(config_overrides)


for command in (
    clusters.launch,
    clusters.exec_,
    status.status,
    status.cost_report,
    clusters.stop,
    clusters.start,
    clusters.down,
    clusters.autostop,
    clusters.check,
    ssh.ssh,
    gpus.show_gpus,
    jobs.queue,
    jobs.logs,
    jobs.cancel,
    managed_jobs.jobs,
    storage.storage,
    volumes.volumes,
    serve.serve,
    api.api,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI (tests call this in-process)."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="skyhop")


def console_main() -> None:
    """Console-script entry point (``skyhop``, ``python -m skyhop.cli``).

    The CLI never runs an event loop, but httpcore imports trio and anyio when they are
    installed just to support them: ~50 ms of every command's start. A CLI process
    marks them unavailable before anything imports them.
    """
    for name in ("trio", "anyio"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    main()
