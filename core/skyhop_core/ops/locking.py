"""One lifecycle operation at a time on a cluster, across every API server replica.

``async with cluster_lock(ctx, name):`` serialises launch, start, stop, down (and the
autostop that runs them) on one cluster. Within a replica a trio lock queues requests
in order; across replicas a lease row in the state store
(:mod:`skyhop_core.state.cluster_leases`) does, so two clients whose requests land on
different replicas behind a load balancer see what they would see on one server: the
second operation waits for the first, and says on its log what it is waiting for.

The lease lasts one replica lease (``SKYHOP_SERVER_LEASE_SECONDS``, default 10 s) and is
renewed every third of that while the operation runs. A replica that dies stops renewing
it, so another replica can act on the cluster within one lease. An operation whose lease
was taken over (its replica paused for longer than a lease) is stopped rather than
acting alongside the new holder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from skyhop_core.exceptions import ClusterLeaseLostError
from skyhop_core.requests.context import RequestContext
from skyhop_core.state import cluster_leases as leases

if TYPE_CHECKING:
    from skyhop_core.requests.replicas import Replica

#: How often a waiting operation looks at the lease again.
WAIT_POLL_SECONDS = 0.2


@asynccontextmanager
async def cluster_lock(ctx: RequestContext, name: str) -> AsyncIterator[None]:
    """Hold the cluster for the block: in this replica, then across replicas."""
    services = ctx.services
    async with services.cluster_locks[name]:
        engine = services.engine
        if engine is None:  # a bare Services (unit tests): this process is the only server
            yield
            return
        replica, store = engine.replica, services.store
        await _acquire(ctx, name, replica)
        try:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_renew, ctx, name, replica.lease)
                    yield
                    nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # The block runs inside the renewal's nursery, which wraps what it raises;
                # callers (and the wire) expect the error itself.
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
        finally:
            with trio.CancelScope(shield=True):
                await store.run(leases.release, name, ctx.request_id)


async def _acquire(ctx: RequestContext, name: str, replica: Replica) -> None:
    told = None
    while True:
        holder = await ctx.services.store.run(
            lambda conn: leases.acquire(
                conn,
                name,
                request_id=ctx.request_id,
                operation=ctx.name,
                server_id=replica.server_id,
                host=replica.host,
                lease=replica.lease,
            )
        )
        if holder is None:
            return
        if holder.request_id != told:
            ctx.log(
                f"Cluster {name!r} is busy: its {holder.operation} request "
                f"{holder.request_id[:8]} runs on another API server ({holder.host}); waiting."
            )
            told = holder.request_id
        await trio.sleep(WAIT_POLL_SECONDS)


async def _renew(ctx: RequestContext, name: str, lease: float) -> None:
    while True:
        await trio.sleep(lease / 3)
        held = await ctx.services.store.run(leases.renew, name, ctx.request_id, lease)
        if not held:
            raise ClusterLeaseLostError(
                f"This API server lost its hold on cluster {name!r} (it did not renew the "
                f"lease for {lease:.0f} s, so another server took the cluster over); the "
                f"{ctx.name} request stopped. Check `skyhop status {name}` and retry."
            )
