"""The server's autostop loop: stop (or down) UP clusters idle for longer than their setting.

Idle time is the shorter of what the cluster's agent reports (no pending or running job
since then) and the time since autostop was set, so setting autostop on a cluster that
has long been idle starts a fresh timer. The stop/down runs as an ordinary request owned
by the cluster's owner, so it shows in ``skyhop api status`` and can be cancelled; it
marks the cluster AUTOSTOPPING and runs the autostop hook first
(:mod:`skyhop_core.ops.autostopping`).

``wait_for`` (``autostop --wait-for``, ``resources.autostop.wait_for``): ``jobs`` counts
running jobs and requests as activity; ``jobs_and_ssh`` (the default) also an interactive
SSH session open on the head node of a backend reached over SSH (the idle time then
counts from when the last one closed); ``none`` stops the cluster ``idle_minutes`` after
autostop was set, whatever runs.
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
        records = await engine.services.store.run(cl.list_autostop_candidates)
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
    fields = await services.store.run(cl.autostop_fields, record.name)
    set_at = (fields[2] if fields else None) or time.time()
    wait_for = (record.metadata.get("autostop_options") or {}).get("wait_for") or "jobs_and_ssh"
    idle = time.time() - set_at
    if wait_for != "none":  # "none": stop N minutes after it was set, busy or not
        busy = await services.store.run(lambda c: rq.unfinished_ids(c, cluster_name=record.name))
        if busy:
            return
        agent_idle = await services.backends.call(
            record.backend,
            "skyhop_idle_seconds",
            ctx=services.backend_ctx(record.backend),
            handle=record.handle,
            wait_for=wait_for,
        )
        if float(agent_idle) <= 0:
            return  # a job is running (this matters with idle_minutes 0)
        idle = min(float(agent_idle), idle)
    if idle < record.autostop * 60:
        return
    operation = "down" if record.to_down else "stop"
    await engine.submit(
        operation,
        {"cluster_name": record.name, "from_autostop": True},
        User(record.user_name, record.user_hash),
    )
