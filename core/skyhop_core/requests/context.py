"""What a request handler gets: who asked, where to log, and the server's services."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from skyhop_core.requests.logs import RequestLogWriter

if TYPE_CHECKING:
    from skyhop_core.services import Services


@attrs.define
class User:
    name: str
    hash: str


@attrs.define
class RequestContext:
    request_id: str
    name: str
    user: User
    services: Services
    writer: RequestLogWriter

    def log(self, message: str) -> None:
        """One line of progress in the request's log (what the client streams)."""
        self.writer.line(message)

    def write(self, data: bytes) -> None:
        """Raw bytes (a job's output) into the request's log."""
        self.writer.write(data)
