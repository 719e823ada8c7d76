"""OpenSSH command lines with connection multiplexing, and the ssh backend's command runner.

Every connection to a host goes through one ControlMaster socket (``ControlPersist``), so
a command on an UP cluster costs one multiplexed channel (tens of milliseconds), not a
handshake. Sockets live in ``/tmp/skyhop-cm-<uid>/`` under short hashed names: Unix
socket paths are limited to about 100 characters.

Remote commands run under ``sh -c`` that records its pid in ``/tmp/.skyhop-<token>.pid``;
cancelling a method kills the local ``ssh`` *and* the remote process group (a closed SSH
channel alone does not stop a remote command).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence

import attrs
import trio

from skyhop_core.models.records import NodeInfo
from skyhop_core.runner import CommandRunner, CompletedCommand, OutputCallback

CONNECT_TIMEOUT = 10
#: A connection with no answer to ``ServerAliveCountMax`` (3) keep-alives this many seconds
#: apart is dead: a job on a host that died fails after about 15 s.
ALIVE_INTERVAL = 5
CONTROL_PERSIST = "300"
KILL_TIMEOUT = 10.0

#: Kills the process group whose leader's pid is in the file argv[1], then removes it.
KILL_SCRIPT = (
    "import os, signal, sys, time\n"
    "try:\n"
    "    pid = int(open(sys.argv[1]).read())\n"
    "    pgid = os.getpgid(pid)\n"
    "except (OSError, ValueError):\n"
    "    sys.exit(0)\n"
    "for sig in (signal.SIGTERM, signal.SIGKILL):\n"
    "    try:\n"
    "        os.killpg(pgid, sig)\n"
    "    except OSError:\n"
    "        break\n"
    "    time.sleep(0.5)\n"
    "try:\n"
    "    os.unlink(sys.argv[1])\n"
    "except OSError:\n"
    "    pass\n"
)


@attrs.frozen
class Target:
    """Where and how to connect: one host's SSH settings."""

    ip: str
    port: int = 22
    user: str = ""
    identity_file: str | None = None
    proxy_jump: str | None = None

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.ip}" if self.user else self.ip

    @classmethod
    def from_node(cls, node: NodeInfo) -> Target:
        extra = node.extra
        return cls(
            ip=node.ip,
            port=int(extra.get("ssh_port", "22")),
            user=extra.get("ssh_user", ""),
            identity_file=extra.get("ssh_identity_file") or None,
            proxy_jump=extra.get("ssh_proxy_jump") or None,
        )


def control_path(target: Target, directory: str | None = None) -> str:
    """A short, per-target ControlMaster socket path."""
    if directory is None:
        directory = f"/tmp/skyhop-cm-{os.getuid()}"
        os.makedirs(directory, mode=0o700, exist_ok=True)
    digest = hashlib.sha1(
        f"{target.destination}:{target.port}:{target.identity_file}:{target.proxy_jump}".encode()
    ).hexdigest()[:16]
    return f"{directory}/{digest}"


def ssh_options(
    target: Target,
    known_hosts: str,
    *,
    control: str | None = None,
    identity_file: str | None = None,
    connect_timeout: int | None = None,
) -> list[str]:
    """``ssh`` options (without the destination); ``control`` is the ControlPath.

    ``SKYHOP_SSH_CONNECT_TIMEOUT`` and ``SKYHOP_SSH_ALIVE_INTERVAL`` (seconds) override the
    connect timeout and the keep-alive interval, e.g. to notice dead hosts sooner on a
    fast private network."""
    if connect_timeout is None:
        connect_timeout = _seconds("SKYHOP_SSH_CONNECT_TIMEOUT", CONNECT_TIMEOUT)
    alive = _seconds("SKYHOP_SSH_ALIVE_INTERVAL", ALIVE_INTERVAL)
    opts = [
        "-p", str(target.port),
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", f"ConnectTimeout={connect_timeout}",
        "-o", f"ServerAliveInterval={alive}",
        "-o", "ServerAliveCountMax=3",
        "-o", "LogLevel=ERROR",
    ]  # fmt: skip
    key = identity_file or target.identity_file
    if key:
        opts += ["-i", key, "-o", "IdentitiesOnly=yes"]
    if target.proxy_jump:
        opts += ["-J", target.proxy_jump]
    if control:
        opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}"]
        opts += ["-o", f"ControlPersist={CONTROL_PERSIST}"]
    return opts


def _seconds(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return max(1, int(value)) if value else default
    except ValueError:
        raise ValueError(
            f"{name}={value!r} is not a whole number of seconds: set it to one (e.g. 5) or unset it"
        ) from None


def remote_line(
    argv: Sequence[str],
    pidfile: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> str:
    """The remote shell line: record the pid, run ``argv`` (env, cwd), keep the exit code."""
    command = shlex.join(argv)
    if env:
        command = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " " + command
    if cwd:
        command = f"cd {shlex.quote(cwd)} || exit 1; {command}"
    inner = f"echo $$ > {pidfile}; {command}; rc=$?; rm -f {pidfile}; exit $rc"
    return "sh -c " + shlex.quote(inner)


class SSHCommandRunner(CommandRunner):
    """Runs commands on one node over multiplexed OpenSSH; uploads with rsync."""

    ssh_sessions = True

    def __init__(self, node: NodeInfo, known_hosts: str, log: Callable[[str], None] | None = None):
        super().__init__(node)
        self.target = Target.from_node(node)
        self.known_hosts = known_hosts
        self.log = log

    def ssh_argv(self, *extra: str) -> list[str]:
        opts = ssh_options(self.target, self.known_hosts, control=control_path(self.target))
        return ["ssh", *opts, *extra, self.target.destination]

    def python(self) -> list[str]:
        return ["python3"]

    def interactive_argv(self, command: str | None, *, tty: bool) -> list[str]:
        # Through the cluster's master connection when it is up, never becoming one: a
        # master started here would outlive the session in its process group.
        opts = ssh_options(self.target, self.known_hosts)
        opts += ["-o", f"ControlPath={control_path(self.target)}", "-o", "ControlMaster=no"]
        return ["ssh", *opts, "-t" if tty else "-T", self.target.destination,
                *([command] if command else [])]  # fmt: skip

    def agent_command(self) -> list[str]:
        from skyhop_core.agent.daemon import boot_argv

        runtime = self.node.runtime_dir
        return [*boot_argv("python3", f"{runtime}/pkg"), "--root", runtime]

    async def _kill_remote(self, pidfile: str) -> None:
        """Kill the remote process group recorded in ``pidfile`` (shielded, bounded)."""
        line = shlex.join(["python3", "-c", KILL_SCRIPT, pidfile])
        with trio.CancelScope(shield=True), trio.move_on_after(KILL_TIMEOUT):
            await trio.run_process([*self.ssh_argv("-n"), line], capture_stdout=True,
                                   capture_stderr=True, check=False)  # fmt: skip

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> CompletedCommand:
        pidfile = f"/tmp/.skyhop-{uuid.uuid4().hex}.pid"
        line = remote_line(argv, pidfile, env=env, cwd=self.resolve(cwd) if cwd else None)

        async def deliver_cancel(process: trio.Process) -> None:
            with trio.CancelScope(shield=True):
                process.terminate()
                await self._kill_remote(pidfile)

        result = await trio.run_process(
            [*self.ssh_argv("-T"), line],
            stdin=input or b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            deliver_cancel=deliver_cancel,
        )
        return CompletedCommand(result.returncode, result.stdout, result.stderr)

    async def stream(
        self,
        argv: Sequence[str],
        on_output: OutputCallback,
        *,
        env: Mapping[str, str] | None = None,
    ) -> int:
        pidfile = f"/tmp/.skyhop-{uuid.uuid4().hex}.pid"
        # The remote command's stdin is a pipe this process holds open and never writes:
        # if this process dies (a SIGKILLed server kills no children), ssh sees EOF and
        # passes it on, and a following ``agent tail`` exits on it (its lifeline) instead
        # of waiting for the job to end with nobody reading.
        lifeline = {**(env or {}), "SKYHOP_TAIL_STDIN_LIFELINE": "1"}
        process = await trio.lowlevel.open_process(
            [*self.ssh_argv(), remote_line(argv, pidfile, env=lifeline)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert process.stdout is not None
            async with process.stdout:
                while chunk := await process.stdout.receive_some(65536):
                    await on_output(bytes(chunk))
            return await process.wait()
        finally:
            if process.returncode is None:
                with trio.CancelScope(shield=True):
                    process.terminate()
                    await self._kill_remote(pidfile)
                    await process.wait()
            if process.stdin is not None:
                with trio.CancelScope(shield=True):
                    await process.stdin.aclose()

    async def upload(
        self, local_path: str, remote_path: str, *, excludes: Sequence[str] = ()
    ) -> None:
        from skyhop_ssh.sync import upload

        await upload(self, local_path, remote_path, excludes=excludes)

    async def close(self) -> None:
        """Close the multiplexed master connection (when the cluster goes away)."""
        argv = ["ssh", "-o", f"ControlPath={control_path(self.target)}", "-O", "exit",
                self.target.destination]  # fmt: skip
        with trio.move_on_after(5):
            await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
