"""How many replicas a service's latest version should have.

Fixed services (``replicas: N``, or ``max_replicas`` unset or equal to the minimum) want
``min_replicas``. Autoscaling ones follow the load balancer's QPS over a sliding window
(60 s): the wanted count is ``ceil(qps / target_qps_per_replica)`` clipped to
``[min_replicas, max_replicas]``. The target moves up only after demand has been higher
for ``upscale_delay_seconds`` without a break, down only after it has been lower for
``downscale_delay_seconds``; from zero replicas it moves at once (a request is waiting).
``num_overprovision`` replicas are launched on top.

The state (the target and the times demand was first seen higher / lower) is a plain
mapping kept in the service's row, so a restarted or new owner continues the count
instead of starting over.
"""

from __future__ import annotations

import math
from typing import Any

from skyhop_core.models.service_spec import ReplicaPolicy


def wanted(policy: ReplicaPolicy, qps: float) -> int:
    """The count the load alone asks for."""
    if not policy.autoscaling:
        return policy.min_replicas
    assert policy.target_qps_per_replica is not None and policy.max_replicas is not None
    raw = math.ceil(qps / policy.target_qps_per_replica - 1e-9) if qps > 0 else 0
    return max(policy.min_replicas, min(policy.max_replicas, raw))


def decide(policy: ReplicaPolicy, state: dict[str, Any], qps: float,
           now: float) -> dict[str, Any]:
    """The autoscaler's next state; ``state["target"]`` is the replica target (without
    overprovision)."""
    if not policy.autoscaling:
        return {"target": policy.min_replicas, "upscale_since": None, "downscale_since": None,
                "qps": qps}
    current = state.get("target")
    if current is None:
        current = policy.min_replicas
    current = max(policy.min_replicas, min(policy.max_replicas or current, current))
    want = wanted(policy, qps)
    up, down = state.get("upscale_since"), state.get("downscale_since")
    if want > current:
        down = None
        up = up if up is not None else now
        if current == 0 or now - up >= policy.upscale_delay_seconds:
            current, up = want, None
    elif want < current:
        up = None
        down = down if down is not None else now
        if now - down >= policy.downscale_delay_seconds:
            current, down = want, None
    else:
        up = down = None
    return {"target": current, "upscale_since": up, "downscale_since": down, "qps": qps}


def launch_target(policy: ReplicaPolicy, state: dict[str, Any]) -> int:
    """Replicas to keep alive for the latest version: the target plus overprovision."""
    target = state.get("target")
    if target is None:
        target = policy.min_replicas
    return int(target) + (policy.num_overprovision if target else 0)
