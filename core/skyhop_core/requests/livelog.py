"""A request log that lives in memory: bytes in flight from a handler to its reader.

A ``logs`` request relays a job's log, which the cluster already keeps; copying it into
the request's log file on every read would store it again each time (two reads of a
200 MB log added 382 MB under ``requests/``). Such a request writes into a
:class:`LiveLog` instead: a bounded buffer with the same byte offsets a file would have.
The writer waits while more than :data:`WINDOW` bytes are unread (so a slow client slows
the relay instead of filling memory); bytes are dropped once read, except the last
:data:`KEEP` bytes, so a client that reconnects and resumes at its offset still finds
them. A writer nobody reads for :data:`READER_TIMEOUT` seconds fails with
:class:`NoReaderError` rather than waiting forever.

When the request finishes, the request's log file gets what the live log still holds
(all of a log smaller than :data:`KEEP`; else a note and the last bytes), so its log file
stays bounded. Until :data:`FINISHED_GRACE` after that, readers on this replica still
read the live log (offsets unchanged); later ones, and readers on another replica,
read the file. While the request runs, only this replica has its bytes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import trio

from skyhop_core.exceptions import SkyhopError

WINDOW = 1024 * 1024
KEEP = 256 * 1024
READER_TIMEOUT = float(os.environ.get("SKYHOP_LIVE_LOG_READER_TIMEOUT", "120"))
#: How long a finished live log waits for a reader before it is dropped.
FINISHED_GRACE = 120.0


class NoReaderError(SkyhopError):
    """Nobody read a live request log, so the request stopped relaying."""


class LiveLog:
    """One request's live bytes: ``base`` is the offset of the first byte still held."""

    def __init__(self) -> None:
        self.base = 0
        self._buffer = bytearray()
        self.read_to = 0  # the furthest offset a reader has been given
        self.closed_at: float | None = None
        self._changed = trio.Event()

    @property
    def end(self) -> int:
        return self.base + len(self._buffer)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def put(self, data: bytes) -> None:
        """Append without waiting (progress lines, errors)."""
        if data:
            self._buffer += data
            self._notify()

    async def send(self, data: bytes) -> None:
        """Append, first waiting until the reader is less than WINDOW bytes behind."""
        while self.end - self.read_to > WINDOW:
            changed = self._changed
            with trio.move_on_after(READER_TIMEOUT) as waited:
                await changed.wait()
            if waited.cancelled_caught:
                raise NoReaderError(
                    f"No client read this request's log for {READER_TIMEOUT:g} s, so it "
                    "stopped relaying; stream it while it runs (skyhop api logs ID)."
                )
        self.put(data)

    def close(self) -> None:
        self.closed_at = trio.current_time()
        self._notify()

    def expired(self, now: float) -> bool:
        return self.closed_at is not None and now - self.closed_at > FINISHED_GRACE

    def held(self) -> bytes:
        """The bytes still in memory (from ``base``)."""
        return bytes(self._buffer)

    def read(self, offset: int, size: int) -> tuple[int, bytes]:
        """Up to ``size`` bytes from ``offset`` (moved up to ``base`` if those bytes are
        gone); returns the offset actually read from and the bytes."""
        offset = max(offset, self.base)
        start = offset - self.base
        data = bytes(self._buffer[start : start + size])
        if data:
            self.read_to = max(self.read_to, offset + len(data))
            drop = self.read_to - KEEP - self.base
            if drop > 0:
                del self._buffer[:drop]
                self.base += drop
            self._notify()  # room for the writer
        return offset, data

    async def follow(
        self, offset: int, *, follow: bool, heartbeat: float, chunk: int
    ) -> AsyncIterator[bytes]:
        """Yield bytes from ``offset`` until closed and drained (``b""``: heartbeat)."""
        while True:
            changed = self._changed
            offset, data = self.read(offset, chunk)
            if data:
                offset += len(data)
                yield data
                continue
            if self.closed_at is not None or not follow:
                return
            with trio.move_on_after(heartbeat) as waited:
                await changed.wait()
            if waited.cancelled_caught:
                yield b""
