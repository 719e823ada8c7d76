"""The command runner of a local node: commands run on the host, uploads land in the node.

Commands (the agent's CLI, file writes of the default job hooks) run on the host as
:class:`~skyhop_core.localrunner.LocalCommandRunner` runs them: they manage the node,
they are not the user's job (jobs enter the sandbox through the node's launcher). An
upload goes where the node sees it: a target under ``~`` into the node's home, any other
absolute target into the node's own layer (through the holder's root, so overlayfs sees
the write). Without a sandbox a target outside the home is refused, never written on the
host.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence

import trio

from skyhop_core.localrunner import LocalCommandRunner, copy_tree
from skyhop_core.models.records import NodeInfo
from skyhop_local.sandbox import Layer, Support, check_target


class LocalNodeRunner(LocalCommandRunner):
    """A :class:`LocalCommandRunner` whose uploads respect the node's sandbox."""

    def __init__(
        self, node: NodeInfo, layer: Layer | None, support: Support, run_as: str | None = None
    ) -> None:
        super().__init__(node)
        self.layer = layer
        self.support = support
        #: Jobs run as this user: what is uploaded becomes theirs.
        self.run_as = run_as

    def node_path(self, remote_path: str) -> str:
        """The absolute path inside the node that ``remote_path`` names (``~`` = home)."""
        path = self.resolve(remote_path)
        if not os.path.isabs(path):
            path = os.path.join(self.node.home, path)  # relative targets are home-relative
        return os.path.normpath(path)

    def host_path(self, remote_path: str) -> str:
        """Where on the host a write to ``remote_path`` on the node must go."""
        path = self.node_path(remote_path)
        slash = "/" if remote_path.endswith("/") else ""  # copy_tree: "into this directory"
        home = os.path.normpath(self.node.home)
        if path == home or path.startswith(home + "/"):
            return path + slash
        check_target(path, home, self.support)
        assert self.layer is not None  # check_target refuses absolute paths without one
        return self.layer.host_path(path) + slash

    def interactive_argv(self, command: str | None, *, tty: bool) -> list[str]:
        """Inside the sandbox through the node's launcher (as ``run_as``, with the clean
        environment jobs get); without one, a shell on this machine in the node's home
        (a personal server: ``run_as`` needs sandboxes)."""
        line = command or "exec bash -l"
        launcher = self.node.extra.get("job_launcher")
        if launcher:
            return [*json.loads(launcher), line]
        home = shlex.quote(self.node.home)
        return ["bash", "-c", f"cd {home} && export HOME={home} && {line}"]

    async def upload(
        self, local_path: str, remote_path: str, *, excludes: Sequence[str] = ()
    ) -> None:
        source = os.path.expanduser(local_path)
        if not os.path.exists(source):
            raise FileNotFoundError(f"{local_path} does not exist; nothing to upload.")
        dest = self.host_path(remote_path)
        await trio.to_thread.run_sync(copy_tree, source, dest, list(excludes))
        if self.run_as:
            await trio.to_thread.run_sync(_give, source, dest, self.run_as)


def _give(source: str, dest: str, user: str) -> None:
    """Make what ``copy_tree(source, dest)`` wrote belong to ``user``."""
    import pwd

    entry = pwd.getpwnam(user)
    if os.path.isfile(source):
        if dest.endswith("/") or os.path.isdir(dest):
            dest = os.path.join(dest, os.path.basename(source))
        os.lchown(dest, entry.pw_uid, entry.pw_gid)
        return
    for dirpath, dirnames, filenames in os.walk(dest):
        os.lchown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
