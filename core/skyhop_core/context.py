"""What the core hands a backend on every hook call: its state directory, a log, its config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from skyhop_core.models.records import ClusterHandle, NodeInfo
    from skyhop_core.runner import CommandRunner

#: Builds the command runner of one node of a cluster (the backend's ``skyhop_command_runner``).
RunnerFactory = Callable[["ClusterHandle", "NodeInfo"], "CommandRunner"]


def _print_log(message: str) -> None:
    print(message, flush=True)


@attrs.frozen
class BackendContext:
    """Per-call context for backend hooks.

    - ``state_dir``: a directory under the persistent path that belongs to this backend
      (created on first use). Keep every file the backend writes here: node directories,
      keys, caches. Never write to the home directory.
    - ``persistent_path``: the root of all skyhop state (rarely needed directly).
    - ``log``: write a line of progress to the request's log (what the user sees).
    - ``config``: the backend's section of the user's config file (may be empty).
    - ``user_name``/``user_hash``: who the request is for.
    - ``runner_factory``: ``runner_factory(handle, node)`` returns the backend's command
      runner for a node; the core fills it in so the default job hooks (the node agent)
      can reach the head node of any backend. ``None`` outside the server (tests).
    - ``deployed``: the API server is a deployed team server (``--deploy``): callers are
      token users, not the person who owns this machine. A backend that runs jobs on the
      server's own machine (``local``) uses it to stay off unless the config allows it.
    """

    state_dir: str
    persistent_path: str
    log: Callable[[str], None] = _print_log
    config: Mapping[str, Any] = attrs.field(factory=dict)
    user_name: str = ""
    user_hash: str = ""
    runner_factory: RunnerFactory | None = None
    deployed: bool = False

    def ensure_state_dir(self) -> str:
        """Create the backend's state directory (0700, like all of the persistent path)."""
        from skyhop_core.paths import private_dir

        private_dir(self.state_dir)
        return self.state_dir
