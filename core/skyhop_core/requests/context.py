"""What a request handler gets: who asked, where to log, and the server's services."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from skyhop_core.requests.logs import RequestLogWriter

if TYPE_CHECKING:
    from skyhop_core.services import Services


@attrs.define
class User:
    """Who a request runs for. ``role`` is ``user`` or ``admin`` (from the token on a
    deployed server; always ``user`` on a local one, where identity headers are not
    proof of anything). An admin sees and acts on every user's requests and clusters."""

    name: str
    hash: str
    role: str = "user"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


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

    async def send(self, data: bytes) -> None:
        """Relayed bytes (a job's log): to the client's stream, waiting while the client
        is behind; never stored in the request's log file when the operation is
        ``live_log`` (see :mod:`skyhop_core.requests.livelog`)."""
        await self.writer.send(data)
