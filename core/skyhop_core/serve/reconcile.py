"""Reconciling a service's replicas with what its latest version wants.

- The latest version gets the autoscaler's target (plus overprovision). A version that
  uses spot splits it the way SkyPilot does (:func:`spot_split`):
  ``base_ondemand_fallback_replicas`` on-demand replicas always run next to the spot
  ones, and with ``dynamic_ondemand_fallback`` one more on-demand replica runs for every
  spot replica that is wanted but not READY (provisioning, starting, preempted); those
  go again, once the spot replicas are READY.
- Extra replicas are drained and torn down: not-ready ones first, newest first.
- Older versions go by the update mode: rolling keeps as many old replicas as the target
  still lacks READY new ones (traffic mixes meanwhile); blue-green sends traffic only
  to the old version until the new one has ``min_replicas`` READY, then switches and
  tears the old ones down.
- The service's status follows from all of its replicas (:func:`service_status`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from skyhop_core.models.service_spec import ReplicaPolicy
from skyhop_core.models.status import ReplicaStatus, ServiceStatus
from skyhop_core.serve import replicas
from skyhop_core.serve import state as ss

if TYPE_CHECKING:
    from skyhop_core.serve.controller import ServiceController
    from skyhop_core.serve.versions import Version

R = ReplicaStatus
S = ServiceStatus


def spot_split(policy: ReplicaPolicy, target: int, launch_target: int,
               ready_spot: int) -> tuple[int, int]:
    """``(spot, on_demand)`` replicas a spot version wants, given the autoscaler's
    ``target``, the ``launch_target`` (target plus overprovision) and how many of its
    spot replicas are READY."""
    spot = max(0, launch_target - policy.base_ondemand_fallback_replicas)
    on_demand = policy.base_ondemand_fallback_replicas
    if policy.dynamic_ondemand_fallback:
        on_demand += max(0, spot - ready_spot)
    # No on-demand fallback for overprovisioned replicas.
    return spot, min(on_demand, target)


async def reconcile(ctl: ServiceController, row: Any, latest: Version, rows: list[Any],
                    target: int, launch_target: int, failed: bool) -> int | None:
    """Launch/terminate toward the targets; returns the traffic version."""
    alive = [r for r in rows if R(r.status).is_alive() and not r.terminate_requested]
    new = [r for r in alive if r.version == row.version]
    ready_new = [r for r in new if r.status == R.READY.value]
    old = [r for r in alive if r.version != row.version]
    if latest.uses_spot:
        ready_spot = sum(r.is_spot and r.status == R.READY.value for r in new)
        spot, on_demand = spot_split(latest.spec.replica_policy, target, launch_target,
                                     ready_spot)
        wanted = {True: spot, False: on_demand}
    else:
        wanted = {False: launch_target}
    for is_spot, count in wanted.items():
        mine = [r for r in new if bool(r.is_spot) == is_spot or not latest.uses_spot]
        if not failed:
            for _ in range(count - len(mine)):
                await _add_replica(ctl, row, is_spot=is_spot)
        if len(mine) > count:
            # Not-yet-ready ones first, newest first.
            extra = sorted(mine, key=lambda r: (r.status == R.READY.value, -r.replica_id))
            kind = ("spot " if is_spot else "on-demand ") if latest.uses_spot else ""
            for r in extra[: len(mine) - count]:
                await terminate(ctl, r, f"scaling down {kind}replicas")
    traffic = row.traffic_version
    if latest.mode == "blue_green" and traffic is not None and traffic != row.version:
        need = max(1, latest.spec.replica_policy.min_replicas)
        if len(ready_new) >= min(need, max(launch_target, 1)) and not failed:
            traffic = row.version
            ctl.traffic_version = traffic
            ctl.publish()
            ctl.log(f"Blue-green: version {row.version} has {len(ready_new)} ready "
                    "replica(s); traffic switched to it.")
        else:
            return traffic  # the old version keeps serving, untouched
    if old and not failed:
        keep = 0 if latest.mode == "blue_green" else max(0, launch_target - len(ready_new))
        doomed = sorted(old, key=lambda r: (r.status == R.READY.value, r.replica_id))
        for r in doomed[: max(0, len(old) - keep)]:
            await terminate(ctl, r, f"replaced by version {row.version}")
    return traffic


async def _add_replica(ctl: ServiceController, row: Any, *, is_spot: bool) -> None:
    replica_id, _cluster = await ctl.store_run(
        lambda c: ss.add_replica(c, ctl.name, row.version, is_spot=is_spot))
    r = await ctl.store_run(ss.replica, ctl.name, replica_id)
    ctl.rows[replica_id] = r
    ctl.spawn(replica_id, replicas.launch, ctl, r)


async def terminate(ctl: ServiceController, r: Any, why: str, *, drain: bool = True) -> None:
    """Take ``r`` out of the ready set now; tear it down once drained."""
    drain_until = time.time() + (ctl.service.settings.drain_seconds if drain else 0)
    await ctl.store_run(lambda c: ss.update_replica(
        c, ctl.name, r.replica_id, status=R.SHUTTING_DOWN.value, terminate_requested=True,
        drain_until=drain_until))
    ctl.log(f"Terminating replica {r.replica_id} ({why}).")
    current = await ctl.store_run(ss.replica, ctl.name, r.replica_id)
    ctl.rows[r.replica_id] = current
    ctl.publish()
    ctl.spawn_teardown(current, drain_until=drain_until)


def service_status(ctl: ServiceController, row: Any, failed_version: int | None) -> ServiceStatus:
    """READY while any replica serves; FAILED when the latest version failed and none of
    it is alive; REPLICA_INIT while replicas come up; NO_REPLICA otherwise."""
    rows = list(ctl.rows.values())
    if ctl.lb.ready:
        return S.READY
    alive = [r for r in rows if R(r.status).is_alive()]
    if failed_version == row.version and not any(r.version == row.version for r in alive):
        return S.FAILED
    if alive:
        return S.REPLICA_INIT
    return S.NO_REPLICA


async def shutdown(ctl: ServiceController, row: Any) -> bool:
    """``serve down``: the load balancer and every replica go, then the rows (or the
    service stays FAILED_CLEANUP with the clusters that would not go). Returns True."""
    import trio

    ctl.log("Shutting down: removing the load balancer and every replica.")
    await ctl.store_run(lambda c: ss.update(c, ctl.name, status=S.SHUTTING_DOWN.value))
    ctl.lb.set_ready({})
    assert ctl.nursery is not None
    ctl.nursery.cancel_scope.cancel()  # the load balancer and replica tasks
    failures: list[str] = []
    with trio.CancelScope(shield=True):
        rows = await ctl.store_run(ss.replicas, ctl.name)

        async def down(r: Any) -> None:
            if r.endpoint == replicas.TORN_DOWN:
                return
            await ctl.store_run(lambda c: ss.update_replica(
                c, ctl.name, r.replica_id, status=R.SHUTTING_DOWN.value))
            if not await replicas.teardown(ctl, r.replica_id, r.cluster_name):
                failures.append(r.cluster_name)

        async with trio.open_nursery() as nursery:
            for r in rows:
                nursery.start_soon(down, r)
        if failures and not row.purge:
            reason = (f"Could not tear down {', '.join(failures)}; see `skyhop serve logs "
                      f"{ctl.name} --controller`, then `skyhop serve down {ctl.name} "
                      "--purge`.")
            ctl.log(reason)
            await ctl.store_run(lambda c: ss.update(
                c, ctl.name, status=S.FAILED_CLEANUP.value, failure_reason=reason,
                down_requested=False, purge=False))
            return True
        await ctl.store_run(ss.delete, ctl.name)
        ctl.service.remove_files(ctl.name)
        ctl.log("Service is down.")
    return True
