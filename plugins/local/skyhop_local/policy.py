"""Who may use the local backend on this server, and as which user its jobs run.

A local node runs on the server's own machine. On a personal (non-deployed) server that
machine is the caller's, so the backend is on and jobs run as the server's user. On a
deployed team server (``ctx.deployed``) callers are token users: the backend is off
unless the administrator turns it on in the server's config, and then jobs must run as
an unprivileged user the administrator names, inside sandboxes::

    backends:
      local:
        allow_on_deployed_server: true
        run_as: skyhop-jobs      # an existing user other than root

``run_as`` may also be set on a personal server that runs as root.
"""

from __future__ import annotations

import pwd

import attrs

from skyhop_core.context import BackendContext
from skyhop_local.sandbox import Support

_ENABLE = (
    "An administrator can enable it in the server's config: backends: {local: "
    "{allow_on_deployed_server: true, run_as: <an unprivileged user>}}, on a server that "
    "runs as root."
)


@attrs.frozen
class Policy:
    """Whether the backend is usable here; if not, why and how to fix it."""

    enabled: bool
    reason: str = ""
    fix: str = ""
    run_as: str | None = None


def run_as_user(ctx: BackendContext) -> str | None:
    """The configured ``run_as`` user name, if any."""
    value = ctx.config.get("run_as")
    return str(value) if value else None


def policy(ctx: BackendContext, support: Support) -> Policy:
    """The policy for ``ctx`` on a host whose sandbox support is ``support``."""
    allowed = ctx.config.get("allow_on_deployed_server") in (True, "true", "yes", "on")
    if ctx.deployed and not allowed:
        return Policy(
            False,
            "the local backend is off on a deployed server: its jobs would run on the "
            "server's own machine.",
            _ENABLE,
        )
    run_as = run_as_user(ctx)
    if ctx.deployed and run_as is None:
        return Policy(
            False,
            "backends.local.run_as is not set: on a deployed server local jobs must run as "
            "an unprivileged user.",
            _ENABLE,
        )
    if run_as is not None:
        try:
            entry = pwd.getpwnam(run_as)
        except KeyError:
            return Policy(
                False, f"backends.local.run_as: no user {run_as!r} on this host.", _ENABLE
            )
        if entry.pw_uid == 0:
            return Policy(False, f"backends.local.run_as: {run_as!r} is root.", _ENABLE)
        if not support.sandboxed:
            return Policy(
                False,
                f"backends.local.run_as needs sandboxed local nodes, and {support.reason}.",
                _ENABLE,
            )
    return Policy(True, run_as=run_as)
