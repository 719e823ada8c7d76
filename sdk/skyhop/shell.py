"""The client of an interactive session on a node (``skyhop ssh``), through the API server.

The API server holds the way to every node (its SSH keys and connections, the local
sandboxes), so the session goes through it over one WebSocket (protocol in
``skyhop_core.server.shell``): this works from any machine that can reach the server,
for a team's users who hold no key to the nodes. With a terminal, this side puts it in
raw mode (every key, Ctrl+C included, goes to the node) and sends its size whenever it
changes; without one, stdin, stdout and stderr are relayed as they are.

Built on trio and wsproto (the WebSocket library of the server's HTTP stack), imported
only by this command.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import skyhop_core.wire as wire
from skyhop_core import exceptions
from skyhop_core.server.shell import PATH, STDERR

CONNECT_TIMEOUT = 30.0


def run_session(
    client: Any,
    cluster: str,
    *,
    node: int = 0,
    command: str | None = None,
    tty: bool,
    stdin: int = 0,
    stdout: int = 1,
    stderr: int = 2,
) -> int:
    """Open a session on node ``node`` of ``cluster`` through ``client``'s server and
    relay it on the file descriptors given; the remote command's exit code.

    ``client`` is an :class:`~skyhop.client.ApiClient` (its endpoint, identity and
    token). ``tty``: ask for a terminal (``stdin`` should be one: it is put in raw mode).
    """
    import trio

    rows, cols = _size(stdout if os.isatty(stdout) else stdin)
    params = {
        "cluster": cluster, "node": node, "command": command, "tty": tty,
        "rows": rows, "cols": cols, "term": os.environ.get("TERM") or "xterm",
    }  # fmt: skip
    with _raw(stdin) if tty and os.isatty(stdin) else contextlib.nullcontext():
        return trio.run(_session, client, params, stdin, stdout, stderr)


def _size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
        return max(1, size.lines), max(1, size.columns)
    except OSError:
        return 24, 80


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSADRAIN)  # not TCSAFLUSH: keys typed already still go
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _connect(client: Any) -> tuple[Any, Any]:
    """A stream and a wsproto connection, the WebSocket accepted (or the server's refusal
    raised as the error it sent)."""
    import trio
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request

    url = urlsplit(client.endpoint)
    tls = url.scheme == "https"
    host = url.hostname or "127.0.0.1"
    port = url.port or (443 if tls else 80)
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream: Any = await trio.open_tcp_stream(host, port)
            if tls:
                import httpx

                stream = trio.SSLStream(stream, httpx.create_ssl_context(), server_hostname=host)
                await stream.do_handshake()
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        raise client._unreachable(exc) from None
    ws = WSConnection(ConnectionType.CLIENT)
    headers = [(k.encode(), v.encode()) for k, v in client.call_headers.items()]
    await stream.send_all(ws.send(Request(
        host=url.netloc, target=url.path.rstrip("/") + PATH, extra_headers=headers,
    )))  # fmt: skip
    status, body = 0, b""
    while True:
        data = await stream.receive_some(65536)
        if not data:
            raise exceptions.ApiServerError(
                f"The API server at {client.endpoint} closed the connection before "
                "opening the session."
            )
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return stream, ws
            if isinstance(event, RejectConnection):
                status = event.status_code
                if not event.has_body:
                    _refused(client, status, body)
            elif isinstance(event, RejectData):
                body += event.data
                if event.body_finished:
                    _refused(client, status, body)


def _refused(client: Any, status: int, body: bytes) -> None:
    with contextlib.suppress(ValueError, AttributeError):
        error = json.loads(body).get("error")
        if isinstance(error, dict):
            raise wire.decode_error(error)
    if status == 404:
        raise exceptions.ApiServerError(
            f"The API server at {client.endpoint} has no interactive sessions (HTTP 404): "
            "it runs an older skyhop. Upgrade it to use skyhop ssh."
        )
    raise exceptions.ApiServerError(
        f"The API server at {client.endpoint} refused the session with HTTP {status}: "
        f"{body[:200]!r}"
    )


async def _session(client: Any, params: dict[str, Any], stdin: int, stdout: int,
                   stderr: int) -> int:  # fmt: skip
    import trio
    from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
    from wsproto.utilities import LocalProtocolError

    stream, ws = await _connect(client)
    send_lock = trio.Lock()

    async def send(event: Any) -> None:
        """Send ``event``; a connection the server closed is the reader's to report."""
        async with send_lock:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError,
                                     LocalProtocolError):  # fmt: skip
                await stream.send_all(ws.send(event))

    await send(TextMessage(data=json.dumps(params)))
    outcome: dict[str, Any] = {}

    async def keys() -> None:
        """stdin to the session (a thread reads it: a terminal, a pipe or a file alike)."""
        while data := await trio.to_thread.run_sync(os.read, stdin, 65536, abandon_on_cancel=True):
            await send(BytesMessage(data=data))
        await send(TextMessage(data=json.dumps({"eof": True})))

    async def resizes() -> None:
        with trio.open_signal_receiver(signal.SIGWINCH) as signals:
            async for _ in signals:
                rows, cols = _size(stdout if os.isatty(stdout) else stdin)
                await send(TextMessage(data=json.dumps({"resize": [rows, cols]})))

    async def output(nursery: trio.Nursery) -> None:
        parts: list[Any] = []
        while True:
            data = await stream.receive_some(65536)
            if not data:
                break
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Message):
                    parts.append(event.data)
                    if not event.message_finished:
                        continue
                    if isinstance(event, TextMessage):
                        with contextlib.suppress(ValueError):
                            outcome.update(json.loads("".join(parts)))
                    else:
                        frame = b"".join(parts)
                        _write(stderr if frame[:1] == STDERR else stdout, frame[1:])
                    parts = []
                elif isinstance(event, Ping):
                    await send(event.response())
                elif isinstance(event, CloseConnection):
                    await send(event.response())
                    nursery.cancel_scope.cancel()
                    return
        nursery.cancel_scope.cancel()

    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(output, nursery)
        nursery.start_soon(keys)
        if params["tty"]:
            nursery.start_soon(resizes)
    if "error" in outcome and isinstance(outcome["error"], dict):
        raise wire.decode_error(outcome["error"])
    if "exit" in outcome:
        return int(outcome["exit"])
    raise exceptions.ApiServerError(
        f"The session on {params['cluster']!r} ended without an exit code: the API server "
        f"at {client.endpoint} closed the connection (is it still running?)."
    )


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:  # a terminal another program left non-blocking
            import select

            select.select([], [fd], [])
