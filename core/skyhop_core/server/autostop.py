"""The server's autostop loop: stop (or down) UP clusters idle for longer than their setting.

Idle time is the shorter of what the cluster's agent reports (no pending or running job
since then) and the time since autostop was set, so setting autostop on a cluster that
has long been idle starts a fresh timer. The stop/down runs as an ordinary request owned
by the cluster's owner, so it shows in ``skyhop api status`` and can be cancelled.
"""

from __future__ import annotations

import time

import trio

from skyhop_core.models.records import ClusterRecord, Feature
from skyhop_core.models.status import ClusterStatus
from skyhop_core.requests.context import User
from skyhop_core.requests.engine import Engine
from skyhop_core.state import clusters as cl
from skyhop_core.state import requests as rq


async def autostop_loop(engine: Engine, interval: float) -> None:
    while True:
        await trio.sleep(interval)
        if not await engine.replica.is_leader(engine):
            continue  # with several replicas, one of them stops idle clusters
        records = await engine.services.store.run(cl.list_all)
        for record in records:
            try:
                await _maybe_stop(engine, record)
            except Exception as exc:  # one broken cluster must not stop the loop
                print(f"autostop: {record.name}: {type(exc).__name__}: {exc}", flush=True)


async def _maybe_stop(engine: Engine, record: ClusterRecord) -> None:
    services = engine.services
    if record.status is not ClusterStatus.UP or record.autostop < 0 or record.handle is None:
        return
    if not services.backends.info(record.backend).supports(Feature.AUTOSTOP):
        return
    busy = await services.store.run(lambda c: rq.unfinished_ids(c, cluster_name=record.name))
    if busy:
        return
    fields = await services.store.run(cl.autostop_fields, record.name)
    set_at = (fields[2] if fields else None) or time.time()
    idle = await services.backends.call(
        record.backend,
        "skyhop_idle_seconds",
        ctx=services.backend_ctx(record.backend),
        handle=record.handle,
    )
    if min(float(idle), time.time() - set_at) < record.autostop * 60:
        return
    operation = "down" if record.to_down else "stop"
    await engine.submit(
        operation, {"cluster_name": record.name}, User(record.user_name, record.user_hash)
    )
