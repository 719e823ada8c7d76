"""The command runner of an EC2 node: the ssh backend's OpenSSH runner.

EC2 nodes are reached exactly like the ssh backend's machines (multiplexed OpenSSH, the
cluster's key in ``node.extra["ssh_identity_file"]``), so the runner is borrowed from
:mod:`skyhop_ssh.sshcmd`. This is the one place to swap it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from skyhop_core.context import BackendContext
from skyhop_core.models.records import NodeInfo

if TYPE_CHECKING:
    from skyhop_ssh.sshcmd import SSHCommandRunner


def known_hosts_file(ctx: BackendContext) -> str:
    """The backend's own known_hosts (never the user's ``~/.ssh``)."""
    return os.path.join(ctx.ensure_state_dir(), "known_hosts")


def make_runner(ctx: BackendContext, node: NodeInfo) -> SSHCommandRunner:
    """An SSH command runner for ``node`` (connects lazily, on first use)."""
    from skyhop_ssh.sshcmd import SSHCommandRunner

    return SSHCommandRunner(node, known_hosts_file(ctx), log=ctx.log)
