"""Request logs: one append-only file per request, and readers that follow it.

Writers notify readers through a per-request :class:`trio.Event` that is replaced after
every write, so a follower wakes at once instead of polling, and no reader copies the log:
each reads the file from its own byte offset.

A request that relays bytes kept elsewhere (``logs``: the job's log) has a
:class:`~skyhop_core.requests.livelog.LiveLog` instead: the relayed bytes stay in memory
until read, and only its progress lines reach the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO

import trio

from skyhop_core.paths import open_private, private_dir
from skyhop_core.requests.livelog import LiveLog

CHUNK = 1 << 20  # bytes read per step when streaming


class LogHub:
    """Where request logs live, plus the wake-up events of their followers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        private_dir(directory)
        self._events: dict[str, trio.Event] = {}
        self._live: dict[str, LiveLog] = {}

    def open_live(self, request_id: str) -> LiveLog:
        """A new live log for a request (see :mod:`skyhop_core.requests.livelog`)."""
        now = trio.current_time()
        for key in [k for k, live in self._live.items() if live.expired(now)]:
            del self._live[key]
        live = self._live[request_id] = LiveLog()
        return live

    def live(self, request_id: str) -> LiveLog | None:
        """The request's live log, until FINISHED_GRACE after it finished."""
        live = self._live.get(request_id)
        if live is not None and live.expired(trio.current_time()):
            del self._live[request_id]
            return None
        return live

    def path(self, request_id: str) -> Path:
        return self.directory / f"{request_id}.log"

    def notify(self, request_id: str) -> None:
        event = self._events.pop(request_id, None)
        if event is not None:
            event.set()

    def growth_event(self, request_id: str) -> trio.Event:
        """An event set at the next write. Take it *before* reading so no write is missed."""
        return self._events.setdefault(request_id, trio.Event())

    def remove(self, request_id: str) -> None:
        self._events.pop(request_id, None)
        self._live.pop(request_id, None)
        with contextlib.suppress(FileNotFoundError):
            self.path(request_id).unlink()


class RequestLogWriter:
    """Appends to one request's log and wakes its followers."""

    def __init__(self, hub: LogHub, request_id: str, *, live: bool = False) -> None:
        self._hub = hub
        self._request_id = request_id
        self._file: IO[bytes] | None = None  # opened at the first write: most reads log nothing
        self._closed = False
        self._live = hub.open_live(request_id) if live else None
        #: Bytes this writer put in the log file (a new request's: the file's size).
        self.file_bytes = 0

    async def send(self, data: bytes) -> None:
        """Relayed bytes: into the live log (waiting for the reader), else the file."""
        if self._live is None:
            self.write(data)
        elif not self._closed:
            await self._live.send(data)

    def write(self, data: bytes) -> None:
        if not data or self._closed:
            return
        if self._live is not None:
            self._live.put(data)
            return
        self._write_file(data)

    def _write_file(self, data: bytes) -> None:
        if not data:
            return
        if self._file is None:
            self._file = open_private(self._hub.path(self._request_id), "ab", buffering=0)
        self._file.write(data)
        self.file_bytes += len(data)
        self._hub.notify(self._request_id)

    def line(self, message: str) -> None:
        self.write(message.rstrip("\n").encode() + b"\n")

    def close(self) -> None:
        if self._live is not None and not self._closed:
            # The file keeps what the live log still holds (all of a small log), so the
            # request can be read again later, and from another replica.
            self._live.close()
            if self._live.base:
                self._write_file(
                    f"skyhop: the first {self._live.base} bytes were relayed live and are "
                    "not kept here; `skyhop logs CLUSTER JOB_ID` reads the whole job log.\n"
                    .encode()
                )
            self._write_file(self._live.held())
        self._closed = True
        if self._file is not None:
            self._file.close()
        self._hub.notify(self._request_id)


def tail_offset(path: Path, lines: int) -> int:
    """Byte offset where the last ``lines`` lines of ``path`` start (reads only the tail)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if lines <= 0:
        return size
    with open(path, "rb") as f:
        pos = size
        found = 0
        block = 64 * 1024
        # A final newline ends the last line rather than starting a new one.
        if size:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                found = -1
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step)
            idx = len(data)
            while True:
                idx = data.rfind(b"\n", 0, idx)
                if idx < 0:
                    break
                found += 1
                if found == lines:
                    return pos + idx + 1
        return 0


async def follow(
    hub: LogHub,
    request_id: str,
    *,
    offset: int,
    is_finished: Callable[[], Awaitable[bool]] | None,
    follow: bool,
    heartbeat: float = 5.0,
    poll: float | None = None,
) -> AsyncIterator[bytes]:
    """Yield the log's bytes from ``offset``; while following, wait for more until
    ``await is_finished()`` says the request is done, then drain and stop.

    Yields ``b""`` after ``heartbeat`` seconds of silence so servers can keep the
    connection alive. ``poll`` re-reads the file that often for a log another replica
    writes (its writes wake nobody here).
    """
    live = hub.live(request_id)
    if live is not None:
        async for chunk in live.follow(offset, follow=follow, heartbeat=heartbeat, chunk=CHUNK):
            yield chunk
        return
    path = hub.path(request_id)
    fd: int | None = None
    quiet_since = trio.current_time()
    try:
        while True:
            grown = hub.growth_event(request_id)
            if fd is None and path.exists():
                fd = os.open(path, os.O_RDONLY)
            data = os.pread(fd, CHUNK, offset) if fd is not None else b""
            if data:
                offset += len(data)
                quiet_since = trio.current_time()
                yield data
                continue
            if not follow:
                return
            if is_finished is not None and await is_finished():
                # One last read: the writer may have appended before finishing.
                if fd is None and path.exists():
                    fd = os.open(path, os.O_RDONLY)
                while fd is not None:
                    data = os.pread(fd, CHUNK, offset)
                    if not data:
                        break
                    offset += len(data)
                    yield data
                return
            with trio.move_on_after(min(heartbeat, poll or heartbeat)):
                await grown.wait()
            if trio.current_time() - quiet_since >= heartbeat:
                quiet_since = trio.current_time()
                yield b""  # heartbeat: nothing new for a while
    finally:
        if fd is not None:
            os.close(fd)
