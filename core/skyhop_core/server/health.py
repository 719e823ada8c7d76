"""The server's health watcher: UP clusters whose job runtime died become INIT.

Every ``SKYHOP_HEALTH_INTERVAL`` seconds (default :data:`DEFAULT_INTERVAL`) the HA
leader asks every UP cluster's backend ``skyhop_runtime_health``
(:func:`skyhop_core.ops.health.check_runtime`). With the default node agent that call
also marks the jobs of a dead agent daemon FAILED_DRIVER and kills their processes, so
after a ``kill -9`` of the daemon (or of the head node) the jobs are FAILED_DRIVER and
the cluster INIT within one interval plus one check (a check gives up on a head that
does not answer after 20 s), without any user action. ``queue`` itself never waits
for the watcher: the agent reconciles before it answers. Clusters of live managed jobs
are watched by their controllers instead (:mod:`skyhop_core.jobs.controller`).
"""

from __future__ import annotations

import os

import trio

from skyhop_core.models.status import ClusterStatus
from skyhop_core.ops.health import check_runtime
from skyhop_core.requests.engine import Engine
from skyhop_core.state import clusters as cl

DEFAULT_INTERVAL = 10.0


def health_interval() -> float:
    """Seconds between two rounds of checks (``SKYHOP_HEALTH_INTERVAL``)."""
    return float(os.environ.get("SKYHOP_HEALTH_INTERVAL", DEFAULT_INTERVAL))


async def health_loop(engine: Engine, interval: float) -> None:
    """Check every UP cluster each ``interval`` seconds, all clusters at once."""
    while True:
        await trio.sleep(interval)
        if not await engine.replica.is_leader(engine):
            continue  # with several replicas, one of them watches the clusters
        await check_all(engine)


async def check_all(engine: Engine) -> None:
    """One round: every UP cluster concurrently, so one slow head delays no other."""
    services = engine.services
    # Live managed jobs' clusters are left out: each job's controller watches its own
    # cluster (backend query and agent queue, which reconciles a dead daemon's jobs), so
    # 10,000 running jobs do not add 10,000 checks to every round here.
    records = await services.store.run(cl.list_visible)

    async def one(record: cl.ClusterRecord) -> None:
        try:
            checked = await check_runtime(services, record)
        except Exception as exc:  # one broken cluster must not stop the watcher
            print(f"health: {record.name}: {type(exc).__name__}: {exc}", flush=True)
            return
        if checked.status is not record.status:
            reason = checked.metadata.get("status_reason")
            print(f"health: cluster {record.name!r} is INIT: {reason}", flush=True)

    async with trio.open_nursery() as nursery:
        for record in records:
            if record.status is ClusterStatus.UP and record.handle is not None:
                nursery.start_soon(one, record)
