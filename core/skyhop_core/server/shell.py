"""Interactive sessions on a cluster's node over a WebSocket: what ``skyhop ssh`` talks to.

``GET /api/ssh``, upgraded to a WebSocket and authenticated like every other call (on a
deployed server a missing or revoked token is refused with the usual 401 before the
upgrade). The client's first message is a JSON text frame with the session's
parameters (:class:`SessionParams`)::

    {"cluster": "dev", "node": 0, "command": null, "tty": true,
     "rows": 50, "cols": 120, "term": "xterm-256color"}

The server checks them as an operation checks its body, resolves the cluster as every
operation does (the caller's own, or any for an admin; on a deployed server another
user's cluster does not exist; it must be UP), and asks the backend's command runner for
the session's argv (:meth:`~skyhop_core.runner.CommandRunner.interactive_argv`). It runs
that argv here: with ``tty`` on a pseudo-terminal of its own (``ssh -t`` carries it to
the node), else with pipes. Then it relays, until the process ends:

- client to server: binary frames are stdin; text frames are JSON controls,
  ``{"resize": [rows, cols]}`` and ``{"eof": true}`` (closes stdin, pipes only);
- server to client: binary frames whose first byte names the stream (1 stdout, 2 stderr;
  a terminal has only 1); then ``{"exit": code}``, or ``{"error": <wire error>}`` if the
  session could not start; then the server closes.

A client that goes away (it closed, or its connection was cut) hangs the session up as
closing a terminal does: SIGHUP, then SIGTERM and SIGKILL to the process group, so
nothing of it is left on the server; over SSH the node's shell gets the hangup from
sshd. Sessions are not requests: each runs in the task hypercorn gives its connection,
in the server's one trio tree (a server shutting down ends them), and each start and
end is logged with who opened it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from skyhop_core import wire
from skyhop_core.exceptions import NotSupportedError, TaskValidationError

PATH = "/api/ssh"
#: The first message's largest size, and a command line's.
MAX_PARAMS_BYTES = 256 * 1024
MAX_COMMAND_BYTES = 128 * 1024
#: How long a client may take to send its first message.
PARAMS_TIMEOUT = 30.0
#: After a hangup, how long the session's processes get before SIGTERM and SIGKILL.
HANGUP_GRACE = 2.0
#: After the process ended, how long output still in the terminal may take to arrive.
DRAIN_SECONDS = 1.0
STDOUT, STDERR = b"\x01", b"\x02"
_TERM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


@attrs.frozen
class SessionParams:
    """What the client asks for: a shell (``command`` None) or one command line, on
    node ``node`` (a rank) of ``cluster``, on a terminal of ``rows`` × ``cols`` and type
    ``term`` when ``tty``."""

    cluster: str
    node: int = 0
    command: str | None = None
    tty: bool = True
    rows: int = 24
    cols: int = 80
    term: str = "xterm"


def parse_params(text: str | bytes | None) -> SessionParams:
    """The first message as :class:`SessionParams`; a clear error naming the field and
    the value otherwise."""

    def bad(field: str, value: Any, want: str) -> TaskValidationError:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return TaskValidationError(
            f"skyhop ssh: the session's field {field!r} is {shown}; it must be {want}."
        )

    if not isinstance(text, str):
        raise TaskValidationError(
            "skyhop ssh: the first message must be a JSON text frame with the session's "
            "parameters (cluster, node, command, tty, rows, cols, term)."
        )
    if len(text) > MAX_PARAMS_BYTES:
        raise TaskValidationError(
            f"skyhop ssh: the session's parameters are {len(text)} bytes; at most "
            f"{MAX_PARAMS_BYTES} are accepted."
        )
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TaskValidationError(f"skyhop ssh: the session's parameters are not JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise bad("(parameters)", data, "a JSON object")
    unknown = sorted(set(data) - {f.name for f in attrs.fields(SessionParams)})
    if unknown:
        raise bad(unknown[0], data[unknown[0]], "left out (not a session parameter)")
    cluster = data.get("cluster")
    if not isinstance(cluster, str) or not cluster:
        raise bad("cluster", cluster, "a cluster name")
    values: dict[str, Any] = {"cluster": cluster}
    for name, low, high in (("node", 0, 100_000), ("rows", 1, 10_000), ("cols", 1, 10_000)):
        if name in data:
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise bad(name, value, f"a whole number from {low} to {high}")
            values[name] = value
    command = data.get("command")
    if command is not None:
        if not isinstance(command, str) or not command.strip():
            raise bad("command", command, "null (a login shell) or a non-empty command line")
        if len(command.encode()) > MAX_COMMAND_BYTES or "\0" in command:
            raise bad("command", command, f"at most {MAX_COMMAND_BYTES} bytes, without NUL")
        values["command"] = command
    if "tty" in data:
        if not isinstance(data["tty"], bool):
            raise bad("tty", data["tty"], "true or false")
        values["tty"] = data["tty"]
    if "term" in data:
        term = data["term"]
        if not isinstance(term, str) or not _TERM_RE.fullmatch(term):
            raise bad("term", term, "a terminal type such as xterm-256color")
        values["term"] = term
    return SessionParams(**values)


@attrs.define
class _Caller:
    """Who opened the session, shaped like the request context the lookups take."""

    services: Any
    user: Any

    def log(self, message: str) -> None:
        print(f"skyhop ssh ({self.user.name}): {message}", file=sys.stderr, flush=True)


async def session_argv(services: Any, user: Any, params: SessionParams) -> tuple[list[str], str]:
    """The argv of the session ``params`` asks for, and where it runs (for the log)."""
    from skyhop_core.ops.common import get_cluster, require_up

    caller = _Caller(services, user)
    record = await get_cluster(caller, params.cluster)  # type: ignore[arg-type]
    handle = require_up(record)
    ranks = [node.rank for node in handle.nodes]
    node = next((n for n in handle.nodes if n.rank == params.node), None)
    if node is None:
        raise TaskValidationError(
            f"Cluster {params.cluster!r} has nodes {min(ranks)} to {max(ranks)}; there is "
            f"no node {params.node} (skyhop ssh --node)."
        )
    ctx = services.backend_ctx(handle.backend, caller)
    assert ctx.runner_factory is not None
    runner = ctx.runner_factory(handle, node)
    argv = runner.interactive_argv(params.command, tty=params.tty)
    if argv is None:
        name = services.backends.info(handle.backend).display_name
        raise NotSupportedError(
            f"The {name} backend cannot open an interactive session on a node (skyhop "
            f"ssh); run commands with: skyhop exec {params.cluster} -- COMMAND"
        )
    if params.tty and shutil.which("setsid") is None:
        raise NotSupportedError(
            "skyhop ssh with a terminal needs util-linux's setsid on the API server's "
            "machine (apt-get install util-linux); or pass -T for a session without one."
        )
    return list(argv), f"node {node.rank} of {params.cluster!r} ({handle.backend})"


class _Hangup(Exception):
    """The client went away."""


async def serve_session(services: Any, user: Any, scope: Any, receive: Any, send: Any) -> None:
    """The ASGI endpoint of one session (``scope["type"] == "websocket"``)."""
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    try:
        with trio.fail_after(PARAMS_TIMEOUT):
            message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        params = parse_params(message.get("text"))
        argv, where = await session_argv(services, user, params)
    except Exception as exc:  # noqa: BLE001 - the client is told, nothing has started
        if isinstance(exc, trio.TooSlowError):
            exc = TaskValidationError(
                f"skyhop ssh: no session parameters within {PARAMS_TIMEOUT:g} s."
            )
        await _finish(send, {"error": wire.encode_error(exc)})
        return
    caller = _Caller(services, user)
    caller.log(f"opened a session on {where}" + (" with a terminal" if params.tty else ""))
    try:
        code = await (_run_tty if params.tty else _run_pipes)(argv, params, receive, send)
    except _Hangup:
        caller.log(f"went away; the session on {where} was hung up")
        return
    caller.log(f"the session on {where} ended with exit code {code}")
    await _finish(send, {"exit": code})


async def _finish(send: Any, message: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):  # a client gone meanwhile
        await send({"type": "websocket.send", "text": json.dumps(message)})
        await send({"type": "websocket.close", "code": 1000})


def _exit_code(returncode: int) -> int:
    """A process's exit code as a shell reports it (128 + N when killed by signal N)."""
    return 128 - returncode if returncode < 0 else returncode


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _control(message: dict[str, Any]) -> dict[str, Any]:
    """A text frame's JSON control, or {} when it is not one (ignored, not fatal)."""
    try:
        data = json.loads(message.get("text") or "")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _resize_of(control: dict[str, Any]) -> tuple[int, int] | None:
    size = control.get("resize")
    if (isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 10_000
                    for v in size)):  # fmt: skip
        return size[0], size[1]
    return None


async def _hang_up(process: trio.Process, first: signal.Signals | None) -> None:
    """End what is left of the session: ``first`` (SIGHUP for a terminal that went away),
    then SIGTERM and SIGKILL to the process group, each after a grace."""
    from skyhop_core.localrunner import kill_process_group

    with trio.CancelScope(shield=True):
        if process.returncode is None and first is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, first)
            with trio.move_on_after(HANGUP_GRACE):
                await process.wait()
        if process.returncode is None:
            await kill_process_group(process)


async def _supervise(process: trio.Process, receive: Any, stdin: trio.abc.SendStream,
                     on_control: Callable[[dict[str, Any]], Awaitable[None]],
                     until_done: Callable[[], Awaitable[int]]) -> int:  # fmt: skip
    """Relay the user's input to ``stdin`` (text frames to ``on_control``) while
    ``until_done`` relays the output and returns the process's return code; the exit code.
    A user who goes away hangs the session up (raises :class:`_Hangup`); whatever ends
    it, its processes are ended and ``stdin`` is closed."""

    async def user_input() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                raise _Hangup
            if message.get("bytes"):
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stdin.send_all(message["bytes"])
            else:
                await on_control(_control(message))

    hung_up = True
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(user_input)
            returncode = await until_done()
            hung_up = False
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        _, rest = group.split(_Hangup)
        if rest is not None:
            raise rest from None
        raise _Hangup from None
    finally:
        await _hang_up(process, signal.SIGHUP if hung_up else None)
        with trio.CancelScope(shield=True):
            await stdin.aclose()
    return _exit_code(returncode)


async def _run_tty(argv: Sequence[str], params: SessionParams, receive: Any, send: Any) -> int:
    master, slave = os.openpty()
    try:
        _set_size(master, params.rows, params.cols)
        # setsid --ctty: a session of its own whose controlling terminal is this one, so
        # a resize reaches it (SIGWINCH) and a hangup hangs it up, as under sshd.
        process = await trio.lowlevel.open_process(
            ["setsid", "--ctty", "--wait", *argv],
            stdin=slave, stdout=slave, stderr=slave,
            env={**os.environ, "TERM": params.term},
        )  # fmt: skip
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    terminal = trio.lowlevel.FdStream(master)

    async def resize(control: dict[str, Any]) -> None:
        if (size := _resize_of(control)) is not None:
            _set_size(master, *size)

    async def output(ended: trio.Event) -> None:
        while True:
            try:
                data = await terminal.receive_some(65536)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                break  # EIO: every process with the terminal open has gone
            if not data:
                break
            await send({"type": "websocket.send", "bytes": STDOUT + data})
        ended.set()

    async def until_done() -> int:
        ended = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(output, ended)
            returncode = await process.wait()
            with trio.move_on_after(DRAIN_SECONDS):  # what it wrote last
                await ended.wait()
            nursery.cancel_scope.cancel()
        return returncode

    return await _supervise(process, receive, terminal, resize, until_done)


async def _run_pipes(argv: Sequence[str], params: SessionParams, receive: Any, send: Any) -> int:
    process = await trio.lowlevel.open_process(
        list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdin and process.stdout and process.stderr
    stdin, stdout, stderr = process.stdin, process.stdout, process.stderr

    async def eof(control: dict[str, Any]) -> None:
        if control.get("eof") is True:
            await stdin.aclose()

    async def output(stream: trio.abc.ReceiveStream, channel: bytes) -> None:
        async with stream:
            while data := await stream.receive_some(65536):
                await send({"type": "websocket.send", "bytes": channel + data})

    async def until_done() -> int:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(output, stdout, STDOUT)
            nursery.start_soon(output, stderr, STDERR)
        return await process.wait()

    return await _supervise(process, receive, stdin, eof, until_done)
