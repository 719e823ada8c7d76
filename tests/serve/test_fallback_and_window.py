"""Spot/on-demand splits and the saved QPS window (pure logic; the end-to-end checks
are in test_serve_local.py and test_serve_recovery.py)."""

from __future__ import annotations

import time

from skyhop_core.models.service_spec import ReplicaPolicy
from skyhop_core.serve import autoscaler
from skyhop_core.serve.load_balancer import LoadBalancer
from skyhop_core.serve.reconcile import spot_split


def test_base_on_demand_replicas_run_next_to_spot_ones() -> None:
    policy = ReplicaPolicy(min_replicas=3, base_ondemand_fallback_replicas=1)
    assert spot_split(policy, 3, 3, ready_spot=0) == (2, 1)
    assert spot_split(policy, 3, 3, ready_spot=2) == (2, 1)  # static: no more on-demand
    # More base replicas than the target: all on-demand, capped at the target.
    assert spot_split(ReplicaPolicy(min_replicas=1, base_ondemand_fallback_replicas=3),
                      1, 1, ready_spot=0) == (0, 1)


def test_dynamic_fallback_covers_spot_replicas_that_are_not_ready() -> None:
    policy = ReplicaPolicy(min_replicas=2, base_ondemand_fallback_replicas=1,
                           dynamic_ondemand_fallback=True)
    assert spot_split(policy, 2, 2, ready_spot=0) == (1, 2)  # the spot one is coming up
    assert spot_split(policy, 2, 2, ready_spot=1) == (1, 1)  # READY: the cover goes
    dynamic = ReplicaPolicy(min_replicas=2, dynamic_ondemand_fallback=True)
    assert spot_split(dynamic, 2, 2, ready_spot=0) == (2, 2)
    assert spot_split(dynamic, 2, 2, ready_spot=1) == (2, 1)
    assert spot_split(dynamic, 2, 2, ready_spot=3) == (2, 0)  # more READY than wanted
    # No on-demand cover for overprovisioned replicas.
    over = ReplicaPolicy(min_replicas=2, num_overprovision=2, dynamic_ondemand_fallback=True)
    assert spot_split(over, 2, 4, ready_spot=0) == (4, 2)


def test_the_qps_window_survives_a_restart_and_keeps_the_target() -> None:
    policy = ReplicaPolicy(min_replicas=1, max_replicas=3, target_qps_per_replica=1,
                           upscale_delay_seconds=1, downscale_delay_seconds=1)
    before = LoadBalancer("svc", "round_robin", qps_window=10)
    now = time.monotonic()
    before.arrivals.extend(now - age for age in [9.9, 9.0, *[i / 10 for i in range(24)]])
    assert before.qps() == 2.6
    saved = before.saved_window()
    assert sum(saved["counts"]) == 26 and len(saved["counts"]) <= 30
    # A new owner (another process: wall-clock ages), 1 s later: what left the window
    # since is gone, the rest is there.
    saved["at"] -= 1.0
    after = LoadBalancer("svc", "round_robin", qps_window=10)
    after.restore_window(saved)
    assert 2.3 <= after.qps() <= 2.5
    state = {"target": 3, "upscale_since": None, "downscale_since": None}
    decided = autoscaler.decide(policy, state, after.qps(), time.time())
    assert decided["target"] == 3 and decided["downscale_since"] is None
    # Without the window the same round would start scaling down.
    empty = LoadBalancer("svc", "round_robin", qps_window=10)
    assert autoscaler.decide(policy, state, empty.qps(), time.time())["downscale_since"]
    # Garbage in the row is ignored, not fatal.
    for bad in (None, {"counts": "x"}, {"at": "x", "step": 1, "counts": [1]}, {"counts": [1]}):
        empty.restore_window(bad)
    assert empty.qps() == 0
