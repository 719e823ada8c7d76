"""A lean HTTP/1.1 keep-alive client on trio sockets, for load generation.

The load generator shares this machine's CPUs with the server under test, so it must
cost little per call: this client writes pre-encoded requests and parses only the status
line, ``Content-Length`` and the body (no chunked encoding: the JSON routes of both the
skyhop server and the trivial server send a length). It is roughly ten times cheaper
per call than ``httpx.AsyncClient``, so throughput figures measure the server.
"""

from __future__ import annotations

import json
from typing import Any

import trio


class RawConnection:
    """One keep-alive connection; ``await conn.request(...)`` one call at a time."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self._extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._stream: trio.SocketStream | None = None
        self._buf = bytearray()

    async def _connect(self) -> trio.SocketStream:
        if self._stream is None:
            self._stream = await trio.open_tcp_stream(self.host, self.port)
            self._buf.clear()
        return self._stream

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one call; return (status code, decoded JSON body). Reconnects if needed."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._extra}"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        stream = await self._connect()
        try:
            await stream.send_all(head.encode() + payload)
            status, close, data = await self._response(stream)
        except BaseException:
            await self.aclose()
            raise
        if close:
            await self.aclose()
        return status, json.loads(data) if data else None

    async def _response(self, stream: trio.SocketStream) -> tuple[int, bool, bytes]:
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            await self._fill(stream)
        head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        status = int(head[0].split(" ", 2)[1])
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        if "content-length" not in fields:
            raise RuntimeError(f"response without Content-Length: {head[0]} {fields}")
        length = int(fields["content-length"])
        while len(self._buf) < length:
            await self._fill(stream)
        data = bytes(self._buf[:length])
        del self._buf[:length]
        return status, fields.get("connection") == "close", data

    async def _fill(self, stream: trio.SocketStream) -> None:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buf += chunk
