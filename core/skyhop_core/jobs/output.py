"""A managed job's saved output and its controller's log: append-only files that
followers are woken for.

- :class:`OutputWriter`: like a request log (:class:`~skyhop_core.requests.logs.RequestLogWriter`),
  plus :meth:`OutputWriter.reopen_at`: a controller resumed after a restart copies the
  current attempt's log again from its start, so it first cuts the file back to where
  the attempt began instead of repeating what was copied before the restart.
- :class:`ControllerLogWriter` and :class:`LogFlusher`: controller log lines wait in
  memory and one worker thread appends every waiting file's lines in one go, a few
  times a second. Ten thousand controllers starting at once would otherwise open a file
  on the event loop for every line (each open also waits for the GIL while the
  database threads run), which is what held ``status`` reads up during a ramp.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import trio

from skyhop_core.paths import open_private
from skyhop_core.requests.logs import LogHub, RequestLogWriter


class OutputWriter:
    def __init__(self, hub: LogHub, name: str) -> None:
        self._hub = hub
        self._name = name
        self._file: BinaryIO | None = None
        self._closed = False

    def write(self, data: bytes) -> None:
        if not data or self._closed:
            return
        if self._file is None:
            self._file = open(self._hub.path(self._name), "ab", buffering=0)  # noqa: SIM115
        self._file.write(data)
        self._hub.notify(self._name)

    def reopen_at(self, offset: int) -> None:
        """Cut the file back to ``offset`` bytes; later writes append from there."""
        if self._file is not None:
            self._file.close()
            self._file = None
        os.truncate(self._hub.path(self._name), offset)

    def close(self) -> None:
        self._closed = True
        if self._file is not None:
            self._file.close()
        self._hub.notify(self._name)


def _append(path: Path, data: bytes) -> None:
    with open_private(path, "ab", buffering=0) as f:
        f.write(data)


class LogFlusher:
    """Appends the lines of many logs from one worker thread, in batches.

    :meth:`add` queues bytes for a log; :meth:`run` (a task of the jobs service) writes
    everything queued every ``interval`` seconds, in order, and wakes each log's
    followers; :meth:`flush` returns once everything queued before it is on disk. When
    ``run`` is not running (before the service starts, after it stopped), writes are
    synchronous.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.running = False
        #: path -> (hub, log name, bytes waiting)
        self._pending: dict[Path, tuple[LogHub, str, bytearray]] = {}
        self._wake = trio.Event()
        self._hurry = trio.Event()
        self._next_done = trio.Event()  # set when the batch now gathering is written
        self._inflight: trio.Event | None = None

    def add(self, hub: LogHub, name: str, data: bytes) -> None:
        if not data:
            return
        path = hub.path(name)
        if not self.running:
            _append(path, data)
            hub.notify(name)
            return
        entry = self._pending.get(path)
        if entry is None:
            self._pending[path] = (hub, name, bytearray(data))
        else:
            entry[2].extend(data)
        self._wake.set()

    async def flush(self) -> None:
        """Return once every line added so far is written."""
        if not self.running:
            self._write_now(self._take())
            return
        if self._pending:
            done = self._next_done
            self._hurry.set()
            await done.wait()
        elif self._inflight is not None:
            await self._inflight.wait()

    def _take(self) -> dict[Path, tuple[LogHub, str, bytearray]]:
        batch, self._pending = self._pending, {}
        return batch

    @staticmethod
    def _write_now(batch: dict[Path, tuple[LogHub, str, bytearray]]) -> None:
        for path, (_, _, data) in batch.items():
            _append(path, bytes(data))

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.running = True
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                with trio.move_on_after(self.interval):  # gather, unless someone waits
                    await self._hurry.wait()
                self._wake, self._hurry = trio.Event(), trio.Event()
                batch = self._take()
                done, self._next_done = self._next_done, trio.Event()
                self._inflight = done
                try:
                    await trio.to_thread.run_sync(self._write_now, batch)
                finally:
                    self._inflight = None
                    for hub, name, _ in batch.values():
                        hub.notify(name)
                    done.set()
        finally:
            self.running = False
            self._write_now(self._take())  # shutting down: nothing queued is lost
            self._next_done.set()


class ControllerLogWriter(RequestLogWriter):
    """A controller's log. Its lines go through the service's :class:`LogFlusher`
    (without one: opened for each write and closed again). A controller writes a few
    lines per launch or recovery and then watches for hours; ten thousand of them must
    not hold ten thousand open files."""

    def __init__(self, hub: LogHub, request_id: str, flusher: LogFlusher | None = None) -> None:
        super().__init__(hub, request_id)
        self._flusher = flusher or LogFlusher()

    def _write_file(self, data: bytes) -> None:
        self._flusher.add(self._hub, self._request_id, data)

    async def flush(self) -> None:
        """Return once every line written so far is on disk."""
        await self._flusher.flush()
