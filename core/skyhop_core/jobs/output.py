"""A managed job's saved output: an append-only file that followers are woken for.

Like a request log (:class:`~skyhop_core.requests.logs.RequestLogWriter`), plus
:meth:`OutputWriter.reopen_at`: a controller resumed after a restart copies the current
attempt's log again from its start, so it first cuts the file back to where the attempt
began instead of repeating what was copied before the restart.
"""

from __future__ import annotations

import os
from typing import BinaryIO

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


class ControllerLogWriter(RequestLogWriter):
    """A controller's log: opened for each write and closed again. A controller writes
    a few lines per launch or recovery and then watches for hours; ten thousand of them
    must not hold ten thousand open files."""

    def _write_file(self, data: bytes) -> None:
        if not data:
            return
        with open_private(self._hub.path(self._request_id), "ab", buffering=0) as f:
            f.write(data)
        self._hub.notify(self._request_id)
