"""Readiness probes: is a replica answering its ``readiness_probe``?

A probe is a GET of the probe's path (a POST of ``post_data`` as JSON when given) with
its headers, answered 200 within ``timeout_seconds``. The controller probes every
replica that has an endpoint each ``SKYHOP_SERVE_PROBE_SECONDS`` (and at once when the
load balancer could not connect to one), and applies the result to the ready set
before the next probe — see :func:`next_status` for the rules. :func:`probe_all` is the
controller's side: it applies each outcome to the row and the ready set, and a replica
whose probe fails while its cluster is gone is PREEMPTED.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
import trio

from skyhop_core.models.service_spec import ReadinessProbe
from skyhop_core.models.status import ReplicaStatus
from skyhop_core.serve import state as ss

if TYPE_CHECKING:
    from skyhop_core.serve.controller import ServiceController

R = ReplicaStatus


async def probe(client: httpx.AsyncClient, endpoint: str, spec: ReadinessProbe) -> str | None:
    """None when ``http://endpoint<path>`` answers 200 in time; else what went wrong
    (``HTTP 503``, the connection error, no answer in time), for the failure reason."""
    url = f"http://{endpoint}{spec.path}"
    try:
        with trio.fail_after(spec.timeout_seconds):
            if spec.post_data is not None:
                response = await client.post(url, json=spec.post_data, headers=spec.headers)
            else:
                response = await client.get(url, headers=spec.headers)
    except trio.TooSlowError:
        return f"GET {spec.path}: no answer within {spec.timeout_seconds:g} s"
    except (httpx.HTTPError, OSError) as exc:
        return f"GET {spec.path}: {type(exc).__name__}: {exc}"[:300]
    if response.status_code != 200:
        return f"GET {spec.path}: HTTP {response.status_code}"
    return None


def next_status(
    status: ReplicaStatus, ok: bool, *, now: float, starting_since: float | None,
    not_ready_since: float | None, initial_delay: float, not_ready_timeout: float,
) -> tuple[ReplicaStatus, dict[str, Any]]:
    """The replica's status after a probe, and the row values that change with it.

    - STARTING: ready → READY; failing past ``initial_delay`` → FAILED_INITIAL_DELAY.
    - READY: failing → NOT_READY (out of the ready set at once).
    - NOT_READY: ready → READY; failing for ``not_ready_timeout`` → FAILED_PROBING.
    """
    if ok:
        if status in (R.STARTING, R.NOT_READY):
            values: dict[str, Any] = {"not_ready_since": None}
            if status is R.STARTING:
                values["first_ready_at"] = now
            return R.READY, values
        return status, {}
    if status is R.STARTING:
        if starting_since is not None and now - starting_since > initial_delay:
            return R.FAILED_INITIAL_DELAY, {
                "failure_reason": f"Not ready within the initial delay ({initial_delay:g} s)."
            }
        return status, {}
    if status is R.READY:
        return R.NOT_READY, {"not_ready_since": now}
    if status is R.NOT_READY:
        since = not_ready_since if not_ready_since is not None else now
        if now - since >= not_ready_timeout:
            return R.FAILED_PROBING, {
                "failure_reason": f"Failed readiness probes for {now - since:.0f} s."
            }
        return status, {} if not_ready_since is not None else {"not_ready_since": now}
    return status, {}


async def probe_all(ctl: ServiceController) -> None:
    """Probe every replica that has an endpoint (and is not busy launching or going)."""
    probed = [r for r in ctl.rows.values()
              if r.status in (R.STARTING.value, R.READY.value, R.NOT_READY.value)
              and not r.terminate_requested and r.replica_id not in ctl.busy]
    async with trio.open_nursery() as nursery:
        for r in probed:
            nursery.start_soon(_probe_one, ctl, r)


async def _probe_one(ctl: ServiceController, r: Any) -> None:
    version = await ctl.version(r.version)
    failure = await probe(ctl.http, r.endpoint, version.spec.readiness_probe)
    ok = failure is None
    status, values = next_status(
        R(r.status), ok, now=time.time(), starting_since=r.starting_since,
        not_ready_since=r.not_ready_since,
        initial_delay=version.spec.readiness_probe.initial_delay_seconds,
        not_ready_timeout=ctl.service.settings.not_ready_seconds,
    )
    if not ok and r.status != R.STARTING.value and await cluster_gone(ctl, r):
        status, values = R.PREEMPTED, {"failure_reason": "Its cluster is not UP."}
    elif "failure_reason" in values:  # why the last probe failed says what to look at
        values["failure_reason"] += f" The last probe: {failure}."
    if status.value == r.status and not values:
        return
    applied = await ctl.store_run(lambda c: ss.probed(c, ctl.name, r.replica_id, r.status,
                                                      status=status.value, **values))
    current = await ctl.store_run(ss.replica, ctl.name, r.replica_id)
    if current is None:
        return
    ctl.rows[r.replica_id] = current
    ctl.publish()  # before anything else: the ready set follows the probe at once
    if not applied:
        return
    if status.value != r.status:
        ctl.log(f"Replica {r.replica_id}: {r.status} -> {status.value}"
                + (f" ({values['failure_reason']})" if "failure_reason" in values else ""))
    if status is R.PREEMPTED:
        ctl.spawn_teardown(current)
    elif status.is_failed():
        ctl.spawn_teardown(current, keep=status)


async def cluster_gone(ctl: ServiceController, r: Any) -> bool:
    """Whether the replica's cluster is gone or not fully running (its backend says)."""
    from skyhop_core.models.records import NodeState
    from skyhop_core.models.status import ClusterStatus
    from skyhop_core.state import clusters as cl

    record = await ctl.store_run(cl.get, r.cluster_name)
    if record is None or record.status is not ClusterStatus.UP or record.handle is None:
        return True
    services = ctl.service.services
    handle = record.handle
    try:
        nodes = await services.backends.call(
            handle.backend, "skyhop_query", ctx=services.backend_ctx(handle.backend, ctl.ctx),
            handle=handle,
        )
    except Exception:
        return False  # a backend that cannot tell: trust the probes
    return len(nodes) != len(handle.nodes) or any(n.state is not NodeState.RUNNING
                                                  for n in nodes)
