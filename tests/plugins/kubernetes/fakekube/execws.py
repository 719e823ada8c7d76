"""Exec over websockets, the server side of Kubernetes' channel protocol.

Every binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error
(the final ``Status`` as JSON, with the exit code in ``details.causes`` when non-zero),
4 resize. ``v5.channel.k8s.io`` adds 255, "close": ``[255, 0]`` from the client closes
the command's stdin, which ``v4`` cannot express. The process runs in the pod's
namespaces; when the client goes away first, its process group is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from typing import Any

import trio
from starlette.websockets import WebSocket, WebSocketDisconnect

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


def exit_status(code: int, argv: list[str]) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"{argv}, exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}  # fmt: skip


async def serve_exec(ws: WebSocket, protocol: str, wrapped: list[str], argv: list[str],
                     want_stdin: bool) -> None:  # fmt: skip
    """Run ``wrapped`` (``argv`` inside the pod) for one exec session on ``ws``."""
    await ws.accept(subprotocol=protocol)
    proc = await trio.lowlevel.open_process(
        wrapped, stdin=subprocess.PIPE if want_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    send_lock = trio.Lock()
    gone = False

    async def send(channel: int, data: bytes) -> None:
        nonlocal gone
        if gone:
            return
        async with send_lock:
            try:
                await ws.send_bytes(bytes([channel]) + data)
            except Exception:
                gone = True

    async def pump(stream: Any, channel: int) -> None:
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            await send(channel, chunk)

    async def from_client(cancel: trio.CancelScope) -> None:
        nonlocal gone
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes") or (message.get("text") or "").encode()
                if not data:
                    continue
                if data[0] == 0 and proc.stdin is not None and len(data) > 1:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await proc.stdin.send_all(data[1:])
                elif (data[0] == 255 and protocol.startswith("v5") and data[1:2] == b"\x00"
                      and proc.stdin is not None):  # fmt: skip
                    with contextlib.suppress(trio.BrokenResourceError):
                        await proc.stdin.aclose()
        except WebSocketDisconnect:
            pass
        gone = True
        # The client left before the command finished: kill it, as the stream is gone.
        if proc.returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        cancel.cancel()

    async with trio.open_nursery() as nursery:
        reader = trio.CancelScope()

        async def guarded() -> None:
            with reader:
                await from_client(reader)

        nursery.start_soon(guarded)
        async with trio.open_nursery() as pumps:
            pumps.start_soon(pump, proc.stdout, 1)
            pumps.start_soon(pump, proc.stderr, 2)
        code = await proc.wait()
        await send(3, json.dumps(exit_status(code, argv)).encode())
        reader.cancel()
    if not gone:
        with contextlib.suppress(Exception):
            await ws.close(1000)
