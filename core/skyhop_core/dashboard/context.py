"""What every dashboard page uses: who is looking, reads and actions as that user, HTML.

Reads (``status``, ``queue``, ``jobs_queue``, ``check``) run the API operation's own
handler in-process, as the viewer, in a slot of the engine's ``short`` class: they see
exactly what the API shows that user (the handlers do the ownership checks), and the
dashboard's polling does not fill ``api status`` with thousands of requests. Actions
(cancel, stop, down) are real requests submitted through the engine, like the CLI's:
they are listed, logged and cancellable.
"""

from __future__ import annotations

import getpass
import hashlib
import socket
from pathlib import Path
from typing import Any

import trio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from skyhop_core.dashboard import PREFIX, fmt
from skyhop_core.requests.context import RequestContext, User
from skyhop_core.requests.engine import Engine
from skyhop_core.requests.logs import RequestLogWriter
from skyhop_core.server.auth import current_user


class _DiscardLog(RequestLogWriter):
    """A log nobody reads: an in-process read's progress lines go nowhere."""

    def __init__(self) -> None:  # no hub, no file
        self._closed = True
        self._live = None
        self._file = None


def local_identity() -> User:
    """The user this machine's CLI acts as (``skyhop.client.identity``: ``user@host``
    hashed), which a local server's dashboard acts as when the browser names nobody."""
    name = getpass.getuser()
    digest = hashlib.sha256(f"{name}@{socket.gethostname()}".encode()).hexdigest()
    return User(name, digest[:8])


class Dashboard:
    """The engine, the server's mode and the templates, shared by every page."""

    def __init__(self, engine: Engine, *, deploy: bool) -> None:
        self.engine = engine
        self.services = engine.services
        self.deploy = deploy
        self.templates = Environment(
            loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(prefix=PREFIX, deploy=deploy)
        self.templates.filters.update(fmt.FILTERS)
        self.templates.globals["url_with"] = fmt.url_with
        self._local_user = local_identity()
        #: Per-server memos (e.g. hourly prices by instance type).
        self.cache: dict[str, Any] = {}

    # --- who is looking --------------------------------------------------------------

    def viewer(self, request: Request) -> User | None:
        """The caller: a deployed server's token holder (bearer or the session cookie,
        see :mod:`skyhop_core.server.auth`), else None. On a local server, whoever the
        identity headers name, else this machine's user."""
        user = current_user(request)
        if self.deploy:
            return user
        if user is None or user.hash == "unknown":
            return self._local_user
        return user

    def may_see_all(self, user: User) -> bool:
        """Whether ``user`` may pass all_users (an admin, or anyone on a local server)."""
        return not self.deploy or user.is_admin

    def owner_scope(self, user: User) -> str | None:
        """Whose requests ``user`` may read by ID (None: all), as the API's routes."""
        return None if not self.deploy or user.is_admin else user.hash

    # --- reads and actions --------------------------------------------------------------

    async def read(self, user: User, operation: str, body: dict[str, Any]) -> Any:
        """Run a read-only operation's handler in-process as ``user``; its result."""
        params = self.engine.parse(operation, body)
        op = self.engine.operations[operation]
        ctx = RequestContext("dashboard", operation, user, self.services, _DiscardLog())
        async with self.engine.limiters["short"]:
            return await op.handler(ctx, params)

    async def submit(self, user: User, operation: str, body: dict[str, Any]) -> str:
        """Submit a real request as ``user``; its ID."""
        return await self.engine.submit(operation, body, user)

    async def outcome(self, request_id: str, timeout: float) -> Any:
        """The finished request's row, or None if it is still running after ``timeout``."""
        with trio.move_on_after(timeout):
            return await self.engine.wait(request_id)
        return None

    # --- HTML -----------------------------------------------------------------------------

    def render(
        self, request: Request, template: str, status_code: int = 200, **values: Any
    ) -> HTMLResponse:
        values.setdefault("user", self.viewer(request))
        values.setdefault("path", request.url.path)
        values.setdefault("query", request.query_params)
        html = self.templates.get_template(template).render(**values)
        return HTMLResponse(html, status_code=status_code)
