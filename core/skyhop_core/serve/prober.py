"""Readiness probes: is a replica answering its ``readiness_probe``?

A probe is a GET of the probe's path (a POST of ``post_data`` as JSON when given) with
its headers, answered 200 within ``timeout_seconds``. The controller probes every
replica that has an endpoint each ``SKYHOP_SERVE_PROBE_SECONDS`` (and at once when the
load balancer could not connect to one), and applies the result to the ready set
before the next probe — see :func:`next_status` for the rules.
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from skyhop_core.models.service_spec import ReadinessProbe
from skyhop_core.models.status import ReplicaStatus

R = ReplicaStatus


async def probe(client: httpx.AsyncClient, endpoint: str, spec: ReadinessProbe) -> bool:
    """True when ``http://endpoint<path>`` answers 200 in time."""
    url = f"http://{endpoint}{spec.path}"
    try:
        with trio.fail_after(spec.timeout_seconds):
            if spec.post_data is not None:
                response = await client.post(url, json=spec.post_data, headers=spec.headers)
            else:
                response = await client.get(url, headers=spec.headers)
    except (httpx.HTTPError, trio.TooSlowError, OSError):
        return False
    return response.status_code == 200


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
