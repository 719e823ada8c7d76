"""Starting a job's command on one node and copying its output into the job's log.

On a node whose ``launcher`` is null the command is written to a script file and runs
here as ``bash +H -i SCRIPT`` (see :data:`JOB_SHELL`) with the environment passed
directly. Otherwise the launcher argv
gets one extra argument, a small shell line that reads a script from stdin and evaluates
it, so secrets never appear on a command line; the script exports the environment,
changes to the workdir and runs the command from a here-document on fd 3. The command is
never an argument: a ``run``/``setup`` longer than the kernel's argument limit
(128 KiB for one argument) still runs. Either way the process starts a new session, so
its pid is the process group to kill.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import uuid
from typing import Any, BinaryIO

REMOTE_EVAL = "bash -c 'eval \"$(cat)\"'"


class LaunchError(Exception):
    """A command could not be started on a node (bad workdir, launcher missing)."""


def resolve_path(path: str | None, home: str) -> str:
    """A node path with ``~`` meaning the node's home; None means the home itself."""
    if not path or path == "~":
        return home
    if path.startswith("~/"):
        return home.rstrip("/") + path[1:]
    return path


#: Jobs run as SkyPilot's do, in an interactive bash: it reads ``~/.bashrc`` first (past
#: the usual "not interactive: return" guard), so what a setup wrote there (``export``,
#: ``conda init``) applies to the run. ``+H`` turns history expansion off, so a ``!`` in
#: a command stays a ``!``. The shell's own complaint about having no terminal goes to
#: /dev/null; the script's first line turns job control off (an interactive shell would
#: put each background job in a process group of its own, out of reach of cancel) and
#: sends its stderr to stdout (the job's log).
JOB_SHELL = ("bash", "+H", "-i")
_STDERR_TO_LOG = "set +m; exec 2>&1\n"


def write_script(path: str, command: str) -> str:
    """``command`` as a script file only its owner can read; returns ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(_STDERR_TO_LOG + (command if command.endswith("\n") else command + "\n"))
    return path


def heredoc_command(command: str) -> str:
    """Shell that runs ``command`` in the job shell from a here-document on fd 3 (stdin
    empty)."""
    marker = f"SKYHOP_EOF_{uuid.uuid4().hex}"
    body = command if command.endswith("\n") else command + "\n"
    shell = " ".join(JOB_SHELL)
    return (
        f"exec {shell} /dev/fd/3 2>/dev/null 3<<'{marker}' </dev/null\n"
        f"{_STDERR_TO_LOG}{body}{marker}"
    )


def spawn(
    node: dict[str, Any],
    command: str,
    env: dict[str, str],
    workdir: str | None,
    script_path: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` on ``node``; stdout and stderr come merged from ``proc.stdout``.

    ``script_path``: where a node without a launcher keeps the command as a script
    (without it, the command is an argument of ``bash -c`` and limited in length)."""
    cwd = resolve_path(workdir, str(node.get("home") or os.path.expanduser("~")))
    launcher = node.get("launcher")
    common: dict[str, Any] = dict(
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    if not launcher:
        if not os.path.isdir(cwd):
            raise LaunchError(f"the working directory {cwd} does not exist on node {node['rank']}")
        argv = (
            [*JOB_SHELL, write_script(script_path, command)]
            if script_path
            else [*JOB_SHELL, "-c", _STDERR_TO_LOG + command]
        )
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            **{**common, "stderr": subprocess.DEVNULL},
        )
    lines = [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines.append(f"cd {shlex.quote(cwd)} || exit 1")
    lines.append(heredoc_command(command))
    try:
        proc = subprocess.Popen([*launcher, REMOTE_EVAL], stdin=subprocess.PIPE, **common)
    except OSError as exc:
        raise LaunchError(f"cannot run the launcher of node {node['rank']}: {exc}") from exc
    assert proc.stdin is not None
    try:
        proc.stdin.write(("\n".join(lines) + "\n").encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    return proc


def line_prefix(rank: int | None, phase: str, multi_node: bool) -> str:
    """What starts each line of a job's output (docs/cli-output.md): setup lines say
    ``(setup)``, and on a multi-node job every line names its rank."""
    if phase == "setup":
        return f"(setup, rank {rank}) " if multi_node and rank is not None else "(setup) "
    return f"(rank {rank}) " if multi_node and rank is not None else ""


class JobLog:
    """The job's single log file; writers from several threads, optionally rank-prefixed."""

    def __init__(self, path: str, prefixed: bool) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._file: BinaryIO = open(path, "ab", buffering=0)  # noqa: SIM115
        self._lock = threading.Lock()
        self.prefixed = prefixed

    def write(self, data: bytes) -> None:
        with self._lock:
            self._file.write(data)

    def message(self, text: str, rank: int | None = None, phase: str = "run") -> None:
        """A line from the agent itself (not from the job)."""
        prefix = line_prefix(rank, phase, self.prefixed) if rank is not None else ""
        self.write(f"{prefix}skyhop: {text}\n".encode())

    def line(self, text: str) -> None:
        """A job-level line of the agent's, unprefixed (the contract's fixed wording)."""
        self.write(f"{text}\n".encode())

    def pump(self, stream: BinaryIO, rank: int, phase: str = "run") -> None:
        """Copy ``stream`` into the log until EOF (run in a thread)."""
        prefix = line_prefix(rank, phase, self.prefixed).encode()
        pending = b""
        fd = stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            if not prefix:
                self.write(chunk)
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if lines:
                self.write(b"".join(prefix + line + b"\n" for line in lines))
        if pending:
            self.write(prefix + pending + b"\n")
        stream.close()

    def close(self) -> None:
        self._file.close()
