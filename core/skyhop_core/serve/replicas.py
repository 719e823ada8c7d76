"""Launching and tearing down one replica: an ordinary cluster ``<service>-<id>``.

A replica is launched by the same operation as ``skyhop launch`` (optimizer, failover,
file sync, the task's job), with its version's task plus ``SKYHOP_SERVE_REPLICA_ID`` and
``SKYPILOT_SERVE_REPLICA_ID`` in its environment and the service port among its
resources' ports. Its endpoint is what the cluster record maps that port to (a local
node without its own network gets a free loopback port), so the load balancer and the
prober always target what the backend says.

Every step is written to the replica's row first, so a resumed controller knows what
to redo: PENDING/PROVISIONING launch again (``launch`` reuses or finishes the cluster),
SHUTTING_DOWN tears down again.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import trio

from skyhop_core.exceptions import ClusterDoesNotExist
from skyhop_core.models.service_spec import ServiceSpec
from skyhop_core.models.status import ReplicaStatus
from skyhop_core.serve import state as ss

if TYPE_CHECKING:
    from skyhop_core.serve.controller import ServiceController

R = ReplicaStatus
#: The endpoint of a failed replica whose cluster is gone (its row stays until purged).
TORN_DOWN = "-"


def service_port(spec: ServiceSpec, task: Any) -> int:
    """The port replicas listen on: ``service.ports``, else the one ``resources.ports``."""
    if spec.ports is not None:
        return spec.ports
    ports = {p for r in task.resources for p in r.port_numbers()}
    if len(ports) != 1:
        raise ValueError(
            "service: name the port the replicas listen on with service.ports (or exactly "
            f"one port in resources.ports; found {sorted(ports) or 'none'})."
        )
    return ports.pop()


def replica_task(config: dict[str, Any], secrets: dict[str, str], replica_id: int,
                 port: int, *, use_spot: bool | None) -> dict[str, Any]:
    """The task-YAML mapping a replica's cluster is launched with."""
    from skyhop_core.ops.common import parse_task

    task, _ = parse_task({**config, "secrets": {**(config.get("secrets") or {}), **secrets}}
                         if secrets else config)
    task.set_service(None)
    task.update_envs({"SKYHOP_SERVE_REPLICA_ID": str(replica_id),
                      "SKYPILOT_SERVE_REPLICA_ID": str(replica_id)})
    options = []
    for r in task.resources:
        changes: dict[str, Any] = {}
        if port not in r.port_numbers():
            changes["ports"] = [*(r.ports or ()), str(port)]
        if use_spot is not None and r.use_spot != use_spot:
            changes["use_spot"] = use_spot
        options.append(r.copy(**changes) if changes else r)
    task.set_resources(tuple(options), ordered=task.resources_ordered)
    return dict(task.to_yaml_config())


async def launch(ctl: ServiceController, row: Any) -> None:
    """PENDING/PROVISIONING → STARTING (the cluster is up and has its endpoint), or
    FAILED_PROVISION (its cluster torn down)."""
    from skyhop_core.ops import clusters as ops_clusters
    from skyhop_core.ops import params as P

    store = ctl.service.services.store
    replica_id = row.replica_id
    await store.run(lambda c: ss.update_replica(c, ctl.name, replica_id,
                                                status=R.PROVISIONING.value))
    ctl.log(f"Launching replica {replica_id} (version {row.version}) as {row.cluster_name!r}.")
    try:
        version = await ctl.version(row.version)
        port = service_port(version.spec, version.task)
        use_spot = row.is_spot if version.uses_spot else None
        config = replica_task(version.config, version.secrets, replica_id, port,
                              use_spot=use_spot)
        result = await ops_clusters.launch(
            ctl.ctx, P.LaunchParams(task=config, cluster_name=row.cluster_name)
        )
        handle = result["handle"]
        endpoint = handle.ports.get(port) or f"{handle.head.ip}:{port}"
    except Exception as exc:
        if isinstance(exc, trio.Cancelled):
            raise
        reason = f"{type(exc).__name__}: {exc}"
        ctl.log(f"Replica {replica_id} failed to launch: {reason}")
        await store.run(lambda c: ss.update_replica(
            c, ctl.name, replica_id, status=R.FAILED_PROVISION.value, failure_reason=reason))
        await teardown(ctl, replica_id, row.cluster_name, keep=R.FAILED_PROVISION)
        return
    now = time.time()
    await store.run(lambda c: ss.update_replica(
        c, ctl.name, replica_id, status=R.STARTING.value, endpoint=endpoint,
        starting_since=now))
    ctl.log(f"Replica {replica_id} is up at {endpoint}; probing it.")
    ctl.wake()


async def teardown(ctl: ServiceController, replica_id: int, cluster: str, *,
                   keep: ReplicaStatus | None = None, drain_until: float | None = None) -> bool:
    """Tear the replica's cluster down, after its in-flight requests finished (or
    ``drain_until`` passed). The row is removed, or kept with status ``keep`` (a failed
    replica stays visible until purged); a failed teardown leaves FAILED_CLEANUP."""
    from skyhop_core.ops import clusters as ops_clusters
    from skyhop_core.ops import params as P

    store = ctl.service.services.store
    if drain_until is not None:
        while ctl.lb.in_flight(replica_id) > 0 and time.time() < drain_until:
            await trio.sleep(0.1)
    try:
        with contextlib.suppress(ClusterDoesNotExist):
            await ops_clusters.down(ctl.ctx, P.ClusterParams(cluster, purge=True))
    except Exception as exc:
        if isinstance(exc, trio.Cancelled):
            raise
        reason = f"Teardown failed: {type(exc).__name__}: {exc}"
        ctl.log(f"Replica {replica_id}: {reason}")
        await store.run(lambda c: ss.update_replica(
            c, ctl.name, replica_id, status=R.FAILED_CLEANUP.value, failure_reason=reason))
        return False
    if keep is None:
        await store.run(lambda c: ss.delete_replica(c, ctl.name, replica_id))
        ctl.log(f"Replica {replica_id} is terminated.")
    else:
        ctl.log(f"Replica {replica_id} ({keep.value}) is torn down.")
    ctl.wake()
    return True
