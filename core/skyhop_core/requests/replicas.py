"""This API server among its replicas: identity, lease, takeover, cross-replica cancels.

Several servers can share one database (PostgreSQL) and one persistent path. Every
request has exactly one owner, the replica that runs it:

1. A replica registers in ``servers`` at start and renews its heartbeat every third of
   the lease (``SKYHOP_SERVER_LEASE_SECONDS``, default 10 s).
2. A replica whose heartbeat is older than the lease, or that ran on this host and whose
   process is gone, is dead. Any live replica takes over its requests: RUNNING ones FAIL
   (they were interrupted), PENDING ones are claimed one by one with a conditional
   update — only one replica wins each — and run there. So a killed replica's queue
   moves on within about one lease.
3. A replica that finds its own registration gone was declared dead (a long pause): it
   cancels everything it was running, whose rows now belong to others, and registers
   again under a new identity. Its writes are conditional on still owning the row, so it
   cannot overwrite what the new owner does.
4. Cancelling a request another replica owns sets ``cancel_requested``; the owner polls
   for the flag and cancels the request's scope.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

import trio

from skyhop_core import wire
from skyhop_core.exceptions import ServerRestartedError
from skyhop_core.requests.secrets import redact
from skyhop_core.state import requests as rq
from skyhop_core.state import servers as srv

if TYPE_CHECKING:
    from skyhop_core.requests.engine import Engine

CANCEL_POLL_SECONDS = 0.2

_INTERRUPTED = ServerRestartedError(
    "The API server that ran this request stopped before it finished. Check the cluster "
    "with `skyhop status` and submit it again."
)


class Replica:
    def __init__(self, lease_seconds: float | None = None) -> None:
        self.lease = lease_seconds or float(os.environ.get("SKYHOP_SERVER_LEASE_SECONDS", "10"))
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.server_id = uuid.uuid4().hex

    async def register(self, engine: Engine) -> None:
        await engine.services.store.run(srv.register, self.server_id, self.host, self.pid)

    async def take_over_dead(self, engine: Engine, *, legacy: bool = False) -> None:
        """Fail the dead replicas' running requests and run their pending ones here."""
        store = engine.services.store
        error = wire.encode_error(_INTERRUPTED)
        dead: list[str | None] = [None] if legacy else []
        dead += await store.run(
            lambda c: srv.dead(c, me=self.server_id, host=self.host, lease=self.lease)
        )
        for server_id in dead:
            claimed = await store.run(rq.take_over, server_id, self.server_id, error, redact)
            if server_id is not None:
                await store.run(srv.remove, server_id)
            for request_id in claimed:
                engine.resume(await store.run(rq.get_row, request_id))

    async def is_leader(self, engine: Engine) -> bool:
        """One live replica (the smallest ID) runs the cluster-wide loops (autostop)."""
        live = await engine.services.store.run(lambda c: srv.live(c, lease=self.lease))
        return not live or live[0] == self.server_id

    async def run(self, engine: Engine) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._lease_loop, engine)
            nursery.start_soon(self._cancel_loop, engine)

    async def _lease_loop(self, engine: Engine) -> None:
        store = engine.services.store
        while True:
            await trio.sleep(self.lease / 3)
            if not await store.run(srv.heartbeat, self.server_id):
                engine.cancel_all_local()
                self.server_id = uuid.uuid4().hex
                await self.register(engine)
            await self.take_over_dead(engine)

    async def _cancel_loop(self, engine: Engine) -> None:
        store = engine.services.store
        while True:
            await trio.sleep(CANCEL_POLL_SECONDS)
            for request_id in await store.run(rq.cancel_requested_ids, self.server_id):
                engine.cancel_local(request_id)

    def describe(self) -> dict[str, Any]:
        return {"server_id": self.server_id, "host": self.host, "pid": self.pid}
