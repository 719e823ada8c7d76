"""Command runners: how the core reaches a node (a subprocess, OpenSSH, an API).

A backend returns one from ``skyhop_command_runner``. The default job hooks drive the node
agent only through this interface, so a backend that provides a runner gets jobs, logs,
cancellation and file sync for free.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence

import attrs

from skyhop_core.models.records import NodeInfo

OutputCallback = Callable[[bytes], Awaitable[None]]


@attrs.frozen
class CompletedCommand:
    returncode: int
    stdout: bytes
    stderr: bytes


class CommandRunner(abc.ABC):
    """Runs commands on one node. Every method is cancellable: when the caller's trio
    scope is cancelled the remote command is killed (its whole process group) before the
    method returns.
    """

    #: Whether users reach this node with SSH, so that an interactive SSH session on it
    #: is activity for ``autostop --wait-for jobs_and_ssh`` (see ``agent/sessions.py``).
    ssh_sessions: bool = False

    def __init__(self, node: NodeInfo) -> None:
        self.node = node

    @abc.abstractmethod
    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> CompletedCommand:
        """Run ``argv`` (no shell) to completion and capture its output."""

    @abc.abstractmethod
    async def stream(
        self,
        argv: Sequence[str],
        on_output: OutputCallback,
        *,
        env: Mapping[str, str] | None = None,
    ) -> int:
        """Run ``argv``, passing stdout+stderr chunks to ``on_output`` as they come.

        Returns the exit code.
        """

    @abc.abstractmethod
    async def upload(
        self, local_path: str, remote_path: str, *, excludes: Sequence[str] = ()
    ) -> None:
        """Copy a local file, or a directory's contents, to ``remote_path`` on the node.

        ``remote_path`` may start with ``~``: it resolves to the node's home.
        ``excludes`` are gitignore-style patterns to skip.
        """

    def interactive_argv(self, command: str | None, *, tty: bool) -> list[str] | None:
        """The argv that, run on the API server, is an interactive session on this node
        (``skyhop ssh``): a login shell in the node's home, or the shell line ``command``.

        With ``tty`` the server runs it on a new pseudo-terminal of its own (the size and
        ``TERM`` of the user's terminal, resized with it; ``ssh -t`` carries it to the
        node), else with pipes for stdin, stdout and stderr. The session ends when the
        process does; a user who goes away hangs it up (SIGHUP, then SIGTERM and SIGKILL
        to its process group). None (the default): this runner cannot open sessions, and
        ``skyhop ssh`` says so.
        """
        return None

    def python(self) -> list[str]:
        """argv prefix that runs the node's Python interpreter."""
        return ["python3"]

    def agent_command(self) -> list[str]:
        """argv prefix that runs the node agent's CLI on this node."""
        return [*self.python(), "-m", "skyhop_core.agent", "--root", self.node.runtime_dir]

    def resolve(self, remote_path: str) -> str:
        """A node path with ``~`` expanded to the node's home."""
        if remote_path == "~":
            return self.node.home
        if remote_path.startswith("~/"):
            return self.node.home.rstrip("/") + remote_path[1:]
        return remote_path
